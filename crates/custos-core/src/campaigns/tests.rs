//! Tests of campaign detection, one home for all of them: the link graph,
//! feedback and money, the burst detector and its arithmetic, bounds,
//! snapshots and the wire format, through the detector's API (and, where a
//! unit is worth testing alone, through the items its mechanism shows the
//! detector); then the same through the engine and the default rules.
//! The calibration on a synthetic platform lives in the simulator crate.

use std::net::Ipv4Addr;

use super::burst::poisson_tail_score;
use super::*;
use crate::types::NetworkPrefix;

/// Midnight UTC, 2023-11-15: the synthetic worlds' day 0.
const START: i64 = 1_700_006_400;
const HOUR: i64 = 3_600;

fn destination(institution: &str, token: &str, kind: Option<InstitutionType>) -> Destination {
    Destination {
        institution_id: institution.into(),
        institution_type: kind,
        country: Some("GB".into()),
        account_token: token.into(),
        account_last4: Some("1234".into()),
        holder_name: None,
        holder_token: None,
    }
}

fn ip(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

fn mule(token: &str) -> Destination {
    destination("608371", token, Some(InstitutionType::EMoney))
}

/// A payout-destination change with the account's own device.
fn set_destination(
    detector: &mut CampaignDetector,
    account: &str,
    at: i64,
    destination: &Destination,
    address: IpAddr,
    risky: bool,
) -> Vec<CampaignNotice> {
    let device = format!("device-{account}");
    let event = format!("evt-{account}-{at}");
    detector.observe_change(&SensitiveChange {
        account_id: account,
        event_id: &event,
        at,
        event_type: EventType::PayoutDestinationChange,
        destination: Some(destination),
        device_id: Some(&device),
        ip: Some(address),
        risky,
        earlier_setters: &[],
    })
}

/// A risky password change from `address`, without a device id.
fn password_change(
    detector: &mut CampaignDetector,
    account: &str,
    at: i64,
    address: IpAddr,
) -> Vec<CampaignNotice> {
    detector.observe_change(&SensitiveChange {
        account_id: account,
        event_id: &format!("pw-{account}-{at}"),
        at,
        event_type: EventType::PasswordChange,
        destination: None,
        device_id: None,
        ip: Some(address),
        risky: true,
        earlier_setters: &[],
    })
}

fn gbp() -> Currency {
    Currency::parse("GBP").unwrap()
}

fn kinds(notices: &[CampaignNotice]) -> Vec<(CampaignNoticeKind, &str)> {
    notices
        .iter()
        .map(|n| (n.kind, n.campaign_id.as_str()))
        .collect()
}

fn member_ids(campaign: &Campaign) -> Vec<&str> {
    campaign
        .accounts
        .iter()
        .map(|m| m.account_id.as_str())
        .collect()
}

/// Two accounts sending money to one mule, each from its own address
/// (the same two addresses on every call: calls close in time link).
fn two_victims(detector: &mut CampaignDetector, token: &str, first: &str, second: &str, at: i64) {
    let d = mule(token);
    set_destination(detector, first, at, &d, ip(203, 0, 113, 7), true);
    set_destination(detector, second, at + HOUR, &d, ip(198, 51, 100, 9), true);
}

// ----- the link graph -----

#[test]
fn union_find_joins_by_size_and_compresses_paths() {
    let config = CampaignConfig::default();
    let mut graph = LinkGraph::new();
    let nodes: Vec<u32> = (0..6)
        .map(|_| graph.new_node(NodeKind::Device, 0, &config).unwrap())
        .collect();
    let mut joins = Vec::new();
    graph.union(nodes[0], nodes[1], 0, &mut joins);
    graph.union(nodes[2], nodes[3], 0, &mut joins);
    graph.union(nodes[3], nodes[4], 0, &mut joins);
    // {2,3,4} is bigger than {0,1}: its root stays the root.
    let big_root = graph.find(nodes[2]);
    graph.union(nodes[1], nodes[4], 0, &mut joins);
    for &n in &nodes[..5] {
        assert_eq!(graph.find(n), big_root);
    }
    assert_eq!(graph.node(big_root).size, 5);
    assert_ne!(graph.find(nodes[5]), big_root);
    graph.find_compress(nodes[0]);
    assert_eq!(graph.node(nodes[0]).parent, big_root);
}

#[test]
fn two_accounts_sharing_a_mule_through_risky_changes_are_a_campaign() {
    let mut detector = CampaignDetector::default();
    let d = mule("tk_mule");
    let first = set_destination(
        &mut detector,
        "victim-1",
        START,
        &d,
        ip(203, 0, 113, 7),
        true,
    );
    assert!(first.is_empty(), "one account is not a campaign");
    assert_eq!(detector.linked_accounts("victim-1"), 0);
    let second = set_destination(
        &mut detector,
        "victim-2",
        START + HOUR,
        &d,
        ip(198, 51, 100, 9),
        true,
    );
    assert_eq!(kinds(&second), [(CampaignNoticeKind::Detected, "cmp_1")]);
    assert_eq!(second[0].summary.accounts, 2);
    assert_eq!(second[0].summary.institutions, ["608371"]);

    let campaign = detector.campaign_of_account("victim-1").unwrap();
    assert_eq!(campaign.id, "cmp_1");
    assert_eq!(campaign.status, CampaignStatus::Suspected);
    assert_eq!(member_ids(campaign), ["victim-1", "victim-2"]);
    for member in &campaign.accounts {
        assert_eq!(member.via, [LinkKind::SharedDestination]);
    }
    assert_eq!(campaign.links.shared_destination, 1);
    assert_eq!(campaign.links.shared_ip + campaign.links.shared_network, 0);
    assert_eq!(campaign.destinations.len(), 1);
    assert_eq!(campaign.detected_at, Timestamp(START + HOUR));
    assert_eq!(
        detector.campaign_of_destination(&d).map(|c| c.id.as_str()),
        Some("cmp_1")
    );
    assert!(
        detector
            .campaign_of_destination(&mule("tk_other"))
            .is_none()
    );
    assert_eq!(detector.linked_accounts("victim-1"), 1);
    assert_eq!(detector.linked_accounts("victim-2"), 1);
    assert_eq!(detector.linked_accounts("stranger"), 0);
    assert_eq!(detector.campaigns().count(), 1);
    let kinds_on_timeline: Vec<TimelineKind> = campaign.timeline.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds_on_timeline,
        [
            TimelineKind::SensitiveChange,
            TimelineKind::SensitiveChange,
            TimelineKind::Detected
        ]
    );
}

#[test]
fn a_shared_destination_set_without_risk_links_nothing() {
    let mut detector = CampaignDetector::default();
    let d = mule("tk_family");
    set_destination(
        &mut detector,
        "shop-1",
        START,
        &d,
        ip(203, 0, 113, 7),
        false,
    );
    let notices = set_destination(
        &mut detector,
        "shop-2",
        START + HOUR,
        &d,
        ip(203, 0, 113, 7),
        false,
    );
    assert!(notices.is_empty());
    assert_eq!(detector.campaigns().count(), 0);
    assert_eq!(detector.linked_accounts("shop-1"), 0);
    assert!(detector.campaign_of_destination(&d).is_none());
    assert_eq!(detector.stats().nodes, 0, "non-risky changes add no nodes");
}

#[test]
fn hub_keys_stop_linking_at_the_cap() {
    let mut detector = CampaignDetector::default();
    for n in 0..50 {
        password_change(
            &mut detector,
            &format!("acct-{n}"),
            START + n * 60,
            ip(198, 51, 100, 7),
        );
    }
    let cap = detector.config().max_accounts_per_key;
    assert_eq!(detector.linked_accounts("acct-0"), cap - 1);
    assert_eq!(detector.linked_accounts("acct-9"), cap - 1);
    assert_eq!(detector.linked_accounts("acct-10"), 0);
    assert_eq!(detector.linked_accounts("acct-49"), 0);
    assert_eq!(detector.campaigns().count(), 1);
    let campaign = detector.campaign("cmp_1").unwrap();
    assert_eq!(campaign.account_count(), cap);
    assert_eq!(campaign.links.shared_ip, 1);
    assert_eq!(campaign.links.shared_network, 1);
}

#[test]
fn shared_infrastructure_is_forgotten_after_its_ttl() {
    let mut detector = CampaignDetector::default();
    let ttl = i64::from(detector.config().key_ttl_days) * DAY;
    password_change(&mut detector, "old", START, ip(198, 51, 100, 7));
    password_change(
        &mut detector,
        "months-later",
        START + ttl + DAY,
        ip(198, 51, 100, 7),
    );
    assert_eq!(detector.linked_accounts("months-later"), 0);
    password_change(
        &mut detector,
        "days-later",
        START + ttl + 3 * DAY,
        ip(198, 51, 100, 8),
    );
    assert_eq!(
        detector.linked_accounts("days-later"),
        1,
        "same /24, two days apart"
    );
    assert_eq!(
        detector
            .campaign_of_account("days-later")
            .unwrap()
            .links
            .shared_network,
        1
    );
}

#[test]
fn destinations_are_never_pruned() {
    let mut detector = CampaignDetector::default();
    let d = mule("tk_big_mule");
    for n in 0..30u8 {
        set_destination(
            &mut detector,
            &format!("victim-{n}"),
            START + i64::from(n) * DAY,
            &d,
            ip(203, 0, n, 7),
            true,
        );
    }
    assert_eq!(detector.linked_accounts("victim-0"), 29);
    assert_eq!(detector.campaign("cmp_1").unwrap().account_count(), 30);
}

#[test]
fn merges_keep_the_older_id() {
    let mut detector = CampaignDetector::default();
    two_victims(&mut detector, "tk_mule_a", "a-1", "a-2", START);
    let d = mule("tk_mule_b");
    for (n, account) in ["b-1", "b-2", "b-3"].iter().enumerate() {
        set_destination(
            &mut detector,
            account,
            START + DAY + n as i64,
            &d,
            ip(192, 0, 2, n as u8),
            true,
        );
    }
    assert_eq!(detector.campaign_of_account("b-1").unwrap().id, "cmp_2");
    // a-2 later uses the same device as b-3: the bigger, younger
    // campaign is merged into the older one.
    let notices = detector.observe_change(&SensitiveChange {
        account_id: "a-2",
        event_id: "evt-merge",
        at: START + 2 * DAY,
        event_type: EventType::MfaChange,
        destination: None,
        device_id: Some("device-b-3"),
        ip: None,
        risky: true,
        earlier_setters: &[],
    });
    assert_eq!(kinds(&notices), [(CampaignNoticeKind::Updated, "cmp_1")]);
    assert_eq!(notices[0].summary.merged, ["cmp_2"]);
    let campaign = detector.campaign("cmp_1").unwrap();
    assert_eq!(campaign.account_count(), 5);
    assert_eq!(campaign.destinations.len(), 2);
    assert_eq!(campaign.detected_at, Timestamp(START + HOUR));
    assert!(
        campaign
            .timeline
            .iter()
            .any(|e| e.kind == TimelineKind::Merged)
    );
    assert_eq!(detector.campaign("cmp_2").unwrap().id, "cmp_1");
    assert_eq!(detector.campaign_of_account("b-1").unwrap().id, "cmp_1");
    assert_eq!(detector.campaigns().count(), 1);
    assert!(detector.campaign("cmp_3").is_none());
    assert!(detector.campaign("cmp_01").is_none());
    assert_eq!(detector.linked_accounts("a-1"), 4);
}

#[test]
fn new_members_and_destinations_notify_but_repeats_do_not() {
    let mut detector = CampaignDetector::default();
    two_victims(&mut detector, "tk_mule", "v-1", "v-2", START);
    let d = mule("tk_mule");
    let joined = set_destination(
        &mut detector,
        "v-3",
        START + DAY,
        &d,
        ip(192, 0, 2, 3),
        true,
    );
    assert_eq!(kinds(&joined), [(CampaignNoticeKind::Updated, "cmp_1")]);
    assert_eq!(joined[0].summary.accounts, 3);
    let again = set_destination(
        &mut detector,
        "v-3",
        START + DAY + 60,
        &d,
        ip(192, 0, 2, 3),
        true,
    );
    assert!(again.is_empty());
    let new_mule = mule("tk_mule_2");
    let moved = set_destination(
        &mut detector,
        "v-3",
        START + DAY + 120,
        &new_mule,
        ip(192, 0, 2, 3),
        true,
    );
    assert_eq!(kinds(&moved), [(CampaignNoticeKind::Updated, "cmp_1")]);
    assert_eq!(moved[0].summary.destinations, 2);
    let campaign = detector.campaign("cmp_1").unwrap();
    let v3 = campaign.member("v-3").unwrap();
    assert_eq!(v3.joined_at, Timestamp(START + DAY));
    assert!(
        campaign
            .timeline
            .iter()
            .any(|e| e.kind == TimelineKind::Joined)
    );
    assert!(detector.campaign_of_destination(&new_mule).is_some());
}

#[test]
fn hosting_network_links_victims_with_their_own_mules() {
    let mut detector = CampaignDetector::default();
    let first = set_destination(
        &mut detector,
        "v-1",
        START,
        &mule("tk_1"),
        ip(185, 220, 101, 4),
        true,
    );
    assert!(first.is_empty());
    let second = set_destination(
        &mut detector,
        "v-2",
        START + DAY,
        &mule("tk_2"),
        ip(185, 220, 101, 77),
        true,
    );
    assert_eq!(kinds(&second), [(CampaignNoticeKind::Detected, "cmp_1")]);
    let campaign = detector.campaign("cmp_1").unwrap();
    assert_eq!(
        campaign.member("v-2").unwrap().via,
        [LinkKind::SharedNetwork]
    );
    assert_eq!(campaign.links.shared_network, 1);
    assert_eq!(campaign.links.shared_destination, 0);
}

// ----- who used which shared key -----

/// A risky password change from `address` on `device`.
fn change_from_device(
    detector: &mut CampaignDetector,
    account: &str,
    at: i64,
    device: &str,
    address: IpAddr,
) {
    detector.observe_change(&SensitiveChange {
        account_id: account,
        event_id: &format!("pw-{account}-{at}"),
        at,
        event_type: EventType::PasswordChange,
        destination: None,
        device_id: Some(device),
        ip: Some(address),
        risky: true,
        earlier_setters: &[],
    });
}

#[test]
fn campaign_links_name_the_keys_two_accounts_share_and_who_used_each() {
    let mut detector = CampaignDetector::default();
    // a and b send money to one mule; b and c are then changed from one
    // device on one network (two addresses of it).
    two_victims(&mut detector, "tk_mule", "a", "b", START);
    change_from_device(
        &mut detector,
        "b",
        START + 2 * HOUR,
        "kit",
        ip(192, 0, 2, 9),
    );
    change_from_device(
        &mut detector,
        "c",
        START + 3 * HOUR,
        "kit",
        ip(192, 0, 2, 5),
    );
    let campaign = detector.campaigns().next().unwrap().id.clone();
    let known = |account: &str| KnownArtefacts {
        devices: vec![format!("device-{account}"), "kit".into()],
        networks: vec![NetworkPrefix::of(ip(192, 0, 2, 1))],
    };
    let links = detector.campaign_links(&campaign, 10, known).unwrap();
    let ids: Vec<&str> = links
        .accounts
        .iter()
        .map(|a| a.account_id.as_str())
        .collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert_eq!(links.more_accounts, 0);
    // Shared keys only, in the order their first user came: the mule
    // (a's), then b's device and network. Each account's own device and
    // address, and b's and c's addresses, link nobody else.
    let named: Vec<(LinkKind, Option<String>, u32)> = links
        .artefacts
        .iter()
        .map(|a| {
            (
                a.kind,
                a.value
                    .clone()
                    .or_else(|| a.destination.as_ref().map(|d| d.account_token.clone())),
                a.linked,
            )
        })
        .collect();
    assert_eq!(
        named,
        [
            (LinkKind::SharedDestination, Some("tk_mule".into()), 2),
            (LinkKind::SharedDevice, Some("kit".into()), 2),
            (LinkKind::SharedNetwork, Some("192.0.2.0/24".into()), 2),
        ]
    );
    assert_eq!(
        links.artefacts[0]
            .destination
            .as_ref()
            .unwrap()
            .institution_id,
        "608371"
    );
    let used: Vec<&[usize]> = links
        .accounts
        .iter()
        .map(|a| a.artefacts.as_slice())
        .collect();
    assert_eq!(used, [&[0][..], &[0, 1, 2], &[1, 2]]);

    // What the state forgot stays a node, unnamed; the cap counts the rest.
    let links = detector
        .campaign_links(&campaign, 2, |_| KnownArtefacts::default())
        .unwrap();
    assert_eq!(links.accounts.len(), 2);
    assert_eq!(links.more_accounts, 1);
    assert_eq!(links.artefacts.len(), 3);
    assert_eq!(links.artefacts[1].kind, LinkKind::SharedDevice);
    assert_eq!(links.artefacts[1].value, None);
    // The destination is named from the account's own risky change.
    assert!(links.artefacts[0].destination.is_some());
    assert!(detector.campaign_links("cmp_99", 10, known).is_none());
}

#[test]
fn campaign_links_name_an_institution_burst() {
    let mut detector = quiet_platform();
    // Four risky changes to four unique mules at one quiet institution,
    // hours apart, each from its own address: only the burst links them.
    for (i, account) in ["v1", "v2", "v3", "v4"].iter().enumerate() {
        let d = destination("070116", &format!("tk_{account}"), None);
        let at = START + 40 * DAY + i as i64 * 6 * HOUR;
        set_destination(&mut detector, account, at, &d, ip(10, i as u8, 0, 1), true);
    }
    let campaign = detector
        .campaigns()
        .next()
        .expect("a burst campaign")
        .id
        .clone();
    let links = detector
        .campaign_links(&campaign, 10, |_| KnownArtefacts::default())
        .unwrap();
    let bursts: Vec<&SharedArtefact> = links
        .artefacts
        .iter()
        .filter(|a| a.kind == LinkKind::InstitutionBurst)
        .collect();
    assert_eq!(bursts.len(), 1, "{links:?}");
    assert_eq!(bursts[0].value.as_deref(), Some("070116"));
    assert!(
        links.accounts.iter().all(|a| !a.artefacts.is_empty()),
        "{links:?}"
    );
}

// ----- feedback -----

#[test]
fn labels_confirm_clear_and_dismiss() {
    let mut detector = CampaignDetector::default();
    two_victims(&mut detector, "tk_mule", "v-1", "v-2", START);
    assert!(
        detector
            .label("stranger", "l-0", START + DAY, LabelKind::Fraud)
            .is_empty()
    );

    let chargeback = detector.label("v-1", "l-1", START + DAY, LabelKind::Chargeback);
    assert!(chargeback.is_empty());
    let campaign = detector.campaign("cmp_1").unwrap();
    assert_eq!(campaign.status, CampaignStatus::Suspected);
    assert_eq!(campaign.timeline.last().unwrap().kind, TimelineKind::Label);

    let fraud = detector.label("v-1", "l-2", START + DAY, LabelKind::CompromiseReported);
    assert_eq!(kinds(&fraud), [(CampaignNoticeKind::Confirmed, "cmp_1")]);
    assert_eq!(fraud[0].summary.status, CampaignStatus::Confirmed);
    assert!(
        detector
            .label("v-2", "l-3", START + DAY, LabelKind::Fraud)
            .is_empty(),
        "already confirmed"
    );

    let legit = detector.label("v-1", "l-4", START + 2 * DAY, LabelKind::Legit);
    assert!(legit.is_empty(), "one member left");
    assert!(detector.is_cleared("v-1"));
    assert!(
        detector
            .campaign("cmp_1")
            .unwrap()
            .member("v-1")
            .unwrap()
            .cleared
    );
    assert_eq!(
        detector.linked_accounts("v-2"),
        0,
        "cleared accounts do not count"
    );
    assert_eq!(detector.linked_accounts("v-1"), 1);
    assert!(detector.account_in_live_campaign("v-1").is_none());
    assert!(detector.account_in_live_campaign("v-2").is_some());

    let all_clear = detector.label("v-2", "l-5", START + 2 * DAY, LabelKind::Legit);
    assert_eq!(
        kinds(&all_clear),
        [(CampaignNoticeKind::Dismissed, "cmp_1")]
    );
    let campaign = detector.campaign("cmp_1").unwrap();
    assert_eq!(campaign.status, CampaignStatus::Dismissed);
    assert_eq!(campaign.account_count(), 2, "cleared members stay listed");
    assert!(detector.account_in_live_campaign("v-2").is_none());

    // Fraud after all: the member is counted again.
    let fraud = detector.label("v-2", "l-6", START + 3 * DAY, LabelKind::Fraud);
    assert_eq!(kinds(&fraud), [(CampaignNoticeKind::Confirmed, "cmp_1")]);
    assert!(!detector.is_cleared("v-2"));
    assert_eq!(detector.linked_accounts("v-1"), 1);
}

#[test]
fn a_fraud_label_before_joining_confirms_on_joining() {
    let mut detector = CampaignDetector::default();
    let d = mule("tk_mule");
    set_destination(&mut detector, "v-1", START, &d, ip(203, 0, 113, 7), true);
    assert!(
        detector
            .label("v-1", "l-1", START + HOUR, LabelKind::Fraud)
            .is_empty()
    );
    let notices = set_destination(
        &mut detector,
        "v-2",
        START + DAY,
        &d,
        ip(198, 51, 100, 9),
        true,
    );
    assert_eq!(
        kinds(&notices),
        [
            (CampaignNoticeKind::Detected, "cmp_1"),
            (CampaignNoticeKind::Confirmed, "cmp_1")
        ]
    );
    assert_eq!(
        detector.campaign("cmp_1").unwrap().status,
        CampaignStatus::Confirmed
    );
}

#[test]
fn analysts_set_status_and_a_dismissed_campaign_that_grows_is_suspected_again() {
    let mut detector = CampaignDetector::default();
    two_victims(&mut detector, "tk_mule", "v-1", "v-2", START);
    let unknown = detector.set_status(
        "cmp_9",
        CampaignStatus::Confirmed,
        "alice",
        "x",
        "a-0",
        START,
    );
    assert_eq!(unknown, Err(CampaignError::UnknownCampaign("cmp_9".into())));
    assert_eq!(
        CampaignError::UnknownCampaign("cmp_9".into()).to_string(),
        "campaign_id: no campaign \"cmp_9\""
    );

    let dismissed = detector
        .set_status(
            "cmp_1",
            CampaignStatus::Dismissed,
            "alice",
            "same owner",
            "a-1",
            START + DAY,
        )
        .unwrap();
    assert_eq!(
        kinds(&dismissed),
        [(CampaignNoticeKind::Dismissed, "cmp_1")]
    );
    let campaign = detector.campaign("cmp_1").unwrap();
    assert_eq!(
        campaign.status_by,
        Some(StatusChange {
            by: "alice".into(),
            reason: "same owner".into(),
            at: Timestamp(START + DAY)
        })
    );
    let last = campaign.timeline.last().unwrap();
    assert_eq!(
        (last.kind, last.event_id.as_str()),
        (TimelineKind::Status, "a-1")
    );
    let repeat = detector
        .set_status(
            "cmp_1",
            CampaignStatus::Dismissed,
            "bob",
            "still",
            "a-2",
            START + DAY,
        )
        .unwrap();
    assert!(repeat.is_empty());

    let grown = set_destination(
        &mut detector,
        "v-3",
        START + 2 * DAY,
        &mule("tk_mule"),
        ip(192, 0, 2, 1),
        true,
    );
    assert_eq!(kinds(&grown), [(CampaignNoticeKind::Updated, "cmp_1")]);
    assert_eq!(grown[0].summary.status, CampaignStatus::Suspected);

    let confirmed = detector
        .set_status(
            "cmp_1",
            CampaignStatus::Confirmed,
            "carol",
            "mule confirmed by bank",
            "a-3",
            START + 3 * DAY,
        )
        .unwrap();
    assert_eq!(
        kinds(&confirmed),
        [(CampaignNoticeKind::Confirmed, "cmp_1")]
    );
}

// ----- money -----

#[test]
fn money_counts_from_the_first_risky_change_including_before_joining() {
    let mut detector = CampaignDetector::default();
    let d = mule("tk_mule");
    // Before any risky change: not counted (and the account is unknown).
    detector.record_money("v-1", "p-0", START - DAY, 9_999, gbp(), false);
    set_destination(&mut detector, "v-1", START, &d, ip(203, 0, 113, 7), true);
    assert!(
        detector
            .record_money("v-1", "p-old", START - HOUR, 7_777, gbp(), false)
            .is_empty()
    );
    detector.record_money("v-1", "p-1", START + HOUR, 100_000, gbp(), false);
    detector.record_money("v-1", "p-2", START + 2 * HOUR, 50_000, gbp(), true);
    detector.record_money("stranger", "p-3", START + 2 * HOUR, 1, gbp(), false);

    set_destination(
        &mut detector,
        "v-2",
        START + DAY,
        &d,
        ip(198, 51, 100, 9),
        true,
    );
    let campaign = detector.campaign("cmp_1").unwrap();
    assert_eq!(
        campaign.money[&gbp()],
        CampaignMoney {
            held: 50_000,
            paid: 100_000
        }
    );
    let money_entries = campaign
        .timeline
        .iter()
        .filter(|e| e.kind == TimelineKind::Money)
        .count();
    assert_eq!(money_entries, 2, "the pre-join ledger is on the timeline");

    let eur = Currency::parse("EUR").unwrap();
    let notices = detector.record_money("v-2", "p-4", START + DAY + HOUR, 20_000, gbp(), false);
    assert!(notices.is_empty(), "money does not notify");
    detector.record_money("v-2", "p-5", START + DAY + HOUR, 3_000, eur, false);
    let campaign = detector.campaign("cmp_1").unwrap();
    assert_eq!(
        campaign.money[&gbp()],
        CampaignMoney {
            held: 50_000,
            paid: 120_000
        }
    );
    assert_eq!(
        campaign.money[&eur],
        CampaignMoney {
            held: 0,
            paid: 3_000
        }
    );
    assert_eq!(campaign.summary().money[&gbp()].paid, 120_000);

    // A cleared member's money is not the campaign's.
    detector.label("v-1", "l-1", START + 2 * DAY, LabelKind::Legit);
    let campaign = detector.campaign("cmp_1").unwrap();
    assert_eq!(
        campaign.money[&gbp()],
        CampaignMoney {
            held: 0,
            paid: 20_000
        }
    );
    detector.record_money("v-1", "p-6", START + 3 * DAY, 1_000, gbp(), false);
    assert_eq!(
        detector.campaign("cmp_1").unwrap().money[&gbp()].paid,
        20_000
    );
}

#[test]
fn a_new_episode_starts_the_ledger_over() {
    let mut detector = CampaignDetector::default();
    let gap = i64::from(detector.config().episode_gap_days) * DAY;
    let d = mule("tk_mule");
    set_destination(&mut detector, "v-1", START, &d, ip(203, 0, 113, 7), true);
    detector.record_money("v-1", "p-1", START + HOUR, 5_000, gbp(), false);
    // A risky change long after: the old honest-looking payouts are not
    // this episode's.
    password_change(&mut detector, "v-1", START + gap + DAY, ip(203, 0, 113, 7));
    detector.record_money("v-1", "p-2", START + gap + 2 * DAY, 700, gbp(), false);
    set_destination(
        &mut detector,
        "v-2",
        START + gap + 3 * DAY,
        &d,
        ip(198, 51, 100, 9),
        true,
    );
    assert_eq!(detector.campaign("cmp_1").unwrap().money[&gbp()].paid, 700);
}

/// The campaign's money is the sum of its members' not cleared (a member
/// cleared by a `legit` label takes out its own money, never another's),
/// and a held payout that is released counts as paid, before joining or
/// after, while a cancelled one stays held.
#[test]
fn released_holds_count_as_paid_and_a_cleared_member_takes_only_its_own_money() {
    let mut detector = CampaignDetector::default();
    let d = mule("tk_mule");
    set_destination(&mut detector, "v-1", START, &d, ip(203, 0, 113, 7), true);
    // Before joining: held, then released.
    detector.record_held_money("v-1", "p-1", START + HOUR, 250_000, gbp(), "p-1");
    detector.release_money("v-1", "p-1");
    set_destination(
        &mut detector,
        "v-2",
        START + DAY,
        &d,
        ip(198, 51, 100, 9),
        true,
    );
    set_destination(
        &mut detector,
        "v-3",
        START + DAY,
        &d,
        ip(192, 0, 2, 1),
        true,
    );
    assert_eq!(detector.campaign("cmp_1").unwrap().account_count(), 3);
    detector.record_money("v-2", "p-2", START + DAY + HOUR, 100_000, gbp(), false);
    detector.record_held_money("v-2", "p-3", START + DAY + HOUR, 1_748_564, gbp(), "p-3");
    detector.record_held_money("v-3", "p-4", START + DAY + HOUR, 40_000, gbp(), "p-4");
    detector.record_money("v-3", "p-5", START + DAY + HOUR, 7_000, gbp(), true);
    detector.record_held_money("v-3", "p-6", START + DAY + HOUR, 900, gbp(), "p-6");
    let money = |detector: &CampaignDetector| detector.campaign("cmp_1").unwrap().money[&gbp()];
    assert_eq!(
        money(&detector),
        CampaignMoney {
            held: 1_748_564 + 40_000 + 7_000 + 900,
            paid: 250_000 + 100_000
        }
    );

    // After joining: released (and released again, or an unknown hold:
    // nothing more moves); cancelled stays held.
    detector.release_money("v-2", "p-3");
    detector.release_money("v-2", "p-3");
    detector.release_money("v-2", "p-unknown");
    detector.forget_hold("v-3", "p-6");
    detector.release_money("v-3", "p-6");
    assert_eq!(
        money(&detector),
        CampaignMoney {
            held: 40_000 + 7_000 + 900,
            paid: 250_000 + 100_000 + 1_748_564
        }
    );

    // v-1 cleared: only its own 250,000 goes; the others' money stays.
    detector.label("v-1", "l-1", START + 2 * DAY, LabelKind::Legit);
    assert_eq!(
        money(&detector),
        CampaignMoney {
            held: 40_000 + 7_000 + 900,
            paid: 100_000 + 1_748_564
        }
    );
    // A cleared member's hold released: its campaign does not count it.
    detector.label("v-3", "l-2", START + 2 * DAY, LabelKind::Legit);
    detector.release_money("v-3", "p-4");
    assert_eq!(
        money(&detector),
        CampaignMoney {
            held: 0,
            paid: 100_000 + 1_748_564
        }
    );
    // Counted again, with what was released meanwhile as paid.
    detector.label("v-3", "l-3", START + 3 * DAY, LabelKind::Fraud);
    assert_eq!(
        money(&detector),
        CampaignMoney {
            held: 7_000 + 900,
            paid: 100_000 + 1_748_564 + 40_000
        }
    );
}

/// Every live campaign's money, recounted from its members' own ledgers:
/// the sum over the members not cleared.
fn assert_money_is_the_members_sum(detector: &CampaignDetector, step: &str) {
    for campaign in detector.campaigns.iter() {
        let mut sum: BTreeMap<Currency, CampaignMoney> = BTreeMap::new();
        for account in detector.accounts.iter().filter(|a| a.member && !a.cleared) {
            let in_it = detector
                .campaign_of_account(&account.id)
                .is_some_and(|c| c.id == campaign.id);
            if in_it {
                for (currency, money) in &account.money {
                    let total = sum.entry(*currency).or_default();
                    total.held += money.held;
                    total.paid += money.paid;
                }
            }
        }
        sum.retain(|_, m| m.held > 0 || m.paid > 0);
        let mut counted = campaign.money.clone();
        counted.retain(|_, m| m.held > 0 || m.paid > 0);
        assert_eq!(counted, sum, "{} after {step}", campaign.id);
    }
}

/// Members join, campaigns merge, money moves, holds are released and
/// cancelled, members are cleared and confirmed again, in a fixed pseudo-
/// random order: after every step each campaign's money is its members'
/// sum, and a snapshot keeps the holds a later release needs.
#[test]
fn campaign_money_stays_the_sum_of_its_members_through_any_sequence() {
    let mut detector = CampaignDetector::default();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |bound: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % bound
    };
    let mut open_holds: Vec<(String, String)> = Vec::new();
    for step in 0..600u64 {
        let at = START + (step as i64) * 600;
        let account = format!("v-{}", next(12));
        let what = match next(10) {
            0 | 1 => {
                let token = format!("tk_mule_{}", next(4));
                let address = ip(203, 0, next(3) as u8, next(250) as u8 + 1);
                set_destination(&mut detector, &account, at, &mule(&token), address, true);
                "a risky change"
            }
            2 => {
                detector.record_money(&account, "p", at, next(50_000) + 1, gbp(), false);
                "a payout"
            }
            3 => {
                detector.record_money(&account, "p", at, next(50_000) + 1, gbp(), true);
                "a refused payout"
            }
            4 | 5 => {
                let hold = format!("h-{step}");
                detector.record_held_money(&account, "p", at, next(90_000) + 1, gbp(), &hold);
                open_holds.push((account.clone(), hold));
                "a held payout"
            }
            6 if !open_holds.is_empty() => {
                let (account, hold) = open_holds.remove(next(open_holds.len() as u64) as usize);
                detector.release_money(&account, &hold);
                "a release"
            }
            7 if !open_holds.is_empty() => {
                let (account, hold) = open_holds.remove(next(open_holds.len() as u64) as usize);
                detector.forget_hold(&account, &hold);
                "a cancel"
            }
            8 => {
                let label =
                    [LabelKind::Legit, LabelKind::Fraud, LabelKind::Legit][next(3) as usize];
                detector.label(&account, "l", at, label);
                "a label"
            }
            _ => {
                detector.clear_account(&account, "c", at, "ana");
                "a clear"
            }
        };
        assert_money_is_the_members_sum(&detector, &format!("step {step}, {what} on {account}"));
        if step == 300 {
            let snapshot = detector.to_snapshot();
            detector =
                CampaignDetector::try_from_snapshot(CampaignConfig::default(), snapshot.clone())
                    .unwrap();
            assert_eq!(detector.to_snapshot(), snapshot);
        }
    }
    let campaigns = detector.campaigns().count();
    let cleared = detector
        .accounts
        .iter()
        .filter(|a| a.member && a.cleared)
        .count();
    let moved: u64 = detector
        .campaigns()
        .map(|c| c.money.get(&gbp()).map_or(0, |m| m.paid))
        .sum();
    assert!(
        campaigns > 0 && cleared > 0 && moved > 0,
        "the sequence exercised little"
    );
}

// ----- bursts: units -----

#[test]
fn poisson_tail_matches_direct_sums() {
    for (k, lambda) in [
        (4u32, 0.07f64),
        (4, 1.0),
        (10, 2.5),
        (40, 20.0),
        (150, 100.0),
        (3, 0.5),
    ] {
        // Direct: 1 - sum of the pmf below k, in f64 (fine at these sizes).
        let mut pmf = (-lambda).exp();
        let mut below = 0.0;
        for i in 0..k {
            below += pmf;
            pmf *= lambda / f64::from(i + 1);
        }
        let direct = -(1.0 - below).log10();
        let score = poisson_tail_score(k, lambda);
        assert!(
            (score - direct).abs() < 1e-6 * direct.max(1.0),
            "k {k} lambda {lambda}: {score} vs {direct}"
        );
    }
    assert_eq!(poisson_tail_score(3, 5.0), 0.0, "not above expected");
    assert_eq!(poisson_tail_score(0, 0.1), 0.0);
    let huge = poisson_tail_score(10_000, 0.001);
    assert!(huge.is_finite() && huge > 10_000.0, "no underflow: {huge}");
    assert!(poisson_tail_score(2_000_000, 1_900_000.0).is_finite());
}

#[test]
fn nothing_bursts_while_warming_up() {
    // Right after a deploy a busy bank's full traffic meets the prior.
    let mut detector = CampaignDetector::default();
    let mut n = 0;
    for day in 0..10 {
        for i in 0..100 {
            n += 1;
            let at = START + day * DAY + i * 600;
            set_destination(
                &mut detector,
                &format!("s-{n}"),
                at,
                &destination("BIG", &format!("tk_{n}"), Some(InstitutionType::Bank)),
                ip(10, (n >> 8) as u8, n as u8, 1),
                n % 10 == 0,
            );
            assert!(!detector.institution_burst("BIG", at).bursting, "day {day}");
        }
    }
    assert_eq!(detector.campaigns().count(), 0);
    assert!(
        detector.institution_burst("BIG", START + 9 * DAY).score > 4.0,
        "scored, not bursting"
    );
}

#[test]
fn a_surge_without_risky_changes_does_not_burst() {
    let mut detector = quiet_platform();
    let at = START + 40 * DAY;
    for n in 0..8 {
        set_destination(
            &mut detector,
            &format!("s-{n}"),
            at + n,
            &destination("NEWBANK", &format!("tk_{n}"), None),
            ip(10, 0, n as u8, 1),
            n == 0,
        );
    }
    let burst = detector.institution_burst("NEWBANK", at);
    assert_eq!((burst.observed, burst.risky), (8, 1));
    assert!(burst.score > 6.0 && !burst.bursting);
}

#[test]
fn institution_days_chart_the_window_against_the_baseline() {
    let mut detector = quiet_platform();
    let at = START + 40 * DAY;
    for n in 0..5 {
        set_destination(
            &mut detector,
            &format!("s-{n}"),
            at + n,
            &destination("HOME", &format!("tk_s_{n}"), Some(InstitutionType::Bank)),
            ip(10, 2, n as u8, 1),
            n < 2,
        );
    }
    let chart = detector.institution_days("HOME").unwrap();
    let window = i64::from(detector.config().window_days);
    assert_eq!(chart.days.len() as i64, window);
    let today = at.div_euclid(DAY);
    assert_eq!(chart.days.last(), Some(&(today, 5, 2)));
    // The days before: one quiet change each, none risky.
    assert!(
        chart.days[..chart.days.len() - 1]
            .iter()
            .all(|d| d.1 == 1 && d.2 == 0)
    );
    assert!(chart.days.windows(2).all(|w| w[1].0 == w[0].0 + 1));
    assert!(
        chart.baseline_daily > 0.5 && chart.baseline_daily < 1.5,
        "{}",
        chart.baseline_daily
    );
    assert_eq!(chart.burst, detector.institution_burst("HOME", at));
    assert!(detector.institution_days("NOWHERE").is_none());
}

/// A platform with 40 days of one change a day at one bank, so the
/// detector is warm.
fn quiet_platform() -> CampaignDetector {
    let mut detector = CampaignDetector::default();
    for day in 0..40 {
        set_destination(
            &mut detector,
            &format!("h-{day}"),
            START + day * DAY,
            &destination("HOME", &format!("tk_h_{day}"), Some(InstitutionType::Bank)),
            ip(10, 1, day as u8, 1),
            false,
        );
    }
    detector
}

#[test]
fn a_type_burst_is_reported_but_links_nobody() {
    let mut detector = quiet_platform();
    let at = START + 40 * DAY;
    for n in 0..12u8 {
        let d = destination(
            &format!("EM{n:02}"),
            &format!("tk_em_{n}"),
            Some(InstitutionType::EMoney),
        );
        set_destination(
            &mut detector,
            &format!("v-{n}"),
            at + i64::from(n) * 600,
            &d,
            ip(10, 2, n, 1),
            true,
        );
    }
    assert!(
        detector
            .institution_type_burst(InstitutionType::EMoney, at)
            .bursting
    );
    assert!(
        !detector
            .institution_type_burst(InstitutionType::Bank, at)
            .bursting
    );
    assert!(!detector.institution_burst("EM00", at).bursting);
    assert_eq!(detector.campaigns().count(), 0);
}

#[test]
fn unknown_institutions_do_not_burst() {
    let detector = CampaignDetector::default();
    let burst = detector.institution_burst("NOWHERE", START);
    assert_eq!(
        (burst.observed, burst.bursting, burst.score),
        (0, false, 0.0)
    );
    assert!(
        !detector
            .institution_type_burst(InstitutionType::Prepaid, START)
            .bursting
    );
}

#[test]
fn out_of_order_and_extreme_times_do_not_panic() {
    let mut detector = quiet_platform();
    let d = destination("HOME", "tk_x", Some(InstitutionType::Bank));
    let late = START + 40 * DAY;
    set_destination(&mut detector, "a", late, &d, ip(192, 0, 2, 1), true);
    let before = detector.institution_burst("HOME", late).observed;
    // Three days back: still in the window, counted in its day.
    set_destination(
        &mut detector,
        "b",
        late - 3 * DAY,
        &d,
        ip(192, 0, 2, 2),
        true,
    );
    assert_eq!(
        detector.institution_burst("HOME", late).observed,
        before + 1
    );
    // A month back: its day has closed, ignored by the counts.
    set_destination(
        &mut detector,
        "c",
        late - 30 * DAY,
        &d,
        ip(192, 0, 2, 3),
        true,
    );
    assert_eq!(
        detector.institution_burst("HOME", late).observed,
        before + 1
    );
    assert_eq!(
        detector.institution_burst("HOME", late - 10 * DAY).observed,
        before + 1,
        "a query for the past reads the newest window"
    );
    assert_eq!(
        detector.campaign_of_account("c").unwrap().id,
        "cmp_1",
        "links still happen"
    );
    for at in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX, 0] {
        set_destination(&mut detector, "edge", at, &d, ip(192, 0, 2, 9), true);
        password_change(&mut detector, "edge", at, ip(192, 0, 2, 9));
        detector.record_money("edge", "p", at, u64::MAX, gbp(), false);
        detector.record_money("edge", "p", at, u64::MAX, gbp(), true);
        detector.label("edge", "l", at, LabelKind::Chargeback);
        let _ = detector.institution_burst("HOME", at);
        let _ = detector.institution_type_burst(InstitutionType::Bank, at);
    }
    assert!(detector.linked_accounts("edge") > 0);
}

#[test]
fn the_graph_stays_bounded_and_keeps_campaigns() {
    let config = CampaignConfig {
        max_nodes: 200,
        forget_after_days: 2,
        ..CampaignConfig::default()
    };
    let mut detector = CampaignDetector::new(config);
    two_victims(&mut detector, "tk_mule", "v-1", "v-2", START);
    // A year of lone risky changes, each with its own keys.
    for n in 0..2_000i64 {
        password_change(
            &mut detector,
            &format!("lone-{n}"),
            START + n * 4 * HOUR,
            ip(10, (n >> 8) as u8, n as u8, 1),
        );
        assert!(detector.stats().nodes <= 200);
    }
    let stats = detector.stats();
    assert!(
        stats.accounts > 10,
        "recent accounts are still tracked: {stats:?}"
    );
    assert_eq!(detector.campaign_of_account("v-1").unwrap().id, "cmp_1");
    assert_eq!(detector.linked_accounts("v-2"), 1);
    // New links still form after compactions.
    let later = START + 2_000 * 4 * HOUR;
    two_victims(&mut detector, "tk_mule_2", "w-1", "w-2", later);
    assert_eq!(detector.campaign_of_account("w-2").unwrap().id, "cmp_2");
    // And the known mule still pulls new victims in.
    set_destination(
        &mut detector,
        "v-3",
        later + DAY,
        &mule("tk_mule"),
        ip(192, 0, 2, 3),
        true,
    );
    assert_eq!(detector.campaign_of_account("v-3").unwrap().id, "cmp_1");
}

#[test]
fn long_timelines_keep_their_head_and_tail() {
    let mut detector = CampaignDetector::default();
    two_victims(&mut detector, "tk_mule", "v-1", "v-2", START);
    for n in 0..500 {
        detector.record_money("v-1", &format!("p-{n}"), START + DAY + n, 10, gbp(), false);
    }
    let campaign = detector.campaign("cmp_1").unwrap();
    // The tail sheds its oldest quarter at once when full.
    let kept = campaign.timeline.len();
    assert!(
        (TIMELINE_HEAD + TIMELINE_TAIL * 3 / 4..=TIMELINE_HEAD + TIMELINE_TAIL).contains(&kept),
        "{kept}"
    );
    assert_eq!(campaign.timeline_dropped, 503 - kept as u64);
    assert_eq!(campaign.timeline[0].kind, TimelineKind::SensitiveChange);
    assert_eq!(campaign.timeline.last().unwrap().event_id, "p-499");
    assert_eq!(campaign.money[&gbp()].paid, 5_000);
}

// ----- snapshots and wire format -----

#[test]
fn snapshot_round_trip_gives_equal_state_and_equal_bytes() {
    let mut detector = quiet_platform();
    two_victims(&mut detector, "tk_mule", "v-1", "v-2", START + 40 * DAY);
    detector.record_money("v-1", "p-1", START + 40 * DAY + HOUR, 1_000, gbp(), true);
    detector.label("v-2", "l-1", START + 41 * DAY, LabelKind::Fraud);
    // At another institution: four risky changes toward one institution
    // in a day would be a burst here and link all four.
    let other = destination("400000", "tk_mule_b", Some(InstitutionType::Bank));
    set_destination(
        &mut detector,
        "w-1",
        START + 41 * DAY,
        &other,
        ip(192, 0, 2, 1),
        true,
    );
    set_destination(
        &mut detector,
        "w-2",
        START + 41 * DAY,
        &other,
        ip(192, 0, 2, 2),
        true,
    );
    assert_eq!(detector.campaign("cmp_2").unwrap().id, "cmp_2");
    detector.observe_change(&SensitiveChange {
        account_id: "w-1",
        event_id: "merge",
        at: START + 42 * DAY,
        event_type: EventType::EmailChange,
        destination: None,
        device_id: Some("device-v-1"),
        ip: None,
        risky: true,
        earlier_setters: &[],
    });
    let snapshot = detector.to_snapshot();
    let bytes = serde_json::to_vec(&snapshot).unwrap();
    let parsed: CampaignSnapshot = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(parsed, snapshot);
    let mut restored =
        CampaignDetector::try_from_snapshot(CampaignConfig::default(), parsed).unwrap();
    assert_eq!(restored.to_snapshot(), snapshot);
    assert_eq!(serde_json::to_vec(&restored.to_snapshot()).unwrap(), bytes);
    assert_eq!(restored.campaign("cmp_2").unwrap().id, "cmp_1");
    assert_eq!(
        restored.linked_accounts("v-1"),
        detector.linked_accounts("v-1")
    );

    // Both go on identically.
    let continue_with = |d: &mut CampaignDetector| {
        let mut all = Vec::new();
        for n in 0..20u8 {
            let at = START + 43 * DAY + i64::from(n) * HOUR;
            all.extend(set_destination(
                d,
                &format!("x-{n}"),
                at,
                &mule(&format!("tk_x_{}", n / 2)),
                ip(192, 0, 2, n),
                n % 3 != 0,
            ));
        }
        all
    };
    let original_notices = continue_with(&mut detector);
    let restored_notices = continue_with(&mut restored);
    assert_eq!(original_notices, restored_notices);
    assert!(!original_notices.is_empty());
    assert_eq!(
        serde_json::to_vec(&detector.to_snapshot()).unwrap(),
        serde_json::to_vec(&restored.to_snapshot()).unwrap()
    );
}

#[test]
fn a_damaged_snapshot_is_refused_not_a_panic() {
    let mut detector = CampaignDetector::default();
    two_victims(&mut detector, "tk_mule", "v-1", "v-2", START);
    let mut json = serde_json::to_value(detector.to_snapshot()).unwrap();
    json["nodes"][0][0] = serde_json::json!(999);
    let damaged: CampaignSnapshot = serde_json::from_value(json).unwrap();
    assert!(matches!(
        CampaignDetector::try_from_snapshot(CampaignConfig::default(), damaged.clone()),
        Err(CampaignError::Snapshot(_))
    ));
    let empty = CampaignDetector::from_snapshot(CampaignConfig::default(), damaged);
    assert_eq!(empty.stats(), CampaignStats::default());

    let mut cycle = serde_json::to_value(detector.to_snapshot()).unwrap();
    cycle["nodes"][0][0] = serde_json::json!(1);
    cycle["nodes"][1][0] = serde_json::json!(0);
    let cycle: CampaignSnapshot = serde_json::from_value(cycle).unwrap();
    assert!(CampaignDetector::try_from_snapshot(CampaignConfig::default(), cycle).is_err());

    let mut version = serde_json::to_value(detector.to_snapshot()).unwrap();
    version["version"] = serde_json::json!(99);
    let version: CampaignSnapshot = serde_json::from_value(version).unwrap();
    assert!(CampaignDetector::try_from_snapshot(CampaignConfig::default(), version).is_err());
}

#[test]
fn campaigns_serialize_with_wire_names() {
    let mut detector = CampaignDetector::default();
    two_victims(&mut detector, "tk_mule", "v-1", "v-2", START);
    let json = serde_json::to_value(detector.campaign("cmp_1").unwrap()).unwrap();
    assert_eq!(json["id"], "cmp_1");
    assert_eq!(json["status"], "suspected");
    assert_eq!(json["detected_at"], "2023-11-15T01:00:00Z");
    assert_eq!(json["accounts"][0]["via"][0], "shared_destination");
    assert_eq!(json["links"]["shared_destination"], 1);
    assert_eq!(json["destinations"][0]["institution_type"], "e_money");
    assert_eq!(json["timeline"][2]["kind"], "detected");
    let notice =
        serde_json::to_value(&detector.label("v-1", "l", START, LabelKind::Fraud)[0]).unwrap();
    assert_eq!(notice["kind"], "confirmed");
    assert_eq!(notice["summary"]["accounts"], 2);
}

#[test]
fn config_reads_partial_json_and_clamps() {
    let config: CampaignConfig = serde_json::from_str(r#"{"window_days": 5}"#).unwrap();
    assert_eq!(config.window_days, 5);
    assert_eq!(
        config.min_burst_count,
        CampaignConfig::default().min_burst_count
    );
    assert!(serde_json::from_str::<CampaignConfig>(r#"{"windows": 5}"#).is_err());
    let wild = CampaignConfig {
        min_accounts: 0,
        window_days: 0,
        burst_p_value: f64::NAN,
        prior_daily_rate: -1.0,
        ..CampaignConfig::default()
    };
    let mut detector = CampaignDetector::new(wild);
    assert_eq!(detector.config().min_accounts, 2);
    assert_eq!(detector.config().window_days, 1);
    two_victims(&mut detector, "tk_mule", "v-1", "v-2", START);
    assert_eq!(detector.campaigns().count(), 1);
}

// ----- through the engine -----

mod through_the_engine {
    //! Campaign detection through the engine and the default rules: the 2018
    //! pattern (a victim every day or two, each moved to a mule account of its
    //! own at one small e-money issuer) among honest sellers who change banks
    //! now and then.

    use std::sync::Arc;

    use serde_json::{Value, json};

    use super::{CampaignStatus, DAY};
    use crate::decision::EffectKind;
    use crate::tests::{at, event};
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

    /// A market of the default rules with sellers who each log in from
    /// their own home for a month and bank in their own name.
    fn sellers(homes: &[(&str, &str, &str)]) -> Market {
        let mut m = Market {
            engine: Engine::new(Arc::new(crate::rules::default_rule_set())),
            n: 0,
        };
        for (account, ip, name) in homes {
            for day in 0..30 {
                m.send(
                    account,
                    day * DAY,
                    "login",
                    json!({"status": "success", "session_id": format!("{account}-{day}"),
                           "ip": ip, "device_id": format!("{account}-laptop")}),
                );
            }
            m.send(
                account,
                DAY + 60,
                "payout_destination_change",
                json!({"session_id": format!("{account}-1"),
                       "destination": {"institution_id": "20-00-00",
                                       "account_number": format!("5555{}", m.n),
                                       "holder_name": name}}),
            );
            m.send(
                account,
                DAY + 120,
                "sale",
                json!({"amount": 500_000, "currency": "GBP"}),
            );
        }
        m
    }

    /// `account` logs in at `t` in session `session`, moves its payouts to
    /// `destination`, and passes a verification in that session (a
    /// household member on the road; or an attacker who controls the
    /// second factor).
    fn change_and_verify(
        m: &mut Market,
        account: &str,
        t: i64,
        session: &str,
        ip: &str,
        device: &str,
        destination: Value,
    ) -> Decision {
        m.send(
            account,
            t,
            "login",
            json!({"status": "success", "session_id": session, "ip": ip, "device_id": device}),
        );
        let change = m.send(
            account,
            t + 60,
            "payout_destination_change",
            json!({"session_id": session, "ip": ip, "device_id": device, "destination": destination}),
        );
        m.send(
            account,
            t + 120,
            "verification",
            json!({"session_id": session, "status": "passed"}),
        );
        change
    }

    fn ring_mule(name: &str) -> Value {
        json!({"institution_id": "60-83-71", "institution_type": "e_money",
               "account_number": "99990001", "holder_name": name})
    }

    fn codes(d: &Decision) -> Vec<&str> {
        d.reasons.iter().map(|r| r.code.as_str()).collect()
    }

    fn detected(d: &Decision) -> bool {
        d.effects
            .iter()
            .any(|e| e.kind == EffectKind::CampaignDetected)
    }

    #[test]
    fn a_ring_reusing_one_mule_weeks_apart_is_a_campaign_by_its_third_victim() {
        let mut m = sellers(&[
            ("victim-1", "81.2.69.1", "Ann Victim"),
            ("victim-2", "90.1.2.3", "Bob Victim"),
            ("victim-3", "77.4.5.6", "Cid Victim"),
        ]);
        // The attacker on each victim's own device, from an exit in the
        // victim's network, naming the mule as the victim: nothing about
        // the session is new. Three weeks between victims.
        let mut decisions = Vec::new();
        for (n, (victim, ip, name)) in [
            ("victim-1", "81.2.69.77", "Ann Victim"),
            ("victim-2", "90.1.2.77", "Bob Victim"),
            ("victim-3", "77.4.5.77", "Cid Victim"),
        ]
        .into_iter()
        .enumerate()
        {
            let t = (31 + 21 * n as i64) * DAY;
            decisions.push(m.send(
                victim,
                t,
                "payout_destination_change",
                json!({"session_id": format!("{victim}-1"), "ip": ip,
                       "device_id": format!("{victim}-laptop"), "destination": ring_mule(name)}),
            ));
        }
        // Every bank change that replaces the account's own asks the owner
        // to confirm it; nothing else about the first one stands out.
        assert_eq!(
            codes(&decisions[0]),
            [
                "destination_change_needs_owner_confirmation",
                "destination_at_e_money_or_prepaid_issuer"
            ],
        );
        assert!(
            decisions[1].action >= Action::Review,
            "{:?}",
            decisions[1].reasons
        );
        assert!(!detected(&decisions[1]));
        assert!(detected(&decisions[2]), "{:?}", decisions[2].effects);
        let campaign = m
            .engine
            .campaigns()
            .campaign_of_account("victim-3")
            .expect("the third victim is in a campaign");
        let mut members = super::member_ids(campaign);
        members.sort_unstable();
        // The first victim, unflagged when it happened, is linked back in:
        // by the third use the destination's earlier setters look as
        // mule-like as the later ones.
        assert_eq!(members, ["victim-1", "victim-2", "victim-3"]);
    }

    #[test]
    fn a_household_is_not_linked_and_a_ring_is_not_linked_to_it() {
        let mut m = sellers(&[
            ("shop-a", "81.2.69.10", "Ann Smith"),
            ("shop-b", "81.2.69.11", "Ben Smith"),
            ("victim-1", "90.1.2.3", "Bob Victim"),
        ]);
        let family = json!({"institution_id": "40-11-22", "account_number": "77001100",
                            "holder_name": "Smith Family Trading"});
        for (account, t) in [("shop-a", 40 * DAY), ("shop-b", 100 * DAY)] {
            let d = m.send(
                account,
                t,
                "payout_destination_change",
                json!({"session_id": format!("{account}-29"), "ip": "81.2.69.10",
                       "device_id": format!("{account}-laptop"), "destination": family.clone()}),
            );
            // The owner is asked to confirm the new account, and nothing else.
            assert_eq!(codes(&d), ["destination_change_needs_owner_confirmation"]);
        }
        assert_eq!(m.engine.campaigns().campaigns().count(), 0);
    }

    #[test]
    fn campaign_holds_expire_into_a_decision_by_the_evidence() {
        let mut m = sellers(&[
            ("shop-a", "81.2.69.10", "Ann Smith"),
            ("shop-b", "81.2.69.11", "Ben Smith"),
            ("victim-1", "90.1.2.3", "Bob Victim"),
            ("victim-2", "77.4.5.6", "Cid Victim"),
            ("bystander", "31.5.5.5", "Dee Other"),
        ]);
        // A household on holiday: both shops move to the family account from
        // the hotel, in risky sessions they then verify. The risky changes
        // link the two shops into a campaign over the shared account.
        let family = json!({"institution_id": "40-11-22", "account_number": "77001100",
                            "holder_name": "Smith Family Trading"});
        change_and_verify(
            &mut m,
            "shop-a",
            40 * DAY,
            "hotel-a",
            "185.1.1.1",
            "phone-a",
            family.clone(),
        );
        let b = change_and_verify(
            &mut m,
            "shop-b",
            40 * DAY + 600,
            "hotel-b",
            "185.1.1.2",
            "phone-b",
            family,
        );
        assert!(detected(&b), "{:?}", b.effects);
        // A ring's two victims on one mule, the second one verified by an
        // attacker who controls the second factor.
        change_and_verify(
            &mut m,
            "victim-1",
            41 * DAY,
            "atk-1",
            "203.0.113.7",
            "x1",
            ring_mule("Bob Victim"),
        );
        let v2 = change_and_verify(
            &mut m,
            "victim-2",
            41 * DAY + 600,
            "atk-2",
            "198.51.100.7",
            "x2",
            ring_mule("Cid Victim"),
        );
        assert!(detected(&v2), "{:?}", v2.effects);
        let t = 42 * DAY;
        for (account, session) in [("shop-b", "hotel-b"), ("victim-2", "atk-2")] {
            let payout = m.send(
                account,
                t,
                "payout",
                json!({"session_id": session, "payout_id": format!("po-{account}"),
                       "amount": 40_000, "currency": "GBP"}),
            );
            assert_eq!(payout.action, Action::Hold, "{:?}", payout.reasons);
            assert!(
                payout
                    .reasons
                    .iter()
                    .any(|r| r.code == "payout_to_destination_in_campaign"),
                "{:?}",
                payout.reasons
            );
        }
        // The household's owner confirms out of band (the first payout to
        // a new destination waits for that); the campaign still keeps it.
        m.send(
            "shop-b",
            t + 3_600,
            "verification",
            json!({"status": "passed", "channel": "identity_document"}),
        );
        // Past the cool-off, other sellers' events carry the clock on (two
        // of them: one account alone moves it by an hour at most).
        for day in 43..52 {
            for (account, ip) in [("bystander", "31.5.5.5"), ("shop-a", "81.2.69.10")] {
                m.send(
                    account,
                    day * DAY,
                    "login",
                    json!({"status": "success", "session_id": format!("{account}-{day}"),
                           "ip": ip, "device_id": format!("{account}-laptop")}),
                );
            }
        }
        let household = m
            .engine
            .holds()
            .get("shop-b", "po-shop-b")
            .expect("tracked");
        assert_eq!(
            household.status,
            crate::holds::HoldStatus::Released,
            "{household:?}"
        );
        // Its campaign was all sharing: dismissed, so the next payout to the
        // family account is not held for it.
        let household_campaign = m
            .engine
            .campaigns()
            .campaign_of_account("shop-b")
            .expect("still on record");
        assert_eq!(household_campaign.status, CampaignStatus::Dismissed);
        let next = m.send(
            "shop-a",
            52 * DAY,
            "payout",
            json!({"session_id": "shop-a-51", "payout_id": "po-next", "amount": 40_000, "currency": "GBP"}),
        );
        assert!(
            !next
                .reasons
                .iter()
                .any(|r| r.code == "payout_to_destination_in_campaign"),
            "{:?}",
            next.reasons
        );
        let ring_campaign = m
            .engine
            .campaigns()
            .campaign_of_account("victim-2")
            .expect("the ring's campaign");
        assert_eq!(ring_campaign.status, CampaignStatus::Suspected);
        let ring = m
            .engine
            .holds()
            .get("victim-2", "po-victim-2")
            .expect("tracked");
        assert_eq!(ring.status, crate::holds::HoldStatus::Held);
        assert!(ring.awaiting_analyst);
        let reason = ring.awaiting_reason.as_deref().unwrap_or_default();
        assert!(reason.contains("mule reuse"), "{reason}");
    }

    /// Through the engine: three victims' payouts to one mule are held; a
    /// release counts as paid, and a `legit` label on one victim takes out
    /// its own money only (its hold, released by the label, with it).
    #[test]
    fn campaign_money_follows_each_holds_fate_and_a_cleared_victim_takes_only_its_own() {
        let mut m = sellers(&[
            ("victim-1", "81.2.69.1", "Ann Victim"),
            ("victim-2", "90.1.2.3", "Bob Victim"),
            ("victim-3", "77.4.5.6", "Cid Victim"),
        ]);
        for (n, (victim, amount)) in [
            ("victim-1", 100_000),
            ("victim-2", 200_000),
            ("victim-3", 300_000),
        ]
        .into_iter()
        .enumerate()
        {
            let t = 31 * DAY + n as i64 * 3_600;
            let session = format!("{victim}-attacker");
            m.send(
                victim,
                t,
                "login",
                json!({"status": "success", "session_id": session, "ip": "185.220.101.4", "device_id": "box"}),
            );
            m.send(
                victim,
                t + 60,
                "payout_destination_change",
                json!({"session_id": session, "ip": "185.220.101.4", "device_id": "box",
                       "destination": ring_mule("Mule Account")}),
            );
            let payout = m.send(
                victim,
                t + 600,
                "payout",
                json!({"payout_id": format!("po-{victim}"), "amount": amount, "currency": "GBP"}),
            );
            assert_eq!(
                payout.action,
                Action::Hold,
                "{victim}: {:?}",
                codes(&payout)
            );
        }
        let gbp = crate::event::Currency::parse("GBP").expect("a currency");
        let money = |m: &Market| {
            let campaign = m
                .engine
                .campaigns()
                .campaign_of_account("victim-1")
                .expect("the three are a campaign");
            assert_eq!(campaign.account_count(), 3);
            campaign.money[&gbp]
        };
        assert_eq!(
            money(&m),
            super::CampaignMoney {
                held: 600_000,
                paid: 0
            }
        );

        let released = m.send(
            "victim-2",
            32 * DAY,
            "analyst_action",
            json!({"action": "release_payout", "target_id": "po-victim-2",
                   "analyst": "ana", "reason": "the seller confirmed it"}),
        );
        assert!(
            released
                .effects
                .iter()
                .any(|e| e.kind == EffectKind::HoldReleased),
            "{:?}",
            released.effects
        );
        assert_eq!(
            money(&m),
            super::CampaignMoney {
                held: 400_000,
                paid: 200_000
            }
        );

        m.send("victim-1", 33 * DAY, "label", json!({"label": "legit"}));
        assert_eq!(
            money(&m),
            super::CampaignMoney {
                held: 300_000,
                paid: 200_000
            }
        );
    }
}
