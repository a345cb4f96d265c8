// Patient page, sharing by consent: who may read this prescription, for how
// long, the organisations asking for access, and sharing with one more.
// The QR payload in the fragment is the credential, as on the rest of the
// page. Every sentence is in STRINGS so it can move to a catalogue.

import { post, el, setChildren, say, withBusy, errorText, fmtDate, fmtDateTime, t } from "/assets/api.js";

const STRINGS = {
  title: t("sharing.sharing"),
  intro: t("sharing.you_decide_who_else_may"),
  unread: t("sharing.stopping_sharing_stops_any_further"),
  none: t("sharing.you_have_not_shared_this"),
  grantsTitle: t("sharing.shared_with"),
  requestsTitle: t("sharing.requests_to_read_it"),
  noRequests: t("sharing.nobody_has_asked_to_read"),
  stateActive: t("sharing.can_read_until"),
  stateRevoked: t("sharing.you_stopped_sharing_on"),
  stateExpired: t("sharing.sharing_ended_on"),
  revoke: t("sharing.stop_sharing"),
  revoking: t("sharing.stopping"),
  revoked: (org) => t("sharing.org_can_no_longer_read", { org }),
  askedBy: (who, org) => t("sharing.who_org_asks_to_read", { who: who ? `${who}, ` : "", org }),
  approve: t("sharing.allow"),
  refuse: t("sharing.refuse"),
  approving: t("sharing.allowing"),
  refusing: t("sharing.refusing"),
  approved: (org) => t("sharing.org_may_now_read_this", { org }),
  refusedDone: (org) => t("sharing.you_refused_org_s_request", { org }),
  statusApproved: t("sharing.status_allowed"),
  statusRefused: t("sharing.status_refused"),
  shareTitle: t("sharing.share_with_an_organisation"),
  orgLabel: t("sharing.organisation"),
  daysLabel: t("sharing.for_how_many_days"),
  daysHint: (max) => t("sharing.1_to_value_days", { value: max }),
  share: t("sharing.share"),
  sharing: t("sharing.sharing_on_the_chain"),
  shared: (org, until) => t("sharing.org_may_read_this_prescription", { org, until }),
  badDays: (max) => t("sharing.enter_a_number_of_days", { value: max }),
  loading: t("sharing.loading_who_may_read_it"),
  lookedTitle: t("sharing.who_looked_at_this_prescription"),
  lookedIntro: t("sharing.every_time_someone_opens_your"),
  lookedNone: t("sharing.nobody_has_opened_it_yet"),
  lookedYou: t("sharing.you_this_page"),
  atNode: (node) => t("sharing.at_node", { node }),
  nodesTitle: t("sharing.every_node_was_asked"),
  nodeSays: {
    no_answer: (node, org) => t("sharing.node_did_not_answer", { node, org }),
    no_reads: (node, org) => t("sharing.node_no_reads", { node, org }),
    anchored: (node, org) => t("sharing.node_anchored", { node, org }),
    partly_anchored: (node, org) => t("sharing.node_partly_anchored", { node, org }),
    not_yet_anchored: (node, org) => t("sharing.node_not_yet_anchored", { node, org }),
    unchecked: (node, org) => t("sharing.node_unchecked", { node, org }),
    does_not_verify: (node, org) => t("sharing.node_does_not_verify", { node, org }),
  },
  purposes: {
    patient_open: t("sharing.opened_this_page"),
    staff_list: t("sharing.saw_your_name_in_their"),
    pharmacy_handover: t("sharing.opened_your_hand_over_to"),
    fhir_export: t("sharing.exported_it_with_your_identity"),
    shared_read: t("sharing.read_what_you_shared"),
    regulator_view: t("sharing.looked_at_it_for_the"),
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
    el("ol", { class: "timeline", id: "who-looked" }),
    el("p", { class: "hint", id: "who-looked-nodes-title", hidden: true }, STRINGS.nodesTitle),
    el("ul", { id: "who-looked-nodes", "aria-labelledby": "who-looked-nodes-title" })));
  if (message) say(status, message, "ok");
  loadLooked();
}

async function loadLooked() {
  const list = document.getElementById("who-looked");
  if (!list) return;
  try {
    const v = await post("/v1/patient/access", { payload });
    setChildren(list, v.reads.length
      ? [...v.reads].reverse().map((r) => el("li", { "data-purpose": r.purpose, "data-node": String(r.node) },
        el("time", { datetime: new Date(Number(r.at)).toISOString() }, fmtDateTime(r.at)),
        r.role === "patient" ? STRINGS.lookedYou : [el("strong", {}, r.name), r.org_name ? `, ${r.org_name}` : ""],
        ` ${STRINGS.purposes[r.purpose] || r.purpose} `,
        el("span", { class: "hint" }, STRINGS.atNode(r.node))))
      : el("li", { class: "empty" }, STRINGS.lookedNone));
    // Every node keeps its own log: say which answered, and how each one's
    // reads check against the log it anchored on the chain.
    const nodes = document.getElementById("who-looked-nodes");
    const nodesTitle = document.getElementById("who-looked-nodes-title");
    if (nodes && Array.isArray(v.nodes)) {
      nodesTitle.hidden = v.nodes.length === 0;
      setChildren(nodes, v.nodes.map((n) => el("li", {
        "data-node": String(n.node), "data-answered": String(n.answered), "data-check": n.check,
      }, (STRINGS.nodeSays[n.check] || STRINGS.nodeSays.unchecked)(n.node, n.org_name))));
    }
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
