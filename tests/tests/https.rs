//! The console over HTTPS on a center's LAN, and the HTTP server's limits,
//! against real node processes: `https-cert` makes a self-signed
//! certificate and prints its fingerprint; the API and the console answer
//! over TLS with exactly that certificate; a client that does not trust it
//! is refused (and counted); plain HTTP on a LAN address needs
//! `insecure_http`; slow and idle connections are closed; connections over
//! the cap get a JSON 503 and the node keeps serving.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::json;
use zongzhi_tests::browser::Browser;
use zongzhi_tests::{bin, free_port, sample_case, TestNode, OPERATOR_PASSWORD};

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
    let mut node = TestNode::init_with(
        "330106001000",
        "留下街道综治中心",
        &format!("https_listen = \"127.0.0.1:{https_port}\"\ntls_cert = \"data/https-cert.pem\"\ntls_key = \"data/https-key.pem\"\n"),
    );
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
    let client = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
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
    let out = cli(&["--json", "health"], true);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("留下街道综治中心"), "{}", String::from_utf8_lossy(&out.stderr));

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
fn slow_idle_and_too_many_connections_are_cut_off() {
    let mut node = TestNode::init_with(
        "330106001000",
        "留下街道综治中心",
        "http_header_timeout_secs = 1\nhttp_idle_timeout_secs = 2\nhttp_max_connections = 8\n",
    );
    node.start();
    let addr = format!("127.0.0.1:{}", node.port);
    // Headers never finished: closed after the header deadline.
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n").unwrap();
    assert!(closed_within(&mut slow, Duration::from_secs(6)), "a half-sent request kept its connection");
    // A keep-alive connection left idle after its answer: closed.
    let mut idle = TcpStream::connect(&addr).unwrap();
    idle.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    assert!(closed_within(&mut idle, Duration::from_secs(8)), "an idle keep-alive connection stayed open");
    assert!(metric(&node.url(), "zongzhi_http_connections_timed_out_total") >= 2);

    // Eight connections open at once (within their header deadline); the
    // ninth is told why, in JSON, and closed.
    let mut held: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut ninth = TcpStream::connect(&addr).unwrap();
    ninth.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = String::new();
    let _ = ninth.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 503") && answer.contains("\"too_many_connections\"") && answer.to_lowercase().contains("retry-after"), "{answer}");
    held.clear();
    // Freed: the node serves again (and was never down for its own work).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(r) = reqwest::blocking::get(format!("{}/api/health", node.url()))
            && r.status() == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "the node did not serve again after the connections closed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(metric(&node.url(), "zongzhi_http_connections_refused_total") >= 1);
}
