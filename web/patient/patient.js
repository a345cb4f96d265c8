// Patient page: the QR payload in the link's fragment (#RX1:…) is the only
// credential. It is sent to the node in a POST body, never in a URL, and is
// never shown on the page.

import {
  get, post, el, setChildren, say, withBusy, errorText, poll, loadOrgs, orgName,
  fmtDate, fmtDateTime, statusBadge, drugText, allowance, deliveryText,
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
  say(pageStatus, "Opening your prescription…", "busy");
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
          ? "This link does not belong to a prescription we know. Open it again from your doctor's message, or scan the QR code on your slip."
          : "This link is incomplete or was mistyped. Open it again from your doctor's message, or scan the QR code on your slip."),
        el("details", { class: "tech", id: "link-tech" }, el("summary", {}, "Technical details"), el("p", { class: "mono" }, errorText(e))));
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
  const btn = el("button", { type: "submit", class: "btn btn-primary" }, "Open");
  const form = el("form", { class: "card", id: "link-form" },
    el("h2", {}, again ? "Try your link again" : "Open your prescription"),
    el("p", {}, "Open this page from the link your doctor sent you, or scan the QR code on your slip with your phone's camera. You can also paste the link here."),
    el("div", { class: "field" }, el("label", { for: "link" }, "Your prescription link"), input),
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
    it.controlled ? [" ", el("span", { class: "badge badge-controlled" }, "Controlled")] : null,
    dosage[i] ? el("span", { class: "dose" }, dosage[i]) : null,
    rec.dispensed && rec.dispensed[i] ? el("span", { class: "dose" }, `Dispensed so far: ${rec.dispensed[i]} of ${allowance(rx, i)} ${it.unit}`) : null)));

  const details = el("section", { class: "card", "aria-labelledby": "rx-title" },
    el("h2", { id: "rx-title" }, "Prescription ", el("span", { class: "short-id" }, rx.short_id), " ", statusBadge(rx.public_status)),
    el("dl", { class: "facts" },
      el("dt", {}, "For"), el("dd", { id: "patient-name" }, patient.name || "", patient.birth_date ? el("span", { class: "hint" }, ` · born ${fmtDate(Date.parse(patient.birth_date)) || patient.birth_date}`) : ""),
      el("dt", {}, "Prescribed by"), el("dd", { id: "prescriber" }, rx.prescriber?.name || "Unknown prescriber", ", ", rx.hospital_name || orgName(rec.hospital)),
      el("dt", {}, "Issued"), el("dd", {}, fmtDateTime(rec.issued_at)),
      el("dt", {}, "Valid"), el("dd", { id: "validity" }, `${fmtDate(rec.valid_from)} to ${fmtDate(rec.valid_until)}`),
      rec.repeats ? [el("dt", {}, "Repeat fills"), el("dd", {}, String(rec.repeats))] : null),
    el("h3", {}, "Medicines"),
    drugs,
    content.notes ? el("p", { class: "hint" }, `Notes: ${content.notes}`) : null);

  const where = el("section", { class: "card", "aria-labelledby": "where-title", id: "where" });
  fillWhere(where);
  const timeline = el("section", { class: "card", "aria-labelledby": "tl-title" },
    el("h2", { id: "tl-title" }, "What has happened"),
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
      say(note, r.subscribed ? "Status e-mails are on." : "Status e-mails are off.");
    } catch (e) {
      box.checked = !box.checked;
      say(note, errorText(e), "error");
    }
  });
  return el("section", { class: "card", "aria-labelledby": "mail-title" },
    el("h2", { id: "mail-title" }, "E-mail"),
    el("label", { for: "email-status" }, box, " E-mail me when this prescription's status changes"),
    note);
}

function fillWhere(box) {
  const rx = opened.prescription;
  const rec = rx.record;
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true, id: "where-status" });
  const parts = [el("h2", { id: "where-title", tabindex: "-1" }, "Where to fill it")];

  // A pharmacy that returned the prescription: it is back with the patient
  // (docs/rules.md, "Release"), who is told and chooses again.
  const released = lastRelease(rx);
  if (released && !rec.fulfilment && rx.public_status === "issued") {
    parts.push(el("p", { class: "status", id: "released-note", dataset: { kind: "info" } },
      `${released.pharmacy} returned your prescription on ${fmtDateTime(released.at)} without filling it. `,
      "It is back with you: choose a pharmacy again, or take the code to any pharmacy."));
  }
  if (rec.fulfilment) {
    const f = rec.fulfilment;
    const p = opened.pharmacies?.find((x) => x.id === f.pharmacy);
    parts.push(el("p", { id: "choice" }, f.mode === "delivery"
      ? ["Home delivery by ", el("strong", {}, p?.name || orgName(f.pharmacy)), "."]
      : ["Pickup at ", el("strong", {}, p?.name || orgName(f.pharmacy)), p?.address ? `, ${p.address}` : "", "."]));
    // Until the pharmacy claims it, the patient may change their mind.
    if (rx.public_status === "assigned") {
      const change = el("button", { type: "button", class: "btn btn-quiet", id: "change-choice" }, "Choose another pharmacy");
      const slot = el("div", {}, el("p", { class: "hint" }, "You can change this until the pharmacy starts preparing it."), change);
      change.addEventListener("click", () => {
        setChildren(slot, chooseForm(status, f));
        slot.querySelector("input:checked")?.focus();
      });
      parts.push(slot);
    }
  } else if (rx.public_status === "issued") {
    parts.push(chooseForm(status));
  } else {
    parts.push(el("p", {}, "This prescription can no longer be sent to a pharmacy."));
  }

  if (CANCELLABLE.has(rx.public_status)) {
    const cancel = el("button", { type: "button", class: "btn btn-danger", id: "cancel" }, "Cancel this prescription");
    cancel.addEventListener("click", async () => {
      if (!window.confirm("Cancel this prescription? No pharmacy will be able to fill it afterwards.")) return;
      const ok = await withBusy(cancel, status, "Cancelling…", () => post("/v1/patient/cancel", { payload }));
      if (ok) {
        await refresh().catch(() => {});
        render();
        say(document.getElementById("where-status"), "Your prescription is cancelled.", "ok");
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
    if (h.kind === "release") found = { at: h.at, pharmacy: orgName(h.signer?.org) || "The pharmacy" };
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
    el("label", { for: "address" }, "Delivery address"), address,
    el("p", { class: "hint" }, "Encrypted so that only the pharmacy can read it."));
  const pharmacyLegend = el("legend", {}, "Pharmacy");
  const choices = pharmacies.map((p, i) => el("label", { class: "choice", for: `pharmacy-${p.id}` },
    el("input", { type: "radio", name: "pharmacy", value: p.id, id: `pharmacy-${p.id}`, checked: current ? p.id === current.pharmacy : i === 0 }),
    el("span", {}, el("strong", {}, p.name), el("span", { class: "sub" }, p.address))));
  const submit = el("button", { type: "submit", class: "btn btn-primary", id: "assign" }, "Confirm");

  const form = el("form", { id: "assign-form", novalidate: true },
    el("fieldset", {},
      el("legend", {}, "How do you want to get your medicine?"),
      el("label", { class: "choice", for: "mode-pickup" }, pickup, el("span", {}, "Pick it up at a pharmacy")),
      el("label", { class: "choice", for: "mode-delivery" }, delivery, el("span", {}, "Home delivery"))),
    el("fieldset", {}, pharmacyLegend, choices.length ? choices : el("p", { class: "empty" }, "No pharmacies are listed.")),
    addressField,
    el("div", { class: "actions" }, submit));

  const sync = () => {
    const isDelivery = delivery.checked;
    addressField.hidden = !isDelivery;
    pharmacyLegend.textContent = isDelivery ? "Pharmacy that delivers" : "Pharmacy for pickup";
  };
  pickup.addEventListener("change", sync);
  delivery.addEventListener("change", sync);
  sync();

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const mode = delivery.checked ? "delivery" : "pickup";
    const pharmacy = form.querySelector("input[name=pharmacy]:checked")?.value;
    if (!pharmacy) {
      say(status, "Choose a pharmacy.", "error");
      return;
    }
    if (mode === "delivery" && !address.value.trim()) {
      say(status, "Enter the delivery address.", "error");
      address.setAttribute("aria-invalid", "true");
      address.focus();
      return;
    }
    const body = { payload, mode, pharmacy, ...(mode === "delivery" ? { address: address.value.trim() } : {}) };
    const ok = await withBusy(submit, status, "Recording your choice on the chain…", () => post("/v1/patient/assign", body));
    if (!ok) return;
    await refresh().catch(() => {});
    render();
    const name = opened.pharmacies.find((p) => p.id === pharmacy)?.name || orgName(pharmacy);
    say(document.getElementById("where-status"),
      mode === "delivery" ? `Done: ${name} will deliver your medicine.` : `Done: your prescription is waiting for you at ${name}.`, "ok");
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
      if (code === "wrong_secret") return { at: h.at, cls: "refused", text: "Someone tried to use a code that is not yours for this prescription; it was refused." };
      return null;
    }
    switch (h.kind) {
      case "issue":
        return { at: h.at, text: `Issued by ${by.name || "the prescriber"}, ${rx.hospital_name || orgName(rec.hospital)}.` };
      case "assign": {
        assignSeen += 1;
        const f = rec.fulfilment;
        if (assignSeen === assigns && f) {
          return { at: h.at, text: f.mode === "delivery" ? `You chose home delivery by ${pharmacyName(f.pharmacy)}.` : `You chose pickup at ${pharmacyName(f.pharmacy)}.` };
        }
        return { at: h.at, text: "You chose where to fill it." };
      }
      case "claim":
        return { at: h.at, text: `${pharmacyName(by.org)} took the prescription to prepare it.` };
      case "release":
        return { at: h.at, text: `${pharmacyName(by.org)} returned the prescription without filling it; it came back to you to choose again.` };
      case "dispense": {
        const f = rec.fills?.[fill++];
        const what = f ? f.lines.map(([i, q]) => `${q} ${rec.items[i]?.unit || ""} ${rec.items[i]?.name || ""}`.trim()).join(", ") : "";
        return { at: h.at, text: `Dispensed at ${pharmacyName(f?.pharmacy || by.org)}${what ? `: ${what}` : ""}.` };
      }
      case "cancel":
        return { at: h.at, cls: "refused", text: by.role === "patient" ? "You cancelled the prescription." : `Cancelled by ${by.name || "the prescriber"}.` };
      case "delivery": {
        const d = rec.delivery?.[delivery++];
        return { at: h.at, cls: "delivery", text: d ? `${deliveryText(d)}.` : "Delivery update." };
      }
      default:
        return { at: h.at, text: kindLabel(h.kind) };
    }
  });
  const shown = entries.filter(Boolean);
  if (rec.completed_at) shown.push({ at: rec.completed_at, cls: "delivery", text: "Completed: everything has been dispensed." });
  if (rx.public_status === "expired") shown.push({ at: rec.valid_until, cls: "refused", text: "Expired without being filled." });
  shown.sort((a, b) => Number(a.at) - Number(b.at));
  setChildren(list, shown.map((e) => el("li", { class: e.cls || "" },
    el("time", { datetime: new Date(Number(e.at)).toISOString() }, fmtDateTime(e.at)), e.text)));
}

/** The patient's own refused request, in plain words. */
function patientRefusal(kind, code) {
  const what = { assign: "choose a pharmacy", cancel: "cancel the prescription" }[kind] || "change the prescription";
  const why = {
    claimed_cannot_change: "the pharmacy had already started preparing it",
    dispensed_cannot_cancel: "medicine had already been dispensed on it",
    already_dispensed: "it had already been dispensed",
    cancelled: "it was already cancelled",
    expired: "it had expired",
    not_yet_valid: "it was not valid yet",
    assigned_elsewhere: "it was already sent to another pharmacy",
    duplicate: "the same request had already been made",
  }[code];
  return why ? `You tried to ${what}, but this was not possible: ${why}.` : `You tried to ${what}, but this was not possible.`;
}

function kindLabel(kind) {
  return {
    issue: "issue", assign: "choice of pharmacy", claim: "claim", release: "release",
    dispense: "dispense", cancel: "cancel", delivery: "delivery update",
  }[kind] || String(kind || "").replace(/_/g, " ");
}

window.addEventListener("hashchange", open);
open();
