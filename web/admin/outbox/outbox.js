// The hospital's patient e-mail outbox (GET /v1/staff/outbox): queued, sent
// and failed messages, newest first. Addresses show their domain only.
import { get, el, setChildren, say, errorText, staffPage, fmtDateTime, t } from "/assets/api.js";
import { has } from "/assets/i18n.js";

staffPage({
  root: document.getElementById("app"),
  roles: ["admin"],
  userArea: document.getElementById("user-area"),
  start,
});

/** A mail's event or state in the page's words, its code kept in data-code. */
function label(group, code) {
  const key = `outbox.${group}.${code}`;
  return el("span", { "data-code": code }, has(key) ? t(key) : el("code", {}, code));
}

function when(ms) {
  return ms ? fmtDateTime(ms) : "—";
}

async function start() {
  const app = document.getElementById("app");
  const status = el("p", { class: "status", role: "status", "aria-live": "polite", hidden: true });
  const table = el("table", { class: "table", id: "outbox" });
  setChildren(app, status, table);
  say(status, t("outbox.loading_the_outbox"), "busy");
  try {
    const rows = await get("/v1/staff/outbox");
    say(status, rows.length ? "" : t("outbox.no_messages_yet"));
    setChildren(table,
      el("thead", {}, el("tr", {}, [t("outbox.prescription"), t("outbox.event"), t("outbox.state"), t("outbox.attempts"), t("outbox.to_domain"), t("outbox.queued"), t("outbox.sent"), t("outbox.last_error")].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows.map((r) => el("tr", { "data-state": r.state },
        el("td", {}, el("span", { class: "short-id" }, r.short_id)), el("td", {}, label("kind", r.kind)), el("td", {}, label("state", r.state)), el("td", {}, String(r.attempts)),
        el("td", {}, r.to_domain), el("td", {}, when(r.queued_at_ms)), el("td", {}, when(r.sent_at_ms)),
        // The mail server's own answer, verbatim (English, as it came).
        el("td", {}, r.last_error ? el("span", { class: "mono", lang: "en" }, r.last_error) : "")))));
  } catch (e) {
    say(status, errorText(e), "error");
  }
}
