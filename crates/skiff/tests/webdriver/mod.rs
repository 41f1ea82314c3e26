//! A minimal blocking WebDriver client for headless Chromium through
//! chromedriver: a session, navigation, scripts, clicks, pointer and key
//! actions.
//!
//! Why not fantoccini or chromiumoxide: both are async clients that bring
//! a hyper or websocket stack, `url`/`idna` and (for chromiumoxide) the
//! whole generated DevTools protocol, some forty crates and minutes of a
//! 2-core CI's build, for the seven JSON-over-HTTP requests these tests
//! make. WebDriver is a W3C standard with a stable wire format, and the
//! crate already depends on `httparse` and `serde_json`, which is all that
//! is needed here.
#![allow(dead_code)] // each test file uses a different part

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The W3C name of an element reference in a response.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A chromedriver process and one headless Chromium session on it; both
/// end when dropped.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium, or says why not:
    /// `Ok(None)` with a printed reason when either binary is absent.
    pub fn start() -> Result<Option<Browser>, String> {
        for binary in [CHROMIUM, CHROMEDRIVER] {
            if !Path::new(binary).exists() {
                eprintln!(
                    "SKIPPED: {binary} is absent; install Debian's chromium and chromium-driver \
                     packages to run the timeline page's browser test"
                );
                return Ok(None);
            }
        }
        // Port 0: chromedriver picks a free port and prints it, so that no
        // port is chosen here and then raced for.
        let mut driver = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("starting {CHROMEDRIVER}: {e}"))?;
        let stdout = driver.stdout.take().ok_or("chromedriver has no stdout")?;
        let mut lines = BufReader::new(stdout);
        let port = loop {
            let mut line = String::new();
            if lines.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
                let _ = driver.kill();
                return Err("chromedriver ended before saying its port".to_string());
            }
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                break digits
                    .parse::<u16>()
                    .map_err(|e| format!("{line:?}: {e}"))?;
            }
        };
        // Keep draining its output so that it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut lines, &mut std::io::sink()));
        let profile = tempfile::tempdir().map_err(|e| e.to_string())?;
        let args = json!([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1400,900",
            format!("--user-data-dir={}", profile.path().display()),
        ]);
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args}
        }}});
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
            _profile: profile,
        };
        let created = browser.request("POST", "/session", Some(capabilities))?;
        browser.session = created["sessionId"]
            .as_str()
            .ok_or_else(|| format!("no session id in {created}"))?
            .to_string();
        Ok(Some(browser))
    }

    /// Opens `url` and waits for the page's load event (WebDriver's rule).
    pub fn goto(&self, url: &str) -> Result<(), String> {
        self.command("POST", "url", json!({ "url": url })).map(drop)
    }

    /// Runs `script` (a function body; `arguments` are `args`) and returns its value.
    pub fn execute(&self, script: &str, args: Value) -> Result<Value, String> {
        self.command(
            "POST",
            "execute/sync",
            json!({"script": script, "args": args}),
        )
    }

    /// Runs `script`, which calls `arguments[arguments.length - 1]` with its
    /// result when it is done (on a page event, not on a timer here).
    pub fn execute_async(&self, script: &str) -> Result<Value, String> {
        self.command(
            "POST",
            "execute/async",
            json!({"script": script, "args": []}),
        )
    }

    /// Clicks the first element matching the CSS `selector`.
    pub fn click(&self, selector: &str) -> Result<(), String> {
        let found = self.command(
            "POST",
            "element",
            json!({"using": "css selector", "value": selector}),
        )?;
        let id = found[ELEMENT]
            .as_str()
            .ok_or_else(|| format!("no element {selector}: {found}"))?;
        self.command("POST", &format!("element/{id}/click"), json!({}))
            .map(drop)
    }

    /// A real mouse click (move, press, release) at viewport point (x, y).
    pub fn click_at(&self, x: f64, y: f64) -> Result<(), String> {
        let actions = json!({"actions": [{
            "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
            "actions": [
                {"type": "pointerMove", "x": x.round() as i64, "y": y.round() as i64, "origin": "viewport"},
                {"type": "pointerDown", "button": 0},
                {"type": "pointerUp", "button": 0}
            ]
        }]});
        self.command("POST", "actions", actions).map(drop)
    }

    /// Presses and releases one key (`"\u{E014}"` is the right arrow).
    pub fn press(&self, key: &str) -> Result<(), String> {
        let actions = json!({"actions": [{
            "type": "key", "id": "keyboard",
            "actions": [{"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]
        }]});
        self.command("POST", "actions", actions).map(drop)
    }

    /// The text of the first element matching `selector`.
    pub fn text(&self, selector: &str) -> Result<String, String> {
        let value = self.execute(
            "const e = document.querySelector(arguments[0]); return e ? e.innerText : null;",
            json!([selector]),
        )?;
        value
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no element {selector}"))
    }

    fn command(&self, method: &str, path: &str, body: Value) -> Result<Value, String> {
        let path = format!("/session/{}/{path}", self.session);
        self.request(method, &path, Some(body))
    }

    /// One request to chromedriver; its `value`, or the error it reports.
    fn request(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value, String> {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))
            .map_err(|e| format!("connecting to chromedriver: {e}"))?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        // A page may take a while to load, but never this long: a hang fails.
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(120)))
            .map_err(|e| e.to_string())?;
        // chromedriver may keep the connection open: read the headers, then
        // exactly Content-Length bytes of body.
        let mut response = Vec::new();
        let mut chunk = [0u8; 64 * 1024];
        let (code, start, length) = loop {
            let read = stream
                .read(&mut chunk)
                .map_err(|e| format!("{method} {path}: {e}"))?;
            if read == 0 {
                return Err(format!("{method} {path}: the connection closed early"));
            }
            response.extend_from_slice(&chunk[..read]);
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut parsed = httparse::Response::new(&mut headers);
            match parsed.parse(&response) {
                Ok(httparse::Status::Complete(start)) => {
                    let length = parsed
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                        .and_then(|h| {
                            std::str::from_utf8(h.value)
                                .ok()?
                                .trim()
                                .parse::<usize>()
                                .ok()
                        })
                        .ok_or_else(|| format!("{method} {path}: no Content-Length"))?;
                    break (parsed.code, start, length);
                }
                Ok(httparse::Status::Partial) => continue,
                Err(e) => return Err(format!("{method} {path}: a bad response: {e}")),
            }
        };
        while response.len() < start + length {
            let read = stream
                .read(&mut chunk)
                .map_err(|e| format!("{method} {path}: {e}"))?;
            if read == 0 {
                return Err(format!("{method} {path}: the body ends early"));
            }
            response.extend_from_slice(&chunk[..read]);
        }
        let value: Value = serde_json::from_slice(&response[start..start + length])
            .map_err(|e| format!("{method} {path}: {e}"))?;
        match code {
            Some(200) => Ok(value["value"].clone()),
            code => Err(format!("{method} {path}: {code:?} {}", value["value"])),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.request("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
