//! Tests of payout holds, one home for all of them: the hold book on its
//! own, then holds, sticky account risk, labels and analyst actions through
//! the engine.

use super::*;
use crate::decision::Reason;

fn decision() -> Decision {
    let reason = |code: &str, action| Reason {
        code: code.into(),
        action,
        score: 40,
        message: String::new(),
        saw: Default::default(),
        owner_confirms: false,
    };
    Decision::from_reasons(
        "default".into(),
        1,
        vec![
            reason("payout_to_fresh_destination", Action::Hold),
            reason("new_destination", Action::Review),
        ],
        vec![],
        Action::Block,
    )
}

fn open(book: &mut HoldBook, id: &str, at: i64, expires_at: i64) -> bool {
    let d = decision();
    book.open_hold(NewHold {
        hold_id: id,
        account_id: "seller-1",
        kind: EventType::Payout,
        event_id: &format!("ev-{id}"),
        amount: 1_000,
        currency: Currency::parse("EUR").expect("valid code"),
        destination: None,
        decision: &d,
        at,
        expires_at,
    })
    .is_some()
}

fn by(who: &str, at: i64) -> Resolution {
    Resolution {
        by: who.into(),
        reason: "checked with the seller".into(),
        at: Timestamp(at),
        event_id: "act-1".into(),
    }
}

#[test]
fn a_hold_keeps_the_reasons_that_asked_for_it() {
    let mut book = HoldBook::default();
    assert!(open(&mut book, "po-1", 100, 700));
    let hold = book.get("seller-1", "po-1").expect("opened");
    assert_eq!(hold.status, HoldStatus::Held);
    assert_eq!(hold.reasons, vec!["payout_to_fresh_destination"]);
    assert_eq!(hold.score, 80);
    assert_eq!(hold.expires_at, Timestamp(700));
    assert_eq!(book.open_count(), 1);
}

#[test]
fn held_goes_to_released_or_cancelled_once() {
    let mut book = HoldBook::default();
    open(&mut book, "po-1", 100, 700);
    open(&mut book, "po-2", 100, 700);
    let released = book
        .close("seller-1", "po-1", HoldStatus::Released, by("ana", 200))
        .expect("open hold");
    assert_eq!(released.status, HoldStatus::Released);
    assert_eq!(
        released.resolution.as_ref().map(|r| r.by.as_str()),
        Some("ana")
    );
    assert_eq!(
        book.close("seller-1", "po-1", HoldStatus::Cancelled, by("bob", 300)),
        Err(HoldError::Closed {
            hold_id: "po-1".into(),
            status: "released"
        })
    );
    book.close("seller-1", "po-2", HoldStatus::Cancelled, by("bob", 300))
        .expect("open hold");
    assert_eq!(
        book.close("seller-1", "po-9", HoldStatus::Released, by("bob", 300)),
        Err(HoldError::NotFound("po-9".into()))
    );
    assert_eq!(book.open_count(), 0);
    assert!(
        book.take_expired(10_000).is_empty(),
        "closed holds never expire"
    );
}

#[test]
fn a_payout_asked_again_while_held_keeps_its_hold() {
    let mut book = HoldBook::default();
    assert!(open(&mut book, "po-1", 100, 700));
    assert!(!open(&mut book, "po-1", 150, 900));
    assert_eq!(
        book.get("seller-1", "po-1").map(|h| h.held_at),
        Some(Timestamp(100))
    );
    book.close("seller-1", "po-1", HoldStatus::Released, by("ana", 200))
        .expect("open hold");
    assert!(
        open(&mut book, "po-1", 300, 900),
        "a closed id may be held again"
    );
    assert_eq!(book.open_count(), 1);
}

#[test]
fn two_accounts_may_use_one_payout_id() {
    let mut book = HoldBook::default();
    assert!(open(&mut book, "po-1", 100, 700));
    let d = decision();
    let other = book.open_hold(NewHold {
        hold_id: "po-1",
        account_id: "seller-2",
        kind: EventType::Payout,
        event_id: "ev-x",
        amount: 5,
        currency: Currency::parse("EUR").expect("valid code"),
        destination: None,
        decision: &d,
        at: 100,
        expires_at: 700,
    });
    assert!(other.is_some());
    assert_eq!(book.find("po-1").len(), 2);
    book.close("seller-2", "po-1", HoldStatus::Cancelled, by("ana", 200))
        .expect("open hold");
    assert_eq!(
        book.get("seller-1", "po-1").map(|h| h.status),
        Some(HoldStatus::Held)
    );
}

#[test]
fn expiry_comes_out_in_order_and_only_once() {
    let mut book = HoldBook::default();
    open(&mut book, "late", 100, 900);
    open(&mut book, "early", 100, 500);
    assert!(book.take_expired(499).is_empty());
    let ids = |keys: Vec<HoldKey>| keys.into_iter().map(|k| k.1).collect::<Vec<_>>();
    assert_eq!(ids(book.take_expired(900)), vec!["early", "late"]);
    assert!(book.take_expired(1_000).is_empty());
    book.await_analyst(&key("seller-1", "late"));
    assert!(
        book.get("seller-1", "late")
            .is_some_and(|h| h.awaiting_analyst)
    );
}

#[test]
fn snapshot_round_trip_keeps_the_expiry_queue() {
    let mut book = HoldBook::default();
    open(&mut book, "a", 100, 500);
    open(&mut book, "b", 100, 600);
    open(&mut book, "c", 100, 700);
    book.close("seller-1", "a", HoldStatus::Released, by("ana", 200))
        .expect("open hold");
    book.take_expired(600);
    book.await_analyst(&key("seller-1", "b"));
    let json = serde_json::to_string(&book.to_snapshot()).expect("serializes");
    let mut back = HoldBook::from_snapshot(serde_json::from_str(&json).expect("parses"));
    assert_eq!(
        serde_json::to_string(&back.to_snapshot()).expect("serializes"),
        json
    );
    assert_eq!(back.open_count(), 2);
    assert_eq!(back.take_expired(10_000), vec![key("seller-1", "c")]);
}

// ----- through the engine -----

mod through_the_engine {
    //! Payout holds, sticky account risk, labels and analyst actions, through
    //! the engine: each state transition, and that a replay of the log rebuilds
    //! the same holds.

    use std::sync::Arc;

    use serde_json::{Value, json};

    use crate::decision::{Effect, EffectKind};
    use crate::holds::HoldStatus;
    use crate::rules::{RuleSet, RuleSetSource};
    use crate::tests::{DAY, at, event};
    use crate::{Action, Decision, Engine, Event};

    /// An engine, a log of what it decided, and event numbering.
    struct World {
        engine: Engine,
        log: Vec<(Event, Decision)>,
        n: u32,
    }

    impl World {
        fn new(rules: RuleSet) -> World {
            World {
                engine: Engine::new(Arc::new(rules)),
                log: Vec::new(),
                n: 0,
            }
        }

        fn default_rules() -> World {
            World::new(crate::rules::default_rule_set())
        }

        fn send(&mut self, account: &str, t: i64, ty: &str, fields: Value) -> Decision {
            self.n += 1;
            let mut v = json!({"event_id": format!("e{}", self.n), "type": ty, "account_id": account, "time": at(t)});
            for (k, x) in fields.as_object().expect("fields are an object") {
                v[k] = x.clone();
            }
            let e = event(v);
            let d = self.engine.process(&e);
            self.log.push((e, d.clone()));
            d
        }

        /// A month of daily logins from home, and a bank account set on day 1.
        fn seller(&mut self, account: &str) {
            for day in 0..30 {
                self.send(
                    account,
                    day * DAY,
                    "login",
                    json!({"status": "success", "session_id": format!("{account}-home-{day}"),
                           "ip": "81.2.69.160", "device_id": format!("{account}-laptop")}),
                );
            }
            self.send(
                account,
                DAY + 60,
                "payout_destination_change",
                json!({"session_id": format!("{account}-home-1"),
                       "destination": {"institution_id": "20-00-00", "account_number": format!("1111{account}")}}),
            );
            self.send(
                account,
                DAY + 120,
                "sale",
                json!({"amount": 100_000, "currency": "GBP"}),
            );
        }

        /// The attacker's login and destination change, at `t`.
        fn takeover(&mut self, account: &str, t: i64, mule: &str) {
            self.send(
                account,
                t,
                "login",
                json!({"status": "success", "session_id": format!("{account}-attacker"),
                       "ip": "185.220.101.4", "device_id": "attacker-box"}),
            );
            self.send(
                account,
                t + 60,
                "payout_destination_change",
                json!({"session_id": format!("{account}-attacker"),
                       "destination": {"institution_id": "60-83-71", "institution_type": "e_money",
                                       "account_number": mule}}),
            );
        }

        fn payout(&mut self, account: &str, t: i64, id: &str, amount: u64) -> Decision {
            self.send(
                account,
                t,
                "payout",
                json!({"payout_id": id, "amount": amount, "currency": "GBP"}),
            )
        }

        fn act(&mut self, account: &str, t: i64, action: &str, target: Option<&str>) -> Decision {
            let mut fields =
                json!({"action": action, "analyst": "ana", "reason": "called the seller"});
            if let Some(target) = target {
                fields["target_id"] = json!(target);
            }
            self.send(account, t, "analyst_action", fields)
        }

        fn status(&self, account: &str, hold_id: &str) -> Option<HoldStatus> {
            self.engine.holds().get(account, hold_id).map(|h| h.status)
        }
    }

    /// The effects' kinds, without the cases they opened or extended.
    fn kinds(d: &Decision) -> Vec<EffectKind> {
        d.effects
            .iter()
            .map(|e| e.kind)
            .filter(|k| *k != EffectKind::CaseUpdated)
            .collect()
    }

    fn effect(d: &Decision, kind: EffectKind) -> &Effect {
        d.effects
            .iter()
            .find(|e| e.kind == kind)
            .unwrap_or_else(|| panic!("no {kind:?} in {:?}", d.effects))
    }

    /// Rules that hold every payout to a destination set under a week ago,
    /// however honest the change: to see holds of accounts not at risk.
    fn hold_fresh_destinations(cool_off: &str) -> RuleSet {
        let source: RuleSetSource = serde_json::from_value(json!({
            "name": "fresh",
            "hold_cool_off": cool_off,
            "rules": [{"id": "fresh_destination", "when": "destination.age < 7d", "action": "hold",
                       "score": 50, "events": ["payout", "loan_disbursement"]}]
        }))
        .expect("valid source");
        RuleSet::compile(source, 1).expect("compiles")
    }

    #[test]
    fn a_held_payout_records_its_reasons_expiry_and_cause() {
        let mut w = World::default_rules();
        w.seller("s1");
        w.takeover("s1", 31 * DAY, "99990001");
        let d = w.payout("s1", 33 * DAY, "po-1", 50_000);
        assert_eq!(d.action, Action::Hold);
        assert_eq!(kinds(&d), [EffectKind::HoldCreated]);
        let hold = w.engine.holds().get("s1", "po-1").expect("held");
        assert_eq!(hold.status, HoldStatus::Held);
        assert_eq!(hold.event_id, d_event_id(&w, "po-1"));
        assert_eq!(
            hold.reasons,
            [
                "payout_to_destination_set_in_risky_session",
                "first_payout_to_new_destination",
                "payout_while_account_at_risk"
            ]
        );
        assert!(
            hold.owner_must_confirm,
            "a first payout waits for the owner"
        );
        // The cool-off runs from the destination change (31 days + 60 s).
        let changed = w.log[w.log.len() - 2].0.unix_time();
        assert_eq!(hold.expires_at.0, changed + 7 * DAY);
        assert_eq!(
            hold.destination.as_ref().map(|d| d.institution_id.as_str()),
            Some("608371")
        );
        assert_eq!(effect(&d, EffectKind::HoldCreated).data["hold_id"], "po-1");
        assert_eq!(w.engine.holds().open_count(), 1);
        // An allowed payout opens no hold.
        let mut honest = World::default_rules();
        honest.seller("s2");
        let paid = honest.payout("s2", 31 * DAY, "po-2", 50_000);
        assert_eq!((paid.action, paid.effects.len()), (Action::Allow, 0));
        assert_eq!(honest.engine.holds().open_count(), 0);
    }

    /// Cases follow from the effects: a takeover opens one, the held
    /// payout joins it; people's work on it is events, and a replay of the
    /// log (and a snapshot) gives the same cases.
    #[test]
    fn a_takeover_and_its_hold_open_one_case_that_a_replay_reproduces() {
        let mut w = World::default_rules();
        w.seller("s1");
        w.takeover("s1", 31 * DAY, "99990001");
        let d = w.payout("s1", 33 * DAY, "po-1", 50_000);
        assert!(d.effects.iter().any(|e| e.kind == EffectKind::CaseUpdated));
        let case = w.engine.cases().current_of("s1").expect("a case").clone();
        assert_eq!(case.accounts, ["s1"]);
        assert_eq!(case.holds, ["s1/po-1"]);
        assert_eq!(
            w.engine.cases().len(),
            1,
            "the hold joined the at-risk case"
        );
        let send_case = |w: &mut World, action: &str, value: Option<&str>| {
            let mut fields = json!({"action": action, "analyst": "ana", "reason": "looked",
                                    "target_id": case.id});
            if let Some(v) = value {
                fields["value"] = json!(v);
            }
            w.send("s1", 33 * DAY + 100, "analyst_action", fields)
        };
        let d = send_case(&mut w, "assign_case", Some("bob"));
        assert_eq!(d.effects[0].data["assignee"], "bob");
        send_case(&mut w, "note_case", None);
        send_case(&mut w, "resolve_case", Some("fraud_confirmed"));
        let live = w.engine.cases().get(&case.id).expect("kept").clone();
        assert_eq!(live.notes.len(), 1);
        assert_eq!(live.status, crate::cases::CaseStatus::Resolved);
        // A replay of the stored log and decisions builds the same cases.
        let mut replay = Engine::default();
        for (e, d) in &w.log {
            replay.apply(e, d);
        }
        assert_eq!(replay.cases(), w.engine.cases());
        // And a snapshot carries them.
        let mut restored = Engine::default();
        restored
            .restore(&w.engine.snapshot().expect("snapshot"))
            .expect("restore");
        assert_eq!(restored.cases(), w.engine.cases());
    }

    fn d_event_id(w: &World, payout_id: &str) -> String {
        w.log
            .iter()
            .find(|(e, _)| {
                matches!(&e.details, crate::Details::Payout { payout_id: p, .. } if p == payout_id)
            })
            .map(|(e, _)| e.event_id.clone())
            .expect("payout sent")
    }

    #[test]
    fn an_analyst_releases_or_cancels_a_hold_once() {
        let mut w = World::default_rules();
        w.seller("s1");
        w.takeover("s1", 31 * DAY, "99990001");
        w.payout("s1", 32 * DAY, "po-1", 10_000);
        w.payout("s1", 32 * DAY + 60, "po-2", 20_000);
        let released = w.act("s1", 32 * DAY + 120, "release_payout", Some("po-1"));
        assert_eq!(released.action, Action::Allow, "people are not judged");
        assert!(released.reasons.is_empty());
        assert_eq!(kinds(&released), [EffectKind::HoldReleased]);
        let data = &effect(&released, EffectKind::HoldReleased).data;
        assert_eq!(data["status"], "released");
        assert_eq!(data["resolution"]["by"], "ana");
        assert_eq!(data["resolution"]["reason"], "called the seller");
        let again = w.act("s1", 32 * DAY + 180, "cancel_payout", Some("po-1"));
        assert!(again.effects.is_empty(), "a closed hold stays closed");
        assert_eq!(w.status("s1", "po-1"), Some(HoldStatus::Released));
        let cancelled = w.act("s1", 32 * DAY + 240, "cancel_payout", Some("po-2"));
        assert_eq!(kinds(&cancelled), [EffectKind::HoldCancelled]);
        assert_eq!(w.status("s1", "po-2"), Some(HoldStatus::Cancelled));
        // An action recorded on another account cannot touch these holds.
        w.seller("s3");
        w.takeover("s3", 31 * DAY, "99990003");
        w.payout("s3", 33 * DAY, "po-3", 10_000);
        let wrong = w.act("s1", 33 * DAY + 60, "release_payout", Some("po-3"));
        assert!(wrong.effects.is_empty());
        assert_eq!(w.status("s3", "po-3"), Some(HoldStatus::Held));
        assert_eq!(w.engine.holds().open_count(), 1);
    }

    #[test]
    fn a_hold_expires_by_itself_only_when_nothing_argues_against_it() {
        // An honest change: the account is not at risk, the hold is the
        // cool-off alone and ends with it, on the next event of any account
        // while other accounts keep the engine's clock going.
        let mut w = World::new(hold_fresh_destinations("2d"));
        w.seller("s1");
        w.seller("s2");
        w.seller("s3");
        w.send(
            "s1",
            31 * DAY,
            "payout_destination_change",
            json!({"session_id": "s1-home-29",
                   "destination": {"institution_id": "40-00-00", "account_number": "22223333"}}),
        );
        let held = w.payout("s1", 31 * DAY + 60, "po-1", 10_000);
        assert_eq!(held.action, Action::Hold);
        let hold = w.engine.holds().get("s1", "po-1").expect("held");
        assert_eq!(
            hold.expires_at.0 - w.log[w.log.len() - 2].0.unix_time(),
            2 * DAY
        );
        let before = w.send("s2", 33 * DAY - 60, "logout", json!({}));
        assert!(before.effects.is_empty());
        let before = w.send("s3", 33 * DAY - 30, "logout", json!({}));
        assert!(before.effects.is_empty());
        let after = w.send("s2", 33 * DAY + 1, "logout", json!({}));
        assert_eq!(kinds(&after), [EffectKind::HoldReleased]);
        let data = &effect(&after, EffectKind::HoldReleased).data;
        assert_eq!(data["resolution"]["by"], crate::effects::SYSTEM_ACTOR);
        assert_eq!(data["resolution"]["reason"], "cool-off ended");

        // The same with a takeover: the account is at risk, so the hold waits.
        let mut w = World::new(hold_fresh_destinations("2d"));
        w.seller("s1");
        w.takeover("s1", 31 * DAY, "99990001");
        w.payout("s1", 31 * DAY + 120, "po-1", 10_000);
        let later = w.send("s1", 40 * DAY, "logout", json!({}));
        assert!(later.effects.is_empty());
        let hold = w.engine.holds().get("s1", "po-1").expect("held");
        assert_eq!(hold.status, HoldStatus::Held);
        assert!(hold.awaiting_analyst);
        // An analyst clears the account: the waiting hold goes out.
        let cleared = w.act("s1", 40 * DAY + 60, "clear_account", None);
        assert_eq!(
            kinds(&cleared),
            [EffectKind::AccountCleared, EffectKind::HoldReleased]
        );
        assert_eq!(w.status("s1", "po-1"), Some(HoldStatus::Released));
    }

    #[test]
    fn account_risk_sticks_across_sessions_until_verification() {
        let mut w = World::default_rules();
        w.seller("s1");
        w.takeover("s1", 31 * DAY, "99990001");
        let change = &w.log[w.log.len() - 1].1;
        assert_eq!(kinds(change), [EffectKind::AccountAtRisk]);
        assert!(w.engine.account("s1").expect("known").at_risk.is_some());
        // Ten days later, a login from home and a payout in that session: the
        // session is not risky, the cool-off is over, the account still is.
        w.send(
            "s1",
            41 * DAY,
            "login",
            json!({"status": "success", "session_id": "s1-home-41", "ip": "81.2.69.160",
                   "device_id": "s1-laptop"}),
        );
        let payout = w.send(
            "s1",
            41 * DAY + 60,
            "payout",
            json!({"session_id": "s1-home-41", "payout_id": "po-1", "amount": 10_000, "currency": "GBP"}),
        );
        assert_eq!(payout.action, Action::Hold);
        assert!(
            payout
                .reasons
                .iter()
                .any(|r| r.code == "payout_while_account_at_risk"),
            "{:?}",
            payout.reasons
        );
        // A failed verification changes nothing. A passed one in this session
        // proves who is in this session, not who made the change in the
        // attacker's: the account stays at risk. A passed one that answers for
        // the account (no session) clears it.
        let failed = w.send(
            "s1",
            41 * DAY + 120,
            "verification",
            json!({"session_id": "s1-home-41", "status": "failed"}),
        );
        assert!(failed.effects.is_empty());
        let other_session = w.send(
            "s1",
            41 * DAY + 150,
            "verification",
            json!({"session_id": "s1-home-41", "status": "passed"}),
        );
        assert!(other_session.effects.is_empty());
        assert!(w.engine.account("s1").expect("known").at_risk.is_some());
        let passed = w.send(
            "s1",
            41 * DAY + 180,
            "verification",
            json!({"status": "passed", "channel": "identity_document"}),
        );
        assert_eq!(kinds(&passed)[0], EffectKind::AccountCleared);
        assert!(w.engine.account("s1").expect("known").at_risk.is_none());
        let next = w.send(
            "s1",
            41 * DAY + 240,
            "payout",
            json!({"session_id": "s1-home-41", "payout_id": "po-2", "amount": 10_000, "currency": "GBP"}),
        );
        assert_eq!(next.action, Action::Allow);
        // An honest change in an ordinary session puts nothing at risk.
        let mut honest = World::default_rules();
        honest.seller("s2");
        let change = honest.send(
            "s2",
            31 * DAY,
            "payout_destination_change",
            json!({"session_id": "s2-home-29",
                   "destination": {"institution_id": "40-00-00", "account_number": "22223333"}}),
        );
        assert!(change.effects.is_empty());
        assert!(
            honest
                .engine
                .account("s2")
                .expect("known")
                .at_risk
                .is_none()
        );
    }

    #[test]
    fn a_fraud_label_cancels_holds_and_denies_the_mule_for_every_account() {
        let mut w = World::default_rules();
        w.seller("s1");
        w.seller("s2");
        w.takeover("s1", 31 * DAY, "99990001");
        w.payout("s1", 32 * DAY, "po-1", 10_000);
        let label = w.send(
            "s1",
            33 * DAY,
            "label",
            json!({"label": "compromise_reported", "analyst": "ana"}),
        );
        assert_eq!(
            kinds(&label),
            [EffectKind::DestinationDenied, EffectKind::HoldCancelled]
        );
        let denied = &effect(&label, EffectKind::DestinationDenied).data;
        assert_eq!(denied["destination"]["institution_id"], "608371");
        assert_eq!(denied["destination"]["account_last4"], "0001");
        assert_eq!(w.status("s1", "po-1"), Some(HoldStatus::Cancelled));
        assert_eq!(
            w.engine
                .holds()
                .get("s1", "po-1")
                .and_then(|h| h.resolution.as_ref())
                .map(|r| r.by.as_str()),
            Some("ana")
        );
        // The honest destination set on day 1 is not denied, and a second
        // victim moved to the same mule is blocked, whatever its session.
        let honest = w.send(
            "s2",
            34 * DAY,
            "payout_destination_change",
            json!({"session_id": "s2-home-29",
                   "destination": {"institution_id": "20-00-00", "account_number": "1111s1"}}),
        );
        // (A replacing bank account asks for the owner, but is not blocked.)
        assert_eq!(honest.action, Action::Challenge, "{:?}", honest.reasons);
        assert!(
            honest
                .reasons
                .iter()
                .all(|r| r.code != "destination_on_deny_list"),
            "{:?}",
            honest.reasons
        );
        let reused = w.send(
            "s2",
            34 * DAY + 60,
            "payout_destination_change",
            json!({"session_id": "s2-home-29",
                   "destination": {"institution_id": "60-83-71", "account_number": "99990001"}}),
        );
        assert_eq!(reused.action, Action::Block);
        assert!(
            reused
                .reasons
                .iter()
                .any(|r| r.code == "destination_on_deny_list"
                    && r.saw["destination.denied"] == json!(true)),
            "{:?}",
            reused.reasons
        );
    }

    #[test]
    fn a_legit_label_clears_the_account_and_releases_its_holds() {
        let mut w = World::default_rules();
        w.seller("s1");
        w.takeover("s1", 31 * DAY, "99990001");
        w.payout("s1", 32 * DAY, "po-1", 10_000);
        let label = w.send("s1", 32 * DAY + 60, "label", json!({"label": "legit"}));
        assert_eq!(
            kinds(&label),
            [EffectKind::AccountCleared, EffectKind::HoldReleased]
        );
        assert_eq!(w.status("s1", "po-1"), Some(HoldStatus::Released));
        assert!(w.engine.account("s1").expect("known").at_risk.is_none());
        // A chargeback is recorded and changes no hold.
        w.payout("s1", 32 * DAY + 120, "po-2", 10_000);
        let chargeback = w.send(
            "s1",
            32 * DAY + 180,
            "label",
            json!({"label": "chargeback"}),
        );
        assert!(
            chargeback
                .effects
                .iter()
                .all(|e| !e.kind.as_str().starts_with("hold."))
        );
    }

    #[test]
    fn replaying_the_log_rebuilds_the_same_holds_even_under_other_rules() {
        let mut w = World::new(hold_fresh_destinations("3d"));
        w.seller("s1");
        w.seller("s2");
        w.takeover("s1", 31 * DAY, "99990001");
        w.payout("s1", 31 * DAY + 600, "po-1", 10_000);
        w.send(
            "s2",
            31 * DAY,
            "payout_destination_change",
            json!({"session_id": "s2-home-29",
                   "destination": {"institution_id": "40-00-00", "account_number": "22223333"}}),
        );
        w.payout("s2", 31 * DAY + 60, "po-2", 10_000);
        w.payout("s2", 31 * DAY + 90, "po-3", 10_000);
        w.act("s2", 31 * DAY + 120, "cancel_payout", Some("po-3"));
        w.send("s2", 36 * DAY, "logout", json!({}));
        w.send(
            "s1",
            36 * DAY,
            "label",
            json!({"label": "fraud", "analyst": "bob"}),
        );
        let snapshot =
            |e: &Engine| serde_json::to_string(&e.holds().to_snapshot()).expect("serializes");
        let live = snapshot(&w.engine);
        assert_eq!(w.status("s2", "po-2"), Some(HoldStatus::Released));
        assert_eq!(w.status("s1", "po-1"), Some(HoldStatus::Cancelled));
        // A replay applies the stored decisions, under a rule set with another
        // cool-off: the expiry comes from the stored effects.
        let mut replayed = Engine::new(Arc::new(hold_fresh_destinations("30d")));
        for (e, d) in &w.log {
            replayed.apply(e, d);
        }
        assert_eq!(snapshot(&replayed), live);
        // And a snapshot of the whole engine restores them.
        let mut restored = Engine::default();
        restored
            .restore(&w.engine.snapshot().expect("snapshot"))
            .expect("restores");
        assert_eq!(snapshot(&restored), live);
    }

    #[test]
    fn money_to_a_mule_waits_for_a_person_even_once_the_account_is_cleared() {
        let mut w = World::default_rules();
        w.seller("s1");
        w.seller("s2");
        // One crew, one mule: the two risky changes link into a campaign.
        w.takeover("s1", 31 * DAY, "77770001");
        w.takeover("s2", 32 * DAY, "77770001");
        assert!(
            w.engine
                .campaigns()
                .account_in_live_campaign("s2")
                .is_some()
        );
        let held = w.payout("s2", 32 * DAY + 600, "po-mule", 50_000);
        assert_eq!(held.action, Action::Hold);
        // The owner confirms the account (no session): it is no longer at
        // risk, but the destination still links a live campaign.
        let confirmed = w.send("s2", 33 * DAY, "verification", json!({"status": "passed"}));
        assert_eq!(kinds(&confirmed), [EffectKind::AccountCleared]);
        assert!(w.engine.account("s2").expect("known").at_risk.is_none());
        // Long after the cool-off the hold is still open, waiting for a person.
        w.send(
            "s1",
            45 * DAY,
            "sale",
            json!({"amount": 100, "currency": "GBP"}),
        );
        w.send("s3", 45 * DAY + 60, "logout", json!({}));
        let hold = w.engine.holds().get("s2", "po-mule").expect("held");
        assert_eq!(hold.status, HoldStatus::Held);
        assert!(hold.awaiting_analyst, "{hold:?}");
    }

    #[test]
    fn a_verification_in_the_session_that_made_the_change_clears_the_account() {
        let mut w = World::default_rules();
        w.seller("s1");
        w.takeover("s1", 31 * DAY, "99990002");
        assert!(w.engine.account("s1").expect("known").at_risk.is_some());
        // The step-up of the very session that changed the destination answers
        // for that change.
        let passed = w.send(
            "s1",
            31 * DAY + 120,
            "verification",
            json!({"session_id": "s1-attacker", "status": "passed"}),
        );
        assert_eq!(kinds(&passed), [EffectKind::AccountCleared]);
        assert!(w.engine.account("s1").expect("known").at_risk.is_none());
    }

    #[test]
    fn an_analyst_clear_gives_a_recovered_victim_back_its_payouts() {
        let mut w = World::default_rules();
        w.seller("s1");
        w.seller("s2");
        w.takeover("s1", 31 * DAY, "55550001");
        w.takeover("s2", 32 * DAY, "55550001");
        // s1 reports the compromise: the campaign is confirmed.
        w.send(
            "s1",
            40 * DAY,
            "label",
            json!({"label": "compromise_reported"}),
        );
        let campaign_id = w
            .engine
            .campaigns()
            .campaign_of_account("s1")
            .expect("in a campaign")
            .id
            .clone();
        // The owner takes the account back and sets their own bank again.
        w.send(
            "s1",
            40 * DAY + 3_600,
            "login",
            json!({"status": "success", "session_id": "s1-home-40", "ip": "81.2.69.160",
                   "device_id": "s1-laptop"}),
        );
        w.send(
            "s1",
            40 * DAY + 3_700,
            "payout_destination_change",
            json!({"session_id": "s1-home-40",
                   "destination": {"institution_id": "20-00-00", "account_number": "1111s1"}}),
        );
        let before = w.payout("s1", 41 * DAY, "po-before", 10_000);
        assert_eq!(before.action, Action::Hold);
        assert!(
            before
                .reasons
                .iter()
                .any(|r| r.code == "payout_in_confirmed_campaign"),
            "{:?}",
            before.reasons
        );
        // Support clears the account: it leaves the campaign's live members,
        // the campaign stays confirmed, and the owner is paid again.
        let cleared = w.act("s1", 41 * DAY + 60, "clear_account", None);
        assert!(kinds(&cleared).contains(&EffectKind::AccountCleared));
        // The first payout to the bank the owner set again waits for the
        // owner's own confirmation (out of band), which releases it.
        let confirmed = w.send(
            "s1",
            41 * DAY + 90,
            "verification",
            json!({"status": "passed", "channel": "identity_document"}),
        );
        assert_eq!(kinds(&confirmed), [EffectKind::HoldReleased]);
        assert!(
            w.engine
                .campaigns()
                .account_in_live_campaign("s1")
                .is_none()
        );
        let campaign = w.engine.campaigns().campaign(&campaign_id).expect("kept");
        assert_eq!(campaign.status, crate::campaigns::CampaignStatus::Confirmed);
        assert!(campaign.member("s1").is_some_and(|m| m.cleared));
        let after = w.payout("s1", 42 * DAY, "po-after", 10_000);
        assert!(after.action < Action::Hold, "{:?}", after.reasons);
        // A second clear finds nothing left to clear.
        let again = w.act("s1", 42 * DAY + 60, "clear_account", None);
        assert!(again.effects.is_empty(), "{:?}", again.effects);
    }

    // ----- time: far-future and far-past events -----

    /// Where the tests' times start (see `crate::tests::at`).
    const START: i64 = 1_526_000_000;
    /// 9999-01-01T00:00:00Z and 0001-01-01T00:00:00Z, as offsets from START.
    const YEAR_9999: i64 = 253_370_764_800 - START;
    const YEAR_0001: i64 = -62_135_596_800 - START;

    /// Three ordinary sellers; s1 changes its bank account honestly on day
    /// 31 and its payout is held for the two-day cool-off (until day 33).
    fn world_with_a_hold() -> World {
        let mut w = World::new(hold_fresh_destinations("2d"));
        for seller in ["s1", "s2", "s3"] {
            w.seller(seller);
        }
        w.send(
            "s1",
            31 * DAY,
            "payout_destination_change",
            json!({"session_id": "s1-home-29",
                   "destination": {"institution_id": "40-00-00", "account_number": "22223333"}}),
        );
        let held = w.payout("s1", 31 * DAY + 60, "po-1", 10_000);
        assert_eq!(held.action, Action::Hold);
        let hold = w.engine.holds().get("s1", "po-1").expect("held");
        assert_eq!(hold.expires_at.0, START + 33 * DAY);
        w
    }

    fn holds_closed_for(d: &Decision, account: &str) -> usize {
        d.effects
            .iter()
            .filter(|e| e.kind.as_str().starts_with("hold.") && e.data["account_id"] == account)
            .count()
    }

    #[test]
    fn a_far_future_event_of_one_account_does_not_release_another_accounts_hold() {
        let mut w = world_with_a_hold();
        // s2 has a hold of its own.
        w.send(
            "s2",
            31 * DAY + 100,
            "payout_destination_change",
            json!({"session_id": "s2-home-29",
                   "destination": {"institution_id": "40-00-00", "account_number": "44445555"}}),
        );
        assert_eq!(
            w.payout("s2", 31 * DAY + 160, "po-2", 10_000).action,
            Action::Hold
        );
        // An event of s2 dated in the year 9999: the server refuses it, but
        // a replay of a file or the backtest may not.
        let future = w.send("s2", YEAR_9999, "logout", json!({}));
        assert_eq!(holds_closed_for(&future, "s1"), 0, "{:?}", future.effects);
        assert_eq!(w.status("s1", "po-1"), Some(HoldStatus::Held));
        // What an account's own events claim dates its own holds only.
        assert_eq!(w.status("s2", "po-2"), Some(HoldStatus::Released));
        // The engine's clock moved an hour past the others, no more.
        assert_eq!(
            w.engine.clock().now(),
            START + 31 * DAY + 60 + crate::clock::CLOCK_LEAD_SECS
        );
        // Ordinary traffic goes on; s1 sends nothing. Its hold stays until
        // the others reach its expiry (at most the lead early), then goes.
        let lead = crate::clock::CLOCK_LEAD_SECS;
        let early = w.send("s3", 33 * DAY - lead - 60, "logout", json!({}));
        assert_eq!(holds_closed_for(&early, "s1"), 0);
        assert_eq!(w.status("s1", "po-1"), Some(HoldStatus::Held));
        let due = w.send("s3", 33 * DAY, "logout", json!({}));
        assert_eq!(kinds(&due), [EffectKind::HoldReleased]);
        assert_eq!(
            effect(&due, EffectKind::HoldReleased).data["resolution"]["reason"],
            "cool-off ended"
        );
    }

    #[test]
    fn an_idle_accounts_hold_is_released_on_time_by_other_accounts_traffic() {
        let mut w = world_with_a_hold();
        // s1 never comes back; s2 and s3 send an event every ten minutes.
        let mut released_at = None;
        for (n, t) in (31 * DAY + 3_600..34 * DAY).step_by(600).enumerate() {
            let seller = if n % 2 == 0 { "s2" } else { "s3" };
            let d = w.send(seller, t, "logout", json!({}));
            if holds_closed_for(&d, "s1") > 0 {
                assert_eq!(kinds(&d), [EffectKind::HoldReleased]);
                released_at.get_or_insert(t);
            }
        }
        // The first event at or after the expiry (day 33) released it.
        let first_due = (31 * DAY + 3_600..)
            .step_by(600)
            .find(|t| *t >= 33 * DAY)
            .expect("a time after the expiry");
        assert_eq!(released_at, Some(first_due));
        assert_eq!(w.status("s1", "po-1"), Some(HoldStatus::Released));
    }

    #[test]
    fn replaying_a_log_with_a_far_future_event_rebuilds_the_same_state() {
        let mut w = world_with_a_hold();
        w.send("s2", YEAR_9999, "logout", json!({}));
        w.send("s3", 32 * DAY, "logout", json!({}));
        w.send("s2", 33 * DAY + 60, "logout", json!({}));
        let live = w.engine.snapshot().expect("snapshot");
        let mut replayed = Engine::new(Arc::new(hold_fresh_destinations("2d")));
        for (e, d) in &w.log {
            replayed.apply(e, d);
        }
        assert_eq!(replayed.snapshot().expect("snapshot"), live);
        assert_eq!(replayed.clock(), w.engine.clock());
        let mut restored = Engine::new(Arc::new(hold_fresh_destinations("2d")));
        restored.restore(&live).expect("restores");
        assert_eq!(restored.snapshot().expect("snapshot"), live);
    }

    #[test]
    fn a_replay_closes_the_holds_the_stored_log_says_were_closed() {
        // A log written by a build whose clock was the newest event time:
        // the far-future event released s1's hold, and said so.
        let mut w = world_with_a_hold();
        w.send("s2", YEAR_9999, "logout", json!({}));
        assert_eq!(w.status("s1", "po-1"), Some(HoldStatus::Held));
        let (future, decision) = w.log.last_mut().expect("logged");
        let mut hold = w.engine.holds().get("s1", "po-1").expect("held").clone();
        hold.status = HoldStatus::Released;
        hold.resolution = Some(crate::holds::Resolution {
            by: crate::effects::SYSTEM_ACTOR.into(),
            reason: "cool-off ended".into(),
            at: crate::types::Timestamp(future.unix_time()),
            event_id: future.event_id.clone(),
        });
        decision
            .effects
            .push(Effect::of(EffectKind::HoldReleased, &hold));
        let mut replayed = Engine::new(Arc::new(hold_fresh_destinations("2d")));
        for (e, d) in &w.log {
            replayed.apply(e, d);
        }
        let rebuilt = replayed.holds().get("s1", "po-1").expect("kept");
        assert_eq!(rebuilt, &hold, "the state that build acknowledged");
        assert_eq!(replayed.holds().open_count(), 0);
    }

    #[test]
    fn events_dated_in_the_far_past_do_not_shorten_holds_or_age_destinations() {
        let mut w = World::new(hold_fresh_destinations("2d"));
        for seller in ["s1", "s2", "s3"] {
            w.seller(seller);
        }
        // A bank account change dated in the year 1 is still a fresh one.
        w.send(
            "s1",
            YEAR_0001,
            "payout_destination_change",
            json!({"session_id": "s1-home-29",
                   "destination": {"institution_id": "40-00-00", "account_number": "22223333"}}),
        );
        let held = w.payout("s1", 31 * DAY, "po-1", 10_000);
        assert_eq!(held.action, Action::Hold, "{:?}", held.reasons);
        // Later, a payout dated in the year 1 is held for a cool-off that
        // starts at the engine's clock, not one that ended two thousand
        // years ago.
        w.send("s1", 40 * DAY, "logout", json!({}));
        w.send("s3", 40 * DAY + 30, "logout", json!({}));
        let now = w.engine.clock().now();
        assert_eq!(now, START + 40 * DAY + 30);
        let old = w.payout("s2", YEAR_0001, "po-2", 10_000);
        assert_eq!(old.action, Action::Hold, "{:?}", old.reasons);
        let hold = w.engine.holds().get("s2", "po-2").expect("held");
        assert_eq!(hold.expires_at.0, now + 2 * DAY, "{hold:?}");
        let next = w.send("s3", 40 * DAY + 60, "logout", json!({}));
        assert_eq!(holds_closed_for(&next, "s2"), 0, "{:?}", next.effects);
        assert_eq!(w.status("s2", "po-2"), Some(HoldStatus::Held));
        // And the engine's clock did not move back.
        assert_eq!(w.engine.clock().now(), START + 40 * DAY + 60);
    }

    #[test]
    fn a_format_4_snapshot_is_read_and_its_pushed_clock_rebuilt() {
        // Before format 5 the clock was the newest event time: one event
        // dated 9999 left it there, in every snapshot after.
        let mut w = world_with_a_hold();
        w.send("s2", YEAR_9999, "logout", json!({}));
        w.send("s3", 32 * DAY, "logout", json!({}));
        let mut old: Value =
            serde_json::from_slice(&w.engine.snapshot_one_document()).expect("json");
        assert_eq!(old["format"], 5);
        old["format"] = json!(4);
        old["clock"] = json!(START + YEAR_9999);
        let mut restored = Engine::new(Arc::new(hold_fresh_destinations("2d")));
        restored
            .restore(&serde_json::to_vec(&old).expect("encodes"))
            .expect("a format 4 snapshot is read");
        assert_eq!(
            restored.clock(),
            w.engine.clock(),
            "rebuilt as a replay has it"
        );
        assert_eq!(
            restored.clock().now(),
            START + 32 * DAY + crate::clock::CLOCK_LEAD_SECS
        );
        assert_eq!(
            restored.holds().get("s1", "po-1").map(|h| h.status),
            Some(HoldStatus::Held)
        );
        assert_eq!(
            restored.snapshot().expect("snapshot"),
            w.engine.snapshot().expect("snapshot")
        ); // And the same through a stream, as a chunked snapshot is read.
        let mut streamed = Engine::new(Arc::new(hold_fresh_destinations("2d")));
        streamed
            .restore_from(&serde_json::to_vec(&old).expect("encodes")[..])
            .expect("a format 4 snapshot is read from a stream");
        assert_eq!(
            streamed.snapshot().expect("snapshot"),
            w.engine.snapshot().expect("snapshot")
        );
    }
}
