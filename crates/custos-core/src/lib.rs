//! # custos-core
//!
//! The engine core of Custos: the event model, per-account state and the
//! decision path. It does no I/O at all: no files, no sockets, no clocks (all
//! time comes from the events). Storage, HTTP and the command line are
//! adapters in other crates.
//!
//! The flow for one event:
//!
//! ```text
//! JSON ──EventParser──▶ Event ──Engine::decide──▶ Decision
//!                          │                         │
//!                          └──────Engine::apply◀─────┘  (state changes)
//! ```
//!
//! [`Engine::apply`] depends only on the previous state, the event and the
//! decision stored with it, so replaying a stored log rebuilds state exactly.
//!
//! # Layers
//!
//! The modules form layers, and a module uses only modules on layers below
//! its own (or earlier in its own line): the module graph has no cycle.
//!
//! 1. Leaves, which use nothing else in the crate: `types` (`Action`,
//!    `Timestamp`, `NetworkPrefix`), `enrich`, `token`, `window`, `clock`
//!    (the time holds expire against).
//! 2. The event model: `event`, then `parse`.
//! 3. Behaviour: `profile`, then `population`, `login_risk`, `destinations`,
//!    `identifiers` (device and session ids across accounts), `sightings`
//!    (where an account's sessions and devices were seen, and on what).
//! 4. `state`, per-account state. It reads a decision's action and login
//!    risk, not the decision, which sits above it.
//! 5. `features`, then `decision` (a decision carries its features).
//! 6. What follows from decisions: `rules`, `holds`, `campaigns`.
//! 7. `engine` and `effects`, the two halves of [`Engine`], on top.

mod account_table;
pub mod campaigns;
pub mod cases;
pub mod clock;
pub mod decision;
pub mod destinations;
pub mod effects;
pub mod engine;
pub mod enrich;
pub mod event;
pub mod features;
pub mod holds;
pub mod identifiers;
pub mod login_risk;
pub mod parse;
pub mod pii;
pub mod population;
pub mod profile;
pub mod rules;
pub mod search;
mod sharded_map;
pub mod sightings;
pub mod state;
pub mod token;
pub mod types;
pub mod vec_map;
pub mod window;

pub use decision::{Decision, Reason};
pub use engine::Engine;
pub use enrich::{ClientInfo, DeviceType, Enricher, Enrichment, NetworkInfo, NoEnrichment};
pub use event::{Destination, Details, Event, EventType};
pub use parse::{EventError, EventErrorKind, EventParser};
pub use pii::PiiCipher;
pub use rules::{RuleSet, RuleSetSource};
pub use state::AccountState;
pub use token::DestinationTokenizer;
pub use types::Action;

#[cfg(test)]
mod tests;
