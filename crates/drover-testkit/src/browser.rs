//! A real browser for the web UI's tests: Debian's headless Chromium driven over WebDriver
//! (ChromeDriver, W3C protocol), with a small client of our own.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Why a browser cannot be had here, if it cannot: the tests print it when they skip.
pub fn missing() -> Option<String> {
    [CHROMIUM, CHROMEDRIVER]
        .iter()
        .find(|p| !Path::new(p).exists())
        .map(|p| {
            format!(
                "{p} is missing: install Debian's chromium and chromium-driver (scripts/test does)"
            )
        })
}

/// One headless Chromium window, closed (with its driver) when dropped.
#[derive(Debug)]
pub struct Browser {
    driver: tokio::process::Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

#[derive(Debug, thiserror::Error)]
#[error("webdriver: {0}")]
pub struct BrowserError(pub String);

type Result<T> = std::result::Result<T, BrowserError>;

impl Browser {
    /// Starts ChromeDriver on a free port and opens a window whose language is `lang`
    /// (sent as `Accept-Language`). A port taken between its choice and the driver's start
    /// is chosen again.
    pub async fn start(lang: &str) -> Result<Self> {
        let mut last = None;
        for _ in 0..3 {
            match Self::start_once(lang).await {
                Ok(browser) => return Ok(browser),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("tried"))
    }

    async fn start_once(lang: &str) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| BrowserError(e.to_string()))?
            .port();
        let driver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| BrowserError(format!("cannot start {CHROMEDRIVER}: {e}")))?;
        let base = format!("http://127.0.0.1:{port}");
        // Plain HTTP on loopback; the client still wants drover's one TLS provider.
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| BrowserError(e.to_string()))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .build()
            .map_err(|e| BrowserError(e.to_string()))?;
        let mut ready = false;
        for _ in 0..100 {
            if let Ok(r) = http.get(format!("{base}/status")).send().await
                && r.status().is_success()
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !ready {
            return Err(BrowserError(
                "chromedriver did not answer within 10 s".into(),
            ));
        }
        let profile = tempfile::tempdir().map_err(|e| BrowserError(e.to_string()))?;
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-dev-shm-usage", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                    format!("--lang={lang}"),
                ],
                "prefs": {"intl.accept_languages": lang},
            }
        }}});
        let mut browser = Self {
            driver,
            base,
            session: String::new(),
            http,
            _profile: profile,
        };
        let opened = browser.call("POST", "/session", Some(capabilities)).await?;
        browser.session = opened["sessionId"]
            .as_str()
            .ok_or_else(|| BrowserError(format!("no session id in {opened}")))?
            .to_owned();
        Ok(browser)
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let request = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body.unwrap_or_else(|| json!({}))),
        };
        let response = request
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(|e| BrowserError(format!("{method} {path}: {e}")))?;
        let status = response.status();
        let answer: Value = response
            .json()
            .await
            .map_err(|e| BrowserError(format!("{method} {path}: {e}")))?;
        let value = answer.get("value").cloned().unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(BrowserError(format!("{method} {path}: {status} {value}")));
        }
        Ok(value)
    }

    fn at(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    pub async fn goto(&self, url: &str) -> Result<()> {
        self.call("POST", &self.at("/url"), Some(json!({"url": url})))
            .await
            .map(drop)
    }

    pub async fn url(&self) -> Result<String> {
        let value = self.call("GET", &self.at("/url"), None).await?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    async fn element(&self, css: &str) -> Result<String> {
        let found = self
            .call(
                "POST",
                &self.at("/element"),
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        found[ELEMENT]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| BrowserError(format!("no element {css}: {found}")))
    }

    /// Whether an element matches `css` on the page now.
    pub async fn has(&self, css: &str) -> Result<bool> {
        let found = self
            .call(
                "POST",
                &self.at("/elements"),
                Some(json!({"using": "css selector", "value": css})),
            )
            .await?;
        Ok(found.as_array().is_some_and(|a| !a.is_empty()))
    }

    pub async fn click(&self, css: &str) -> Result<()> {
        let id = self.element(css).await?;
        self.call("POST", &self.at(&format!("/element/{id}/click")), None)
            .await
            .map(drop)
    }

    /// Clicks `css`, which leads to another page (a link, or a form's button), and waits
    /// until that page has loaded.
    pub async fn follow(&self, css: &str) -> Result<()> {
        self.run("window.__left = false;", Vec::new()).await?;
        self.click(css).await?;
        for _ in 0..300 {
            let loaded = self
                .run(
                    "return window.__left === undefined && document.readyState === 'complete';",
                    Vec::new(),
                )
                .await
                .unwrap_or(Value::Bool(false));
            if loaded == Value::Bool(true) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(BrowserError(format!(
            "clicking {css} led nowhere within 30 s"
        )))
    }

    /// Types `text` into the field `css` (emptied first).
    pub async fn fill(&self, css: &str, text: &str) -> Result<()> {
        let id = self.element(css).await?;
        self.call("POST", &self.at(&format!("/element/{id}/clear")), None)
            .await?;
        self.call(
            "POST",
            &self.at(&format!("/element/{id}/value")),
            Some(json!({"text": text})),
        )
        .await
        .map(drop)
    }

    /// The text of the element `css` as shown.
    pub async fn text(&self, css: &str) -> Result<String> {
        let id = self.element(css).await?;
        let value = self
            .call("GET", &self.at(&format!("/element/{id}/text")), None)
            .await?;
        Ok(value.as_str().unwrap_or_default().to_owned())
    }

    /// Runs `script` in the page (a function body; a promise it returns is awaited).
    pub async fn run(&self, script: &str, args: Vec<Value>) -> Result<Value> {
        self.call(
            "POST",
            &self.at("/execute/sync"),
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Writes what the window shows to `path` (PNG).
    pub async fn screenshot(&self, path: &Path) -> Result<PathBuf> {
        let value = self.call("GET", &self.at("/screenshot"), None).await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(value.as_str().unwrap_or_default())
            .map_err(|e| BrowserError(e.to_string()))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| BrowserError(e.to_string()))?;
        }
        std::fs::write(path, png).map_err(|e| BrowserError(e.to_string()))?;
        Ok(path.to_owned())
    }

    /// Waits up to `limit` for the text of `css` to satisfy `check`, and returns it.
    pub async fn wait_for_text(
        &self,
        css: &str,
        limit: Duration,
        check: impl Fn(&str) -> bool,
    ) -> Result<String> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut last = String::new();
        while tokio::time::Instant::now() < deadline {
            if let Ok(text) = self.text(css).await {
                if check(&text) {
                    return Ok(text);
                }
                last = text;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(BrowserError(format!(
            "{css} did not become as expected within {limit:?}; last: {last:?}"
        )))
    }
}

impl Browser {
    /// Closes the window (and Chromium with it), then the driver.
    pub async fn close(mut self) {
        let _ = self.call("DELETE", &self.at(""), None).await;
        self.session.clear();
        let _ = self.driver.kill().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A test that failed before `close`: the driver goes with its handle and takes
        // Chromium with it when it sees its session's pipe close.
        let _ = self.driver.start_kill();
    }
}
