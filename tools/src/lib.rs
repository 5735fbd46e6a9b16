//! What the operator's CLI (`zongzhi`) and the lab binary (`zongzhi-lab`:
//! demo and benchmarks) share: the node's HTTP client, standard output
//! that survives a closed pipe, and tables. This crate never links the
//! node (RocksDB): `cargo tree -p zongzhi-tools` shows no `zongzhi-node`.

#[macro_use]
pub mod out;
pub mod client;
pub mod progress;
pub mod table;
