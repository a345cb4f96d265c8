// Doctor page: write and sign a prescription, hand over its QR code, print
// the patient's slip, and follow "My prescriptions" with live status.

import {
  ApiError, get, post, el, setChildren, say, withBusy, errorText, staffPage, poll,
  fmtDate, fmtDateTime, statusBadge, drugText, svgImage, query, chainParams, loadOrgs, orgAddress,
} from "/assets/api.js";

const CANCELLABLE = new Set(["issued", "assigned"]);

staffPage({
  root: document.getElementById("app"),
  roles: ["practitioner"],
  userArea: document.getElementById("user-area"),
  start,
});

async function start(session) {
  // The chain's validity windows; the form shows them, never copies of them.
  const app = document.getElementById("app");
  let params;
  try {
    params = await chainParams();
    await loadOrgs();
  } catch (e) {
    setChildren(app, el("p", { class: "error", role: "alert" }, `Cannot load the chain's parameters: ${errorText(e)}`));
    return;
  }
  const issueCard = el("section", { class: "card", "aria-labelledby": "issue-title" });
  const listCard = el("section", { class: "card", "aria-labelledby": "mine-title" });
  setChildren(app, el("div", { class: "grid grid-2" }, issueCard, listCard));
  const list = myPrescriptions(listCard);
  issueForm(issueCard, session, list.refresh, params);
}

// ---------------------------------------------------------------------------
// The issue form

function issueForm(card, session, onIssued, params) {
  const CONTROLLED_DAYS = params.controlled_validity_days;
  const DEFAULT_DAYS = params.default_validity_days;
  let nextItem = 0;
  let validTouched = false;
  const rows = [];

  const itemsBox = el("div", { id: "items" });
  const addBtn = el("button", { type: "button", class: "btn btn-quiet", id: "add-item" }, "+ Add another medicine");
  const repeats = el("input", { id: "repeats", name: "repeats", type: "number", min: "0", max: "12", step: "1", value: "0", inputmode: "numeric" });
  const validDays = el("input", { id: "valid-days", name: "valid_days", type: "number", min: "1", max: String(params.max_validity_days), step: "1", value: String(DEFAULT_DAYS), inputmode: "numeric", "aria-describedby": "valid-hint" });
  const validHint = el("p", { class: "hint", id: "valid-hint" }, `Others default to ${DEFAULT_DAYS} days; controlled drugs to ${CONTROLLED_DAYS} days.`);
  const pName = el("input", { id: "patient-name", name: "patient_name", autocomplete: "off", required: true });
  const pBirth = el("input", { id: "patient-birth", name: "patient_birth", type: "date", required: true });
  const pIdent = el("input", { id: "patient-id", name: "patient_identifier", autocomplete: "off", required: true, "aria-describedby": "patient-id-hint" });
  const pEmail = el("input", { id: "patient-email", name: "patient_email", type: "email", autocomplete: "off" });
  const emailCode = el("input", { id: "email-code", name: "email_code", type: "checkbox" });
  const lang = el("select", { id: "email-lang", name: "lang" },
    el("option", { value: "zh" }, "简体中文"), el("option", { value: "en" }, "English"));
  const notes = el("textarea", { id: "notes", name: "notes", rows: "2" });
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true, id: "issue-status" });
  const submit = el("button", { type: "submit", class: "btn btn-primary", id: "issue" }, "Sign and issue");

  const form = el("form", { id: "issue-form", novalidate: true },
    el("fieldset", {},
      el("legend", {}, "Medicines"),
      itemsBox,
      el("div", { class: "actions" }, addBtn)),
    el("fieldset", {},
      el("legend", {}, "Repeats and validity"),
      el("div", { class: "row" },
        el("div", { class: "field" }, el("label", { for: "repeats" }, "Repeat fills"), repeats,
          el("p", { class: "hint" }, "Fills allowed after the first.")),
        el("div", { class: "field" }, el("label", { for: "valid-days" }, "Valid for (days)"), validDays, validHint))),
    el("fieldset", {},
      el("legend", {}, "Patient"),
      el("div", { class: "field" }, el("label", { for: "patient-name" }, "Full name"), pName),
      el("div", { class: "row" },
        el("div", { class: "field" }, el("label", { for: "patient-birth" }, "Date of birth"), pBirth),
        el("div", { class: "field" }, el("label", { for: "patient-id" }, "Health-service number"), pIdent,
          el("p", { class: "hint", id: "patient-id-hint" }, "Insurance or health-service number."))),
      el("div", { class: "field" }, el("label", { for: "patient-email" }, "E-mail (optional)"), pEmail),
      el("div", { class: "row" },
        el("div", { class: "field" }, el("label", { for: "email-code" }, emailCode, " E-mail the code to the patient")),
        el("div", { class: "field" }, el("label", { for: "email-lang" }, "E-mail language"), lang)),
      el("p", { class: "hint" }, "The patient's details are encrypted; they never appear on the chain in plain text.")),
    el("div", { class: "field" }, el("label", { for: "notes" }, "Notes for the pharmacist (optional)"), notes),
    status,
    el("div", { class: "actions" }, submit));

  const result = el("div", { id: "result" });
  setChildren(card, el("h2", { id: "issue-title" }, "New prescription"),
    el("p", { class: "hint" }, `Signed by ${session.name}, ${session.org_name || session.org}.`), result, form);

  // The sentence of the last failed check. Any edit re-runs the check, and
  // a sentence that no longer holds is taken away at once: an error left on
  // screen after its cause was fixed reads as a new one.
  let shownProblem = null;
  const recheck = () => {
    if (!shownProblem) return;
    const p = validate();
    if (p && p.text === shownProblem) {
      p.field?.setAttribute("aria-invalid", "true");
      return;
    }
    shownProblem = null;
    if (status.dataset.kind === "error") say(status, "");
  };
  form.addEventListener("input", recheck);
  form.addEventListener("change", recheck);

  const updateValidity = () => {
    recheck();
    const controlled = rows.some((r) => r.selected && r.selected.controlled);
    if (!validTouched) validDays.value = String(controlled ? CONTROLLED_DAYS : DEFAULT_DAYS);
    validHint.textContent = controlled
      ? `A controlled drug is on this prescription: validity defaults to ${CONTROLLED_DAYS} days.`
      : `Others default to ${DEFAULT_DAYS} days; controlled drugs to ${CONTROLLED_DAYS} days.`;
    validHint.classList.toggle("note-controlled", controlled);
  };
  validDays.addEventListener("input", () => { validTouched = true; });

  const addRow = () => {
    const row = itemRow(nextItem++, updateValidity, (r) => {
      rows.splice(rows.indexOf(r), 1);
      r.node.remove();
      renumber();
      updateValidity();
      addBtn.focus();
    });
    rows.push(row);
    itemsBox.append(row.node);
    renumber();
    return row;
  };
  const renumber = () => rows.forEach((r, i) => r.setNumber(i + 1, rows.length > 1));
  addBtn.addEventListener("click", () => addRow().focus());
  addRow();

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const problem = validate();
    shownProblem = problem?.text || null;
    if (problem) {
      say(status, problem.text, "error");
      problem.field?.setAttribute("aria-invalid", "true");
      problem.field?.focus();
      return;
    }
    const body = {
      items: rows.map((r) => r.item()),
      dosage: rows.map((r) => r.dosage()),
      repeats: Number(repeats.value || 0),
      valid_days: Number(validDays.value),
      patient: {
        name: pName.value.trim(),
        birth_date: pBirth.value,
        identifier: pIdent.value.trim(),
        ...(pEmail.value.trim() ? { email: pEmail.value.trim() } : {}),
      },
      ...(notes.value.trim() ? { notes: notes.value.trim() } : {}),
      email_code: emailCode.checked,
      lang: lang.value,
    };
    const issued = await withBusy(submit, status, "Signing and recording the prescription on the chain…",
      () => post("/v1/staff/prescriptions", body));
    if (!issued) return;
    say(status, "");
    showResult(result, issued, body, session, () => {
      form.reset();
      validTouched = false;
      rows.splice(0).forEach((r) => r.node.remove());
      nextItem = 0;
      addRow();
      updateValidity();
      form.hidden = false;
      result.replaceChildren();
      rows[0].focus();
    });
    form.hidden = true;
    onIssued();
  });

  const validate = () => {
    for (const f of form.querySelectorAll("[aria-invalid]")) f.removeAttribute("aria-invalid");
    for (const [i, r] of rows.entries()) {
      const p = r.problem(i + 1);
      if (p) return p;
    }
    const rep = Number(repeats.value);
    if (!Number.isInteger(rep) || rep < 0 || rep > 12) return { text: "Repeat fills must be a whole number from 0 to 12.", field: repeats };
    const days = Number(validDays.value);
    if (!Number.isInteger(days) || days < 1 || days > 365) return { text: "Validity must be a whole number of days from 1 to 365.", field: validDays };
    if (!pName.value.trim()) return { text: "Enter the patient's full name.", field: pName };
    if (!pBirth.value) return { text: "Enter the patient's date of birth.", field: pBirth };
    if (pBirth.value > new Date().toISOString().slice(0, 10)) return { text: "The date of birth is in the future.", field: pBirth };
    if (!pIdent.value.trim()) return { text: "Enter the patient's health-service number.", field: pIdent };
    if (pEmail.value.trim() && !pEmail.checkValidity()) return { text: "The e-mail address does not look right.", field: pEmail };
    if (emailCode.checked && !pEmail.value.trim()) return { text: "Enter the patient's e-mail address to e-mail the code.", field: pEmail };
    return null;
  };
}

// One medicine: formulary combobox, strength, quantity, unit, dosage.
function itemRow(n, onChange, onRemove) {
  const id = `item-${n}`;
  const title = el("h3", {});
  const remove = el("button", { type: "button", class: "btn btn-quiet btn-small" }, "Remove");
  const drug = el("input", {
    id: `${id}-drug`, class: "drug-input", role: "combobox", autocomplete: "off", spellcheck: "false",
    "aria-autocomplete": "list", "aria-expanded": "false", "aria-controls": `${id}-list`,
    "aria-describedby": `${id}-drug-hint`, placeholder: "Type a name or ATC code",
  });
  const listbox = el("ul", { id: `${id}-list`, role: "listbox", class: "combo-list", hidden: true, "aria-label": "Formulary matches" });
  const picked = el("p", { class: "hint", id: `${id}-drug-hint` }, "Type at least two letters, then choose with the arrow keys and Enter.");
  const live = el("div", { class: "visually-hidden", "aria-live": "polite" });
  const strength = el("input", { id: `${id}-strength`, name: "strength" });
  const quantity = el("input", { id: `${id}-quantity`, name: "quantity", type: "number", min: "1", step: "1", inputmode: "numeric" });
  const unit = el("input", { id: `${id}-unit`, name: "unit" });
  const dosage = el("input", { id: `${id}-dosage`, name: "dosage", placeholder: "e.g. 1 capsule three times a day for 7 days" });

  const node = el("div", { class: "item-row", dataset: { item: String(n) } },
    el("div", { class: "item-head" }, title, remove),
    el("div", { class: "field combo" },
      el("label", { for: drug.id }, "Medicine"), drug, listbox, picked, live),
    el("div", { class: "row" },
      el("div", { class: "field" }, el("label", { for: strength.id }, "Strength"), strength),
      el("div", { class: "field narrow" }, el("label", { for: quantity.id }, "Quantity"), quantity),
      el("div", { class: "field" }, el("label", { for: unit.id }, "Unit"), unit)),
    el("div", { class: "field" }, el("label", { for: dosage.id }, "Dosage"), dosage));

  const row = { node, selected: null };
  let results = [];
  let active = -1;
  let timer = null;
  let inflight = null;

  const close = () => {
    listbox.hidden = true;
    drug.setAttribute("aria-expanded", "false");
    drug.removeAttribute("aria-activedescendant");
    active = -1;
  };
  const setActive = (i) => {
    active = i;
    [...listbox.children].forEach((li, k) => li.setAttribute("aria-selected", String(k === i)));
    const li = listbox.children[i];
    if (li && li.id) {
      drug.setAttribute("aria-activedescendant", li.id);
      li.scrollIntoView({ block: "nearest" });
    }
  };
  const render = () => {
    listbox.replaceChildren();
    if (!results.length) {
      listbox.append(el("li", { class: "none", role: "option", "aria-disabled": "true", "aria-selected": "false" }, "No medicine in the formulary matches."));
    }
    results.forEach((f, k) => {
      const li = el("li", { role: "option", id: `${id}-opt-${k}`, "aria-selected": "false" },
        `${f.name} ${f.strength} ${f.form}`,
        el("span", { class: "sub" }, `${f.atc} · pack of ${f.pack} ${f.unit}${f.controlled ? " · controlled drug" : ""}`));
      li.addEventListener("mousedown", (e) => e.preventDefault());
      li.addEventListener("click", () => choose(k));
      listbox.append(li);
    });
    listbox.hidden = false;
    drug.setAttribute("aria-expanded", "true");
    live.textContent = results.length
      ? `${results.length} match${results.length === 1 ? "" : "es"}; use the up and down arrows and Enter to choose.`
      : "No matches.";
  };
  const search = async () => {
    const q = drug.value.trim();
    if (q.length < 2) {
      close();
      return;
    }
    inflight?.abort();
    inflight = new AbortController();
    try {
      results = await get(`/v1/formulary${query({ q })}`, { signal: inflight.signal });
      if (!Array.isArray(results)) results = [];
      active = -1;
      render();
    } catch (e) {
      if (e.name === "AbortError") return;
      close();
      picked.textContent = errorText(e);
    }
  };
  const choose = (k) => {
    const f = results[k];
    if (!f) return;
    row.selected = f;
    drug.value = f.name;
    strength.value = f.strength;
    unit.value = f.unit;
    if (!quantity.value) quantity.value = String(f.pack || 1);
    setChildren(picked, `${f.name} ${f.strength} ${f.form} · ATC ${f.atc}`,
      f.controlled ? [" ", el("span", { class: "badge badge-controlled" }, "Controlled drug")] : null);
    drug.removeAttribute("aria-invalid");
    close();
    live.textContent = `${f.name} ${f.strength} chosen.`;
    onChange();
  };

  drug.addEventListener("input", () => {
    if (row.selected && drug.value !== row.selected.name) {
      row.selected = null;
      picked.textContent = "Choose a medicine from the list.";
      onChange();
    }
    clearTimeout(timer);
    timer = setTimeout(search, 200);
  });
  drug.addEventListener("keydown", (e) => {
    const open = !listbox.hidden;
    if (e.key === "ArrowDown") {
      e.preventDefault();
      if (!open) {
        if (results.length) render();
        else search();
        return;
      }
      if (results.length) setActive(Math.min(active + 1, results.length - 1));
    } else if (e.key === "ArrowUp") {
      if (!open) return;
      e.preventDefault();
      if (results.length) setActive(Math.max(active - 1, 0));
    } else if (e.key === "Enter") {
      if (open) {
        e.preventDefault();
        if (active >= 0) choose(active);
        else if (results.length === 1) choose(0);
      }
    } else if (e.key === "Escape") {
      if (open) {
        e.preventDefault();
        close();
      }
    }
  });
  drug.addEventListener("blur", () => setTimeout(close, 150));
  remove.addEventListener("click", () => onRemove(row));

  row.setNumber = (k, removable) => {
    title.textContent = `Medicine ${k}`;
    remove.hidden = !removable;
    remove.setAttribute("aria-label", `Remove medicine ${k}`);
  };
  row.focus = () => drug.focus();
  row.problem = (k) => {
    if (!row.selected) return { text: `Choose medicine ${k} from the formulary list.`, field: drug };
    if (!strength.value.trim()) return { text: `Enter the strength of medicine ${k}.`, field: strength };
    const q = Number(quantity.value);
    if (!Number.isInteger(q) || q < 1) return { text: `Enter a whole quantity of at least 1 for medicine ${k}.`, field: quantity };
    if (!unit.value.trim()) return { text: `Enter the unit of medicine ${k}.`, field: unit };
    if (!dosage.value.trim()) return { text: `Enter the dosage for medicine ${k}.`, field: dosage };
    return null;
  };
  row.item = () => ({
    atc: row.selected.atc,
    name: row.selected.name,
    strength: strength.value.trim(),
    form: row.selected.form,
    quantity: Number(quantity.value),
    unit: unit.value.trim(),
    controlled: !!row.selected.controlled,
  });
  row.dosage = () => dosage.value.trim();
  return row;
}

// ---------------------------------------------------------------------------
// The result: QR code, short id, patient link, printable slip

function showResult(box, issued, body, session, again) {
  const link = new URL(issued.patient_link, location.origin).href;
  const linkInput = el("input", { id: "patient-link", readonly: true, value: link, "aria-describedby": "link-hint" });
  const copyStatus = el("span", { class: "hint", role: "status", "aria-live": "polite" });
  const copy = el("button", { type: "button", class: "btn btn-quiet", id: "copy-link" }, "Copy link");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(link);
      copyStatus.textContent = "Link copied.";
    } catch {
      linkInput.select();
      copyStatus.textContent = "Press Ctrl+C (or ⌘C) to copy the selected link.";
    }
  });
  const print = el("button", { type: "button", class: "btn btn-primary", id: "print-slip" }, "Print prescription");
  // The PNG the node drew, saved as a file (for a message or another printer).
  const png = el("a", { class: "btn btn-quiet", id: "download-png", href: `data:image/png;base64,${issued.qr_png_base64}`,
    download: `prescription-${issued.short_id}.png` }, "Download PNG");
  print.addEventListener("click", () => printSlip());
  // The e-mail button: only when an address was given and the code was not
  // already mailed at issue. The issuing node sends it once.
  const mailStatus = el("span", { class: "hint", role: "status", "aria-live": "polite", id: "email-code-status" });
  const mail = body.patient.email && !body.email_code
    ? el("button", { type: "button", class: "btn btn-quiet", id: "email-code-later" }, "E-mail the code")
    : null;
  if (mail) {
    mail.addEventListener("click", async () => {
      const r = await withBusy(mail, mailStatus, "Queuing the e-mail…",
        () => post(`/v1/staff/prescriptions/${issued.id}/email`, { payload: issued.payload }));
      if (r) say(mailStatus, r.queued ? "The code will be e-mailed to the patient." : "The code was already e-mailed.");
    });
  }
  const another = el("button", { type: "button", class: "btn btn-quiet", id: "issue-another" }, "Write another prescription");
  another.addEventListener("click", again);

  const heading = el("h2", { tabindex: "-1", id: "result-title" }, "Prescription signed");
  setChildren(box, el("div", { class: "card result", role: "region", "aria-labelledby": "result-title" },
    heading,
    el("p", {}, "Short id ", el("span", { class: "short-id", id: "short-id" }, issued.short_id),
      ` · valid until ${fmtDate(issued.valid_until)}`),
    el("div", { class: "qr-box" },
      svgImage(issued.qr_svg, `QR code of prescription ${issued.short_id}`),
      el("div", { style: "flex:1 1 14rem;min-width:0" },
        el("p", {}, "Show this code to the patient, print the slip, or give them the link."),
        el("div", { class: "field" },
          el("label", { for: "patient-link" }, "Patient link"),
          el("div", { class: "link-box" }, linkInput, copy),
          el("p", { class: "hint", id: "link-hint" }, "The link and the code are the patient's key to this prescription: hand them to the patient only."),
          copyStatus))),
    el("div", { class: "actions" }, print, png, mail, another, mailStatus)));

  // The printed prescription (A5, the print rules in app.css). It shows the code as a
  // picture, never its text: the text is the patient's key.
  const slip = document.getElementById("slip");
  const issuedOn = fmtDate(Date.now());
  const hospital = session.org_name || session.org;
  setChildren(slip,
    el("header", { class: "slip-head" },
      el("div", {},
        el("p", { class: "slip-hospital", id: "slip-hospital" }, hospital),
        orgAddress(session.org) ? el("p", { class: "slip-address" }, orgAddress(session.org)) : null),
      el("p", { class: "slip-title" }, "Prescription")),
    el("dl", { class: "slip-facts" },
      el("dt", {}, "Patient"), el("dd", { id: "slip-patient" }, body.patient.name,
        body.patient.birth_date ? ` · born ${fmtDate(Date.parse(body.patient.birth_date))}` : ""),
      el("dt", {}, "Prescriber"), el("dd", {}, `${session.name}, ${hospital}`),
      el("dt", {}, "Date"), el("dd", {}, issuedOn),
      el("dt", {}, "Valid until"), el("dd", {}, fmtDate(issued.valid_until)),
      el("dt", {}, "Repeat fills"), el("dd", {}, body.repeats ? `${body.repeats} after the first` : "None")),
    el("table", { class: "slip-items" },
      el("thead", {}, el("tr", {}, ["Medicine", "Quantity", "Dosage"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, body.items.map((it, i) => el("tr", {},
        el("td", {}, drugText(it), it.controlled ? el("span", { class: "slip-controlled" }, " (controlled drug)") : null),
        el("td", {}, `${it.quantity} ${it.unit}`),
        el("td", {}, body.dosage[i] || ""))))),
    el("div", { class: "slip-code" },
      svgImage(issued.qr_svg, `QR code of prescription ${issued.short_id}`, "slip-qr"),
      el("div", {},
        el("p", {}, "Prescription ", el("span", { class: "short-id" }, issued.short_id)),
        el("p", { class: "slip-todo", id: "slip-todo" },
          `What to do: take this paper to any pharmacy before ${fmtDate(issued.valid_until)}, `,
          "or scan the code with your phone to choose a pharmacy or home delivery. ",
          "Keep it private: the code is the key to your prescription."))));
  heading.focus();
}

function printSlip() {
  document.body.classList.add("printing-slip");
  const done = () => {
    document.body.classList.remove("printing-slip");
    window.removeEventListener("afterprint", done);
  };
  window.addEventListener("afterprint", done);
  window.print();
  // Some browsers print synchronously without firing afterprint.
  setTimeout(done, 1000);
}

// ---------------------------------------------------------------------------
// My prescriptions, polled

function myPrescriptions(card) {
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true, id: "mine-status" });
  const body = el("div", { id: "mine" }, el("p", { class: "empty" }, "Loading…"));
  setChildren(card, el("h2", { id: "mine-title" }, "My prescriptions"),
    el("p", { class: "hint" }, "Status updates by itself every few seconds."), status, body);
  let lastKey = "";

  const render = (items) => {
    const key = JSON.stringify(items.map((p) => [p.id, p.public_status]));
    if (key === lastKey) return;
    lastKey = key;
    const focusKey = document.activeElement?.dataset?.focusKey;
    if (!items.length) {
      setChildren(body, el("p", { class: "empty" }, "You have not issued any prescriptions yet."));
      return;
    }
    const entries = items.map((p) => {
      const cancel = CANCELLABLE.has(p.public_status)
        ? el("button", { type: "button", class: "btn btn-danger btn-small", dataset: { focusKey: `cancel-${p.id}` },
            "aria-label": `Cancel prescription ${p.short_id}`, onclick: (e) => cancelRx(e.currentTarget, p) }, "Cancel")
        : null;
      return el("li", { class: "rx-entry", dataset: { id: p.id, status: p.public_status } },
        el("div", { class: "rx-entry-head" },
          el("span", { class: "short-id" }, p.short_id), statusBadge(p.public_status)),
        p.patient_name ? el("div", { class: "rx-patient" }, p.patient_name) : null,
        el("div", { class: "hint" }, (p.items || []).map((it) => `${it.name} ${it.strength || ""} × ${it.quantity}`).join("; ")),
        el("div", { class: "rx-entry-foot" },
          el("span", { class: "hint" }, `Issued ${fmtDateTime(p.issued_at)} · valid until ${fmtDate(p.valid_until)}`), cancel));
    });
    setChildren(body, el("ul", { class: "rx-list", id: "mine-list", "aria-label": "My prescriptions, newest first" }, entries));
    if (focusKey) body.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`)?.focus();
  };

  const refresh = async () => {
    try {
      const items = await get("/v1/staff/prescriptions");
      items.sort((a, b) => Number(b.issued_at) - Number(a.issued_at));
      render(items);
      if (status.dataset.kind === "error") say(status, "");
    } catch (e) {
      say(status, errorText(e), "error");
      if (e instanceof ApiError && e.status === 401) location.reload();
    }
  };

  const cancelRx = async (button, p) => {
    if (!window.confirm(`Cancel prescription ${p.short_id}? The patient will no longer be able to use it.`)) return;
    const ok = await withBusy(button, status, `Cancelling ${p.short_id}…`,
      () => post(`/v1/staff/prescriptions/${encodeURIComponent(p.id)}/cancel`, {}));
    if (ok) say(status, `Prescription ${p.short_id} is cancelled.`, "ok");
    lastKey = "";
    await refresh();
  };

  refresh();
  poll(refresh, 4000);
  return { refresh };
}
