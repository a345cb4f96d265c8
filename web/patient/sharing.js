// Patient page, sharing by consent: who may read this prescription, for how
// long, the organisations asking for access, and sharing with one more.
// The QR payload in the fragment is the credential, as on the rest of the
// page. Every sentence is in STRINGS so it can move to a catalogue.

import { post, el, setChildren, say, withBusy, errorText, fmtDate, fmtDateTime } from "/assets/api.js";

const STRINGS = {
  title: "Sharing",
  intro: "You decide who else may read this prescription, including your name. Share it with an insurer, a home-care service or another hospital for a period, and stop sharing whenever you like.",
  unread: "Stopping sharing stops any further reading on every member's system. What was already read cannot be unread.",
  none: "You have not shared this prescription.",
  grantsTitle: "Shared with",
  requestsTitle: "Requests to read it",
  noRequests: "Nobody has asked to read it.",
  stateActive: "Can read until",
  stateRevoked: "You stopped sharing on",
  stateExpired: "Sharing ended on",
  revoke: "Stop sharing",
  revoking: "Stopping…",
  revoked: (org) => `${org} can no longer read this prescription.`,
  askedBy: (who, org) => `${who ? `${who}, ` : ""}${org} asks to read it until`,
  approve: "Allow",
  refuse: "Refuse",
  approving: "Allowing…",
  refusing: "Refusing…",
  approved: (org) => `${org} may now read this prescription.`,
  refusedDone: (org) => `You refused ${org}'s request.`,
  statusApproved: "allowed",
  statusRefused: "refused",
  shareTitle: "Share with an organisation",
  orgLabel: "Organisation",
  daysLabel: "For how many days",
  daysHint: (max) => `1 to ${max} days.`,
  share: "Share",
  sharing: "Sharing on the chain…",
  shared: (org, until) => `${org} may read this prescription until ${until}.`,
  badDays: (max) => `Enter a number of days from 1 to ${max}.`,
  loading: "Loading who may read it…",
  lookedTitle: "Who looked at this prescription",
  lookedIntro: "Every time someone opens your name or your prescription's details on this member's system, it is recorded here: who, for which organisation, when and why.",
  lookedNone: "Nobody has opened it yet.",
  lookedYou: "You (this page)",
  purposes: {
    patient_open: "opened this page",
    staff_list: "saw your name in their list",
    pharmacy_handover: "opened your hand-over to the pharmacy",
    fhir_export: "exported it with your identity",
    shared_read: "read what you shared",
    regulator_view: "looked at it for the regulator",
  },
};

const box = document.getElementById("sharing");
let payload = "";

function readPayload() {
  let h = location.hash.replace(/^#/, "");
  try {
    h = decodeURIComponent(h);
  } catch {
    // The node says what is wrong with it.
  }
  return h.trim();
}

async function load() {
  payload = readPayload();
  if (!payload || !box) {
    setChildren(box);
    return;
  }
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", id: "sharing-status" });
  setChildren(box, el("section", { class: "card" }, el("h2", {}, STRINGS.title), status));
  say(status, STRINGS.loading, "busy");
  try {
    const v = await post("/v1/patient/sharing", { payload });
    render(v);
  } catch (e) {
    // The main page already explains a bad or foreign link.
    if (e.code === "bad_qr_payload" || e.code === "wrong_secret") setChildren(box);
    else say(status, errorText(e), "error");
  }
}

function render(v, message) {
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true, id: "sharing-status" });
  const grants = el("ul", { class: "timeline", id: "grants" }, v.grants.length
    ? v.grants.map((g) => grantItem(g, status))
    : el("li", { class: "empty" }, STRINGS.none));
  const requests = el("ul", { class: "timeline", id: "requests" }, v.requests.length
    ? v.requests.map((r) => requestItem(r, status))
    : el("li", { class: "empty" }, STRINGS.noRequests));
  setChildren(box, el("section", { class: "card", "aria-labelledby": "sharing-title", id: "sharing-card" },
    el("h2", { id: "sharing-title" }, STRINGS.title),
    el("p", {}, STRINGS.intro),
    el("p", { class: "hint", id: "sharing-unread" }, STRINGS.unread),
    el("h3", {}, STRINGS.grantsTitle), grants,
    el("h3", {}, STRINGS.requestsTitle), requests,
    shareForm(v, status),
    status),
  el("section", { class: "card", "aria-labelledby": "looked-title", id: "looked-card" },
    el("h2", { id: "looked-title" }, STRINGS.lookedTitle),
    el("p", { class: "hint" }, STRINGS.lookedIntro),
    el("ol", { class: "timeline", id: "who-looked" })));
  if (message) say(status, message, "ok");
  loadLooked();
}

async function loadLooked() {
  const list = document.getElementById("who-looked");
  if (!list) return;
  try {
    const v = await post("/v1/patient/access", { payload });
    setChildren(list, v.reads.length
      ? [...v.reads].reverse().map((r) => el("li", { "data-purpose": r.purpose },
        el("time", { datetime: new Date(Number(r.at)).toISOString() }, fmtDateTime(r.at)),
        r.role === "patient" ? STRINGS.lookedYou : [el("strong", {}, r.name), r.org_name ? `, ${r.org_name}` : ""],
        ` ${STRINGS.purposes[r.purpose] || r.purpose}`))
      : el("li", { class: "empty" }, STRINGS.lookedNone));
  } catch (e) {
    setChildren(list, el("li", { class: "empty" }, errorText(e)));
  }
}

function grantItem(g, status) {
  const when = g.state === "active" ? [STRINGS.stateActive, g.until]
    : g.state === "revoked" ? [STRINGS.stateRevoked, g.revoked_at] : [STRINGS.stateExpired, g.until];
  const item = el("li", { "data-org": g.org, "data-state": g.state },
    el("strong", {}, g.org_name), ` — ${when[0]} ${fmtDate(when[1])}`);
  if (g.state === "active") {
    const btn = el("button", { type: "button", class: "btn btn-danger", id: `revoke-${g.org}` }, STRINGS.revoke);
    btn.addEventListener("click", () => act(btn, status, STRINGS.revoking, "/v1/patient/unshare", { payload, org: g.org }, STRINGS.revoked(g.org_name)));
    item.append(" ", btn);
  }
  return item;
}

function requestItem(r, status) {
  const item = el("li", { "data-org": r.org, "data-status": r.status },
    el("time", { datetime: new Date(Number(r.at)).toISOString() }, fmtDateTime(r.at)),
    `${STRINGS.askedBy(r.by_name, r.org_name)} ${fmtDate(r.until)}`);
  if (r.status === "pending") {
    const days = Math.max(1, Math.ceil((Number(r.until) - Date.now()) / 86400000));
    const yes = el("button", { type: "button", class: "btn btn-primary", id: `approve-${r.org}` }, STRINGS.approve);
    const no = el("button", { type: "button", class: "btn btn-quiet", id: `refuse-${r.org}` }, STRINGS.refuse);
    yes.addEventListener("click", () => act(yes, status, STRINGS.approving, "/v1/patient/share", { payload, org: r.org, days }, STRINGS.approved(r.org_name)));
    no.addEventListener("click", () => act(no, status, STRINGS.refusing, "/v1/patient/refuse-request", { payload, org: r.org }, STRINGS.refusedDone(r.org_name)));
    item.append(" ", el("span", { class: "actions" }, yes, " ", no));
  } else {
    item.append(` (${r.status === "approved" ? STRINGS.statusApproved : STRINGS.statusRefused})`);
  }
  return item;
}

async function act(btn, status, busy, path, body, done) {
  const ok = await withBusy(btn, status, busy, () => post(path, body));
  if (!ok) return;
  const v = await post("/v1/patient/sharing", { payload });
  render(v, done);
}

function shareForm(v, status) {
  const org = el("select", { id: "share-org", name: "org" },
    v.organisations.map((o) => el("option", { value: o.id }, o.name)));
  const days = el("input", { id: "share-days", name: "days", type: "number", min: "1", max: String(v.max_grant_days), value: "30", inputmode: "numeric" });
  const submit = el("button", { type: "submit", class: "btn btn-primary", id: "share" }, STRINGS.share);
  const form = el("form", { id: "share-form", novalidate: true },
    el("h3", {}, STRINGS.shareTitle),
    el("div", { class: "row" },
      el("div", { class: "field" }, el("label", { for: "share-org" }, STRINGS.orgLabel), org),
      el("div", { class: "field" }, el("label", { for: "share-days" }, STRINGS.daysLabel), days,
        el("p", { class: "hint" }, STRINGS.daysHint(v.max_grant_days)))),
    el("div", { class: "actions" }, submit));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const n = Number(days.value);
    if (!Number.isInteger(n) || n < 1 || n > v.max_grant_days) {
      say(status, STRINGS.badDays(v.max_grant_days), "error");
      days.setAttribute("aria-invalid", "true");
      days.focus();
      return;
    }
    const name = org.selectedOptions[0]?.textContent || org.value;
    const until = fmtDate(Date.now() + n * 86400000);
    await act(submit, status, STRINGS.sharing, "/v1/patient/share", { payload, org: org.value, days: n }, STRINGS.shared(name, until));
  });
  return form;
}

window.addEventListener("hashchange", load);
load();
