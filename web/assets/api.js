// rxchain web pages: the one place that talks to the node's HTTP API.
//
// Every call goes through `api()`, which sends and reads JSON, adds the
// session's CSRF token to state-changing calls, and turns any failure into an
// `ApiError` whose `message` is a sentence for people (the body's `message`,
// never raw JSON). The DOM helpers below build elements with textContent
// only, so nothing the server or a user typed is ever parsed as HTML.

import { t, tn, has, lang, locale, fmtNumber } from "/assets/i18n.js";

export { t, tn, lang, locale, fmtNumber };

/** A failed call: `status` 0 means the node could not be reached. */
export class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

// The CSRF token of the current staff session. It lives in memory only: a
// fresh one comes with every GET /v1/session, so a reload simply asks again.
let csrfToken = null;

/** Remembers the CSRF token sent with state-changing calls. */
export function setCsrf(token) {
  csrfToken = token || null;
}

const SAFE_METHODS = new Set(["GET", "HEAD"]);

// Idempotency keys. Every state-changing call carries an `Idempotency-Key`,
// one per user action: the node then signs at most one transaction for it,
// however often the call is repeated. A call whose outcome is unknown (the
// node unreachable, 503, a timeout) or still pending (202) keeps its key for
// a while, so doing the very same thing again (same method, path and body)
// is a retry of that action, not a second one: a second click on "Dispense"
// after a 503 records one dispense. Any definite answer forgets the key.
const KEY_MEMORY_MS = 10 * 60 * 1000;
const openActions = new Map();

/** A fresh idempotency key. */
function newKey() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** The key of an action: the remembered one if this is a retry, else a new one. */
function actionKey(action) {
  const now = Date.now();
  for (const [a, k] of openActions) if (k.until < now) openActions.delete(a);
  const open = openActions.get(action);
  return open ? open.key : newKey();
}

/** Whether an answer leaves the action's outcome unknown or pending. */
const UNSETTLED = (status) => status === 0 || status === 202 || status === 408 || status === 502 || status === 503 || status === 504;

/** Answers that the page retries by itself, at once, with the same key. */
const RETRY_NOW = (status) => status === 0 || status === 503;
const RETRY_DELAYS_MS = [400, 1200];

/**
 * Calls the API. `json` is sent as a JSON body; `body` (a Blob, File or
 * ArrayBuffer) is sent as is with `contentType`. Answers the parsed JSON,
 * the text of a non-JSON answer, or null for 204. A state-changing call
 * carries an `Idempotency-Key` (`idempotencyKey`, or one per action, see
 * above) and is retried with it after a 503 or a lost connection.
 */
export async function api(method, path, { json, body, contentType, signal, idempotencyKey } = {}) {
  if (SAFE_METHODS.has(method)) return (await call(method, path, { json, body, contentType, signal })).data;
  // Only a JSON body can be compared; an upload is always a new action.
  const action = json !== undefined ? `${method} ${path} ${JSON.stringify(json)}` : null;
  const key = idempotencyKey || (action ? actionKey(action) : newKey());
  for (let attempt = 0; ; attempt++) {
    try {
      const r = await call(method, path, { json, body, contentType, signal, key });
      if (action && r.status === 202) openActions.set(action, { key, until: Date.now() + KEY_MEMORY_MS });
      else if (action) openActions.delete(action);
      return r.data;
    } catch (e) {
      const status = e instanceof ApiError ? e.status : null;
      if (action && status !== null && UNSETTLED(status)) {
        openActions.set(action, { key, until: Date.now() + KEY_MEMORY_MS });
      } else if (action) {
        openActions.delete(action);
      }
      if (status !== null && RETRY_NOW(status) && attempt < RETRY_DELAYS_MS.length) {
        await new Promise((res) => setTimeout(res, RETRY_DELAYS_MS[attempt]));
        continue;
      }
      throw e;
    }
  }
}

/** One request; answers the parsed body (`data`) and the status. */
async function call(method, path, { json, body, contentType, signal, key }) {
  const headers = { Accept: "application/json" };
  if (key) headers["Idempotency-Key"] = key;
  let payload = body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(json);
  } else if (body !== undefined && contentType) {
    headers["Content-Type"] = contentType;
  }
  if (!SAFE_METHODS.has(method) && csrfToken) headers["x-csrf-token"] = csrfToken;
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: payload, credentials: "same-origin", signal });
  } catch (e) {
    if (e && e.name === "AbortError") throw e;
    throw new ApiError(0, "network", t("common.the_service_cannot_be_reached"), null);
  }
  if (resp.status === 204) return { status: 204, data: null };
  const type = resp.headers.get("content-type") || "";
  const text = await resp.text();
  let data = text;
  if (type.includes("json") && text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!resp.ok) {
    // A chain refusal carries its details (times as numbers): its
    // sentence is written here, with times in the viewer's own zone.
    const message = data && typeof data === "object" && typeof data.message === "string" && data.message
      ? errorSentence(code0(data), data.detail) || humanize(data.message)
      : fallbackMessage(resp.status);
    const code = data && typeof data === "object" && data.code ? data.code : `http_${resp.status}`;
    // A staff page whose session ended under it (disabled, revoked, reset
    // by an admin) says so on the sign-in form after its reload.
    if (resp.status === 401 && (code === "no_session" || code === "staff_revoked") && path !== "/v1/session") {
      try {
        sessionStorage.setItem("rxchain-session-ended", code);
      } catch {
        // Storage may be off; the form then simply appears.
      }
    }
    throw new ApiError(resp.status, code, message, data && typeof data === "object" ? data : null);
  }
  return { status: resp.status, data };
}

const code0 = (data) => (data && typeof data === "object" && data.code) || "";

/**
 * The sentence for a refusal, from its machine-readable `code` and, for a
 * chain rule, its structured `detail` (times in ms since the epoch, written
 * here in the viewer's zone; organisation ids as names). Answers null for a
 * code the catalogue does not know: the server's English `message` is then
 * shown as it came.
 */
export function errorSentence(code, detail) {
  const withDetail = !!(detail && typeof detail === "object" && detail.code);
  const c = (withDetail && detail.code) || code;
  if (!c || !has(`error.${c}`)) return null;
  // A code the server also sends without details (a plain HTTP refusal)
  // has a sentence without placeholders: `error.<code>.plain`.
  if (!withDetail && has(`error.${c}.plain`)) return t(`error.${c}.plain`);
  const params = {};
  for (const [k, v] of Object.entries(withDetail ? detail : {})) {
    if (k === "code") continue;
    if (["at", "from", "until"].includes(k)) params[k] = fmtDateTime(v);
    else if (["pharmacy", "org", "carrier"].includes(k)) params[k] = orgName(v) || "";
    else if (k === "item") params[k] = Number(v) + 1;
    // Delivery steps and hand-overs in the page's words, not the chain's.
    else if (["attempted", "last"].includes(k)) params[k] = v ? deliveryLabel(v) : "";
    else if (k === "hand_over") params[k] = has(`delivery.hand_over.${v}`) ? t(`delivery.hand_over.${v}`) : String(v);
    else if (v !== null && typeof v === "object") continue;
    else params[k] = v;
  }
  return t(`error.${c}`, params);
}

function fallbackMessage(status) {
  if (status === 401) return t("common.please_sign_in_again");
  if (status === 403) return t("common.you_are_not_allowed_to");
  if (status === 404) return t("common.this_was_not_found_on");
  if (status === 413) return t("common.the_file_is_too_large");
  if (status === 429) return t("common.too_many_attempts_wait_a");
  if (status >= 500) return t("common.the_service_had_a_problem", { status });
  return t("common.the_request_was_refused_status", { status });
}

export const get = (path, opts) => api("GET", path, opts);
export const post = (path, json, opts = {}) => api("POST", path, { ...opts, json });
export const del = (path, opts) => api("DELETE", path, opts);

/** Builds a query string from an object, skipping empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

// ---------------------------------------------------------------------------
// Consortium directory and wording

let orgs = new Map();
let orgsLoading = null;

let params = null;

/** Loads the consortium's organisations and chain parameters once (public API). */
export function loadOrgs() {
  if (!orgsLoading) {
    orgsLoading = get("/v1/consortium")
      .then((c) => {
        orgs = new Map((c.orgs || []).map((o) => [o.id, o]));
        params = c.params;
        return orgs;
      })
      .catch((e) => {
        orgsLoading = null;
        throw e;
      });
  }
  return orgsLoading;
}

/** The chain's parameters (validity windows), loaded by `loadOrgs`. */
export async function chainParams() {
  await loadOrgs();
  return params;
}

/** An organisation's display name, or its id while the directory is unknown. */
export function orgName(id) {
  if (!id) return "";
  const o = orgs.get(id);
  return o ? o.name : id;
}

/** An organisation's address, if known. */
export function orgAddress(id) {
  const o = orgs.get(id);
  return o ? o.address : "";
}

/**
 * Makes a server sentence readable: block times written as
 * `Timestamp(1767225600000)` become local dates, organisation ids become
 * names, and the sentence starts with a capital and ends with a full stop.
 */
export function humanize(message) {
  if (!message) return "";
  let m = String(message).replace(/Timestamp\((\d+)\)/g, (_, ms) => fmtDateTime(Number(ms)))
    // The chain's own sentences write block times as "2026-12-01 18:18 UTC".
    .replace(/\b(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}) UTC\b/g,
      (_, y, mo, d, h, mi) => fmtDateTime(Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi))));
  for (const [id, o] of orgs) {
    m = m.replace(new RegExp(`\\b${id.replace(/[-.]/g, "\\$&")}\\b`, "g"), o.name);
  }
  m = m.charAt(0).toUpperCase() + m.slice(1);
  if (!/[.!?]$/.test(m)) m += ".";
  return m;
}

/**
 * The sentence for a chain refusal whose details hold a time, written from
 * the structured details (`{code, at, pharmacy…}`, times in ms since the
 * epoch) so that it reads like every other time on the page. Answers null
 * for refusals without a time: their server sentence is used.
 */
export function refusalSentence(detail) {
  if (!detail || typeof detail !== "object" || !detail.code) return null;
  return errorSentence(detail.code, detail);
}

const dateFmt = new Intl.DateTimeFormat(locale, { day: "numeric", month: "short", year: "numeric" });
const dateTimeFmt = new Intl.DateTimeFormat(locale, {
  day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit",
});

/** A block time (ms since the epoch) as a local date. */
export function fmtDate(ms) {
  return ms || ms === 0 ? dateFmt.format(new Date(Number(ms))) : "";
}

/** A block time (ms since the epoch) as a local date and time. */
export function fmtDateTime(ms) {
  return ms || ms === 0 ? dateTimeFmt.format(new Date(Number(ms))) : "";
}

/** Today as YYYY-MM-DD in local time, optionally shifted by whole days. */
export function isoDay(offsetDays = 0) {
  const d = new Date();
  d.setDate(d.getDate() + offsetDays);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
}

const STATUS_LABELS = {
  issued: t("common.issued"),
  assigned: t("common.pharmacy_chosen"),
  claimed: t("common.claimed_by_pharmacy"),
  partially_dispensed: t("common.partly_dispensed"),
  completed: t("common.completed"),
  cancelled: t("common.cancelled"),
  expired: t("common.expired"),
};

/** A public status for people. */
export function statusLabel(s) {
  return STATUS_LABELS[s] || String(s || "").replace(/_/g, " ");
}

/** A status badge element. */
export function statusBadge(s) {
  return el("span", { class: `badge status-${s}` }, statusLabel(s));
}

const DELIVERY_LABELS = {
  ready_for_pickup: t("common.ready_for_pickup"),
  packed: t("common.packed"),
  dispatched: t("common.handed_to_the_courier"),
  out_for_delivery: t("common.out_for_delivery"),
  delivered: t("common.delivered"),
  failed: t("common.delivery_failed"),
  returned: t("common.returned_to_the_pharmacy"),
};

/** A delivery status for people. */
export function deliveryLabel(s) {
  return DELIVERY_LABELS[s] || String(s || "").replace(/_/g, " ");
}

// Why a delivery failed or came back, and how a parcel was handed over (the
// courier's proof of delivery), as the chain names them (docs/rules.md).
const PROBLEMS = ["no_one_home", "address_not_found", "refused", "damaged", "needs_hand_over_in_person", "other"];
const HAND_OVERS = ["to_patient", "to_household", "to_neighbour", "safe_place", "parcel_locker"];
const IN_PERSON = ["to_patient", "to_household"];

/** A delivery event for people: its status and, where it has one, why it
 *  failed or how it was handed over. */
export function deliveryText(d) {
  const detail = d.problem ? t(`delivery.problem.${d.problem}`) : d.hand_over ? t(`delivery.hand_over.${d.hand_over}`) : "";
  return detail ? t("delivery.status_with_detail", { status: deliveryLabel(d.status), detail }) : deliveryLabel(d.status);
}

/**
 * The detail a delivery step needs beside its status select: the reason for
 * "failed" and "returned", how it was handed over for "delivered" (only in
 * person for a controlled medicine). Returns `{ fields, value }`: the
 * fields to place in the form, and a function giving `{ problem, hand_over }`
 * for the step chosen.
 */
export function deliveryDetailFields(select, idPrefix, controlled) {
  const problem = el("select", { id: `${idPrefix}-problem`, name: "problem", required: true },
    el("option", { value: "" }, t("delivery.choose_reason")),
    PROBLEMS.map((v) => el("option", { value: v }, t(`delivery.problem.${v}`))));
  const handOver = el("select", { id: `${idPrefix}-hand-over`, name: "hand_over", required: true },
    el("option", { value: "" }, t("delivery.choose_hand_over")),
    HAND_OVERS
      .filter((v) => !controlled || IN_PERSON.includes(v))
      .map((v) => el("option", { value: v }, t(`delivery.hand_over.${v}`))));
  const problemField = el("div", { class: "field" }, el("label", { for: problem.id }, t("delivery.reason")), problem);
  const handOverField = el("div", { class: "field" },
    el("label", { for: handOver.id }, t("delivery.proof_of_delivery")), handOver,
    controlled ? el("p", { class: "hint" }, t("delivery.controlled_in_person")) : null);
  const sync = () => {
    const s = select.value;
    const needsProblem = s === "failed" || s === "returned";
    problemField.hidden = !needsProblem;
    problem.disabled = !needsProblem;
    handOverField.hidden = s !== "delivered";
    handOver.disabled = s !== "delivered";
  };
  select.addEventListener("change", sync);
  sync();
  const value = () => {
    const s = select.value;
    return {
      problem: s === "failed" || s === "returned" ? problem.value || null : null,
      hand_over: s === "delivered" ? handOver.value || null : null,
    };
  };
  return { fields: [problemField, handOverField], value };
}

/** Total allowed for item `i`, as the chain computes it (served with every
 *  prescription view). */
export function allowance(view, i) {
  return Number(view.allowance[i]);
}

/** "Amoxicillin 500 mg capsule" */
export function drugText(item) {
  return [item.name, item.strength, item.form].filter(Boolean).join(" ");
}

// ---------------------------------------------------------------------------
// DOM helpers

/**
 * Creates an element. `attrs` keys starting with "on" add listeners, `class`
 * sets className, `dataset` sets data-*, booleans toggle attributes; children
 * are nodes or text (null and false are skipped).
 */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k === "value") e.value = v;
    else if (v === true) e.setAttribute(k, "");
    else e.setAttribute(k, String(v));
  }
  append(e, children);
  return e;
}

function append(parent, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    parent.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function setChildren(parent, ...children) {
  parent.replaceChildren();
  append(parent, children);
}

/**
 * Shows a message in a status region (an element with role="status" or
 * aria-live). kind: "info", "busy", "ok" or "error"; empty text clears it.
 */
export function say(region, text, kind = "info") {
  if (!region) return;
  region.textContent = text || "";
  region.dataset.kind = text ? kind : "";
  region.hidden = !text;
}

/** The sentence to show for any thrown value. */
export function errorText(e) {
  if (e instanceof ApiError) return e.message;
  if (e && e.message) return t("common.something_went_wrong_in_this", { message: e.message });
  return t("common.something_went_wrong_try_again");
}

/**
 * Runs `fn` with `button` disabled and a busy message in `region`; shows
 * the error sentence if it fails. Answers fn's result, or undefined on error.
 */
export async function withBusy(button, region, busyText, fn) {
  if (button) {
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
  }
  say(region, busyText, "busy");
  try {
    const r = await fn();
    if (region && region.dataset.kind === "busy") say(region, "");
    return r;
  } catch (e) {
    say(region, errorText(e), "error");
    return undefined;
  } finally {
    if (button) {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  }
}

// ---------------------------------------------------------------------------
// Staff sessions

/** The current session, or null when signed out. */
export async function currentSession() {
  try {
    const s = await get("/v1/session");
    setCsrf(s.csrf);
    return s;
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 404)) return null;
    throw e;
  }
}

/** Signs in (with a one-time code when the account has a second factor); answers the session. */
export async function signIn(username, password, otp) {
  const s = await post("/v1/session", otp ? { username, password, otp } : { username, password });
  setCsrf(s.csrf);
  return s;
}

/** Changes the signed-in account's password; answers the session. */
export async function changePassword(currentPassword, newPassword) {
  const s = await post("/v1/session/password", { current_password: currentPassword, new_password: newPassword });
  setCsrf(s.csrf);
  return s;
}

/** The shortest password the node accepts (its password policy). */
export const MIN_PASSWORD_LENGTH = 12;

/** Signs out. */
export async function signOut() {
  try {
    await del("/v1/session");
  } finally {
    setCsrf(null);
  }
}

const ROLE_LABELS = {
  practitioner: t("common.role_doctor"),
  pharmacist: t("common.role_pharmacist"),
  regulator_officer: t("common.regulator_s_officer"),
  courier: t("common.role_courier"),
  org_admin: t("common.organisation_admin"),
  admin: t("common.staff_admin"),
  claims_reviewer: t("common.role_claims_reviewer"),
};

/** "a, b or c" in the page's language. */
export function orList(items) {
  return new Intl.ListFormat(locale, { type: "disjunction" }).format(items);
}

/** "a, b and c" in the page's language. */
export function andList(items) {
  return new Intl.ListFormat(locale, { type: "conjunction" }).format(items);
}

/** A role for people. */
export function roleLabel(r) {
  return ROLE_LABELS[r] || String(r || "").replace(/_/g, " ");
}

/**
 * Runs a staff page: shows the sign-in form in `root` until someone with one
 * of `roles` is signed in, fills the header's user area, then calls
 * `start(session)`. Signing out returns to the form.
 */
export async function staffPage({ root, roles, userArea, start }) {
  const status = el("p", { class: "status", role: "status", "aria-live": "polite", hidden: true });
  root.before(status);
  let session = null;
  say(status, t("common.checking_your_session"), "busy");
  try {
    session = await currentSession();
    say(status, "");
  } catch (e) {
    say(status, errorText(e), "error");
  }

  const showUser = (s) => {
    if (!userArea) return;
    if (!s) {
      userArea.replaceChildren();
      return;
    }
    const out = el("button", { type: "button", class: "btn btn-quiet", id: "sign-out" }, t("common.sign_out"));
    out.addEventListener("click", async () => {
      await withBusy(out, status, t("common.signing_out"), signOut);
      location.reload();
    });
    setChildren(userArea, el("span", { class: "who" }, el("strong", {}, s.name), " · ", s.org_name || s.org), out);
  };

  const showForm = () => {
    showUser(null);
    let ended = null;
    try {
      ended = sessionStorage.getItem("rxchain-session-ended");
      sessionStorage.removeItem("rxchain-session-ended");
    } catch {
      ended = null;
    }
    const wanted = orList(roles.map(roleLabel));
    const user = el("input", { id: "username", name: "username", autocomplete: "username", required: true, autocapitalize: "none", spellcheck: "false" });
    const pass = el("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
    const otp = el("input", { id: "otp", name: "otp", autocomplete: "one-time-code", inputmode: "numeric", pattern: "[0-9]{6}", maxlength: "6" });
    const otpField = el("div", { class: "field", hidden: true, id: "otp-field" },
      el("label", { for: "otp" }, t("common.code_from_your_authenticator_app")), otp);
    const err = el("p", { class: "status", role: "alert", hidden: true });
    const btn = el("button", { type: "submit", class: "btn btn-primary", id: "sign-in" }, t("common.sign_in"));
    const form = el("form", { class: "card signin", id: "signin-form", novalidate: true },
      el("h2", {}, t("common.sign_in")),
      ended ? el("p", { class: "status", id: "session-ended", role: "alert", dataset: { kind: "error" } },
        ended === "staff_revoked"
          ? t("common.your_session_has_ended_your")
          : t("common.your_session_has_ended_signed")) : null,
      el("p", { class: "hint" }, t("common.for_a_wanted_of_a", { wanted })),
      el("div", { class: "field" }, el("label", { for: "username" }, t("common.username")), user),
      el("div", { class: "field" }, el("label", { for: "password" }, t("common.password")), pass),
      otpField,
      err,
      el("div", { class: "actions" }, btn),
    );
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (!user.value.trim() || !pass.value) {
        say(err, t("common.enter_your_username_and_password"), "error");
        (user.value.trim() ? pass : user).focus();
        return;
      }
      let needsCode = false;
      const s = await withBusy(btn, err, t("common.signing_in"), async () => {
        try {
          return await signIn(user.value.trim(), pass.value, otpField.hidden ? undefined : otp.value.trim());
        } catch (e) {
          needsCode = e instanceof ApiError && e.code === "second_factor_required";
          throw e;
        }
      });
      if (s) enter(s);
      else if (needsCode) {
        otpField.hidden = false;
        otp.focus();
      } else pass.select();
    });
    setChildren(root, form);
    user.focus();
  };

  // A forced password change (first sign-in, or after a reset) comes
  // before the page itself, for every role.
  const showChange = (s) => {
    showUser(s);
    const current = el("input", { id: "current-password", type: "password", autocomplete: "current-password", required: true });
    const next = el("input", { id: "new-password", type: "password", autocomplete: "new-password", required: true, minlength: String(MIN_PASSWORD_LENGTH), "aria-describedby": "new-password-hint" });
    const again = el("input", { id: "new-password-again", type: "password", autocomplete: "new-password", required: true });
    const err = el("p", { class: "status", role: "alert", hidden: true });
    const btn = el("button", { type: "submit", class: "btn btn-primary", id: "change-password" }, t("common.change_password"));
    const form = el("form", { class: "card signin", id: "change-password-form", novalidate: true },
      el("h2", {}, t("common.choose_your_own_password")),
      el("p", { class: "hint" }, t("common.your_administrator_gave_you_an")),
      el("div", { class: "field" }, el("label", { for: "current-password" }, t("common.initial_password")), current),
      el("div", { class: "field" }, el("label", { for: "new-password" }, t("common.new_password")), next,
        el("p", { class: "hint", id: "new-password-hint" }, t("common.at_least_min_password_length", { MIN_PASSWORD_LENGTH }))),
      el("div", { class: "field" }, el("label", { for: "new-password-again" }, t("common.new_password_again")), again),
      err,
      el("div", { class: "actions" }, btn),
    );
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      if (next.value.length < MIN_PASSWORD_LENGTH) {
        say(err, t("common.the_new_password_needs_at", { MIN_PASSWORD_LENGTH }), "error");
        next.focus();
        return;
      }
      if (next.value !== again.value) {
        say(err, t("common.the_two_new_passwords_differ"), "error");
        again.select();
        return;
      }
      const changed = await withBusy(btn, err, t("common.changing_the_password"), () => changePassword(current.value, next.value));
      if (changed) enter(changed);
    });
    setChildren(root, form);
    current.focus();
  };

  const enter = (s) => {
    session = s;
    if (s.must_change_password) {
      showChange(s);
      return;
    }
    if (!roles.includes(s.role)) {
      showUser(s);
      setChildren(root, el("div", { class: "card", role: "alert" },
        el("h2", {}, t("common.this_page_is_not_for")),
        el("p", {}, t("common.you_are_signed_in_as", { role: roleLabel(s.role), roles: orList(roles.map(roleLabel)) })),
        el("p", {}, el("a", { href: "/" }, t("common.go_to_the_start_page")), t("common.or_sign_out_and_sign"))));
      return;
    }
    showUser(s);
    root.replaceChildren();
    start(s);
  };

  if (session) enter(session);
  else showForm();
}

/**
 * Wraps a table so that it scrolls on its own on narrow screens. While the
 * table is wider than its box, a hint under it says that it scrolls
 * (`data-scrolls="true"` on the wrapper), so no column is hidden unseen.
 */
export function tableWrap(table, label) {
  const wrap = el("div", { class: "table-wrap", role: "region", "aria-label": label, tabindex: "0" }, table);
  const hint = el("p", { class: "hint scroll-hint", "aria-hidden": "true", hidden: true }, t("common.scroll_sideways_to_see_every"));
  const box = el("div", { class: "table-box" }, wrap, hint);
  const sync = () => {
    const scrolls = wrap.scrollWidth > wrap.clientWidth + 1;
    wrap.dataset.scrolls = String(scrolls);
    hint.hidden = !scrolls;
  };
  if (typeof ResizeObserver === "function") {
    const ro = new ResizeObserver(sync);
    ro.observe(wrap);
    ro.observe(table);
  }
  requestAnimationFrame(sync);
  return box;
}

/** A table from column headers and rows of cells (nodes or text). */
export function table(headers, rows, { caption, className } = {}) {
  return el("table", { class: className },
    caption ? el("caption", {}, caption) : null,
    // A column of buttons still gets a header for screen readers.
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h || el("span", { class: "visually-hidden" }, t("common.actions")))))),
    el("tbody", {}, rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, c))))));
}

/** Repeats `fn` every `ms` while the page is visible; answers a stop function. */
export function poll(fn, ms) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    if (!document.hidden) {
      try {
        await fn();
      } catch {
        // fn shows its own errors; polling goes on.
      }
    }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  timer = setTimeout(tick, ms);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** Shows an SVG text (from our own API) as an image, never as markup. */
export function svgImage(svgText, alt, className = "qr") {
  const url = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(svgText)}`;
  return el("img", { src: url, alt, class: className });
}
