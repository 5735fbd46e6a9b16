//! Background workers of the node, each on its own task: the supervision
//! scan ([`supervisor`]) and the monthly report ([`reports`]), both driven by
//! the supervision worker's tick; and the storage watch ([`storage`]).

pub mod reports;
pub mod storage;
pub mod supervisor;
