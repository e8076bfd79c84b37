//! The marketplace's vocabulary, shared by the honest side
//! ([`crate::market`]: lives, money, rendering) and the attacks
//! ([`crate::scenarios`]): what to simulate, the institutions and
//! destinations, events before rendering, and the seller lives the
//! scenarios pick their victims from. Both import it; neither imports the
//! other's types, so the two modules do not depend on each other in a
//! circle (the market only calls `scenarios::plan`).

use serde_json::{Value, json};

use crate::clients::Client;
use crate::logins::{Action, DAY, Draft, History, START, Seller};
use crate::rng::Rng;
use crate::truth::Actor;
use crate::world::{Addr, COUNTRIES};

/// Day (from 2018-01-01) the simulated window opens: 2018-04-17.
pub const WINDOW_START_DAY: u32 = 106;
pub const MAX_SELLERS: usize = 1_000_000;
/// The longest window: ten years.
pub const MAX_DAYS: u32 = 3_650;

/// What to simulate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarketConfig {
    pub sellers: usize,
    pub days: u32,
    pub seed: u64,
    pub scenarios: Vec<Scenario>,
    /// How honest sellers behave; [`HonestModel::Baseline`] keeps the
    /// histories of earlier versions byte for byte.
    pub honest: HonestModel,
    /// Victims of each scenario that picks its victims by count, instead
    /// of its count per 10,000 sellers (`--victims`, for sizing runs: a
    /// campaign of a thousand sellers). `None` keeps earlier histories
    /// byte for byte.
    pub victims: Option<usize>,
}

/// The honest sellers' behaviour (`--honest`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum HonestModel {
    /// The marketplace of `docs/scenarios.md`, "The honest marketplace".
    #[default]
    Baseline,
    /// The baseline plus the noise that looks like an attack: carrier
    /// address pools hopping within a session, accountants abroad, bank
    /// accounts shared by a family's sellers, e-money after a password
    /// reset, new phones and second factors, instant payouts, seasonal
    /// peaks ([`crate::market`] states the rates).
    Noisy,
}

impl HonestModel {
    pub fn name(self) -> &'static str {
        match self {
            HonestModel::Baseline => "baseline",
            HonestModel::Noisy => "noisy",
        }
    }

    pub fn from_name(name: &str) -> Option<HonestModel> {
        [HonestModel::Baseline, HonestModel::Noisy]
            .into_iter()
            .find(|m| m.name() == name)
    }
}

impl MarketConfig {
    pub fn window_start(&self) -> i64 {
        START + i64::from(WINDOW_START_DAY) * DAY
    }

    pub fn window_end(&self) -> i64 {
        self.window_start() + i64::from(self.days) * DAY
    }
}

/// A named attack scenario; [`crate::scenarios`] plans each and says what
/// it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scenario {
    SellerPhishing2018,
    MulesUnique,
    MulesReused,
    CredentialStuffing,
    TargetedAttacker,
    SlowAttacker,
    SessionTheft,
    FactorTakeover,
    ProfilePoisoning,
    MoneyEvasion,
    MuleRing,
}

impl Scenario {
    /// The attacks the default rules were written against (the 2018
    /// campaign and its variants). `--scenario all` is these and
    /// [`Scenario::ADAPTIVE`].
    pub const ALL: [Scenario; 6] = [
        Scenario::SellerPhishing2018,
        Scenario::MulesUnique,
        Scenario::MulesReused,
        Scenario::CredentialStuffing,
        Scenario::TargetedAttacker,
        Scenario::SlowAttacker,
    ];

    /// Attackers who read the published rules and avoid them, one per
    /// class (`--scenario adaptive`).
    pub const ADAPTIVE: [Scenario; 5] = [
        Scenario::SessionTheft,
        Scenario::FactorTakeover,
        Scenario::ProfilePoisoning,
        Scenario::MoneyEvasion,
        Scenario::MuleRing,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::SellerPhishing2018 => "seller-phishing-2018",
            Scenario::MulesUnique => "mules-unique",
            Scenario::MulesReused => "mules-reused",
            Scenario::CredentialStuffing => "credential-stuffing",
            Scenario::TargetedAttacker => "targeted-attacker",
            Scenario::SlowAttacker => "slow-attacker",
            Scenario::SessionTheft => "session-theft",
            Scenario::FactorTakeover => "factor-takeover",
            Scenario::ProfilePoisoning => "profile-poisoning",
            Scenario::MoneyEvasion => "money-evasion",
            Scenario::MuleRing => "mule-ring",
        }
    }

    /// The ground-truth campaign's name in `truth.campaign`.
    pub fn campaign(self) -> &'static str {
        match self {
            Scenario::SellerPhishing2018 => "phishing-2018",
            Scenario::MulesUnique => "phishing-unique-mules",
            Scenario::MulesReused => "phishing-reused-mules",
            Scenario::CredentialStuffing => "credential-stuffing",
            Scenario::TargetedAttacker => "targeted",
            Scenario::SlowAttacker => "slow",
            // One crew per class: the campaign is the class.
            adaptive => adaptive.name(),
        }
    }

    pub fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL
            .into_iter()
            .chain(Scenario::ADAPTIVE)
            .find(|s| s.name() == name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InstitutionKind {
    Bank,
    EMoney,
}

#[derive(Debug, Clone)]
pub(crate) struct Institution {
    pub id: String,
    pub kind: InstitutionKind,
    pub country: &'static str,
}

/// Every institution of the world, and who banks where.
pub(crate) struct Institutions {
    pub all: Vec<Institution>,
    /// Per country of [`COUNTRIES`]: its five banks, largest first.
    pub banks: Vec<Vec<usize>>,
    /// Per country: its small e-money issuer.
    pub local_e_money: Vec<usize>,
    /// The popular pan-European e-money issuer.
    pub pan_e_money: usize,
    /// The very small GB e-money issuer, and GB's largest bank: where the
    /// 2018 mules were.
    pub mule_e_money: usize,
    pub mule_bank: usize,
}

const BANK_SHARES: [f64; 5] = [30.0, 22.0, 16.0, 10.0, 6.0];

impl Institutions {
    pub(crate) fn build() -> Institutions {
        let mut all = Vec::new();
        let mut banks: Vec<Vec<usize>> = Vec::new();
        let mut local_e_money = Vec::new();
        let push = |all: &mut Vec<Institution>, id: String, kind, country| {
            all.push(Institution { id, kind, country });
            all.len() - 1
        };
        for country in COUNTRIES {
            let code = country.code;
            banks.push(
                (1..=BANK_SHARES.len())
                    .map(|n| {
                        push(
                            &mut all,
                            format!("BANK{code}{n:02}"),
                            InstitutionKind::Bank,
                            code,
                        )
                    })
                    .collect(),
            );
            local_e_money.push(push(
                &mut all,
                format!("EMON{code}01"),
                InstitutionKind::EMoney,
                code,
            ));
        }
        let pan_e_money = push(&mut all, "EMONLU01".into(), InstitutionKind::EMoney, "LU");
        let mule_e_money = push(&mut all, "EMONGB02".into(), InstitutionKind::EMoney, "GB");
        let gb = COUNTRIES
            .iter()
            .position(|c| c.code == "GB")
            .expect("the world has GB");
        let mule_bank = banks[gb][0];
        Institutions {
            all,
            banks,
            local_e_money,
            pan_e_money,
            mule_e_money,
            mule_bank,
        }
    }

    /// A bank of `country`, by market share.
    pub(crate) fn bank_in(&self, rng: &mut Rng, country: usize) -> usize {
        let index = rng.weighted(&BANK_SHARES).unwrap_or(0);
        self.banks[country][index]
    }
}

/// A payout destination: an institution and a made-up account number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dest {
    pub institution: usize,
    pub number: u64,
}

impl Dest {
    pub(crate) fn new(rng: &mut Rng, institution: usize) -> Dest {
        Dest {
            institution,
            number: 1_000_000_000 + rng.below(8_999_999_999),
        }
    }

    pub(crate) fn render(self, institutions: &Institutions) -> Value {
        let institution = &institutions.all[self.institution];
        json!({
            "institution_id": institution.id,
            "institution_type": match institution.kind {
                InstitutionKind::Bank => "bank",
                InstitutionKind::EMoney => "e_money",
            },
            "country": institution.country,
            "account_number": self.number.to_string(),
        })
    }
}

/// Where an event was made from: a session's address, client and device.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ctx {
    pub session: Option<u64>,
    pub addr: Addr,
    pub client: Client,
    pub device: u64,
}

impl Ctx {
    pub(crate) fn of(draft: &Draft) -> Ctx {
        Ctx {
            session: draft.session,
            addr: draft.addr,
            client: draft.client,
            device: draft.device,
        }
    }
}

/// Verification channels (`docs/events.md`, `verification.channel`) an
/// attacker can answer, as a set: [`crate::truth::Truth::controls`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Channels(u8);

impl Channels {
    pub const NONE: Channels = Channels(0);
    pub const EMAIL: Channels = Channels(1);
    pub const SMS: Channels = Channels(2);
    pub const VOICE: Channels = Channels(4);
    pub const TOTP: Channels = Channels(8);
    pub const PUSH: Channels = Channels(16);
    pub const SECURITY_KEY: Channels = Channels(32);
    const NAMES: [(Channels, &'static str); 6] = [
        (Channels::EMAIL, "email"),
        (Channels::SMS, "sms"),
        (Channels::VOICE, "voice"),
        (Channels::TOTP, "totp"),
        (Channels::PUSH, "push"),
        (Channels::SECURITY_KEY, "security_key"),
    ];

    pub(crate) fn with(self, other: Channels) -> Channels {
        Channels(self.0 | other.0)
    }

    /// Wire names, in a fixed order.
    pub(crate) fn names(self) -> Vec<String> {
        Channels::NAMES
            .iter()
            .filter(|(c, _)| self.0 & c.0 != 0)
            .map(|(_, name)| (*name).to_string())
            .collect()
    }
}

/// The second factor an `mfa_change` moves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MfaMethod {
    Totp,
    Push,
    SecurityKey,
}

impl MfaMethod {
    pub(crate) fn name(self) -> &'static str {
        match self {
            MfaMethod::Totp => "totp",
            MfaMethod::Push => "push",
            MfaMethod::SecurityKey => "security_key",
        }
    }

    /// The channel whoever enrolled this method answers.
    pub(crate) fn channel(self) -> Channels {
        match self {
            MfaMethod::Totp => Channels::TOTP,
            MfaMethod::Push => Channels::PUSH,
            MfaMethod::SecurityKey => Channels::SECURITY_KEY,
        }
    }
}

/// What an event does.
#[derive(Debug, Clone, Copy)]
pub(crate) enum What {
    /// A login, a reset request or a reset, as [`crate::logins`] makes them.
    Login(Action),
    PasswordChange,
    EmailChange,
    PhoneChange,
    MfaMethodChange(MfaMethod),
    DestinationChange {
        to: Dest,
        from: Option<Dest>,
    },
    LoanApplication {
        loan: u32,
        amount: u64,
    },
    LoanDisbursement {
        loan: u32,
        amount: u64,
    },
    Sale {
        amount: u64,
    },
    Payout {
        number: u32,
        amount: u64,
    },
    /// An instant payout asked for in a session, of a share (per mille) of
    /// the balance, naming its destination; the market turns it into an
    /// [`What::InstantPayout`] with the amount when it knows the balance.
    InstantPayoutRequest {
        to: Dest,
        share_per_mille: u16,
    },
    InstantPayout {
        to: Dest,
        amount: u64,
    },
    /// A loan applied for in a session, sized like the owner's own would
    /// be (weeks of the account's sales): the market sizes it.
    LoanLikeOwners {
        loan: u32,
        weeks: u8,
    },
    CompromiseReported,
    VerificationPassed,
    /// Seller support gives the account back to its owner.
    AnalystClear,
}

/// An event before rendering.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ev {
    pub time: i64,
    pub account: u32,
    /// Order of generation within the account, to break ties.
    pub seq: u32,
    pub what: What,
    pub ctx: Option<Ctx>,
    pub actor: Actor,
    pub fraud: bool,
    /// Index into [`scenarios::Plan::campaigns`].
    pub campaign: Option<u8>,
    /// What the attacker can answer at this event (attacker events only).
    pub controls: Channels,
}

/// A seller's life before money: who they are and how they logged in.
pub(crate) struct SellerLife {
    pub seller: Seller,
    pub rng: Rng,
    pub created: i64,
    /// Logins, failures and resets, in time order (the creation session
    /// first).
    pub logins: Vec<Draft>,
    pub history: History,
    /// The creation session.
    pub first_session: Ctx,
}

/// An attacker's events on one account, and the stretches during which an
/// attacker's destination was the current one.
#[derive(Debug, Default)]
pub(crate) struct AttackOnAccount {
    pub events: Vec<Ev>,
    pub takeovers: Vec<Takeover>,
}

/// A victim's account under an attacker's destination.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Takeover {
    pub campaign: u8,
    /// When the attacker's destination was set.
    pub from: i64,
    /// When the platform labelled the compromise (the owner restores
    /// their destination after it); `None` if not within the window.
    pub reported: Option<i64>,
    /// False when the attacker never changed the current destination (he
    /// names his own in instant payouts): the platform's payouts still go
    /// to the owner.
    pub moves_destination: bool,
}
