//! A small deterministic event generator for benchmarks and replay tests:
//! sellers logging in from their usual networks and devices, selling and
//! being paid out, now and then changing bank details, and a share of them
//! taken over (attacker login, mule destination, payout).
//!
//! This is load, not an evaluation data set: the marketplace simulator with
//! ground truth is [`crate::market`].

use serde_json::{Value, json};

use crate::rng::Rng;

/// Parameters of a generated stream.
pub struct SynthSpec {
    pub events: u64,
    pub accounts: u64,
    pub seed: u64,
    /// Share of sessions that are account takeovers.
    pub takeover_rate: f64,
}

const START: i64 = 1_525_132_800; // 2018-05-01T00:00:00Z

fn rfc3339(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// Calls `emit` for each generated event, in time order.
pub fn generate(spec: &SynthSpec, mut emit: impl FnMut(Value)) {
    let mut rng = Rng::new(spec.seed);
    let mut n: u64 = 0;
    let mut t = START;
    // Each "session" is a short burst of events of one account.
    while n < spec.events {
        t += 1 + rng.below(3) as i64;
        let account = rng.below(spec.accounts);
        let account_id = format!("seller-{account}");
        let session_id = format!("s-{n}");
        let takeover = rng.chance(spec.takeover_rate);
        let (ip, device) = if takeover {
            (
                format!("185.220.{}.{}", rng.below(255), 1 + rng.below(254)),
                format!("atk-{}", rng.below(1000)),
            )
        } else {
            (
                format!(
                    "81.{}.{}.{}",
                    account % 200,
                    account / 200 % 250,
                    1 + rng.below(254)
                ),
                format!("dev-{account}-{}", rng.below(2)),
            )
        };
        let base = |ty: &str, dt: i64, n: &mut u64| {
            *n += 1;
            json!({
                "event_id": format!("ev-{}-{}", spec.seed, *n),
                "type": ty,
                "account_id": account_id,
                "time": rfc3339(t + dt),
                "session_id": session_id,
                "ip": ip,
                "device_id": device,
                "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0",
            })
        };
        let mut login = base("login", 0, &mut n);
        login["status"] = json!(if rng.chance(0.03) {
            "failure"
        } else {
            "success"
        });
        emit(login);
        let actions = 1 + rng.below(3);
        for i in 0..actions {
            if n >= spec.events {
                return;
            }
            let dt = 30 * (i as i64 + 1);
            let roll = rng.below(100);
            let mut e = if takeover && i == 0 {
                let mut e = base("payout_destination_change", dt, &mut n);
                e["destination"] = json!({
                    "institution_id": if rng.chance(0.5) { "20-00-00" } else { "23-69-72" },
                    "institution_type": if rng.chance(0.5) { "bank" } else { "e_money" },
                    "country": "GB",
                    "account_number": format!("{:08}", 10_000_000 + rng.below(50)),
                });
                e
            } else if roll < 60 {
                let mut e = base("sale", dt, &mut n);
                e["amount"] = json!(500 + rng.below(20_000));
                e["currency"] = json!("GBP");
                e["order_id"] = json!(format!("o-{n}"));
                e
            } else if roll < 85 {
                let mut e = base("payout", dt, &mut n);
                e["payout_id"] = json!(format!("p-{n}"));
                e["amount"] = json!(1_000 + rng.below(100_000));
                e["currency"] = json!("GBP");
                e
            } else if roll < 88 {
                let mut e = base("payout_destination_change", dt, &mut n);
                e["destination"] = json!({
                    "institution_id": format!("{:06}", rng.below(999_999)),
                    "institution_type": "bank",
                    "country": "GB",
                    "account_number": format!("{:08}", rng.below(99_999_999)),
                });
                e
            } else if roll < 92 {
                base("logout", dt, &mut n)
            } else if roll < 95 {
                let mut e = base("password_change", dt, &mut n);
                e["reason"] = json!("user");
                e
            } else {
                let mut e = base("loan_disbursement", dt, &mut n);
                e["loan_id"] = json!(format!("l-{n}"));
                e["amount"] = json!(100_000 + rng.below(1_000_000));
                e["currency"] = json!("GBP");
                e
            };
            if e.get("type") == Some(&json!("payout_destination_change")) {
                e["destination"]["holder_name"] = json!(format!("Seller {account}"));
            }
            emit(e);
        }
    }
}
