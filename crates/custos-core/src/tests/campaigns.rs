//! Campaign detection through the engine and the default rules: the 2018
//! pattern (a victim every day or two, each moved to a mule account of its
//! own at one small e-money issuer) among honest sellers who change banks
//! now and then.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{DAY, at, event};
use crate::decision::EffectKind;
use crate::{Action, Decision, Engine};

struct Market {
    engine: Engine,
    n: u64,
}

impl Market {
    fn send(&mut self, account: &str, t: i64, ty: &str, fields: Value) -> Decision {
        self.n += 1;
        let mut v = json!({"event_id": format!("e{}", self.n), "type": ty, "account_id": account, "time": at(t)});
        for (k, x) in fields.as_object().expect("fields are an object") {
            v[k] = x.clone();
        }
        self.engine.process(&event(v))
    }

    fn home_login(&mut self, seller: u32, t: i64) {
        self.send(
            &format!("seller-{seller}"),
            t,
            "login",
            json!({"status": "success", "session_id": format!("s{seller}-{t}"),
                   "ip": format!("81.2.{}.{}", seller / 250, seller % 250 + 1),
                   "device_id": format!("laptop-{seller}")}),
        );
    }
}

/// 200 sellers with history; honest bank changes spread over 12 banks at
/// about one every two days; from day 40, a victim every 1.5 days. Returns
/// the market, the victims' change decisions, and the first victim (1-based)
/// whose change set off `campaign.detected`, if any.
fn season(attack: bool) -> (Market, Vec<Decision>, Option<usize>) {
    let mut m = Market {
        engine: Engine::new(Arc::new(crate::rules::default_rule_set())),
        n: 0,
    };
    let sellers = 200u32;
    let mut victims = Vec::new();
    let mut detected_at = None;
    let mut next_victim = 0u32;
    for day in 0..70i64 {
        for seller in 0..sellers {
            if (i64::from(seller) + day) % 5 == 0 {
                m.home_login(seller, day * DAY + i64::from(seller) * 60);
            }
        }
        // An honest change every other day, from the seller's own session.
        if day % 2 == 1 {
            let seller = (day as u32 * 37) % sellers;
            let t = day * DAY + 40_000;
            m.home_login(seller, t);
            let bank = (day as u32 * 7) % 12;
            let change = m.send(
                &format!("seller-{seller}"),
                t + 60,
                "payout_destination_change",
                json!({"session_id": format!("s{seller}-{t}"),
                       "destination": {"institution_id": format!("20-00-{bank:02}"), "institution_type": "bank",
                                       "account_number": format!("7000{seller:04}{day:03}")}}),
            );
            assert!(
                change.effects.is_empty(),
                "an honest change sets nothing off: {:?}",
                change.effects
            );
        }
        // The attacker: every 1.5 days from day 40, a new victim, a new mule.
        while attack && day >= 40 && f64::from(next_victim) * 1.5 <= (day - 40) as f64 {
            let victim = 150 + next_victim;
            let account = format!("seller-{victim}");
            let t = day * DAY + 50_000 + i64::from(next_victim) * 10;
            m.send(
                &account,
                t,
                "login",
                json!({"status": "success", "session_id": format!("atk-{victim}"),
                       "ip": format!("185.220.{}.4", 100 + next_victim), "device_id": format!("box-{victim}")}),
            );
            let change = m.send(
                &account,
                t + 60,
                "payout_destination_change",
                json!({"session_id": format!("atk-{victim}"),
                       "destination": {"institution_id": "60-83-71", "institution_type": "e_money",
                                       "account_number": format!("9999{victim:04}")}}),
            );
            if detected_at.is_none()
                && change
                    .effects
                    .iter()
                    .any(|e| e.kind == EffectKind::CampaignDetected)
            {
                detected_at = Some(victims.len() + 1);
            }
            victims.push(change);
            next_victim += 1;
        }
    }
    (m, victims, detected_at)
}

#[test]
fn an_ordinary_season_of_bank_changes_raises_no_campaign() {
    let (m, _, detected) = season(false);
    assert_eq!(detected, None);
    assert_eq!(m.engine.campaigns().campaigns().count(), 0);
}

#[test]
fn victims_with_a_mule_each_at_one_issuer_form_a_campaign_within_four() {
    let (m, victims, detected) = season(true);
    assert_eq!(victims.len(), 20);
    let detected = detected.expect("the campaign is detected");
    assert!(detected <= 4, "detected at victim {detected}");
    let campaign = m
        .engine
        .campaigns()
        .campaigns()
        .next()
        .expect("one campaign");
    assert_eq!(m.engine.campaigns().campaigns().count(), 1);
    assert_eq!(campaign.institutions, ["608371"]);
    let members: Vec<&str> = campaign
        .accounts
        .iter()
        .map(|a| a.account_id.as_str())
        .collect();
    assert!(members.contains(&"seller-150"), "{members:?}");
    assert!(members.contains(&"seller-169"), "{members:?}");
    assert!(
        members
            .iter()
            .all(|a| a["seller-".len()..].parse::<u32>().is_ok_and(|n| n >= 150))
    );
    // Once bursting, later victims' changes say so.
    let last = victims.last().expect("victims");
    assert!(
        last.reasons
            .iter()
            .any(|r| r.code == "destination_change_toward_bursting_institution"),
        "{:?}",
        last.reasons
    );
    assert!(last.action >= Action::Hold);
}

#[test]
fn a_victims_payout_to_a_destination_set_during_the_burst_is_held_even_after_verification() {
    let (mut m, _, _) = season(true);
    // The last victim passes a verification (a targeted attacker with the
    // victim's phone could): the account is cleared, but the destination
    // was set while its institution was bursting.
    let account = "seller-169";
    let t = 70 * DAY;
    let verified = m.send(
        account,
        t,
        "verification",
        json!({"session_id": "atk-169", "status": "passed"}),
    );
    assert!(
        verified
            .effects
            .iter()
            .any(|e| e.kind == EffectKind::AccountCleared)
    );
    let payout = m.send(
        account,
        t + 60,
        "payout",
        json!({"session_id": "atk-169", "payout_id": "po-169", "amount": 90_000, "currency": "GBP"}),
    );
    assert_eq!(payout.action, Action::Hold, "{:?}", payout.reasons);
    let codes: Vec<&str> = payout.reasons.iter().map(|r| r.code.as_str()).collect();
    assert!(
        codes.contains(&"payout_to_destination_set_during_burst"),
        "{codes:?}"
    );
    assert!(
        codes.contains(&"payout_to_destination_in_campaign"),
        "{codes:?}"
    );
}
