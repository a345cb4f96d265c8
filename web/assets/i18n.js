// rxchain web pages: the language of the page (English or Simplified
// Chinese) and its catalogue of sentences.
//
// Every sentence a page shows comes from one catalogue per language
// (web/assets/i18n/en.js and zh.js, the same keys in both; tests/i18n.rs
// checks them and the pages). Static HTML carries `data-i18n="key"` (the
// element's text) and `data-i18n-attr="aria-label:key;title:key"`; scripts
// call `t("key", {param})`. The language is the one chosen with the switch
// in the header (remembered in this browser's localStorage), else the
// browser's own: Chinese for any zh-* language, otherwise English.

import en from "/assets/i18n/en.js";
import zh from "/assets/i18n/zh.js";

const CATALOGUES = { en, zh };
const STORE_KEY = "rxchain-lang";
const RESTORE_KEY = "rxchain-lang-restore";

function chosenLanguage() {
  try {
    const saved = localStorage.getItem(STORE_KEY);
    if (saved && CATALOGUES[saved]) return saved;
  } catch {
    // Storage may be off: the browser's language decides.
  }
  const wanted = (navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || "en"]);
  for (const l of wanted) {
    const tag = String(l).toLowerCase();
    if (tag.startsWith("zh")) return "zh";
    if (tag.startsWith("en")) return "en";
  }
  return "en";
}

/** The page's language: "en" or "zh". */
export const lang = chosenLanguage();
/** The BCP 47 locale for Intl formatting and <html lang>. */
export const locale = lang === "zh" ? "zh-CN" : "en";

const catalogue = CATALOGUES[lang];
const numberFmt = new Intl.NumberFormat(locale);

/**
 * The sentence for `key` in the page's language, with `{name}` replaced by
 * `params.name` (numbers formatted for the locale). An unknown key is a bug:
 * it is shown as the key itself, and logged.
 */
export function t(key, params) {
  let s = catalogue[key];
  if (s === undefined) {
    console.error(`rxchain i18n: no sentence for ${key}`);
    return key;
  }
  if (params) {
    s = s.replace(/\{(\w+)\}/g, (m, name) => {
      if (!(name in params)) return m;
      const v = params[name];
      if (v === null || v === undefined) return "";
      return typeof v === "number" ? numberFmt.format(v) : String(v);
    });
  }
  return s;
}

/** `t` for a count: the key's `.one` form for 1, else its `.other` form. */
export function tn(key, count, params = {}) {
  return t(`${key}.${Number(count) === 1 ? "one" : "other"}`, { count, ...params });
}

/** Whether the catalogue has `key` (for sentences chosen by a server code). */
export function has(key) {
  return Object.prototype.hasOwnProperty.call(catalogue, key);
}

/** A number for people, in the page's locale. */
export function fmtNumber(n) {
  return numberFmt.format(Number(n));
}

/** Translates the static HTML under `root`: data-i18n and data-i18n-attr. */
export function applyStatic(root = document) {
  for (const e of root.querySelectorAll("[data-i18n]")) e.textContent = t(e.dataset.i18n);
  for (const e of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of e.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":").map((x) => x.trim());
      if (attr && key) e.setAttribute(attr, t(key));
    }
  }
}

// What the person typed survives the reload a switch makes: the values of
// the fields on screen (never passwords or files) are kept for this tab and
// put back into the same fields as the page builds them again. A field
// inside an element marked `data-restore-scope` (a pharmacist's card, by
// prescription id) goes back only into the same scope: a batch number typed
// for one prescription never lands on another's card.
const keepers = [];
let kept = null;

/**
 * Registers `save`, called as a switch reloads the page: the object it
 * answers is handed back, once, to the reloaded page by `keptOnSwitch()`
 * (the pharmacist page keeps the prescription on screen this way).
 */
export function keepOnSwitch(save) {
  keepers.push(save);
}

/** What the page kept with `keepOnSwitch` before the switch, once; else null. */
export function keptOnSwitch() {
  const k = kept;
  kept = null;
  return k;
}

const scopeOf = (f) => f.closest("[data-restore-scope]")?.dataset.restoreScope || "";

function saveFields() {
  const saved = {};
  for (const f of document.querySelectorAll("input[id], textarea[id], select[id]")) {
    if (f.type === "password" || f.type === "file" || f.type === "hidden") continue;
    saved[f.id] = f.type === "checkbox" || f.type === "radio" ? { checked: f.checked } : { value: f.value };
    saved[f.id].scope = scopeOf(f);
  }
  const extra = Object.assign({}, ...keepers.map((k) => k() || {}));
  try {
    sessionStorage.setItem(RESTORE_KEY, JSON.stringify({ path: location.pathname, fields: saved, extra }));
  } catch {
    // Storage off: the switch still works, the fields start empty.
  }
}

function restoreFields() {
  let state = null;
  try {
    state = JSON.parse(sessionStorage.getItem(RESTORE_KEY) || "null");
    sessionStorage.removeItem(RESTORE_KEY);
  } catch {
    state = null;
  }
  if (!state || state.path !== location.pathname || !state.fields) return;
  kept = state.extra || null;
  const left = new Map(Object.entries(state.fields));
  const fill = () => {
    for (const [id, v] of left) {
      const f = document.getElementById(id);
      if (!f || scopeOf(f) !== (v.scope || "")) continue;
      if ("checked" in v) f.checked = v.checked;
      else f.value = v.value;
      f.dispatchEvent(new Event("input", { bubbles: true }));
      f.dispatchEvent(new Event("change", { bubbles: true }));
      left.delete(id);
    }
    if (!left.size) observer.disconnect();
  };
  const observer = new MutationObserver(fill);
  observer.observe(document.body, { childList: true, subtree: true });
  fill();
  // Fields that never come back (a card no longer shown) are let go.
  setTimeout(() => observer.disconnect(), 15000);
}

/** Switches the page to `next` ("en" or "zh"), remembered in this browser. */
export function setLanguage(next) {
  if (!CATALOGUES[next] || next === lang) return;
  saveFields();
  try {
    localStorage.setItem(STORE_KEY, next);
  } catch {
    // Without storage the choice lasts for this page only.
  }
  location.reload();
}

/** The English / 中文 switch, for the page header. */
function languageSwitch() {
  const box = document.createElement("div");
  box.className = "lang-switch";
  box.id = "lang-switch";
  box.setAttribute("role", "group");
  box.setAttribute("aria-label", t("lang.switch_label"));
  for (const [code, tag] of [["en", "en"], ["zh", "zh-CN"]]) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "btn btn-quiet btn-small";
    b.id = `lang-${code}`;
    b.lang = tag;
    b.textContent = t(`lang.name_${code}`);
    b.setAttribute("aria-pressed", String(code === lang));
    b.addEventListener("click", () => setLanguage(code));
    box.append(b);
  }
  return box;
}

document.documentElement.lang = locale;
applyStatic();
const bar = document.querySelector(".topbar-inner");
if (bar && !document.getElementById("lang-switch")) bar.append(languageSwitch());
restoreFields();
