// Doctor page: write and sign a prescription, hand over its QR code, print
// the patient's slip, and follow "My prescriptions" with live status.

import {
  ApiError, get, post, el, setChildren, say, withBusy, errorText, staffPage, poll,
  fmtDate, fmtDateTime, statusBadge, drugText, svgImage, query, chainParams, loadOrgs, orgAddress, t, tn, locale,
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
    setChildren(app, el("p", { class: "error", role: "alert" }, t("doctor.cannot_load_the_chain_s", { value: errorText(e) })));
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
  const addBtn = el("button", { type: "button", class: "btn btn-quiet", id: "add-item" }, t("doctor.add_another_medicine"));
  const repeats = el("input", { id: "repeats", name: "repeats", type: "number", min: "0", max: "12", step: "1", value: "0", inputmode: "numeric" });
  const validDays = el("input", { id: "valid-days", name: "valid_days", type: "number", min: "1", max: String(params.max_validity_days), step: "1", value: String(DEFAULT_DAYS), inputmode: "numeric", "aria-describedby": "valid-hint" });
  const validHint = el("p", { class: "hint", id: "valid-hint" }, t("doctor.others_default_to_default_days", { DEFAULT_DAYS, CONTROLLED_DAYS }));
  const pName = el("input", { id: "patient-name", name: "patient_name", autocomplete: "off", required: true });
  const pBirth = el("input", { id: "patient-birth", name: "patient_birth", type: "date", required: true });
  const pIdent = el("input", { id: "patient-id", name: "patient_identifier", autocomplete: "off", required: true, "aria-describedby": "patient-id-hint" });
  const pEmail = el("input", { id: "patient-email", name: "patient_email", type: "email", autocomplete: "off" });
  const emailCode = el("input", { id: "email-code", name: "email_code", type: "checkbox" });
  const lang = el("select", { id: "email-lang", name: "lang" },
    el("option", { value: "zh", lang: "zh-CN" }, t("doctor.text")), el("option", { value: "en", lang: "en" }, t("doctor.english")));
  const notes = el("textarea", { id: "notes", name: "notes", rows: "2" });
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true, id: "issue-status" });
  const submit = el("button", { type: "submit", class: "btn btn-primary", id: "issue" }, t("doctor.sign_and_issue"));

  const form = el("form", { id: "issue-form", novalidate: true },
    el("fieldset", {},
      el("legend", {}, t("doctor.medicines")),
      itemsBox,
      el("div", { class: "actions" }, addBtn)),
    el("fieldset", {},
      el("legend", {}, t("doctor.repeats_and_validity")),
      el("div", { class: "row" },
        el("div", { class: "field" }, el("label", { for: "repeats" }, t("doctor.repeat_fills")), repeats,
          el("p", { class: "hint" }, t("doctor.fills_allowed_after_the_first"))),
        el("div", { class: "field" }, el("label", { for: "valid-days" }, t("doctor.valid_for_days")), validDays, validHint))),
    el("fieldset", {},
      el("legend", {}, t("doctor.patient")),
      el("div", { class: "field" }, el("label", { for: "patient-name" }, t("doctor.full_name")), pName),
      el("div", { class: "row" },
        el("div", { class: "field" }, el("label", { for: "patient-birth" }, t("doctor.date_of_birth")), pBirth),
        el("div", { class: "field" }, el("label", { for: "patient-id" }, t("doctor.health_service_number")), pIdent,
          el("p", { class: "hint", id: "patient-id-hint" }, t("doctor.insurance_or_health_service_number")))),
      el("div", { class: "field" }, el("label", { for: "patient-email" }, t("doctor.e_mail_optional")), pEmail),
      el("div", { class: "row" },
        el("div", { class: "field" }, el("label", { for: "email-code" }, emailCode, t("doctor.e_mail_the_code_to"))),
        el("div", { class: "field" }, el("label", { for: "email-lang" }, t("doctor.e_mail_language")), lang)),
      el("p", { class: "hint" }, t("doctor.the_patient_s_details_are"))),
    el("div", { class: "field" }, el("label", { for: "notes" }, t("doctor.notes_for_the_pharmacist_optional")), notes),
    status,
    el("div", { class: "actions" }, submit));

  const result = el("div", { id: "result" });
  setChildren(card, el("h2", { id: "issue-title" }, t("doctor.new_prescription")),
    el("p", { class: "hint" }, t("doctor.signed_by_name_org", { name: session.name, org: session.org_name || session.org })), result, form);

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
      ? t("doctor.a_controlled_drug_is_on", { CONTROLLED_DAYS })
      : t("doctor.others_default_to_default_days", { DEFAULT_DAYS, CONTROLLED_DAYS });
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
    const issued = await withBusy(submit, status, t("doctor.signing_and_recording_the_prescription"),
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
    if (!Number.isInteger(rep) || rep < 0 || rep > 12) return { text: t("doctor.repeat_fills_must_be_a"), field: repeats };
    const days = Number(validDays.value);
    if (!Number.isInteger(days) || days < 1 || days > 365) return { text: t("doctor.validity_must_be_a_whole"), field: validDays };
    if (!pName.value.trim()) return { text: t("doctor.enter_the_patient_s_full"), field: pName };
    if (!pBirth.value) return { text: t("doctor.enter_the_patient_s_date"), field: pBirth };
    if (pBirth.value > new Date().toISOString().slice(0, 10)) return { text: t("doctor.the_date_of_birth_is"), field: pBirth };
    if (!pIdent.value.trim()) return { text: t("doctor.enter_the_patient_s_health"), field: pIdent };
    if (pEmail.value.trim() && !pEmail.checkValidity()) return { text: t("doctor.the_e_mail_address_does"), field: pEmail };
    if (emailCode.checked && !pEmail.value.trim()) return { text: t("doctor.enter_the_patient_s_e"), field: pEmail };
    return null;
  };
}

// One medicine: formulary combobox, strength, quantity, unit, dosage.
function itemRow(n, onChange, onRemove) {
  const id = `item-${n}`;
  const title = el("h3", {});
  const remove = el("button", { type: "button", class: "btn btn-quiet btn-small" }, t("doctor.remove"));
  const drug = el("input", {
    id: `${id}-drug`, class: "drug-input", role: "combobox", autocomplete: "off", spellcheck: "false",
    "aria-autocomplete": "list", "aria-expanded": "false", "aria-controls": `${id}-list`,
    "aria-describedby": `${id}-drug-hint`, placeholder: t("doctor.type_a_name_or_atc"),
  });
  const listbox = el("ul", { id: `${id}-list`, role: "listbox", class: "combo-list", hidden: true, "aria-label": t("doctor.formulary_matches") });
  const picked = el("p", { class: "hint", id: `${id}-drug-hint` }, t("doctor.type_at_least_two_letters"));
  const live = el("div", { class: "visually-hidden", "aria-live": "polite" });
  const strength = el("input", { id: `${id}-strength`, name: "strength" });
  const quantity = el("input", { id: `${id}-quantity`, name: "quantity", type: "number", min: "1", step: "1", inputmode: "numeric" });
  const unit = el("input", { id: `${id}-unit`, name: "unit" });
  const dosage = el("input", { id: `${id}-dosage`, name: "dosage", placeholder: t("doctor.e_g_1_capsule_three") });

  const node = el("div", { class: "item-row", dataset: { item: String(n) } },
    el("div", { class: "item-head" }, title, remove),
    el("div", { class: "field combo" },
      el("label", { for: drug.id }, t("doctor.medicine")), drug, listbox, picked, live),
    el("div", { class: "row" },
      el("div", { class: "field" }, el("label", { for: strength.id }, t("doctor.strength")), strength),
      el("div", { class: "field narrow" }, el("label", { for: quantity.id }, t("doctor.quantity")), quantity),
      el("div", { class: "field" }, el("label", { for: unit.id }, t("doctor.unit")), unit)),
    el("div", { class: "field" }, el("label", { for: dosage.id }, t("doctor.dosage")), dosage));

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
      listbox.append(el("li", { class: "none", role: "option", "aria-disabled": "true", "aria-selected": "false" }, t("doctor.no_medicine_in_the_formulary")));
    }
    results.forEach((f, k) => {
      const li = el("li", { role: "option", id: `${id}-opt-${k}`, "aria-selected": "false" },
        `${f.name} ${f.strength} ${f.form}`,
        el("span", { class: "sub" }, t("doctor.atc_pack_of_pack_unit", { atc: f.atc, pack: f.pack, unit: f.unit, controlled: f.controlled ? t("doctor.controlled_drug") : "" })));
      li.addEventListener("mousedown", (e) => e.preventDefault());
      li.addEventListener("click", () => choose(k));
      listbox.append(li);
    });
    listbox.hidden = false;
    drug.setAttribute("aria-expanded", "true");
    live.textContent = results.length
      ? tn("doctor.matches", results.length)
      : t("doctor.no_matches");
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
    setChildren(picked, t("doctor.name_strength_form_atc_atc", { name: f.name, strength: f.strength, form: f.form, atc: f.atc }),
      f.controlled ? [" ", el("span", { class: "badge badge-controlled" }, t("doctor.controlled_drug_2"))] : null);
    drug.removeAttribute("aria-invalid");
    close();
    live.textContent = t("doctor.name_strength_chosen", { name: f.name, strength: f.strength });
    onChange();
  };

  drug.addEventListener("input", () => {
    if (row.selected && drug.value !== row.selected.name) {
      row.selected = null;
      picked.textContent = t("doctor.choose_a_medicine_from_the");
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
    title.textContent = t("doctor.medicine_k", { k });
    remove.hidden = !removable;
    remove.setAttribute("aria-label", t("doctor.remove_medicine_k", { k }));
  };
  row.focus = () => drug.focus();
  row.problem = (k) => {
    if (!row.selected) return { text: t("doctor.choose_medicine_k_from_the", { k }), field: drug };
    if (!strength.value.trim()) return { text: t("doctor.enter_the_strength_of_medicine", { k }), field: strength };
    const q = Number(quantity.value);
    if (!Number.isInteger(q) || q < 1) return { text: t("doctor.enter_a_whole_quantity_of", { k }), field: quantity };
    if (!unit.value.trim()) return { text: t("doctor.enter_the_unit_of_medicine", { k }), field: unit };
    if (!dosage.value.trim()) return { text: t("doctor.enter_the_dosage_for_medicine", { k }), field: dosage };
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
  const copy = el("button", { type: "button", class: "btn btn-quiet", id: "copy-link" }, t("doctor.copy_link"));
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(link);
      copyStatus.textContent = t("doctor.link_copied");
    } catch {
      linkInput.select();
      copyStatus.textContent = t("doctor.press_ctrl_c_or_c");
    }
  });
  const print = el("button", { type: "button", class: "btn btn-primary", id: "print-slip" }, t("doctor.print_prescription"));
  // The PNG the node drew, saved as a file (for a message or another printer).
  const png = el("a", { class: "btn btn-quiet", id: "download-png", href: `data:image/png;base64,${issued.qr_png_base64}`,
    download: `prescription-${issued.short_id}.png` }, t("doctor.download_png"));
  print.addEventListener("click", () => printSlip());
  // The e-mail button: only when an address was given and the code was not
  // already mailed at issue. The issuing node sends it once.
  const mailStatus = el("span", { class: "hint", role: "status", "aria-live": "polite", id: "email-code-status" });
  const mail = body.patient.email && !body.email_code
    ? el("button", { type: "button", class: "btn btn-quiet", id: "email-code-later" }, t("doctor.e_mail_the_code"))
    : null;
  if (mail) {
    mail.addEventListener("click", async () => {
      const r = await withBusy(mail, mailStatus, t("doctor.queuing_the_e_mail"),
        () => post(`/v1/staff/prescriptions/${issued.id}/email`, { payload: issued.payload }));
      if (r) say(mailStatus, r.queued ? t("doctor.the_code_will_be_e") : t("doctor.the_code_was_already_e"));
    });
  }
  const another = el("button", { type: "button", class: "btn btn-quiet", id: "issue-another" }, t("doctor.write_another_prescription"));
  another.addEventListener("click", again);

  const heading = el("h2", { tabindex: "-1", id: "result-title" }, t("doctor.prescription_signed"));
  setChildren(box, el("div", { class: "card result", role: "region", "aria-labelledby": "result-title" },
    heading,
    el("p", {}, t("doctor.short_id"), el("span", { class: "short-id", id: "short-id" }, issued.short_id),
      t("doctor.valid_until_valid_until", { valid_until: fmtDate(issued.valid_until) })),
    el("div", { class: "qr-box" },
      svgImage(issued.qr_svg, t("doctor.qr_code_of_prescription_short", { short_id: issued.short_id })),
      el("div", { style: "flex:1 1 14rem;min-width:0" },
        el("p", {}, t("doctor.show_this_code_to_the")),
        el("div", { class: "field" },
          el("label", { for: "patient-link" }, t("doctor.patient_link")),
          el("div", { class: "link-box" }, linkInput, copy),
          el("p", { class: "hint", id: "link-hint" }, t("doctor.the_link_and_the_code")),
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
      el("p", { class: "slip-title" }, t("doctor.prescription"))),
    el("dl", { class: "slip-facts" },
      el("dt", {}, t("doctor.patient")), el("dd", { id: "slip-patient" }, body.patient.name,
        body.patient.birth_date ? t("doctor.born_birth_date", { birth_date: fmtDate(Date.parse(body.patient.birth_date)) }) : ""),
      el("dt", {}, t("doctor.prescriber")), el("dd", {}, `${session.name}, ${hospital}`),
      el("dt", {}, t("doctor.date")), el("dd", {}, issuedOn),
      el("dt", {}, t("doctor.valid_until")), el("dd", {}, fmtDate(issued.valid_until)),
      el("dt", {}, t("doctor.repeat_fills")), el("dd", {}, body.repeats ? t("doctor.repeats_after_the_first", { repeats: body.repeats }) : t("doctor.none"))),
    el("table", { class: "slip-items" },
      el("thead", {}, el("tr", {}, [t("doctor.medicine"), t("doctor.quantity"), t("doctor.dosage")].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, body.items.map((it, i) => el("tr", {},
        el("td", {}, drugText(it), it.controlled ? el("span", { class: "slip-controlled" }, t("doctor.controlled_drug_3")) : null),
        el("td", {}, `${it.quantity} ${it.unit}`),
        el("td", {}, body.dosage[i] || ""))))),
    el("div", { class: "slip-code" },
      svgImage(issued.qr_svg, t("doctor.qr_code_of_prescription_short", { short_id: issued.short_id }), "slip-qr"),
      el("div", {},
        el("p", {}, t("doctor.prescription_2"), el("span", { class: "short-id" }, issued.short_id)),
        el("p", { class: "slip-todo", id: "slip-todo" },
          t("doctor.what_to_do_take_this", { valid_until: fmtDate(issued.valid_until) }),
          t("doctor.or_scan_the_code_with"),
          t("doctor.keep_it_private_the_code")))));
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
  const body = el("div", { id: "mine" }, el("p", { class: "empty" }, t("doctor.loading")));
  setChildren(card, el("h2", { id: "mine-title" }, t("doctor.my_prescriptions")),
    el("p", { class: "hint" }, t("doctor.status_updates_by_itself_every")), status, body);
  let lastKey = "";

  const render = (items) => {
    const key = JSON.stringify(items.map((p) => [p.id, p.public_status]));
    if (key === lastKey) return;
    lastKey = key;
    const focusKey = document.activeElement?.dataset?.focusKey;
    if (!items.length) {
      setChildren(body, el("p", { class: "empty" }, t("doctor.you_have_not_issued_any")));
      return;
    }
    const entries = items.map((p) => {
      const cancel = CANCELLABLE.has(p.public_status)
        ? el("button", { type: "button", class: "btn btn-danger btn-small", dataset: { focusKey: `cancel-${p.id}` },
            "aria-label": t("doctor.cancel_prescription_short_id", { short_id: p.short_id }), onclick: (e) => cancelRx(e.currentTarget, p) }, t("doctor.cancel"))
        : null;
      return el("li", { class: "rx-entry", dataset: { id: p.id, status: p.public_status } },
        el("div", { class: "rx-entry-head" },
          el("span", { class: "short-id" }, p.short_id), statusBadge(p.public_status)),
        p.patient_name ? el("div", { class: "rx-patient" }, p.patient_name) : null,
        el("div", { class: "hint" }, (p.items || []).map((it) => `${it.name} ${it.strength || ""} × ${it.quantity}`).join("; ")),
        el("div", { class: "rx-entry-foot" },
          el("span", { class: "hint" }, t("doctor.issued_issued_at_valid_until", { issued_at: fmtDateTime(p.issued_at), valid_until: fmtDate(p.valid_until) })), cancel));
    });
    setChildren(body, el("ul", { class: "rx-list", id: "mine-list", "aria-label": t("doctor.my_prescriptions_newest_first") }, entries));
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
    if (!window.confirm(t("doctor.cancel_prescription_short_id_the", { short_id: p.short_id }))) return;
    const ok = await withBusy(button, status, t("doctor.cancelling_short_id", { short_id: p.short_id }),
      () => post(`/v1/staff/prescriptions/${encodeURIComponent(p.id)}/cancel`, {}));
    if (ok) say(status, t("doctor.prescription_short_id_is_cancelled", { short_id: p.short_id }), "ok");
    lastKey = "";
    await refresh();
  };

  refresh();
  poll(refresh, 4000);
  return { refresh };
}
