//! The web pages' catalogues (`web/assets/i18n/en.js` and `zh.js`) and the
//! pages that use them.
//!
//! 1. Both catalogues have exactly the same keys, no empty value, and the
//!    same `{placeholders}` per key.
//! 2. No user-visible literal text in the pages outside the catalogues:
//!    - HTML (`web/**/*.html`): every text node is empty, punctuation,
//!      digits or the product's name, unless its element carries
//!      `data-i18n` (and then the text equals the English catalogue's);
//!      every user-visible attribute (`title`, `alt`, `placeholder`,
//!      `aria-label`, `aria-description`, `value` of buttons) is empty or
//!      named in the element's `data-i18n-attr`.
//!    - JavaScript (`web/**/*.js` but the catalogues): every string or
//!      template literal that reads as prose — two words with a space
//!      between, a capitalised word ("Open", "Loading…"), or Chinese — is a
//!      finding, unless it sits where no person reads it: an operand of
//!      `===`/`!==`, an object key, an import, an argument of a DOM or
//!      storage call that takes selectors, events or keys
//!      (`querySelector`, `addEventListener`, `setItem`, `t` …), or the
//!      value of a technical property (`class`, `style`, `pattern` …).
//!      A new English sentence added anywhere a page builds text (an `el()`
//!      child, `say()`, `textContent =`, `confirm()`, a table header, an
//!      `aria-label`) is therefore reported; the unit tests below prove it.
//! 3. Every key used in the pages (`t("x.y")`, `tn("x.y", n)`,
//!    `data-i18n="x.y"`, `data-i18n-attr`) exists; keys never used are
//!    reported (and fail the test, so that the catalogues hold no dead text).
//!    The refusal sentences `error.<code>` are looked up by the code the
//!    server sends (`errorSentence` in `web/assets/api.js`), so they count
//!    as used when that lookup exists.
//! 4. Every refusal code the server can send to a page (the chain's
//!    `Rejection` variants, the HTTP codes of `ApiError` and every
//!    `fn code()` in `src/` and `contracts/src/`, found by reading the
//!    sources) has an `error.<code>` sentence in both catalogues, so no page
//!    falls back to the server's English; a code also sent without the
//!    chain's details has a sentence without placeholders, or an
//!    `error.<code>.plain` form for that case.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn web() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("web")
}

/// A catalogue file: `export default { ...JSON... };` after comment lines.
fn catalogue(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap();
    let start = text.find('{').expect("a catalogue object");
    let end = text.rfind('}').expect("a catalogue object");
    serde_json::from_str(&text[start..=end]).unwrap_or_else(|e| {
        panic!(
            "{} is not a JSON object after `export default`: {e}",
            path.display()
        )
    })
}

fn placeholders(s: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = s;
    while let Some(i) = rest.find('{') {
        let after = &rest[i + 1..];
        match after.find('}') {
            Some(j)
                if after[..j]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && j > 0 =>
            {
                out.insert(after[..j].to_string());
                rest = &after[j + 1..];
            }
            _ => rest = after,
        }
    }
    out
}

/// A sentence with its `{placeholders}` taken out.
fn without_placeholders(s: &str) -> String {
    let mut out = s.to_string();
    for p in placeholders(s) {
        out = out.replace(&format!("{{{p}}}"), " ");
    }
    out
}

fn files(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, ext, out);
        } else if p.extension().is_some_and(|x| x == ext) {
            out.push(p);
        }
    }
    out.sort();
}

// ---------------------------------------------------------------------------
// JavaScript: a small tokenizer (strings, templates, comments, regexes)

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A string or template literal: its text with `${…}` as `{}`, its
    /// substitutions' source, and its line.
    Str {
        text: String,
        subs: Vec<String>,
        line: usize,
    },
    Ident(String),
    Punct(String),
    Other,
}

fn tokenize(src: &str) -> Vec<Tok> {
    let b: Vec<char> = src.chars().collect();
    let n = b.len();
    let mut toks = Vec::new();
    let mut i = 0;
    let line_at = |i: usize| b[..i].iter().filter(|&&c| c == '\n').count() + 1;
    while i < n {
        let c = b[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && i + 1 < n && b[i + 1] == '/' {
            while i < n && b[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && i + 1 < n && b[i + 1] == '*' {
            i += 2;
            while i + 1 < n && !(b[i] == '*' && b[i + 1] == '/') {
                i += 1;
            }
            i += 2;
        } else if c == '"' || c == '\'' {
            let start = i;
            i += 1;
            let mut text = String::new();
            while i < n && b[i] != c {
                if b[i] == '\\' && i + 1 < n {
                    i += 1;
                }
                text.push(b[i]);
                i += 1;
            }
            i += 1;
            toks.push(Tok::Str {
                text,
                subs: vec![],
                line: line_at(start),
            });
        } else if c == '`' {
            let start = i;
            i += 1;
            let mut text = String::new();
            let mut subs = Vec::new();
            while i < n && b[i] != '`' {
                if b[i] == '\\' && i + 1 < n {
                    text.push(b[i + 1]);
                    i += 2;
                    continue;
                }
                if b[i] == '$' && i + 1 < n && b[i + 1] == '{' {
                    let s = i + 2;
                    let mut depth = 1;
                    i += 2;
                    while i < n && depth > 0 {
                        match b[i] {
                            '{' => depth += 1,
                            '}' => depth -= 1,
                            q @ ('"' | '\'' | '`') => {
                                i += 1;
                                while i < n && b[i] != q {
                                    if b[i] == '\\' {
                                        i += 1;
                                    }
                                    i += 1;
                                }
                            }
                            _ => {}
                        }
                        i += 1;
                    }
                    subs.push(b[s..i - 1].iter().collect());
                    text.push_str("{}");
                    continue;
                }
                text.push(b[i]);
                i += 1;
            }
            i += 1;
            toks.push(Tok::Str {
                text,
                subs,
                line: line_at(start),
            });
        } else if c == '/' && regex_allowed(toks.last()) {
            i += 1;
            let mut class = false;
            while i < n && (b[i] != '/' || class) {
                match b[i] {
                    '\\' => i += 1,
                    '[' => class = true,
                    ']' => class = false,
                    _ => {}
                }
                i += 1;
            }
            i += 1;
            while i < n && b[i].is_ascii_alphabetic() {
                i += 1;
            }
            toks.push(Tok::Other);
        } else if c.is_alphabetic() || c == '_' || c == '$' {
            let s = i;
            while i < n && (b[i].is_alphanumeric() || b[i] == '_' || b[i] == '$') {
                i += 1;
            }
            toks.push(Tok::Ident(b[s..i].iter().collect()));
        } else if c.is_ascii_digit() {
            while i < n && (b[i].is_ascii_alphanumeric() || b[i] == '.') {
                i += 1;
            }
            toks.push(Tok::Other);
        } else {
            let ops = [
                "===", "!==", "...", "=>", "==", "!=", "&&", "||", "??", "?.", "<=", ">=",
            ];
            let rest: String = b[i..(i + 3).min(n)].iter().collect();
            let op = ops
                .iter()
                .find(|o| rest.starts_with(**o))
                .map_or(c.to_string(), |o| o.to_string());
            i += op.chars().count();
            toks.push(Tok::Punct(op));
        }
    }
    toks
}

fn regex_allowed(prev: Option<&Tok>) -> bool {
    match prev {
        None => true,
        Some(Tok::Punct(p)) => !matches!(p.as_str(), ")" | "]" | "}"),
        Some(Tok::Ident(w)) => matches!(w.as_str(), "return" | "typeof" | "case" | "in" | "of"),
        _ => false,
    }
}

/// Whether a literal's text reads as something for people.
fn is_prose(text: &str) -> bool {
    let bare = text.replace("{}", "");
    if bare.chars().any(|c| ('\u{3400}'..='\u{9fff}').contains(&c)) {
        return true;
    }
    let has_word = bare
        .as_bytes()
        .windows(2)
        .any(|w| w[0].is_ascii_alphabetic() && w[1].is_ascii_alphabetic());
    if has_word && text.chars().any(char::is_whitespace) {
        return true;
    }
    // A single capitalised word, maybe hyphenated, maybe ending in
    // punctuation: "Open", "Walk-in", "Loading…".
    let w = bare
        .trim()
        .trim_start_matches('+')
        .trim()
        .trim_end_matches(['.', '…', ':', '!', '?']);
    let mut cs = w.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_uppercase())
        && w.len() >= 2
        && cs.all(|c| c.is_ascii_lowercase() || c == '-')
}

/// Properties whose values are for the machine, never read by people.
const TECH_KEYS: &[&str] = &[
    "class",
    "className",
    "style",
    "pattern",
    "accept",
    "autocomplete",
    "aria-describedby",
    "aria-labelledby",
    "aria-controls",
    "preserveAspectRatio",
    "viewBox",
    "d",
    "points",
    "transform",
];
/// Calls whose string arguments are selectors, events, keys or paths.
const TECH_CALLS: &[&str] = &[
    "querySelector",
    "querySelectorAll",
    "closest",
    "getElementById",
    "matches",
    "add",
    "remove",
    "toggle",
    "contains",
    "addEventListener",
    "removeEventListener",
    "getItem",
    "setItem",
    "removeItem",
    "createElement",
    "t",
    "tn",
    "has",
    "fetch",
    "startsWith",
    "endsWith",
    "includes",
    "split",
    "join",
    "replace",
    "get",
    "post",
    "del",
    "api",
    "toBlob",
    "getContext",
    "padStart",
    "Set",
    "DateTimeFormat",
    "NumberFormat",
    "ListFormat",
    "URLSearchParams",
    "getAttribute",
    "removeAttribute",
    "hasAttribute",
    "error",
    "warn",
    "log",
];
/// Assignments whose right side is for the machine.
const TECH_ASSIGN: &[&str] = &[
    "className",
    "id",
    "type",
    "href",
    "download",
    "kind",
    "srcObject",
    "value",
    "lang",
    "hash",
];

fn punct(t: Option<&Tok>, p: &str) -> bool {
    matches!(t, Some(Tok::Punct(x)) if x == p)
}

/// Why the literal at `k` is not read by people, or None if it may be.
fn excluded(toks: &[Tok], k: usize) -> Option<&'static str> {
    let prev = k.checked_sub(1).and_then(|j| toks.get(j));
    let next = toks.get(k + 1);
    let cmp = |t: Option<&Tok>| ["===", "!==", "==", "!="].iter().any(|p| punct(t, p));
    if cmp(prev) || cmp(next) {
        return Some("comparison");
    }
    if punct(next, ":") && (punct(prev, "{") || punct(prev, ",")) {
        return Some("object key");
    }
    if matches!(prev, Some(Tok::Ident(w)) if w == "from" || w == "import") {
        return Some("import");
    }
    let mut depth = 0i32;
    let mut j = k;
    while j > 0 {
        j -= 1;
        if let Tok::Punct(p) = &toks[j] {
            match p.as_str() {
                ")" | "]" | "}" => depth += 1,
                "(" | "[" | "{" if depth > 0 => depth -= 1,
                "(" => {
                    return match j.checked_sub(1).map(|x| &toks[x]) {
                        Some(Tok::Ident(f)) if TECH_CALLS.contains(&f.as_str()) => {
                            Some("technical call")
                        }
                        _ => None,
                    };
                }
                "[" | "{" => return None,
                ":" if depth == 0
                    && j >= 2
                    && (punct(toks.get(j - 2), "{") || punct(toks.get(j - 2), ",")) =>
                {
                    return match &toks[j - 1] {
                        Tok::Ident(key) | Tok::Str { text: key, .. }
                            if TECH_KEYS.contains(&key.as_str()) =>
                        {
                            Some("technical property")
                        }
                        _ => None,
                    };
                }
                "," | ";" if depth == 0 => return None,
                "=" if depth == 0 => {
                    return match &toks[j - 1] {
                        Tok::Ident(a) if TECH_ASSIGN.contains(&a.as_str()) => {
                            Some("technical assignment")
                        }
                        _ => None,
                    };
                }
                _ => {}
            }
        }
    }
    None
}

/// Prose literals in a script: `(line, text)`, substitutions included.
fn js_findings(src: &str) -> Vec<(usize, String)> {
    let toks = tokenize(src);
    let mut out = Vec::new();
    for (k, t) in toks.iter().enumerate() {
        if let Tok::Str { text, subs, line } = t {
            if is_prose(text) && excluded(&toks, k).is_none() {
                out.push((*line, text.clone()));
            }
            for s in subs {
                out.extend(js_findings(s).into_iter().map(|(l, x)| (line + l - 1, x)));
            }
        }
    }
    out
}

/// Catalogue keys a script uses: `t("k"…)` and `tn("k"…)`.
fn js_keys(src: &str) -> Vec<String> {
    let toks = tokenize(src);
    let mut out = Vec::new();
    for w in toks.windows(3) {
        if let [Tok::Ident(f), Tok::Punct(p), Tok::Str { text, subs, .. }] = w {
            if (f == "t" || f == "tn") && p == "(" && subs.is_empty() {
                out.push(text.clone());
            }
        }
    }
    // Keys inside template substitutions too.
    for t in &toks {
        if let Tok::Str { subs, .. } = t {
            for s in subs {
                out.extend(js_keys(s));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// HTML: tags, attributes and text nodes

/// Attributes people read (or hear).
const VISIBLE_ATTRS: &[&str] = &[
    "title",
    "alt",
    "placeholder",
    "aria-label",
    "aria-description",
    "value",
];
/// Words that are the same in every language: the product's name.
const NAMES: &[&str] = &["rxchain", "Rx"];

struct Html {
    /// `(line, text, data-i18n of the enclosing element)`.
    texts: Vec<(usize, String, Option<String>)>,
    /// `(line, tag, attribute, value, data-i18n-attr of the element)`.
    attrs: Vec<(usize, String, String, String, Option<String>)>,
}

fn parse_html(src: &str) -> Html {
    let mut texts = Vec::new();
    let mut attrs = Vec::new();
    // The data-i18n of each open element.
    let mut stack: Vec<(String, Option<String>)> = Vec::new();
    let mut i = 0;
    let line_at = |i: usize| src[..i].matches('\n').count() + 1;
    const VOID: &[&str] = &[
        "meta", "link", "br", "img", "input", "hr", "source", "!doctype",
    ];
    while i < src.len() {
        if src[i..].starts_with("<!--") {
            i += src[i..].find("-->").map_or(src.len() - i, |e| e + 3);
            continue;
        }
        if src[i..].starts_with('<') {
            let end = i + src[i..].find('>').expect("a closed tag");
            let inner = &src[i + 1..end];
            if let Some(name) = inner.strip_prefix('/') {
                let name = name.trim().to_ascii_lowercase();
                while let Some((open, _)) = stack.pop() {
                    if open == name {
                        break;
                    }
                }
            } else {
                let (name, rest) = inner.split_once(char::is_whitespace).unwrap_or((inner, ""));
                let name = name.trim_end_matches('/').to_ascii_lowercase();
                let parsed = parse_attrs(rest);
                let get = |k: &str| parsed.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
                let input_type = get("type").unwrap_or_default();
                for (a, v) in &parsed {
                    let visible = VISIBLE_ATTRS.contains(&a.as_str())
                        && (a != "value"
                            || matches!(input_type.as_str(), "button" | "submit" | "reset"));
                    if visible {
                        attrs.push((
                            line_at(i),
                            name.clone(),
                            a.clone(),
                            v.clone(),
                            get("data-i18n-attr"),
                        ));
                    }
                }
                if name == "script" || name == "style" {
                    let close = format!("</{name}>");
                    i = end + src[end..].find(&close).unwrap_or(0);
                    continue;
                }
                if !VOID.contains(&name.as_str()) && !inner.ends_with('/') {
                    stack.push((name, get("data-i18n")));
                }
            }
            i = end + 1;
            continue;
        }
        let next = src[i..].find('<').map_or(src.len(), |e| i + e);
        let text = &src[i..next];
        if !text.trim().is_empty() {
            let key = stack.last().and_then(|(_, k)| k.clone());
            texts.push((
                line_at(i),
                text.split_whitespace().collect::<Vec<_>>().join(" "),
                key,
            ));
        }
        i = next;
    }
    Html { texts, attrs }
}

fn parse_attrs(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = s.trim().trim_end_matches('/');
    while !rest.is_empty() {
        let name_end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let name = rest[..name_end].to_ascii_lowercase();
        rest = rest[name_end..].trim_start();
        let mut value = String::new();
        if let Some(r) = rest.strip_prefix('=') {
            let r = r.trim_start();
            if let Some(q) = r.chars().next().filter(|c| *c == '"' || *c == '\'') {
                let close = r[1..].find(q).map_or(r.len(), |e| e + 1);
                value = r[1..close].to_string();
                rest = r.get(close + 1..).unwrap_or("").trim_start();
            } else {
                let e = r.find(char::is_whitespace).unwrap_or(r.len());
                value = r[..e].to_string();
                rest = r[e..].trim_start();
            }
        }
        if !name.is_empty() {
            out.push((name, value));
        }
    }
    out
}

/// Text that needs no translation: punctuation, digits, the product's name.
fn neutral(text: &str) -> bool {
    text.split_whitespace()
        .all(|w| NAMES.contains(&w) || w.chars().all(|c| !c.is_alphabetic()))
}

fn unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
}

/// Findings in a page, and the keys it uses.
fn html_findings(src: &str, en: &BTreeMap<String, String>) -> (Vec<String>, Vec<String>) {
    let h = parse_html(src);
    let mut bad = Vec::new();
    let mut keys = Vec::new();
    for (line, text, key) in &h.texts {
        match key {
            Some(k) => {
                keys.push(k.clone());
                if let Some(v) = en.get(k) {
                    if unescape(text) != v.split_whitespace().collect::<Vec<_>>().join(" ") {
                        bad.push(format!("line {line}: the text {text:?} differs from the English catalogue's {k} = {v:?}"));
                    }
                }
            }
            None if neutral(text) => {}
            None => bad.push(format!(
                "line {line}: literal text without data-i18n: {text:?}"
            )),
        }
    }
    for (line, tag, attr, value, map) in &h.attrs {
        let mapped = map.as_deref().and_then(|m| {
            m.split(';')
                .filter_map(|p| p.split_once(':'))
                .find(|(a, _)| a.trim() == attr)
                .map(|(_, k)| k.trim().to_string())
        });
        match mapped {
            Some(k) => keys.push(k),
            None if value.trim().is_empty() || neutral(value) => {}
            None => bad.push(format!(
                "line {line}: <{tag} {attr}={value:?}> without data-i18n-attr"
            )),
        }
    }
    (bad, keys)
}

// ---------------------------------------------------------------------------
// The checks

fn load() -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let dir = web().join("assets/i18n");
    (catalogue(&dir.join("en.js")), catalogue(&dir.join("zh.js")))
}

#[test]
fn both_catalogues_have_the_same_keys_values_and_placeholders() {
    let (en, zh) = load();
    assert!(
        en.len() > 100,
        "the English catalogue is nearly empty: {}",
        en.len()
    );
    let ek: BTreeSet<_> = en.keys().collect();
    let zk: BTreeSet<_> = zh.keys().collect();
    let only_en: Vec<_> = ek.difference(&zk).collect();
    let only_zh: Vec<_> = zk.difference(&ek).collect();
    assert!(
        only_en.is_empty() && only_zh.is_empty(),
        "keys in one catalogue only: en {only_en:?}, zh {only_zh:?}"
    );
    let mut bad = Vec::new();
    for (k, e) in &en {
        let z = &zh[k];
        if e.trim().is_empty() || z.trim().is_empty() {
            bad.push(format!("{k}: an empty value"));
        }
        if placeholders(e) != placeholders(z) {
            bad.push(format!(
                "{k}: placeholders differ: en {:?}, zh {:?}",
                placeholders(e),
                placeholders(z)
            ));
        }
        // A Chinese value that is the English one is untranslated, unless
        // it is a name, a code or a language's own name.
        let same_ok = k.starts_with("lang.")
            || e.chars().any(|c| ('\u{3400}'..='\u{9fff}').contains(&c))
            || !without_placeholders(e)
                .split_whitespace()
                .any(|w| w.len() > 3 && w.chars().all(|c| c.is_ascii_lowercase()));
        if e == z && !same_ok {
            bad.push(format!("{k}: the Chinese value is the English one: {e:?}"));
        }
    }
    assert!(bad.is_empty(), "catalogue problems:\n{}", bad.join("\n"));
}

#[test]
fn no_visible_literal_text_and_every_used_key_exists() {
    let (en, _) = load();
    let mut findings = Vec::new();
    let mut used = BTreeSet::new();
    let mut js = Vec::new();
    files(&web(), "js", &mut js);
    let mut error_lookup = false;
    for f in &js {
        if f.parent().is_some_and(|p| p.ends_with("i18n")) {
            continue;
        }
        let src = std::fs::read_to_string(f).unwrap();
        let rel = f.strip_prefix(web()).unwrap().display().to_string();
        for (line, text) in js_findings(&src) {
            findings.push(format!(
                "{rel}:{line}: literal text outside the catalogue: {text:?}"
            ));
        }
        error_lookup |= src.contains("t(`error.${");
        used.extend(js_keys(&src));
    }
    let mut html = Vec::new();
    files(&web(), "html", &mut html);
    assert!(html.len() >= 9, "expected every page, found {html:?}");
    for f in &html {
        let src = std::fs::read_to_string(f).unwrap();
        let rel = f.strip_prefix(web()).unwrap().display().to_string();
        let (bad, keys) = html_findings(&src, &en);
        findings.extend(bad.into_iter().map(|b| format!("{rel}: {b}")));
        used.extend(keys);
    }
    assert!(
        findings.is_empty(),
        "user-visible text outside the catalogues:\n{}",
        findings.join("\n")
    );

    // 3. Every key used exists (a `tn` key has `.one` and `.other` forms).
    let exists = |k: &str| {
        en.contains_key(k)
            || (en.contains_key(&format!("{k}.one")) && en.contains_key(&format!("{k}.other")))
    };
    let missing: Vec<_> = used.iter().filter(|k| !exists(k)).collect();
    assert!(
        missing.is_empty(),
        "keys used by the pages but not in the catalogues: {missing:?}"
    );
    // The language switch's keys are built from the language codes.
    assert!(
        error_lookup,
        "web/assets/api.js should look refusal sentences up as error.<code>"
    );
    let unused: Vec<_> = en
        .keys()
        .filter(|k| {
            let base = k.strip_suffix(".one").or_else(|| k.strip_suffix(".other")).unwrap_or(k);
            !used.contains(*k) && !used.contains(base) && !k.starts_with("error.") && !k.starts_with("lang.")
                // Looked up by the chain's delivery codes (web/assets/api.js).
                && !k.starts_with("delivery.problem.") && !k.starts_with("delivery.hand_over.")
                // Looked up by the outbox's event and state codes (web/admin/outbox/outbox.js).
                && !k.starts_with("outbox.kind.") && !k.starts_with("outbox.state.")
        })
        .collect();
    assert!(unused.is_empty(), "catalogue keys no page uses: {unused:?}");
}

// ---------------------------------------------------------------------------
// The checker itself can fail: pages with a literal sentence are reported.

#[test]
fn the_js_checker_reports_a_new_english_sentence() {
    let page = r#"
        import { el, say, t } from "/assets/api.js";
        const b = el("button", { class: "btn btn-primary", id: "go" }, t("x.go"));
        say(status, "The prescription was sent to the pharmacy.", "ok");
        node.textContent = `Dispensed ${n} capsules`;
        const h = el("th", { scope: "col" }, "Batch");
        const a = el("div", { "aria-label": "Delivery address" });
        if (e.key === "Enter") confirm("Really release it?");
        const c = el("p", {}, ok ? t("x.ok") : "Nothing more to do");
        const l = el("span", {}, `${count} ${t("x.items")} left over`);
    "#;
    let found: Vec<String> = js_findings(page).into_iter().map(|(_, t)| t).collect();
    for want in [
        "The prescription was sent to the pharmacy.",
        "Dispensed {} capsules",
        "Batch",
        "Delivery address",
        "Really release it?",
        "Nothing more to do",
        "{} {} left over",
    ] {
        assert!(
            found.iter().any(|f| f == want),
            "{want:?} was not reported; found {found:?}"
        );
    }
    // Class lists, ids, keys, imports and comparisons are not text.
    for not in [
        "btn btn-primary",
        "go",
        "x.go",
        "Enter",
        "/assets/api.js",
        "col",
        "ok",
    ] {
        assert!(
            !found.iter().any(|f| f == not),
            "{not:?} is not visible text, yet reported: {found:?}"
        );
    }
    let keys = js_keys(page);
    assert_eq!(keys, ["x.go", "x.ok", "x.items"]);
}

#[test]
fn the_html_checker_reports_literal_text_and_attributes() {
    let en: BTreeMap<String, String> = [("p.hello".to_string(), "Hello".to_string())].into();
    let page = r#"<!doctype html><html lang="en"><head><title>Doctor — rxchain</title>
        <script type="module">const x = "not text";</script></head>
        <body><a class="brand" href="/"><span class="mark" aria-hidden="true">Rx</span> rxchain</a>
        <h1 data-i18n="p.hello">Hello</h1><p data-i18n="p.hello">Hullo</p>
        <input placeholder="Type a name"><button title="" aria-label="Close">×</button>
        <img alt="QR" data-i18n-attr="alt:p.hello"><p>A new sentence for people.</p><!-- a comment --> · 2</body></html>"#;
    let (bad, keys) = html_findings(page, &en);
    let all = bad.join("\n");
    for want in [
        "\"Doctor — rxchain\"",
        "A new sentence for people.",
        "Type a name",
        "Close",
        "differs from the English catalogue",
    ] {
        assert!(all.contains(want), "{want:?} was not reported:\n{all}");
    }
    assert_eq!(bad.len(), 5, "exactly the five problems:\n{all}");
    assert_eq!(keys, ["p.hello", "p.hello", "p.hello"]);
}

#[test]
fn placeholders_are_compared() {
    assert_eq!(
        placeholders("Dispensed {count} of {name}; {} {x y}"),
        BTreeSet::from(["count".to_string(), "name".to_string()])
    );
}

// ---------------------------------------------------------------------------
// 4. Every refusal code the server can send has a sentence in both
//    catalogues, so that no page falls back to the server's English.

/// The files whose codes never reach a page: node-to-node RPC and its
/// authentication, TLS handshakes, and the Rust client's own errors.
const NOT_SENT_TO_PAGES: &[&str] = &[
    "src/raft/",
    "src/tls.rs",
    "src/client.rs",
    "src/http/cluster/auth.rs",
];

/// A code: lowercase letters, digits and underscores.
fn is_code(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// The string literal starting at `s` (which begins with `"`), if any.
fn literal(s: &str) -> Option<&str> {
    let rest = s.strip_prefix('"')?;
    rest.find('"').map(|j| &rest[..j])
}

/// `CamelCase` as `snake_case`.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// The codes a Rust source file sends (outside its `#[cfg(test)]` module),
/// each with whether it can come without the chain's details (a plain HTTP
/// refusal, so no `{placeholders}` can be filled):
/// - the variants of the chain's `Rejection` (its `tagged_in_json!` list),
///   which come with their details;
/// - `ApiError::bad("code", …)` and the other constructors, and
///   `code: "code"` fields;
/// - the `=> "code"` arms of every `fn code(&self) -> &'static str`.
fn sent_codes(src: &str) -> Vec<(String, bool)> {
    let src = src.split("#[cfg(test)]").next().unwrap_or(src);
    let mut out = Vec::new();
    if let Some(i) = src.find("tagged_in_json!(Rejection,") {
        let body = &src[i..];
        let open = body.find('{').unwrap();
        let close = body.find("});").unwrap();
        for line in body[open + 1..close].lines() {
            let name: String = line
                .trim()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            if name.starts_with(|c: char| c.is_ascii_uppercase()) {
                out.push((snake(&name), false));
            }
        }
    }
    for ctor in [
        "bad",
        "not_found",
        "unauthorized",
        "forbidden",
        "conflict",
        "unprocessable",
    ] {
        let pat = format!("ApiError::{ctor}(");
        for (i, _) in src.match_indices(&pat) {
            if let Some(c) = literal(src[i + pat.len()..].trim_start()).filter(|c| is_code(c)) {
                out.push((c.to_string(), true));
            }
        }
    }
    for (i, _) in src.match_indices("code: \"") {
        if let Some(c) = literal(&src[i + 6..]).filter(|c| is_code(c)) {
            out.push((c.to_string(), true));
        }
    }
    for (i, _) in src.match_indices("fn code(&self) -> &'static str {") {
        let body = &src[i..];
        let end = body.find("\n    }").unwrap_or(body.len());
        for (j, _) in body[..end].match_indices("=> \"") {
            if let Some(c) = literal(&body[j + 3..end]).filter(|c| is_code(c)) {
                out.push((c.to_string(), true));
            }
        }
    }
    out
}

#[test]
fn every_refusal_code_the_server_sends_has_a_sentence_in_both_catalogues() {
    let (en, zh) = load();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut rs = Vec::new();
    files(&root.join("src"), "rs", &mut rs);
    files(&root.join("contracts/src"), "rs", &mut rs);
    // code -> (where, whether it can come without details)
    let mut codes: BTreeMap<String, (BTreeSet<String>, bool)> = BTreeMap::new();
    for f in &rs {
        let rel = f.strip_prefix(&root).unwrap().display().to_string();
        if NOT_SENT_TO_PAGES.iter().any(|p| rel.starts_with(p)) {
            continue;
        }
        for (code, plain) in sent_codes(&std::fs::read_to_string(f).unwrap()) {
            let e = codes.entry(code).or_default();
            e.0.insert(rel.clone());
            e.1 |= plain;
        }
    }
    // "relayed" names a leader's answer passed on unchanged (its own code).
    codes.remove("relayed");
    for must in [
        "already_dispensed",
        "wrong_role",
        "delivery_out_of_order",
        "bad_qr_payload",
        "no_session",
        "bad_signature",
    ] {
        assert!(
            codes.contains_key(must),
            "the code scan missed {must}: {:?}",
            codes.keys()
        );
    }
    assert!(
        codes.len() > 120,
        "the code scan found too few codes: {}",
        codes.len()
    );
    let mut missing = Vec::new();
    for (code, (wher, plain)) in &codes {
        let key = format!("error.{code}");
        for (lang, cat) in [("en", &en), ("zh", &zh)] {
            match cat.get(&key) {
                None => missing.push(format!("{lang}: no {key} (sent by {wher:?})")),
                // Sent without details somewhere: its sentence has nothing
                // to fill in, or a `.plain` form for that case.
                Some(s) if *plain && !placeholders(s).is_empty() && !cat.contains_key(&format!("{key}.plain")) => {
                    missing.push(format!("{lang}: {key} has placeholders but {code} is also sent without details (by {wher:?}); add {key}.plain"))
                }
                Some(_) => {}
            }
        }
    }
    assert!(
        missing.is_empty(),
        "refusal codes without a sentence:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_code_scan_finds_rejections_http_codes_and_code_fns() {
    let src = r#"
        crate::encoding::tagged_in_json!(Rejection, "Rejection", "code", {
            Duplicate,
            WrongRole { role: String, action: String },
        });
        fn f() -> ApiError { ApiError::bad(
            "bad_days", "no") }
        fn g() -> ApiError { ApiError::NotFound { code: "unknown_tx", message: m } }
        impl E { pub fn code(&self) -> &'static str {
            match self { E::A => "too_short", E::B => "Not A Code" }
        }
        }
        #[cfg(test)]
        mod tests { fn h() { ApiError::bad("only_in_tests", "x"); } }
    "#;
    let mut got = sent_codes(src);
    got.sort();
    assert_eq!(
        got,
        [
            ("bad_days".to_string(), true),
            ("duplicate".to_string(), false),
            ("too_short".to_string(), true),
            ("unknown_tx".to_string(), true),
            ("wrong_role".to_string(), false),
        ]
    );
}
