// Insurer page: the prescriptions patients shared with this insurer, with
// drug codes, quantities and what was dispensed, for reimbursement review;
// opening one while the grant lasts; asking a patient for access. Every
// sentence is in STRINGS so it can move to a catalogue.

import {
  get, post, el, setChildren, say, withBusy, errorText, staffPage, loadOrgs, orgName, fmtDate, statusBadge, tableWrap, t, tn, locale,
} from "/assets/api.js";

const STRINGS = {
  listTitle: t("insurer.shared_with_us"),
  intro: t("insurer.patients_share_a_prescription_with"),
  none: t("insurer.no_prescription_has_been_shared"),
  headers: [t("insurer.prescription"), t("insurer.issued"), t("insurer.hospital"), t("insurer.medicines"), t("insurer.dispensed"), t("insurer.status"), t("insurer.access"), ""],
  active: (d) => t("insurer.until_value", { value: d }),
  revoked: t("insurer.stopped_by_the_patient"),
  expired: t("insurer.ended"),
  open: t("insurer.open"),
  opening: t("insurer.opening"),
  patient: t("insurer.patient"),
  born: t("insurer.born"),
  identifier: t("insurer.insurance_number"),
  requestTitle: t("insurer.ask_a_patient_for_access"),
  idLabel: t("insurer.prescription_id"),
  daysLabel: t("insurer.for_how_many_days"),
  request: t("insurer.ask"),
  requesting: t("insurer.sending_the_request"),
  requested: t("insurer.the_patient_will_see_your"),
  loading: t("insurer.loading"),
};

staffPage({
  root: document.getElementById("app"),
  roles: ["claims_reviewer"],
  userArea: document.getElementById("user-area"),
  start,
});

function start() {
  const app = document.getElementById("app");
  loadOrgs().catch(() => {});
  const list = el("section", { class: "card", "aria-labelledby": "claims-title", id: "claims-card" });
  const detail = el("section", { class: "card", id: "shared-detail", hidden: true });
  const ask = el("section", { class: "card", "aria-labelledby": "request-title" });
  setChildren(app, list, detail, ask);
  loadClaims(list, detail);
  requestForm(ask);
}

async function loadClaims(card, detail) {
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", id: "claims-status" });
  setChildren(card, el("h2", { id: "claims-title" }, STRINGS.listTitle), el("p", {}, STRINGS.intro), status);
  say(status, STRINGS.loading, "busy");
  try {
    const v = await get("/v1/insurer/claims");
    say(status, "");
    if (!v.claims.length) {
      card.append(el("p", { class: "empty", id: "claims-empty" }, STRINGS.none));
      return;
    }
    const rows = v.claims.map((c) => {
      const access = c.grant.state === "active" ? STRINGS.active(fmtDate(c.grant.until))
        : c.grant.state === "revoked" ? STRINGS.revoked : STRINGS.expired;
      const open = el("button", { type: "button", class: "btn btn-quiet", disabled: c.grant.state !== "active" }, STRINGS.open);
      open.addEventListener("click", () => withBusy(open, status, STRINGS.opening, async () => showShared(detail, await get(`/v1/shared/${c.id}`))));
      return el("tr", { "data-id": c.id, "data-state": c.grant.state },
        el("td", {}, el("span", { class: "short-id" }, c.short_id)),
        el("td", {}, fmtDate(c.issued_at)),
        el("td", {}, orgName(c.hospital)),
        el("td", {}, c.lines.map((l) => el("div", {}, `${l.atc} ${l.name} × ${l.quantity} ${l.unit}`))),
        el("td", {}, c.lines.map((l) => el("div", {}, `${l.dispensed} ${l.unit}`))),
        el("td", {}, statusBadge(c.public_status)),
        el("td", { class: "access" }, access),
        el("td", {}, open));
    });
    card.append(tableWrap(el("table", { id: "claims" },
      el("thead", {}, el("tr", {}, STRINGS.headers.map((h) => el("th", { scope: "col" }, h || el("span", { class: "visually-hidden" }, t("common.actions")))))),
      el("tbody", {}, rows)), t("insurer.claims_table")));
  } catch (e) {
    say(status, errorText(e), "error");
  }
}

function showShared(card, v) {
  const p = v.content.patient;
  card.hidden = false;
  setChildren(card,
    el("h2", {}, v.prescription.short_id, " ", statusBadge(v.prescription.public_status)),
    el("dl", { class: "facts" },
      el("dt", {}, STRINGS.patient), el("dd", { id: "shared-patient" }, p.name, el("span", { class: "hint" }, ` · ${STRINGS.born} ${p.birth_date}`)),
      el("dt", {}, STRINGS.identifier), el("dd", {}, p.identifier)));
}

function requestForm(card) {
  const id = el("input", { id: "request-id", name: "id", autocomplete: "off", spellcheck: "false" });
  const days = el("input", { id: "request-days", name: "days", type: "number", min: "1", value: "30" });
  const submit = el("button", { type: "submit", class: "btn btn-primary", id: "request-submit" }, STRINGS.request);
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true });
  const form = el("form", { id: "request-form", novalidate: true },
    el("div", { class: "row" },
      el("div", { class: "field" }, el("label", { for: "request-id" }, STRINGS.idLabel), id),
      el("div", { class: "field" }, el("label", { for: "request-days" }, STRINGS.daysLabel), days)),
    el("div", { class: "actions" }, submit));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const ok = await withBusy(submit, status, STRINGS.requesting, () => post("/v1/consent/requests", { id: id.value.trim(), days: Number(days.value) }));
    if (ok) say(status, STRINGS.requested, "ok");
  });
  setChildren(card, el("h2", { id: "request-title" }, STRINGS.requestTitle), form, status);
}
