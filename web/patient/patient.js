// Patient page: the QR payload in the link's fragment (#RX1:…) is the only
// credential. It is sent to the node in a POST body, never in a URL, and is
// never shown on the page.

import {
  get, post, el, setChildren, say, withBusy, errorText, poll, loadOrgs, orgName,
  fmtDate, fmtDateTime, statusBadge, drugText, allowance, deliveryLabel, deliveryText, t, tn, locale,
} from "/assets/api.js";

const app = document.getElementById("app");
const pageStatus = document.getElementById("page-status");
const CANCELLABLE = new Set(["issued", "assigned"]);

let payload = "";
let opened = null;
let stopPolling = null;

function readPayload() {
  let h = location.hash.replace(/^#/, "");
  try {
    h = decodeURIComponent(h);
  } catch {
    // Keep the raw fragment; the node will say what is wrong with it.
  }
  return h.trim();
}

async function open() {
  stopPolling?.();
  payload = readPayload();
  if (!payload) {
    askForLink();
    return;
  }
  say(pageStatus, t("patient.opening_your_prescription"), "busy");
  try {
    // The directory turns organisation ids in the chain's sentences into names.
    [opened] = await Promise.all([post("/v1/patient/open", { payload }), loadOrgs().catch(() => null)]);
    say(pageStatus, "");
    render();
    stopPolling = poll(refresh, 6000);
  } catch (e) {
    const bad = e.code === "bad_qr_payload" || e.code === "wrong_secret";
    if (bad) {
      // Plain words first; the service's precise sentence is kept in a
      // closed "technical details" toggle for a call to the help desk.
      setChildren(pageStatus,
        el("span", { id: "link-problem" }, e.code === "wrong_secret"
          ? t("patient.this_link_does_not_belong")
          : t("patient.this_link_is_incomplete_or")),
        // The service's own sentence, verbatim and in English (marked so),
        // with its code: what a help desk asks for.
        el("details", { class: "tech", id: "link-tech" }, el("summary", {}, t("patient.technical_details")),
          el("p", { class: "mono" }, e.code, ": ", el("span", { lang: "en" }, e.body?.message || e.message))));
      pageStatus.dataset.kind = "error";
      pageStatus.hidden = false;
      askForLink(true);
    } else {
      say(pageStatus, errorText(e), "error");
    }
  }
}

function askForLink(again = false) {
  const input = el("input", { id: "link", type: "url", autocomplete: "off", spellcheck: "false" });
  const btn = el("button", { type: "submit", class: "btn btn-primary" }, t("patient.open"));
  const form = el("form", { class: "card", id: "link-form" },
    el("h2", {}, again ? t("patient.try_your_link_again") : t("patient.open_your_prescription")),
    el("p", {}, t("patient.open_this_page_from_the")),
    el("div", { class: "field" }, el("label", { for: "link" }, t("patient.your_prescription_link")), input),
    el("div", { class: "actions" }, btn));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const v = input.value.trim();
    const i = v.indexOf("#");
    location.hash = i >= 0 ? v.slice(i + 1) : v;
  });
  setChildren(app, form);
}

// Refreshes the public state; the sealed content does not change.
async function refresh() {
  const id = opened?.prescription?.record?.id;
  if (!id) return;
  const before = opened.prescription.public_status;
  const fresh = await get(`/v1/prescriptions/${encodeURIComponent(id)}`);
  opened.prescription = fresh;
  if (fresh.public_status !== before) render();
  else renderTimeline();
}

function render() {
  const rx = opened.prescription;
  const rec = rx.record;
  const content = opened.content || {};
  const patient = content.patient || {};
  const dosage = content.dosage || [];

  const drugs = el("ul", { class: "drugs", id: "drugs" }, rec.items.map((it, i) => el("li", {},
    el("strong", {}, drugText(it)),
    ` — ${it.quantity} ${it.unit}`,
    it.controlled ? [" ", el("span", { class: "badge badge-controlled" }, t("patient.controlled"))] : null,
    dosage[i] ? el("span", { class: "dose" }, dosage[i]) : null,
    rec.dispensed && rec.dispensed[i] ? el("span", { class: "dose" }, t("patient.dispensed_so_far_dispensed_of", { dispensed: rec.dispensed[i], rx: allowance(rx, i), unit: it.unit })) : null)));

  const details = el("section", { class: "card", "aria-labelledby": "rx-title" },
    el("h2", { id: "rx-title" }, t("patient.prescription"), el("span", { class: "short-id" }, rx.short_id), " ", statusBadge(rx.public_status)),
    el("dl", { class: "facts" },
      el("dt", {}, t("patient.for")), el("dd", { id: "patient-name" }, patient.name || "", patient.birth_date ? el("span", { class: "hint" }, t("patient.born_birth_date", { birth_date: fmtDate(Date.parse(patient.birth_date)) || patient.birth_date })) : ""),
      el("dt", {}, t("patient.prescribed_by")), el("dd", { id: "prescriber" }, rx.prescriber?.name || t("patient.unknown_prescriber"), ", ", rx.hospital_name || orgName(rec.hospital)),
      el("dt", {}, t("patient.issued")), el("dd", {}, fmtDateTime(rec.issued_at)),
      el("dt", {}, t("patient.valid")), el("dd", { id: "validity" }, t("patient.valid_from_to_valid_until", { valid_from: fmtDate(rec.valid_from), valid_until: fmtDate(rec.valid_until) })),
      rec.repeats ? [el("dt", {}, t("patient.repeat_fills")), el("dd", {}, String(rec.repeats))] : null),
    el("h3", {}, t("patient.medicines")),
    drugs,
    content.notes ? el("p", { class: "hint" }, t("patient.notes_notes", { notes: content.notes })) : null);

  const where = el("section", { class: "card", "aria-labelledby": "where-title", id: "where" });
  fillWhere(where);
  const timeline = el("section", { class: "card", "aria-labelledby": "tl-title" },
    el("h2", { id: "tl-title" }, t("patient.what_has_happened")),
    el("ol", { class: "timeline", id: "timeline" }));

  setChildren(app, el("div", { class: "grid grid-2-even" }, el("div", {}, details, where, emailSwitch(patient)), timeline));
  renderTimeline();
}

// Status e-mails for this prescription, on or off. Only the issuing
// hospital's node holds the address, so the switch is shown when the
// patient gave one; another node answers `no_email` and the switch says so.
function emailSwitch(patient) {
  if (!patient.email) return null;
  const box = el("input", { type: "checkbox", id: "email-status", checked: true });
  const note = el("span", { class: "hint", role: "status", "aria-live": "polite", id: "email-status-note" });
  box.addEventListener("change", async () => {
    try {
      const r = await post("/v1/patient/email", { payload, subscribed: box.checked });
      say(note, r.subscribed ? t("patient.status_e_mails_are_on") : t("patient.status_e_mails_are_off"));
    } catch (e) {
      box.checked = !box.checked;
      say(note, errorText(e), "error");
    }
  });
  return el("section", { class: "card", "aria-labelledby": "mail-title" },
    el("h2", { id: "mail-title" }, t("patient.email_heading")),
    el("label", { for: "email-status" }, box, t("patient.e_mail_me_when_this")),
    note);
}

function fillWhere(box) {
  const rx = opened.prescription;
  const rec = rx.record;
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true, id: "where-status" });
  const parts = [el("h2", { id: "where-title", tabindex: "-1" }, t("patient.where_to_fill_it"))];

  // A pharmacy that returned the prescription: it is back with the patient
  // (docs/rules.md, "Release"), who is told and chooses again.
  const released = lastRelease(rx);
  if (released && !rec.fulfilment && rx.public_status === "issued") {
    parts.push(el("p", { class: "status", id: "released-note", dataset: { kind: "info" } },
      t("patient.pharmacy_returned_your_prescription_on", { pharmacy: released.pharmacy, at: fmtDateTime(released.at) }),
      t("patient.it_is_back_with_you")));
  }
  if (rec.fulfilment) {
    const f = rec.fulfilment;
    const p = opened.pharmacies?.find((x) => x.id === f.pharmacy);
    parts.push(el("p", { id: "choice" }, f.mode === "delivery"
      ? [t("patient.home_delivery_by"), el("strong", {}, p?.name || orgName(f.pharmacy)), "."]
      : [t("patient.pickup_at"), el("strong", {}, p?.name || orgName(f.pharmacy)), p?.address ? `, ${p.address}` : "", "."]));
    // Until the pharmacy claims it, the patient may change their mind.
    if (rx.public_status === "assigned") {
      const change = el("button", { type: "button", class: "btn btn-quiet", id: "change-choice" }, t("patient.choose_another_pharmacy"));
      const slot = el("div", {}, el("p", { class: "hint" }, t("patient.you_can_change_this_until")), change);
      change.addEventListener("click", () => {
        setChildren(slot, chooseForm(status, f));
        slot.querySelector("input:checked")?.focus();
      });
      parts.push(slot);
    }
  } else if (rx.public_status === "issued") {
    parts.push(chooseForm(status));
  } else {
    parts.push(el("p", {}, t("patient.this_prescription_can_no_longer")));
  }

  if (CANCELLABLE.has(rx.public_status)) {
    const cancel = el("button", { type: "button", class: "btn btn-danger", id: "cancel" }, t("patient.cancel_this_prescription"));
    cancel.addEventListener("click", async () => {
      if (!window.confirm(t("patient.cancel_this_prescription_no_pharmacy"))) return;
      const ok = await withBusy(cancel, status, t("patient.cancelling"), () => post("/v1/patient/cancel", { payload }));
      if (ok) {
        await refresh().catch(() => {});
        render();
        say(document.getElementById("where-status"), t("patient.your_prescription_is_cancelled"), "ok");
      }
    });
    parts.push(el("div", { class: "actions" }, cancel));
  }
  parts.push(status);
  setChildren(box, parts);
}

/** The last applied release, if it came after the last applied choice. */
function lastRelease(rx) {
  let found = null;
  const history = [...(rx.history || [])].sort((a, b) => a.height - b.height || a.index - b.index);
  for (const h of history) {
    if (h.outcome?.result !== "applied") continue;
    if (h.kind === "release") found = { at: h.at, pharmacy: orgName(h.signer?.org) || t("patient.the_pharmacy") };
    else if (h.kind === "assign" || h.kind === "claim") found = null;
  }
  return found;
}

function chooseForm(status, current) {
  const pharmacies = opened.pharmacies || [];
  const wantDelivery = current?.mode === "delivery";
  const pickup = el("input", { type: "radio", name: "mode", value: "pickup", id: "mode-pickup", checked: !wantDelivery });
  const delivery = el("input", { type: "radio", name: "mode", value: "delivery", id: "mode-delivery", checked: wantDelivery });
  const address = el("textarea", { id: "address", name: "address", rows: "3", autocomplete: "street-address" });
  const addressField = el("div", { class: "field", hidden: true },
    el("label", { for: "address" }, t("patient.delivery_address")), address,
    el("p", { class: "hint" }, t("patient.encrypted_so_that_only_the")));
  const pharmacyLegend = el("legend", {}, t("patient.pharmacy"));
  const choices = pharmacies.map((p, i) => el("label", { class: "choice", for: `pharmacy-${p.id}` },
    el("input", { type: "radio", name: "pharmacy", value: p.id, id: `pharmacy-${p.id}`, checked: current ? p.id === current.pharmacy : i === 0 }),
    el("span", {}, el("strong", {}, p.name), el("span", { class: "sub" }, p.address))));
  const submit = el("button", { type: "submit", class: "btn btn-primary", id: "assign" }, t("patient.confirm"));

  const form = el("form", { id: "assign-form", novalidate: true },
    el("fieldset", {},
      el("legend", {}, t("patient.how_do_you_want_to")),
      el("label", { class: "choice", for: "mode-pickup" }, pickup, el("span", {}, t("patient.pick_it_up_at_a"))),
      el("label", { class: "choice", for: "mode-delivery" }, delivery, el("span", {}, t("patient.home_delivery")))),
    el("fieldset", {}, pharmacyLegend, choices.length ? choices : el("p", { class: "empty" }, t("patient.no_pharmacies_are_listed"))),
    addressField,
    el("div", { class: "actions" }, submit));

  const sync = () => {
    const isDelivery = delivery.checked;
    addressField.hidden = !isDelivery;
    pharmacyLegend.textContent = isDelivery ? t("patient.pharmacy_that_delivers") : t("patient.pharmacy_for_pickup");
  };
  pickup.addEventListener("change", sync);
  delivery.addEventListener("change", sync);
  sync();

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const mode = delivery.checked ? "delivery" : "pickup";
    const pharmacy = form.querySelector("input[name=pharmacy]:checked")?.value;
    if (!pharmacy) {
      say(status, t("patient.choose_a_pharmacy"), "error");
      return;
    }
    if (mode === "delivery" && !address.value.trim()) {
      say(status, t("patient.enter_the_delivery_address"), "error");
      address.setAttribute("aria-invalid", "true");
      address.focus();
      return;
    }
    const body = { payload, mode, pharmacy, ...(mode === "delivery" ? { address: address.value.trim() } : {}) };
    const ok = await withBusy(submit, status, t("patient.recording_your_choice_on_the"), () => post("/v1/patient/assign", body));
    if (!ok) return;
    await refresh().catch(() => {});
    render();
    const name = opened.pharmacies.find((p) => p.id === pharmacy)?.name || orgName(pharmacy);
    say(document.getElementById("where-status"),
      mode === "delivery" ? t("patient.done_name_will_deliver_your", { name }) : t("patient.done_your_prescription_is_waiting", { name }), "ok");
    document.getElementById("where-title")?.focus();
  });
  return form;
}

function renderTimeline() {
  const list = document.getElementById("timeline");
  if (!list) return;
  const rx = opened.prescription;
  const rec = rx.record;
  const pharmacyName = (id) => opened.pharmacies?.find((p) => p.id === id)?.name || orgName(id);
  const history = [...(rx.history || [])].sort((a, b) => a.height - b.height || a.index - b.index);
  let fill = 0;
  let delivery = 0;
  const assigns = history.filter((h) => h.kind === "assign" && h.outcome?.result === "applied").length;
  let assignSeen = 0;
  const entries = history.map((h) => {
    const by = h.signer || {};
    if (h.outcome?.result === "refused") {
      // Only what concerns the patient: their own requests that were
      // refused, and a code that does not match theirs. A pharmacy's own
      // refused steps are for staff and regulators, not for this page.
      const code = h.outcome.reason?.code;
      if (by.role === "patient") return { at: h.at, cls: "refused", text: patientRefusal(h.kind, code) };
      if (code === "wrong_secret") return { at: h.at, cls: "refused", text: t("patient.someone_tried_to_use_a") };
      return null;
    }
    switch (h.kind) {
      case "issue":
        return { at: h.at, text: t("patient.issued_by_name_hospital", { name: by.name || t("patient.the_prescriber"), hospital: rx.hospital_name || orgName(rec.hospital) }) };
      case "assign": {
        assignSeen += 1;
        const f = rec.fulfilment;
        if (assignSeen === assigns && f) {
          return { at: h.at, text: f.mode === "delivery" ? t("patient.you_chose_home_delivery_by", { pharmacy: pharmacyName(f.pharmacy) }) : t("patient.you_chose_pickup_at_pharmacy", { pharmacy: pharmacyName(f.pharmacy) }) };
        }
        return { at: h.at, text: t("patient.you_chose_where_to_fill") };
      }
      case "claim":
        return { at: h.at, text: t("patient.org_took_the_prescription_to", { org: pharmacyName(by.org) }) };
      case "release":
        return { at: h.at, text: t("patient.org_returned_the_prescription_without", { org: pharmacyName(by.org) }) };
      case "dispense": {
        const f = rec.fills?.[fill++];
        const what = f ? f.lines.map(([i, q]) => `${q} ${rec.items[i]?.unit || ""} ${rec.items[i]?.name || ""}`.trim()).join(", ") : "";
        return { at: h.at, text: t("patient.dispensed_at_org_what", { org: pharmacyName(f?.pharmacy || by.org), what: what ? `: ${what}` : "" }) };
      }
      case "cancel":
        return { at: h.at, cls: "refused", text: by.role === "patient" ? t("patient.you_cancelled_the_prescription") : t("patient.cancelled_by_name", { name: by.name || t("patient.the_prescriber") }) };
      case "delivery": {
        const d = rec.delivery?.[delivery++];
        return { at: h.at, cls: "delivery", text: d ? `${deliveryText(d)}.` : t("patient.delivery_update") };
      }
      case "request_access":
        return { at: h.at, text: t("patient.org_asked_to_see_it", { org: orgName(by.org) || t("patient.an_organisation") }) };
      default:
        return { at: h.at, text: kindLabel(h.kind) };
    }
  });
  const shown = entries.filter(Boolean);
  if (rec.completed_at) shown.push({ at: rec.completed_at, cls: "delivery", text: t("patient.completed_everything_has_been_dispensed") });
  if (rx.public_status === "expired") shown.push({ at: rec.valid_until, cls: "refused", text: t("patient.expired_without_being_filled") });
  shown.sort((a, b) => Number(a.at) - Number(b.at));
  setChildren(list, shown.map((e) => el("li", { class: e.cls || "" },
    el("time", { datetime: new Date(Number(e.at)).toISOString() }, fmtDateTime(e.at)), e.text)));
}

/** The patient's own refused request, in plain words. */
function patientRefusal(kind, code) {
  const what = { assign: t("patient.choose_a_pharmacy_2"), cancel: t("patient.cancel_the_prescription") }[kind] || t("patient.change_the_prescription");
  const why = {
    claimed_cannot_change: t("patient.the_pharmacy_had_already_started"),
    dispensed_cannot_cancel: t("patient.medicine_had_already_been_dispensed"),
    already_dispensed: t("patient.it_had_already_been_dispensed"),
    cancelled: t("patient.it_was_already_cancelled"),
    expired: t("patient.it_had_expired"),
    not_yet_valid: t("patient.it_was_not_valid_yet"),
    assigned_elsewhere: t("patient.it_was_already_sent_to"),
    duplicate: t("patient.the_same_request_had_already"),
  }[code];
  return why ? t("patient.you_tried_to_what_but", { what, why }) : t("patient.you_tried_to_what_but_2", { what });
}

function kindLabel(kind) {
  return {
    issue: t("patient.kind_issue"), assign: t("patient.choice_of_pharmacy"), claim: t("patient.kind_claim"), release: t("patient.kind_release"),
    dispense: t("patient.kind_dispense"), cancel: t("patient.kind_cancel"), delivery: t("patient.delivery_update_2"),
    hand_to_carrier: t("patient.kind_hand_to_carrier"), grant_access: t("patient.kind_grant_access"),
    revoke_access: t("patient.kind_revoke_access"), refuse_request: t("patient.kind_refuse_request"),
  }[kind] || String(kind || "").replace(/_/g, " ");
}

window.addEventListener("hashchange", open);
open();
