//! A UDP relay on loopback that can cut a link (std only). Context by the
//! end-to-end tests and, through `#[path]`, by `zongzhi-lab bench sync`.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A UDP relay between a child and its parent: the child dials `port`, the
/// parent sees the relay. Once `cut_after` bytes went upstream, or while
/// `cut` is set, every datagram is dropped both ways; clearing `cut` lets
/// everything through again (the automatic cut fires once).
pub struct UdpRelay {
    pub port: u16,
    pub cut: Arc<AtomicBool>,
}

impl UdpRelay {
    pub fn start(upstream: u16, cut_after: u64) -> std::io::Result<UdpRelay> {
        let down = UdpSocket::bind("127.0.0.1:0")?;
        let port = down.local_addr()?.port();
        let up = UdpSocket::bind("127.0.0.1:0")?;
        up.connect(("127.0.0.1", upstream))?;
        let cut = Arc::new(AtomicBool::new(false));
        // Bytes forwarded upstream so far.
        let bytes = Arc::new(AtomicU64::new(0));
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::default();
        let (down2, up2, cut2, client2) = (down.try_clone()?, up.try_clone()?, cut.clone(), client.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            let mut fired = false;
            loop {
                // Errors (the parent restarting: ICMP unreachable) are skipped.
                let Ok((n, from)) = down2.recv_from(&mut buf) else { continue };
                if let Ok(mut c) = client2.lock() {
                    *c = Some(from);
                }
                if !fired && bytes.load(Ordering::SeqCst) >= cut_after {
                    fired = true;
                    cut2.store(true, Ordering::SeqCst);
                }
                if !cut2.load(Ordering::SeqCst) {
                    bytes.fetch_add(n as u64, Ordering::SeqCst);
                    let _ = up2.send(&buf[..n]);
                }
            }
        });
        let cut3 = cut.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            loop {
                let Ok(n) = up.recv(&mut buf) else {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                };
                let to = client.lock().ok().and_then(|c| *c);
                if let Some(to) = to
                    && !cut3.load(Ordering::SeqCst)
                {
                    let _ = down.send_to(&buf[..n], to);
                }
            }
        });
        Ok(UdpRelay { port, cut })
    }
}
