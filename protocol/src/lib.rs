//! zongzhi-protocol: the shared language of every zongzhi node.
//!
//! Records and their codec, identities and signatures, division codes,
//! certificates, case events and the case state machine, and the city
//! policy (taxonomy, deadlines, working-day calendars).
//!
//! Architecture invariant: this crate does no I/O and never reads the clock;
//! time is always an argument. Only [`codec`] calls bincode.

pub mod case;
pub mod cert;
pub mod codec;
pub mod division;
pub mod format;
pub mod hlc;
pub mod id;
pub mod identity;
pub mod kpi;
pub mod policy;
pub mod receipt;
pub mod record;
pub mod report;
pub mod rules;
pub mod step;
pub mod supervision;
pub mod sync;
pub mod trust;
pub mod workflow;

pub use case::{Action, BlobHash, CaseEvent, Contact, Filing};
pub use division::{DivisionCode, Level};
pub use hlc::{Hlc, HlcClock};
pub use identity::{NodeId, NodeKey};
pub use policy::Policy;
pub use record::{Body, Header, Record, RecordId, RecordKind};
pub use workflow::{CaseState, Status};
