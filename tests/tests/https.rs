//! The console over HTTPS on a center's LAN, and the HTTP server's limits,
//! against real node processes: `https-cert` makes a self-signed
//! certificate and prints its fingerprint; the API and the console answer
//! over TLS with exactly that certificate; a client that does not trust it
//! is refused (and counted); plain HTTP on a LAN address needs
//! `insecure_http`; slow and idle connections are closed; connections over
//! the cap get a JSON 503 and the node keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::json;
use zongzhi_tests::browser::Browser;
use zongzhi_tests::{Api, OPERATOR_PASSWORD, TestNode, bin, free_port, sample_case, wait_for};

fn metric(url: &str, name: &str) -> u64 {
    let text = reqwest::blocking::get(format!("{url}/metrics")).unwrap().text().unwrap();
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok()).unwrap_or_else(|| panic!("{name} missing"))
}

/// SHA-256 of the PEM certificate's DER, colon-separated, computed here.
fn fingerprint(pem: &str) -> String {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(b64).unwrap();
    use sha2::Digest;
    sha2::Sha256::digest(&der).iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

#[test]
fn the_console_over_https_with_the_certificate_https_cert_made() {
    let https_port = free_port();
    let mut node =
        TestNode::init_with("330106001000", "留下街道综治中心", &format!("https_listen = \"127.0.0.1:{https_port}\"\ntls_cert = \"data/https-cert.pem\"\ntls_key = \"data/https-key.pem\"\n"));
    let out = node.node_cmd(&["https-cert", "--host", "127.0.0.1", "--host", "zongzhi.local"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let pem = std::fs::read_to_string(node.dir.path().join("data/https-cert.pem")).unwrap();
    assert!(stdout.contains(&format!("SHA-256 fingerprint: {}", fingerprint(&pem))), "{stdout}");
    let key_mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(node.dir.path().join("data/https-key.pem")).unwrap().permissions());
    assert_eq!(key_mode & 0o777, 0o600);
    // A second run does not replace it silently.
    let again = node.node_cmd(&["https-cert", "--host", "127.0.0.1"]).output().unwrap();
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("--force"));
    node.start();

    // A client that trusts exactly this certificate.
    let https = format!("https://127.0.0.1:{https_port}");
    let client = reqwest::blocking::Client::builder().use_rustls_tls().add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()).timeout(Duration::from_secs(10)).build().unwrap();
    let r = client.post(format!("{https}/api/login")).json(&json!({"username": "operator", "password": OPERATOR_PASSWORD})).send().unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("content-security-policy").is_some());
    let token = r.json::<serde_json::Value>().unwrap()["token"].as_str().unwrap().to_string();
    let r = client.post(format!("{https}/api/cases")).bearer_auth(&token).json(&sample_case("HTTPS登记")).send().unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().unwrap());

    // One that does not trust it gets no answer, and the refusal is counted.
    let before = metric(&node.url(), "zongzhi_http_tls_handshakes_failed_total");
    let stranger = reqwest::blocking::Client::builder().use_rustls_tls().timeout(Duration::from_secs(10)).build().unwrap();
    let err = stranger.get(format!("{https}/api/health")).send().unwrap_err();
    assert!(format!("{err:?}").to_lowercase().contains("certificate"), "{err:?}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while metric(&node.url(), "zongzhi_http_tls_handshakes_failed_total") == before {
        assert!(Instant::now() < deadline, "the failed handshake was not counted");
        std::thread::sleep(Duration::from_millis(50));
    }

    // The CLI: refused with what to do, then trusted with --cacert.
    let cert_file = node.dir.path().join("data/https-cert.pem");
    let session = node.dir.path().join("cli-session.json");
    let cli = |args: &[&str], trust: bool| {
        let mut c = std::process::Command::new(bin("zongzhi"));
        c.arg("--node").arg(&https).arg("--session").arg(&session);
        if trust {
            c.arg("--cacert").arg(&cert_file);
        }
        c.args(args).env_remove("ZONGZHI_NODE").env_remove("ZONGZHI_CACERT").output().unwrap()
    };
    let out = cli(&["login", "--user", "operator", "--password", OPERATOR_PASSWORD], false);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("--cacert"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = cli(&["login", "--user", "operator", "--password", OPERATOR_PASSWORD], true);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The certificate given at login is remembered: later commands to
    // this node need no --cacert.
    let out = cli(&["--json", "health"], false);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("留下街道综治中心"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = cli(&["whoami"], false);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("operator"), "{}", String::from_utf8_lossy(&out.stderr));

    // The console in Chromium over HTTPS.
    let mut b = Browser::launch_with(&["--ignore-certificate-errors"]);
    b.login(&https, "operator", OPERATOR_PASSWORD);
    let title = b.wait("the case in the queue", 15, "document.querySelector('#queue')?.innerText.includes('HTTPS登记')");
    assert_eq!(title, true);
    assert_eq!(b.eval("location.protocol"), "https:");
    b.screenshot("https-console");
}

#[test]
fn plain_http_on_the_network_needs_insecure_http() {
    let port = free_port();
    let node = TestNode::init("330106001000", "留下街道综治中心");
    let config = std::fs::read_to_string(&node.config).unwrap().replace("127.0.0.1:", "0.0.0.0:");
    std::fs::write(&node.config, &config).unwrap();
    let out = node.node_cmd(&["run"]).stdout(Stdio::null()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("insecure_http") && err.contains("https_listen") && err.contains("https-cert"), "{err}");
    // Half an HTTPS setup is refused with what is missing.
    std::fs::write(&node.config, format!("{}https_listen = \"127.0.0.1:{port}\"\n", config.replace("0.0.0.0:", "127.0.0.1:"))).unwrap();
    let out = node.node_cmd(&["run"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("tls_cert and tls_key"), "{}", String::from_utf8_lossy(&out.stderr));
    // With the explicit opt-in it starts.
    std::fs::write(&node.config, format!("{config}insecure_http = true\n")).unwrap();
    let mut node = node;
    node.start();
}

/// Reads until the peer closes (Ok(0)) or an error; false on timeout.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn slow_and_idle_connections_are_cut_off() {
    let mut node = TestNode::init_with("330106001000", "留下街道综治中心", "http_header_timeout_secs = 1\nhttp_idle_timeout_secs = 2\n");
    node.start();
    let addr = format!("127.0.0.1:{}", node.port);
    // Headers never finished: closed after the header deadline (the bound
    // below only limits how long a broken node is waited for).
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n").unwrap();
    assert!(closed_within(&mut slow, Duration::from_secs(60)), "a half-sent request kept its connection");
    // A keep-alive connection left idle after its answer: closed.
    let mut idle = TcpStream::connect(&addr).unwrap();
    idle.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    assert!(closed_within(&mut idle, Duration::from_secs(60)), "an idle keep-alive connection stayed open");
    assert!(metric(&node.url(), "zongzhi_http_connections_timed_out_total") >= 2);
}

/// A connection to `port` from the loopback address `from` (127.0.0.x:
/// one client address each).
fn connect_from(from: [u8; 4], port: u16) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let s = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind((std::net::Ipv4Addr::from(from), 0).into()).unwrap();
        sock.connect(([127, 0, 0, 1], port).into()).await.unwrap()
    });
    let s = s.into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    s
}

/// One GET on a kept-alive connection: the body of the answer.
fn get_on(s: &mut TcpStream, path: &str) -> String {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_lowercase();
    let len: usize = head.lines().find_map(|l| l.strip_prefix("content-length:")).unwrap().trim().parse().unwrap();
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    String::from_utf8(body).unwrap()
}

/// The answer a connection turned away at a cap gets.
fn turned_away(mut s: TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

#[test]
fn too_many_connections_are_refused_and_one_address_cannot_take_them_all() {
    // Deadlines far beyond the test: held connections stay held however
    // busy the machine is; the test waits on the node's own count.
    let mut node =
        TestNode::init_with("330106001000", "留下街道综治中心", "http_header_timeout_secs = 600\nhttp_idle_timeout_secs = 600\nhttp_max_connections = 8\nhttp_max_connections_per_address = 2\n");
    node.start();
    let port = node.port;
    // The node's own count of open connections, read on a kept-alive
    // connection (which is one of them).
    let open_is = |watcher: &mut TcpStream, n: usize| get_on(watcher, "/metrics").lines().any(|l| l == format!("zongzhi_http_connections_open {n}"));
    let mut watcher = connect_from([127, 0, 0, 5], port);
    wait_for("the connections of the start-up to close", 60, || open_is(&mut watcher, 1).then_some(()));
    // Seven held from four addresses (within their share) and the watcher:
    // the node has taken all eight.
    let mut held: Vec<TcpStream> =
        [[127, 0, 0, 2], [127, 0, 0, 2], [127, 0, 0, 3], [127, 0, 0, 3], [127, 0, 0, 4], [127, 0, 0, 4], [127, 0, 0, 5]].into_iter().map(|a| connect_from(a, port)).collect();
    wait_for("the node to hold eight connections", 60, || open_is(&mut watcher, 8).then_some(()));
    // The ninth, from a fifth address: told why, in JSON, and closed.
    let answer = turned_away(connect_from([127, 0, 0, 6], port));
    assert!(answer.starts_with("HTTP/1.1 503") && answer.contains("\"too_many_connections\"") && answer.contains("the node has too many open connections"), "{answer}");
    assert!(answer.to_lowercase().contains("retry-after"), "{answer}");
    held.clear();
    wait_for("the held connections to close", 60, || open_is(&mut watcher, 1).then_some(()));

    // One address at its share (a client holding half-sent requests):
    // its next connection is turned away, another address is served.
    let attacker: Vec<TcpStream> = (0..2).map(|_| connect_from([127, 0, 0, 7], port)).collect();
    wait_for("the attacker's connections to be counted", 60, || open_is(&mut watcher, 3).then_some(()));
    let answer = turned_away(connect_from([127, 0, 0, 7], port));
    assert!(answer.starts_with("HTTP/1.1 503") && answer.contains("too many connections from this address"), "{answer}");
    let (status, _) = Api::from_address(&node.url(), IpAddr::from([127, 0, 0, 9])).get("/api/health");
    assert_eq!(status, 200, "another address is served");
    drop(attacker);
    drop(watcher);
    // Freed: the node serves again (and was never down for its own work).
    wait_for("the node to serve again", 60, || reqwest::blocking::get(format!("{}/api/health", node.url())).ok().filter(|r| r.status() == 200));
    assert!(metric(&node.url(), "zongzhi_http_connections_refused_total") >= 1);
    assert!(metric(&node.url(), "zongzhi_http_connections_address_refused_total") >= 1);
}
