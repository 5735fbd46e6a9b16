//! A small Chrome DevTools Protocol driver for the console tests: Debian's
//! headless Chromium, one page, navigate / evaluate / wait / screenshot.
//! Interaction goes through the page's DOM (fill inputs, click buttons) as a
//! user's would.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

pub const CHROMIUM: &str = "/usr/bin/chromium";

pub struct Browser {
    child: Child,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
    shots: PathBuf,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where screenshots go: `$ZONGZHI_ARTIFACTS`, else `<target dir>/console-screenshots`.
pub fn artifacts_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("ZONGZHI_ARTIFACTS") {
        return PathBuf::from(d);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("console-screenshots")
}

impl Browser {
    /// Starts headless Chromium (it must be installed: `.ci/run` installs it).
    pub fn launch() -> Browser {
        Self::launch_with(&[])
    }

    /// Like [`Browser::launch`] with extra command-line flags.
    pub fn launch_with(flags: &[&str]) -> Browser {
        assert!(Path::new(CHROMIUM).exists(), "{CHROMIUM} is missing: apt-get install chromium (.ci/run does)");
        let profile = tempfile::tempdir().expect("profile dir");
        let child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--lang=zh-CN",
                "--remote-debugging-port=0",
            ])
            .args(flags)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromium");
        // Chromium writes the port and the browser endpoint once it listens.
        let port_file = profile.path().join("DevToolsActivePort");
        let t = Instant::now();
        let (port, path) = loop {
            if let Ok(text) = std::fs::read_to_string(&port_file) {
                let mut lines = text.lines();
                if let (Some(p), Some(path)) = (lines.next(), lines.next()) {
                    break (p.trim().to_string(), path.trim().to_string());
                }
            }
            assert!(t.elapsed() < Duration::from_secs(30), "chromium did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        let (ws, _) = tungstenite::connect(format!("ws://127.0.0.1:{port}{path}")).expect("devtools websocket");
        let shots = artifacts_dir();
        std::fs::create_dir_all(&shots).expect("screenshot dir");
        let mut b = Browser { child, ws, session: String::new(), next_id: 0, _profile: profile, shots };
        let target = b.call_browser("Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"].as_str().expect("target id").to_string();
        let attached = b.call_browser("Target.attachToTarget", json!({"targetId": target_id, "flatten": true}));
        b.session = attached["sessionId"].as_str().expect("session id").to_string();
        b.call("Page.enable", json!({}));
        b.call("Runtime.enable", json!({}));
        b.viewport(1366, 768, false);
        b
    }

    fn send(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::Text(msg.to_string())).expect("devtools send");
        loop {
            let m = self.ws.read().expect("devtools read");
            let Message::Text(text) = m else { continue };
            let v: Value = serde_json::from_str(&text).expect("devtools json");
            if v["id"].as_u64() == Some(id) {
                if let Some(e) = v.get("error") {
                    panic!("{method}: {e}");
                }
                return v["result"].clone();
            }
        }
    }

    fn call_browser(&mut self, method: &str, params: Value) -> Value {
        self.send(None, method, params)
    }

    pub fn call(&mut self, method: &str, params: Value) -> Value {
        let s = self.session.clone();
        self.send(Some(&s), method, params)
    }

    pub fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.call("Emulation.setDeviceMetricsOverride", json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}));
    }

    /// Evaluates `js` in the page (promises awaited) and returns its value.
    pub fn eval(&mut self, js: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({"expression": js, "returnByValue": true, "awaitPromise": true}));
        if let Some(ex) = r.get("exceptionDetails") {
            panic!("script failed: {js}\n{ex}");
        }
        r["result"]["value"].clone()
    }

    pub fn goto(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}));
        self.wait("the page to load", 20, "document.readyState === 'complete'");
    }

    /// Waits until `predicate` (a JS expression) is truthy.
    pub fn wait(&mut self, what: &str, secs: u64, predicate: &str) -> Value {
        let t = Instant::now();
        loop {
            let v = self.eval(&format!("(() => {{ try {{ return ({predicate}); }} catch (e) {{ return null; }} }})()"));
            if !(v.is_null() || v == json!(false) || v == json!("") || v == json!(0)) {
                return v;
            }
            if t.elapsed() > Duration::from_secs(secs) {
                let body = self.eval("document.body ? document.body.innerText.slice(0, 2000) : ''");
                panic!("timed out after {secs} s waiting for {what} ({predicate}); page shows:\n{body}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sets a form control's value as typing or choosing would.
    pub fn fill(&mut self, selector: &str, value: &str) {
        let js = format!(
            "(() => {{ const el = document.querySelector({sel}); if (!el) throw new Error('no ' + {sel}); el.focus(); el.value = {val}; \
             el.dispatchEvent(new Event('input', {{bubbles: true}})); el.dispatchEvent(new Event('change', {{bubbles: true}})); return true; }})()",
            sel = json!(selector),
            val = json!(value)
        );
        self.eval(&js);
    }

    pub fn click(&mut self, selector: &str) {
        let js = format!("(() => {{ const el = document.querySelector({sel}); if (!el) throw new Error('no ' + {sel}); el.click(); return true; }})()", sel = json!(selector));
        self.eval(&js);
    }

    pub fn text(&mut self, selector: &str) -> String {
        let js = format!("(() => {{ const el = document.querySelector({sel}); return el ? el.innerText : null; }})()", sel = json!(selector));
        self.eval(&js).as_str().unwrap_or_default().to_string()
    }

    /// Logs in on the console at `url` and waits for the work queue.
    pub fn login(&mut self, url: &str, user: &str, password: &str) {
        self.goto(&format!("{url}/#/login"));
        self.wait("the login form", 15, "document.querySelector('#login-form')");
        self.fill("#login-form input[name=username]", user);
        self.fill("#login-form input[name=password]", password);
        self.click("#login-form button[type=submit]");
        self.wait("the work queue", 15, "document.body.dataset.page === 'queue' && document.querySelector('#queue')");
    }

    /// Saves a PNG of the page (the full scrollable height) as `<name>.png`.
    pub fn screenshot(&mut self, name: &str) -> PathBuf {
        let r = self.call("Page.captureScreenshot", json!({"format": "png", "captureBeyondViewport": true}));
        let data = base64::engine::general_purpose::STANDARD.decode(r["data"].as_str().expect("png data")).expect("base64");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, data).expect("write screenshot");
        path
    }
}
