//! What the browser tests share: finding Chromium and ChromeDriver, a
//! ChromeDriver process and one person's browser session (`Browser`, used
//! by `tests/browser_admin.rs` and `tests/browser_patient.rs`), the
//! phone-width layout check run in the page, axe-core's accessibility
//! check, and the Chinese pages' English-leak check (`no_english`, with its
//! self-test `english_leak_check_self_test`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use thirtyfour::prelude::*;
use thirtyfour::LoggingPrefsLogLevel;

/// The phone layout check run in the page: answers `{scroll, inner,
/// problems}`, where each problem names an element that is cut off, a wide
/// table without its scroll hint, or a short id broken across lines.
pub const PHONE_LAYOUT_JS: &str = r#"
const vw = window.innerWidth;
const problems = [];
const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
  (e.className && typeof e.className === 'string' ? '.' + e.className.trim().split(/\s+/).join('.') : '') +
  ' "' + (e.textContent || '').trim().slice(0, 30) + '"';
const scrollsX = (a) => { const o = getComputedStyle(a).overflowX; return (o === 'auto' || o === 'scroll'); };
const clipsX = (a) => { const o = getComputedStyle(a).overflowX; return o === 'hidden' || o === 'clip'; };
const main = document.querySelector('main') || document.body;
for (const e of main.querySelectorAll('*')) {
  if (!e.getClientRects().length) continue;
  if (e.closest('.visually-hidden, [hidden], details:not([open]) > :not(summary)')) continue;
  const r = e.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) continue;
  let a = e.parentElement, inScroller = false, clippedBy = null;
  while (a && a !== document.documentElement) {
    if (scrollsX(a)) { inScroller = true; break; }
    if (clipsX(a)) {
      const ar = a.getBoundingClientRect();
      // A 1-px clipped box is the visually-hidden idiom (read aloud, not shown).
      if (ar.width <= 1 || ar.height <= 1) { inScroller = true; break; }
      if (r.right > ar.right + 1 || r.left < ar.left - 1) { clippedBy = a; break; }
    }
    a = a.parentElement;
  }
  if (inScroller) continue;
  if (clippedBy) problems.push('cut off by an overflow:hidden box: ' + name(e));
  else if (r.right > vw + 1 || r.left < -1) problems.push('outside the screen: ' + name(e));
}
for (const w of document.querySelectorAll('.table-wrap')) {
  if (w.scrollWidth > w.clientWidth + 1) {
    const hint = w.parentElement && w.parentElement.querySelector('.scroll-hint');
    if (!hint || hint.hidden || !hint.getClientRects().length) problems.push('a table scrolls sideways with no hint: ' + name(w));
  }
}
for (const id of document.querySelectorAll('.short-id')) {
  const lines = new Set([...id.getClientRects()].map((r) => Math.round(r.top)));
  if (lines.size > 1) problems.push('a short id breaks across lines: ' + name(id));
}
return { scroll: document.documentElement.scrollWidth, inner: vw, problems: [...new Set(problems)].slice(0, 20) };
"#;

/// axe-core's script: the file `RXCHAIN_AXE` names, else the copy
/// `scripts/install-test-deps.sh` installs under `test-deps/` of the target
/// directory (`CARGO_TARGET_DIR`, else `target/`).
pub fn axe_source() -> anyhow::Result<String> {
    let installed = |target: PathBuf| target.join("test-deps/axe/node_modules/axe-core/axe.min.js");
    let default = installed(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let path = std::env::var_os("RXCHAIN_AXE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(|t| installed(PathBuf::from(t)))
                .filter(|p| p.exists())
                .unwrap_or(default)
        });
    std::fs::read_to_string(&path).with_context(|| {
        format!("reading axe-core from {} (scripts/install-test-deps.sh installs it, or point RXCHAIN_AXE at axe.min.js)", path.display())
    })
}

/// Runs axe-core in the page `driver` shows: fails on any violation of
/// serious or critical impact, and on duplicate landmarks and empty table
/// headers (moderate, fixed once and kept fixed).
pub async fn axe_check(driver: &WebDriver, page: &str) -> anyhow::Result<()> {
    let source = axe_source()?;
    driver
        .execute(
            format!("{source}\n;return typeof axe === 'object';"),
            Vec::<Value>::new(),
        )
        .await?;
    let script = "const done = arguments[arguments.length - 1]; \
        axe.run(document, { resultTypes: ['violations'] }).then((r) => done(r.violations.map((v) => \
        ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) })))) \
        .catch((e) => done([{ id: 'axe-error', impact: 'critical', help: String(e), nodes: [] }]));";
    let v = driver
        .execute_async(script, Vec::<Value>::new())
        .await?
        .json()
        .clone();
    let bad: Vec<&Value> = v
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|x| {
                    matches!(x["impact"].as_str(), Some("serious" | "critical"))
                        || matches!(
                            x["id"].as_str(),
                            Some(
                                "landmark-unique"
                                    | "empty-table-header"
                                    | "landmark-no-duplicate-banner"
                                    | "landmark-no-duplicate-contentinfo"
                                    | "landmark-no-duplicate-main"
                            )
                        )
                })
                .collect()
        })
        .unwrap_or_default();
    if !bad.is_empty() {
        bail!("axe found accessibility violations on {page}: {bad:#?}");
    }
    Ok(())
}

pub const CHROMIUM: (&str, &str) = ("RXCHAIN_CHROMIUM", "/usr/bin/chromium");
pub const CHROMEDRIVER: (&str, &str) = ("RXCHAIN_CHROMEDRIVER", "/usr/bin/chromedriver");
/// Set to 1 to opt out of the browser tests (they then say SKIPPED).
pub const SKIP_VAR: &str = "RXCHAIN_SKIP_BROWSER";
/// How long any single wait may take.
pub const WAIT: Duration = Duration::from_secs(20);
pub const POLL: Duration = Duration::from_millis(100);

/// Chromium and ChromeDriver, or `None` when the run opted out with
/// [`SKIP_VAR`]; fails saying how to install them when they are missing.
pub fn browser_tools(test: &str) -> anyhow::Result<Option<(PathBuf, PathBuf)>> {
    if std::env::var(SKIP_VAR).is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED {test}: {SKIP_VAR}=1 is set");
        return Ok(None);
    }
    let chromium = tool(CHROMIUM);
    let chromedriver = tool(CHROMEDRIVER);
    if !chromium.exists() || !chromedriver.exists() {
        bail!(
            "the browser test needs {} and {}; install them with \
             scripts/install-test-deps.sh (apt-get install chromium chromium-driver), \
             point {} and {} at other binaries, or opt out explicitly with {SKIP_VAR}=1",
            chromium.display(),
            chromedriver.display(),
            CHROMIUM.0,
            CHROMEDRIVER.0,
        );
    }
    Ok(Some((chromium, chromedriver)))
}

pub fn tool((var, default): (&str, &str)) -> PathBuf {
    std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// `chromedriver` on a free local port; killed when dropped.
pub struct ChromeDriver {
    child: Child,
    /// Where the WebDriver endpoint listens.
    pub url: String,
    /// The Chromium binary every session starts.
    pub chromium: PathBuf,
}

impl ChromeDriver {
    pub fn spawn(chromedriver: &Path, chromium: PathBuf, artifacts: &Path) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                artifacts.join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", chromedriver.display()))?;
        Ok(ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            chromium,
        })
    }

    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(r) = http.get(format!("{}/status", self.url)).send().await {
                let v: Value = r.json().await.unwrap_or_default();
                if v["value"]["ready"] == true {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!("chromedriver did not become ready within {WAIT:?}");
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One person's browser: a fresh Chromium profile and WebDriver session.
pub struct Browser {
    pub driver: WebDriver,
    pub base: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    pub async fn open(driver: &ChromeDriver, base: &str) -> anyhow::Result<Browser> {
        let profile = tempfile::tempdir()?;
        let mut caps = DesiredCapabilities::chrome();
        caps.set_binary(&driver.chromium.to_string_lossy())?;
        for arg in [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
            // The pages follow the browser's language on a first visit;
            // these tests read English texts, so the browser is English.
            "--lang=en-US",
        ] {
            caps.add_arg(arg)?;
        }
        caps.add_arg(&format!("--user-data-dir={}", profile.path().display()))?;
        caps.set_browser_log_level(LoggingPrefsLogLevel::All)?;
        let driver = WebDriver::new(driver.url.clone(), caps)
            .await
            .context("starting a Chromium session")?;
        Ok(Browser {
            driver,
            base: base.to_string(),
            _profile: profile,
        })
    }

    pub async fn goto(&self, path: &str) -> anyhow::Result<()> {
        self.driver.goto(format!("{}{path}", self.base)).await?;
        Ok(())
    }

    pub async fn js(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        Ok(self.driver.execute(script, args).await?.json().clone())
    }

    pub async fn wait_js(
        &self,
        what: &str,
        script: &str,
        args: Vec<Value>,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let v = self.js(script, args.clone()).await?;
            if !(v.is_null() || v == false || v == "" || v == 0) {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("timed out after {WAIT:?} waiting for {what}");
            }
            tokio::time::sleep(POLL).await;
        }
    }

    pub async fn find(&self, css: &str) -> anyhow::Result<WebElement> {
        self.wait_js(
            &format!("a visible {css}"),
            "const e = document.querySelector(arguments[0]); return !!(e && e.getClientRects().length);",
            vec![json!(css)],
        )
        .await?;
        Ok(self.driver.find(By::Css(css)).await?)
    }

    pub async fn wait_text(&self, css: &str, text: &str) -> anyhow::Result<String> {
        let v = self
            .wait_js(
                &format!("{css} to contain {text:?}"),
                "const e = document.querySelector(arguments[0]); \
                 return e && e.textContent.includes(arguments[1]) ? e.textContent : null;",
                vec![json!(css), json!(text)],
            )
            .await?;
        Ok(v.as_str().unwrap_or_default().to_string())
    }

    pub async fn type_into(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let e = self.find(css).await?;
        e.clear().await?;
        e.send_keys(text).await?;
        Ok(())
    }

    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.find(css).await?.click().await?;
        Ok(())
    }

    pub async fn sign_in(&self, username: &str, password: &str) -> anyhow::Result<()> {
        self.type_into("#username", username).await?;
        self.type_into("#password", password).await?;
        self.click("#sign-in").await?;
        self.find("#sign-out").await?;
        Ok(())
    }

    pub async fn shot(&self, artifacts: &Path, name: &str) -> anyhow::Result<()> {
        let path = artifacts.join(format!("{name}.png"));
        self.driver
            .screenshot(&path)
            .await
            .with_context(|| format!("saving {}", path.display()))
    }

    /// Checks `path` at phone width (390 px) with the shared layout check:
    /// no page overflow, nothing cut off, scroll hints on wide tables.
    pub async fn phone_check(
        &self,
        path: &str,
        ready_css: &str,
        artifacts: &Path,
    ) -> anyhow::Result<()> {
        let cdp = self.driver.cdp();
        cdp.send_raw(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true}),
        )
        .await?;
        self.goto(path).await?;
        self.find(ready_css).await?;
        // Let layout settle after the last render.
        self.driver
            .execute_async(
                "const done = arguments[arguments.length - 1]; \
                 requestAnimationFrame(() => requestAnimationFrame(() => done(true)));",
                Vec::<Value>::new(),
            )
            .await?;
        let m = self.js(PHONE_LAYOUT_JS, vec![]).await?;
        self.shot(artifacts, "phone").await?;
        cdp.send_raw("Emulation.clearDeviceMetricsOverride", json!({}))
            .await?;
        let (scroll, inner) = (
            m["scroll"].as_i64().unwrap_or(-1),
            m["inner"].as_i64().unwrap_or(-1),
        );
        if inner != 390 {
            bail!("{path} is wider than the phone: the emulated viewport grew to {inner} px ({m})");
        }
        if scroll > 390 {
            bail!("{path} overflows horizontally at phone width: scrollWidth {scroll} > 390");
        }
        let problems = m["problems"].as_array().cloned().unwrap_or_default();
        if !problems.is_empty() {
            bail!("{path} at phone width: {problems:#?}");
        }
        Ok(())
    }

    pub async fn console_errors(
        &self,
        artifacts: &Path,
        role: &str,
    ) -> anyhow::Result<Vec<String>> {
        let log = self.driver.browser_log().await.unwrap_or_default();
        let lines: Vec<String> = log
            .iter()
            .map(|e| format!("{} {}", e.level, e.message))
            .collect();
        std::fs::write(
            artifacts.join(format!("console-{role}.log")),
            lines.join("\n"),
        )?;
        Ok(log
            .iter()
            .map(|e| e.message.clone())
            .filter(|m| {
                m.contains("Uncaught")
                    || m.contains("SyntaxError")
                    || m.contains("TypeError")
                    || m.contains("ReferenceError")
                    // A key missing from the catalogue (web/assets/i18n.js).
                    || m.contains("rxchain i18n")
            })
            .collect())
    }
}

/// `target/<name>`, emptied of old screenshots, logs and page sources.
pub fn artifacts_dir(name: &str) -> anyhow::Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join(name);
    std::fs::create_dir_all(&dir)?;
    for e in std::fs::read_dir(&dir)? {
        let p = e?.path();
        if p.extension()
            .is_some_and(|x| x == "png" || x == "log" || x == "html")
        {
            std::fs::remove_file(p)?;
        }
    }
    Ok(dir)
}

/// The Chinese pages' English-leak check, run in the page: answers `{leaks,
/// cjk}`, where each leak names a run of Latin words in a text or a
/// user-visible attribute that is neither data nor an allowed word, and
/// `cjk` counts the Chinese characters shown.
///
/// `arguments[0]` lists the data shown as it is (names of organisations,
/// people and medicines, addresses, batch numbers, ids): each is taken out
/// of a text before it is read. `arguments[1]` lists the Latin words a
/// Chinese sentence may hold (the product's name, "QR", "PNG" …). Words
/// joined to digits or to the marks of codes (`_`, `.` inside, `/`, `@`,
/// `:`) are codes and ids, not words. Text under `code`, `kbd`, `samp`,
/// `.mono` (the pages' codes), `.short-id` or an element in another language (`lang="en"`, the
/// language switch's "English") is skipped; the contents of closed
/// `<details>` (technical details) are read too.
pub const ENGLISH_LEAKS_JS: &str = r#"
// Each data string is taken out where it stands as a whole: never inside
// a word (a unit "g" must not eat the g of "English").
const esc = (d) => d.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const data = arguments[0].filter((d) => d && d.trim()).sort((a, b) => b.length - a.length)
  .map((d) => new RegExp('(?<![A-Za-z])' + esc(d) + '(?![A-Za-z])', 'g'));
const allowed = new Set(arguments[1].map((w) => w.toLowerCase()));
const leaks = [];
const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') +
  (e.className && typeof e.className === 'string' && e.className.trim() ? '.' + e.className.trim().split(/\s+/).join('.') : '');
const SEP = /[\s\u2000-\u206f\u3000-\u303f\u3400-\u9fff\uf900-\ufaff\uff00-\uffef()\[\]{}"“”‘«»<>|·•—–…×→←✓✗]+/;
const EDGE = /^[.,:;!?'’]+|[.,:;!?'’]+$/g;
const words = (text) => {
  let s = ' ' + text + ' ';
  for (const d of data) s = s.replace(d, ' ');
  const out = [];
  for (let chunk of s.split(SEP)) {
    chunk = chunk.replace(EDGE, '');
    if (!/^[A-Za-z]+(?:['’-][A-Za-z]+)*$/.test(chunk)) continue;
    if (chunk.length < 2 || allowed.has(chunk.toLowerCase())) continue;
    out.push(chunk);
  }
  return out;
};
const skipped = (e) => {
  if (!e || e.closest('script, style, noscript, template, code, kbd, samp, .mono, .short-id')) return true;
  const l = e.closest('[lang]');
  return !!(l && !l.lang.toLowerCase().startsWith('zh'));
};
const shown = (e) => !!e.getClientRects().length || !!e.closest('details');
const report = (text, where) => {
  const w = words(text);
  if (w.length) leaks.push(where + ': "' + w.join(' ') + '" in "' + text.trim().replace(/\s+/g, ' ').slice(0, 120) + '"');
};
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let n = walker.nextNode(); n; n = walker.nextNode()) {
  const e = n.parentElement;
  if (!n.nodeValue.trim() || skipped(e) || !(shown(e) || e.tagName === 'OPTION')) continue;
  report(n.nodeValue, name(e));
}
for (const e of document.body.querySelectorAll('*')) {
  if (skipped(e) || !shown(e)) continue;
  for (const a of ['title', 'placeholder', 'aria-label', 'aria-description', 'aria-roledescription', 'alt']) {
    if (e.hasAttribute(a)) report(e.getAttribute(a), name(e) + '[' + a + ']');
  }
  if (e.matches('input[type=submit], input[type=button], input[type=reset]')) report(e.value, name(e) + '[value]');
}
report(document.title, 'title');
const cjk = (document.body.innerText.match(/[\u3400-\u9fff]/g) || []).length;
return { leaks: [...new Set(leaks)].slice(0, 40), cjk, lang: document.documentElement.lang };
"#;

/// The Latin words a Chinese page may show: the product's name and the
/// usual abbreviations (QR code, PNG image, API token …).
pub const LATIN_WORDS_IN_CHINESE: &[&str] = &[
    "rxchain", "Rx", "QR", "ATC", "PNG", "JPEG", "PDF", "CSV", "API", "Ctrl", "https",
];

/// Checks the page `driver` shows is in Chinese with no English leaking:
/// `<html lang>` is zh-CN, it shows Chinese, and [`ENGLISH_LEAKS_JS`]
/// finds nothing outside `data`.
pub async fn no_english(driver: &WebDriver, page: &str, data: &[String]) -> anyhow::Result<()> {
    let v = driver
        .execute(
            ENGLISH_LEAKS_JS,
            vec![json!(data), json!(LATIN_WORDS_IN_CHINESE)],
        )
        .await?
        .json()
        .clone();
    if v["lang"] != "zh-CN" {
        bail!("{page} should be in Chinese, <html lang> is {}", v["lang"]);
    }
    if v["cjk"].as_u64().unwrap_or(0) < 10 {
        bail!("{page} shows almost no Chinese ({} characters)", v["cjk"]);
    }
    let leaks = v["leaks"].as_array().cloned().unwrap_or_default();
    if !leaks.is_empty() {
        bail!("English on the Chinese {page}: {leaks:#?}");
    }
    Ok(())
}

/// Proves [`ENGLISH_LEAKS_JS`] can fail: in the page `driver` shows (in
/// Chinese), an English sentence, an English `aria-label` and an English
/// `<option>` are each reported, while data and allowed words are not.
pub async fn english_leak_check_self_test(driver: &WebDriver) -> anyhow::Result<()> {
    driver
        .execute(
            "const box = document.createElement('div'); box.id = 'leak-probe'; \
             box.innerHTML = '<p>已发药 Sign in again now.</p><button aria-label=\"Close the card\">×</button>' + \
               '<select><option>请选择</option><option>Choose a pharmacy</option></select>' + \
               '<p>取药药房：Central Pharmacy (demo)，二维码 PNG，编号 rx_0a1b dr.ada</p>'; \
             (document.querySelector('main') || document.body).append(box); return true;",
            Vec::<Value>::new(),
        )
        .await?;
    let v = driver
        .execute(
            ENGLISH_LEAKS_JS,
            vec![
                json!(["Central Pharmacy (demo)"]),
                json!(LATIN_WORDS_IN_CHINESE),
            ],
        )
        .await?
        .json()
        .clone();
    driver
        .execute(
            "document.getElementById('leak-probe').remove(); return true;",
            Vec::<Value>::new(),
        )
        .await?;
    let leaks: Vec<String> = v["leaks"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    for want in [
        "\"Sign in again now\"",
        "\"Close the card\"",
        "\"Choose a pharmacy\"",
    ] {
        if !leaks.iter().any(|l| l.contains(want)) {
            bail!("the English-leak check missed {want}: {leaks:#?}");
        }
    }
    if leaks.iter().any(|l| {
        l.contains("Central") || l.contains("PNG") || l.contains("rx_0a1b") || l.contains("dr.ada")
    }) {
        bail!("the English-leak check reported data or allowed words: {leaks:#?}");
    }
    Ok(())
}
