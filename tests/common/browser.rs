//! What the browser tests share: the phone-width layout check run in the
//! page, and axe-core's accessibility check.

use std::path::PathBuf;

use anyhow::{bail, Context};
use serde_json::Value;
use thirtyfour::WebDriver;

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
/// `scripts/install-test-deps.sh` installs under `target/test-deps/`.
pub fn axe_source() -> anyhow::Result<String> {
    let path = std::env::var_os("RXCHAIN_AXE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target/test-deps/axe/node_modules/axe-core/axe.min.js")
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
