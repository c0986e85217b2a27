//! The shared vocabulary: what names an app and its state, its policy, its formation and
//! upstream, durations, name patterns, instants, how a request arrived, and how an error
//! reads. Every layer speaks it; it imports
//! nothing else of the crate and decides nothing.

mod app;
mod duration;
mod error;
mod patterns;
mod policy;
mod time;
mod transport;
mod upstream;

pub use app::{AppKey, DEFAULT_SPACE, State};
pub use duration::{format_duration, parse_duration};
pub use error::error_chain;
pub use patterns::{Pattern, Plain, regex_problem};
pub use policy::{Activity, Policy, PolicyOverride, Strategy};
pub use time::rfc3339;
pub use transport::{Https, Peer, root_store};
pub use upstream::{Formation, Reconciled, Upstream};
