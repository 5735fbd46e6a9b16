//! Port assignment for launchers (the demo, the benchmarks, the end-to-end
//! tests) that must write several nodes' listen addresses into their
//! configurations before starting them.
//!
//! A port the system handed out for `bind(0)` comes from the ephemeral range,
//! the same range every outgoing connection takes its local port from: between
//! choosing it and the node binding it, the launcher's own HTTP clients or an
//! already running node's QUIC endpoint can take it, and the node then fails
//! to start ("address in use"). Ports below the ephemeral range are never
//! handed out implicitly, so only an explicit bind can take them.

use std::net::{TcpListener, UdpSocket};
use std::sync::Mutex;

/// Lowest port considered.
const FLOOR: u16 = 10_000;

/// Ports already handed out by this process (a port stays free until its node
/// binds it, so without this two callers could get the same one).
static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());

/// The first port of the system's ephemeral range (Linux default 32768).
fn ephemeral_floor() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok().and_then(|s| s.split_whitespace().next().and_then(|p| p.parse().ok())).unwrap_or(32_768)
}

/// `n` distinct ports that are free for both TCP and UDP on 127.0.0.1, below
/// the ephemeral range where it leaves room (else any free port), not handed
/// out before by this process.
pub fn unused_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let top = ephemeral_floor();
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    let mut out = Vec::with_capacity(n);
    if top > FLOOR + 1_000 {
        let span = u32::from(top - FLOOR);
        // Start at a point that differs between processes, so parallel
        // launchers on one machine rarely probe the same ports.
        let mut seed = [0u8; 4];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed);
        let start = u32::from_le_bytes(seed) % span;
        for i in 0..span {
            if out.len() == n {
                break;
            }
            let port = FLOOR + ((start + i) % span) as u16;
            if !given.contains(&port) && free(port) {
                given.push(port);
                out.push(port);
            }
        }
    }
    while out.len() < n {
        let port = UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
        if !given.contains(&port) && free(port) {
            given.push(port);
            out.push(port);
        }
    }
    Ok(out)
}

fn free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok() && UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    #[test]
    fn ports_are_distinct_free_and_below_the_ephemeral_range() {
        let a = super::unused_ports(20).unwrap();
        let b = super::unused_ports(20).unwrap();
        let mut all: Vec<u16> = a.iter().chain(&b).copied().collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 40);
        let top = super::ephemeral_floor();
        if top > super::FLOOR + 1_000 {
            assert!(all.iter().all(|p| *p >= super::FLOOR && *p < top), "{all:?}");
        }
    }
}
