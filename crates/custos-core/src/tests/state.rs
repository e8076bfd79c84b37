//! Account state: bounds, replay determinism and snapshots.

use serde_json::json;

use super::{event, examples};
use crate::state::{MAX_KNOWN_IDENTIFIERS, MAX_SESSIONS, NetworkPrefix};
use crate::{Decision, Engine};

#[test]
fn network_prefixes_are_slash_24_and_slash_48() {
    let p = |s: &str| NetworkPrefix::of(s.parse().unwrap()).to_string();
    assert_eq!(p("81.2.69.160"), "81.2.69.0/24");
    assert_eq!(p("2001:db8:abcd:12::1"), "2001:db8:abcd::/48");
}

#[test]
fn collections_stay_bounded() {
    let mut engine = Engine::default();
    // Allowed logins (challenged ones teach nothing until verified).
    let allow = Decision::from_reasons("test".into(), 1, vec![], vec![], crate::Action::Block);
    for i in 0..200 {
        engine.apply(&event(json!({"event_id": format!("e{i}"), "type": "login", "account_id": "a",
            "time": format!("2018-05-16T09:{:02}:{:02}Z", i / 60, i % 60), "status": "success",
            "session_id": format!("s{i}"), "ip": format!("10.{}.{}.1", i / 250, i % 250), "device_id": format!("d{i}")})), &allow);
    }
    let state = engine.account("a").unwrap();
    assert_eq!(state.devices.len(), MAX_KNOWN_IDENTIFIERS);
    assert_eq!(state.networks.len(), MAX_KNOWN_IDENTIFIERS);
    assert_eq!(state.sessions.len(), MAX_SESSIONS);
    assert!(
        state.devices.contains("d199") && !state.devices.contains("d0"),
        "least recent is evicted"
    );
    assert_eq!(state.logins_succeeded, 200);
}

#[test]
fn replaying_events_with_their_decisions_rebuilds_the_same_state() {
    let mut live = Engine::default();
    let mut log: Vec<(crate::Event, Decision)> = Vec::new();
    for value in examples() {
        let e = event(value);
        let d = live.process(&e);
        log.push((e, d));
    }
    let mut replayed = Engine::default();
    for (e, d) in &log {
        replayed.apply(e, d);
    }
    assert_eq!(live.snapshot().unwrap(), replayed.snapshot().unwrap());

    let mut restored = Engine::default();
    restored.restore(&live.snapshot().unwrap()).unwrap();
    assert_eq!(restored.account("seller-1"), live.account("seller-1"));
    assert_eq!(restored.snapshot().unwrap(), live.snapshot().unwrap());
}

#[test]
fn snapshots_of_another_format_are_refused() {
    let mut engine = Engine::default();
    let err = engine
        .restore(br#"{"format": 99, "accounts": []}"#)
        .unwrap_err();
    assert!(err.to_string().contains("format 99"), "{err}");
    assert!(engine.restore(b"not json").is_err());
    // The same through a stream.
    let err = engine
        .restore_from(&br#"{"format":99,"accounts":[]}"#[..])
        .unwrap_err();
    assert!(err.to_string().contains("format 99"), "{err}");
    let err = engine
        .restore_from(&br#"{"accounts":[],"format":99}"#[..])
        .unwrap_err();
    assert!(err.to_string().contains("not valid"), "{err}");
    assert!(engine.restore_from(&b"not json"[..]).is_err());
    assert!(engine.restore_from(&b"{\"format\":5"[..]).is_err());
}

/// A reader that hands out at most `step` bytes per read, as a store
/// reading a snapshot chunk by chunk does at chunk edges.
struct Trickle<'a> {
    bytes: &'a [u8],
    step: usize,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.step).min(self.bytes.len());
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

#[test]
fn a_snapshot_streamed_in_and_out_equals_the_one_in_memory() {
    let mut live = Engine::default();
    for value in examples() {
        live.process(&event(value));
    }
    let bytes = live.snapshot().unwrap();
    let mut streamed = Vec::new();
    live.snapshot_to(&mut streamed).unwrap();
    assert_eq!(streamed, bytes);
    for step in [1, 7, 4096] {
        let mut restored = Engine::default();
        restored
            .restore_from(Trickle {
                bytes: &bytes,
                step,
            })
            .unwrap();
        assert_eq!(
            restored.snapshot().unwrap(),
            bytes,
            "read {step} bytes at a time"
        );
    }
    // Trailing garbage after the last account is refused, not ignored.
    let mut damaged = bytes.clone();
    damaged.extend_from_slice(b"{}\n");
    let err = Engine::default().restore_from(&damaged[..]).unwrap_err();
    assert!(err.to_string().contains("more than the"), "{err}");
    // So is a snapshot cut short after a whole line (a line cut in the
    // middle is not JSON).
    let lines: Vec<&[u8]> = bytes.split_inclusive(|b| *b == b'\n').collect();
    assert!(lines.len() >= 2, "a head and an account at least");
    let cut: Vec<u8> = lines[..lines.len() - 1].concat();
    let err = Engine::default().restore_from(&cut[..]).unwrap_err();
    assert!(err.to_string().contains("cut short"), "{err}");
    let mut torn = cut.clone();
    torn.extend_from_slice(&lines[lines.len() - 1][..5]);
    assert!(Engine::default().restore_from(&torn[..]).is_err());
}

/// Events dated at either end of the years RFC 3339 can write (0000 and
/// 9999) derive times beyond them (a hold's expiry, a window's start);
/// saving state must not fail on those, and must read them back.
#[test]
fn state_of_events_at_the_ends_of_time_saves_and_restores() {
    for year in ["0000", "9999"] {
        let mut live = Engine::default();
        for mut value in examples() {
            let time = value["time"].as_str().unwrap().to_string();
            let shifted = if year == "9999" {
                format!("9999-12-31{}", &time[10..])
            } else {
                format!("0000-01-01{}", &time[10..])
            };
            value["time"] = json!(shifted);
            live.process(&event(value));
        }
        let bytes = live
            .snapshot()
            .unwrap_or_else(|e| panic!("year {year}: {e}"));
        let mut restored = Engine::default();
        restored.restore(&bytes).unwrap();
        assert_eq!(restored.snapshot().unwrap(), bytes, "year {year}");
    }
}

/// A snapshot written before accounts had lines of their own (format 5,
/// one JSON document) is still read, whole or streamed, into the same
/// state.
#[test]
fn a_format_5_snapshot_is_still_read() {
    let mut live = Engine::default();
    for value in examples() {
        live.process(&event(value));
    }
    let old = live.snapshot_one_document();
    assert!(old.starts_with(b"{\"format\":5,"));
    let mut restored = Engine::default();
    restored.restore(&old).unwrap();
    assert_eq!(restored.snapshot().unwrap(), live.snapshot().unwrap());
    let mut streamed = Engine::default();
    streamed
        .restore_from(Trickle {
            bytes: &old,
            step: 4096,
        })
        .unwrap();
    assert_eq!(streamed.snapshot().unwrap(), live.snapshot().unwrap());
}

#[test]
fn account_state_and_its_snapshots_keep_no_holder_name() {
    let mut engine = Engine::default();
    engine.process(&event(
        json!({"event_id": "d1", "type": "payout_destination_change",
        "account_id": "a", "time": "2018-05-16T09:30:00Z",
        "destination": {"institution_id": "200000", "account_number": "55551234",
                        "holder_name": "Jane Doe"}}),
    ));
    let state = engine.account("a").unwrap();
    let record = state.destination.as_ref().unwrap();
    assert_eq!(record.destination.holder_name, None);
    assert_eq!(record.destination.account_last4.as_deref(), Some("1234"));
    let snapshot = serde_json::to_string(state).unwrap();
    assert!(!snapshot.contains("Jane"), "{snapshot}");

    // A snapshot written before holder names were dropped loses it on restore.
    let mut old = serde_json::to_value(record).unwrap();
    old["destination"]["holder_name"] = json!("Jane Doe");
    let restored: crate::state::DestinationRecord = serde_json::from_value(old).unwrap();
    assert_eq!(restored.destination.holder_name, None);
    assert_eq!(&restored, record);
}

// ----- risk episodes, verification provenance, challenged logins -----

/// One seller driven through the default rules, keeping the log.
struct Seller {
    engine: Engine,
    n: u32,
    log: Vec<(crate::Event, Decision)>,
}

impl Seller {
    /// A seller with a month of daily logins from home and a bank account
    /// set on day 1.
    fn with_history() -> Seller {
        let mut s = Seller {
            engine: Engine::default(),
            n: 0,
            log: Vec::new(),
        };
        for day in 0..30 {
            s.login(day * DAY, &format!("home-{day}"), "81.2.69.160", "laptop");
        }
        s.send(
            DAY,
            "payout_destination_change",
            json!({"session_id": "home-1",
                   "destination": {"institution_id": "20-00-00", "account_number": "11112222"}}),
        );
        s
    }

    fn send(&mut self, t: i64, ty: &str, fields: serde_json::Value) -> Decision {
        self.n += 1;
        let mut v = json!({"event_id": format!("e{}", self.n), "type": ty,
                           "account_id": "seller-1", "time": super::at(t)});
        for (k, x) in fields.as_object().expect("an object") {
            v[k] = x.clone();
        }
        let e = event(v);
        let d = self.engine.process(&e);
        self.log.push((e, d.clone()));
        d
    }

    fn login(&mut self, t: i64, session: &str, ip: &str, device: &str) -> Decision {
        self.send(
            t,
            "login",
            json!({"status": "success", "session_id": session, "ip": ip, "device_id": device}),
        )
    }

    fn state(&self) -> &crate::AccountState {
        self.engine.account("seller-1").expect("known")
    }

    /// The effects' kinds, without the cases they opened or extended.
    fn kinds(d: &Decision) -> Vec<EffectKind> {
        d.effects
            .iter()
            .map(|e| e.kind)
            .filter(|k| *k != EffectKind::CaseUpdated)
            .collect()
    }
}

use super::DAY;
use crate::decision::EffectKind;
use crate::event::{Credential, VerificationChannel};
use crate::state::{EvidenceKind, LOCKOUT_WINDOW_SECS, MAX_EPISODE_EVIDENCE};

/// The attacker of the lock-out class: in from a new device and network,
/// moves the phone to himself, then the bank account.
fn phone_then_bank(s: &mut Seller) {
    s.login(40 * DAY, "atk", "185.220.101.4", "box");
    s.send(40 * DAY + 30, "phone_change", json!({"session_id": "atk"}));
    s.send(
        40 * DAY + 60,
        "payout_destination_change",
        json!({"session_id": "atk",
               "destination": {"institution_id": "60-83-71", "account_number": "99990001"}}),
    );
}

#[test]
fn a_verification_through_a_contact_changed_in_the_episode_clears_nothing() {
    let mut s = Seller::with_history();
    phone_then_bank(&mut s);
    let episode = s
        .state()
        .at_risk
        .clone()
        .expect("the phone change opened it");
    assert_eq!(episode.credentials, [Credential::Phone]);
    // The attacker answers the SMS sent to the phone he now holds.
    let sms = s.send(
        40 * DAY + 90,
        "verification",
        json!({"session_id": "atk", "status": "passed", "channel": "sms"}),
    );
    assert!(sms.effects.is_empty(), "{:?}", sms.effects);
    let state = s.state();
    assert!(state.at_risk.is_some());
    let session = state
        .sessions
        .iter()
        .find(|x| x.session_id == "atk")
        .unwrap();
    assert!(
        session.risky && !session.verified,
        "the session stays risky"
    );
    let record = state.destination.as_ref().unwrap();
    assert!(record.set_in_risky_session, "the destination stays risky");
    let last = state.at_risk.as_ref().unwrap().evidence.last().unwrap();
    assert_eq!(last.kind, EvidenceKind::RefusedVerification);
    // No channel is of unknown provenance: no vouching after a change.
    let unnamed = s.send(
        40 * DAY + 100,
        "verification",
        json!({"session_id": "atk", "status": "passed"}),
    );
    assert!(unnamed.effects.is_empty(), "{:?}", unnamed.effects);
    // The payout's decision tells the platform where to confirm instead.
    let payout = s.send(
        40 * DAY + 200,
        "payout",
        json!({"payout_id": "p1", "amount": 5000, "currency": "GBP"}),
    );
    assert_eq!(payout.action, crate::Action::Hold);
    let request = payout.verification.as_ref().expect("a request");
    assert_eq!(
        request.channels[..2],
        [
            VerificationChannel::PriorPhone,
            VerificationChannel::IdentityDocument
        ]
    );
    assert!(request.refused.contains(&VerificationChannel::Sms));
    assert!(!request.channels.contains(&VerificationChannel::Sms));
    // Money to a destination never paid before: the current e-mail, which
    // a takeover may reach, does not confirm it either.
    assert!(request.refused.contains(&VerificationChannel::Email));
    assert_eq!(request.because, ["phone_change", "payout"]);
    // The owner, reached on the phone on file before the change, confirms.
    let owner = s.send(
        41 * DAY,
        "verification",
        json!({"status": "passed", "channel": "prior_phone"}),
    );
    assert_eq!(
        Seller::kinds(&owner),
        [EffectKind::AccountCleared, EffectKind::HoldReleased]
    );
    assert!(s.state().at_risk.is_none());
}

#[test]
fn a_channel_vouches_again_once_the_lock_out_window_is_over() {
    let mut s = Seller::with_history();
    s.send(35 * DAY, "email_change", json!({"session_id": "home-29"}));
    let change = &s.state().credentials[&Credential::Email];
    assert_eq!(change.event_type, crate::EventType::EmailChange);
    assert!(!change.in_risky_session && !change.in_episode);
    let t = change.at.0 + 10;
    assert!(!s.state().may_vouch(Some(VerificationChannel::Email), t));
    assert!(!s.state().may_vouch(None, t));
    assert!(!s.state().may_vouch(Some(VerificationChannel::Other), t));
    assert!(s.state().may_vouch(Some(VerificationChannel::Sms), t));
    assert!(
        s.state()
            .may_vouch(Some(VerificationChannel::PriorEmail), t)
    );
    let later = t - 10 + LOCKOUT_WINDOW_SECS + 1;
    assert!(s.state().may_vouch(Some(VerificationChannel::Email), later));
    assert!(s.state().may_vouch(None, later));
}

#[test]
fn an_mfa_method_change_is_a_change_of_the_factor() {
    let mut s = Seller::with_history();
    s.send(
        35 * DAY,
        "mfa_change",
        json!({"session_id": "home-29", "change": "method_changed", "method": "totp"}),
    );
    let t = s.state().credentials[&Credential::Mfa].at.0 + 10;
    assert!(!s.state().may_vouch(Some(VerificationChannel::Totp), t));
    assert!(
        !s.state()
            .may_vouch(Some(VerificationChannel::SecurityKey), t)
    );
    assert!(s.state().may_vouch(Some(VerificationChannel::Email), t));
}

#[test]
fn a_failed_verification_opens_an_episode_and_an_owners_no_is_evidence() {
    let mut s = Seller::with_history();
    let failed = s.send(
        35 * DAY,
        "verification",
        json!({"session_id": "home-29", "status": "failed", "channel": "sms"}),
    );
    assert_eq!(Seller::kinds(&failed), [EffectKind::AccountAtRisk]);
    let denied = s.send(35 * DAY + 60, "verification", json!({"status": "failed"}));
    assert!(denied.effects.is_empty(), "the episode is open already");
    let episode = s.state().at_risk.clone().expect("open");
    let kinds: Vec<EvidenceKind> = episode.evidence.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [EvidenceKind::FailedVerification, EvidenceKind::OwnerDenied]
    );
    // A passed one in the same session, through a channel that may vouch,
    // ends it.
    let passed = s.send(
        35 * DAY + 120,
        "verification",
        json!({"session_id": "home-29", "status": "passed", "channel": "sms"}),
    );
    assert_eq!(Seller::kinds(&passed), [EffectKind::AccountCleared]);
}

#[test]
fn episode_evidence_is_bounded_and_keeps_how_it_began() {
    let mut s = Seller::with_history();
    phone_then_bank(&mut s);
    for i in 0..40 {
        s.send(
            41 * DAY + i,
            "verification",
            json!({"session_id": "atk", "status": "failed"}),
        );
    }
    let episode = s.state().at_risk.as_ref().unwrap();
    assert_eq!(episode.evidence.len(), MAX_EPISODE_EVIDENCE);
    assert_eq!(episode.evidence[0].kind, EvidenceKind::CredentialChange);
    assert_eq!(
        episode.evidence.last().unwrap().kind,
        EvidenceKind::FailedVerification
    );
}

#[test]
fn a_challenged_login_teaches_nothing_until_its_session_is_vouched_for() {
    let mut s = Seller::with_history();
    let first = s.login(40 * DAY, "atk-1", "185.220.101.4", "box");
    assert!(first.action >= crate::Action::Challenge);
    let state = s.state();
    assert!(!state.devices.contains("box"));
    assert!(
        !state
            .networks
            .contains(&NetworkPrefix::of("185.220.101.4".parse().unwrap()))
    );
    let logins_in_profile = state.profile.logins();
    assert!(
        state.sessions.iter().any(|x| x.unlearnt.is_some()),
        "kept on the session"
    );
    // He never passes the step-up: his next login is as unfamiliar.
    let second = s.login(40 * DAY + 3600, "atk-2", "185.220.101.4", "box");
    assert_eq!(second.features.flag_of("login.new_device"), Some(true));
    assert_eq!(second.action, first.action);
    assert_eq!(s.state().profile.logins(), logins_in_profile);
    // The owner on a new phone passes the step-up: now it is learnt.
    let phone = s.login(41 * DAY, "trip", "81.2.69.160", "phone");
    assert!(phone.action >= crate::Action::Challenge);
    s.send(
        41 * DAY + 30,
        "verification",
        json!({"session_id": "trip", "status": "passed", "channel": "sms"}),
    );
    assert!(s.state().devices.contains("phone"));
    assert_eq!(s.state().profile.logins(), logins_in_profile + 1);
    let again = s.login(42 * DAY, "trip-2", "81.2.69.160", "phone");
    assert_eq!(again.features.flag_of("login.new_device"), Some(false));
}

#[test]
fn a_blocked_login_never_teaches() {
    let mut engine = Engine::default();
    let block = Decision::from_reasons("test".into(), 1, vec![], vec![], crate::Action::Block);
    let mut blocked = block.clone();
    blocked.action = crate::Action::Block;
    let login = event(json!({"event_id": "l1", "type": "login", "account_id": "a",
        "time": "2018-05-16T09:00:00Z", "status": "success", "session_id": "s1",
        "ip": "185.220.101.4", "device_id": "box"}));
    engine.apply(&login, &blocked);
    let state = engine.account("a").unwrap();
    assert!(!state.devices.contains("box"));
    assert_eq!(state.profile.logins(), 0);
    assert!(state.sessions.iter().all(|x| x.unlearnt.is_none()));
    engine.apply(
        &event(
            json!({"event_id": "v1", "type": "verification", "account_id": "a",
            "time": "2018-05-16T09:01:00Z", "session_id": "s1", "status": "passed"}),
        ),
        &block,
    );
    assert!(!engine.account("a").unwrap().devices.contains("box"));
}

#[test]
fn episodes_credentials_and_unlearnt_logins_survive_replay_and_snapshots() {
    let mut s = Seller::with_history();
    phone_then_bank(&mut s);
    s.send(
        40 * DAY + 90,
        "verification",
        json!({"session_id": "atk", "status": "passed", "channel": "sms"}),
    );
    s.send(
        40 * DAY + 200,
        "payout",
        json!({"payout_id": "p1", "amount": 5000, "currency": "GBP"}),
    );
    let mut replayed = Engine::default();
    for (e, d) in &s.log {
        replayed.apply(e, d);
    }
    assert_eq!(s.engine.snapshot().unwrap(), replayed.snapshot().unwrap());
    let mut restored = Engine::default();
    restored.restore(&s.engine.snapshot().unwrap()).unwrap();
    assert_eq!(restored.account("seller-1"), s.engine.account("seller-1"));
    let state = restored.account("seller-1").unwrap();
    assert!(
        state
            .at_risk
            .as_ref()
            .is_some_and(|e| e.evidence.len() >= 2)
    );
    assert!(state.credentials.contains_key(&Credential::Phone));

    // State written before episodes, provenance and payment records loads.
    let mut old = serde_json::to_value(s.state()).unwrap();
    let object = old.as_object_mut().unwrap();
    object.remove("credentials");
    object["at_risk"]
        .as_object_mut()
        .unwrap()
        .remove("evidence");
    object["at_risk"]
        .as_object_mut()
        .unwrap()
        .remove("credentials");
    for session in object["sessions"].as_array_mut().unwrap() {
        session.as_object_mut().unwrap().remove("unlearnt");
    }
    object["destination"]
        .as_object_mut()
        .unwrap()
        .remove("replaced_another");
    let back: crate::AccountState = serde_json::from_value(old).unwrap();
    assert!(back.credentials.is_empty());
    assert!(back.at_risk.is_some_and(|e| e.evidence.is_empty()));
}
