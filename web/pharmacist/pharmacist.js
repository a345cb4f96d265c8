// Pharmacist page: scan a prescription QR code three ways (camera, photo,
// handheld scanner typing into a field), see the chain's verdict, then claim,
// dispense (fully or partly), release, and record delivery progress.

import {
  ApiError, api, errorSentence, get, post, el, setChildren, say, withBusy, errorText, staffPage, poll, loadOrgs,
  orgName, humanize, fmtDate, fmtDateTime, statusBadge, statusLabel, drugText, allowance, deliveryLabel, deliveryText, deliveryDetailFields, tableWrap, query, t, tn, locale,
} from "/assets/api.js";
import { keepOnSwitch, keptOnSwitch } from "/assets/i18n.js";

const FRAME_INTERVAL_MS = 700;
/** How often the card on screen is re-checked against the chain. */
const VERDICT_CHECK_MS = 4000;
/** A card the chain has not confirmed for this long is greyed out. */
const VERDICT_STALE_MS = 20000;

/** What must match for a card to still be true: the status and the record. */
const stateKey = (view) => JSON.stringify([view.public_status, view.record]);
const DELIVERY_STEPS = ["packed", "dispatched", "out_for_delivery", "delivered", "failed", "returned"];

staffPage({
  root: document.getElementById("app"),
  roles: ["pharmacist"],
  userArea: document.getElementById("user-area"),
  start,
});

function start(session) {
  const app = document.getElementById("app");
  const pharmacy = session.org;
  loadOrgs().catch(() => {});

  const scanStatus = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true, id: "scan-status" });
  // Not a live region: the card's heading takes focus when a verdict
  // arrives, and the "checked at" line changes every few seconds.
  const verdictBox = el("section", { id: "verdict", "aria-label": t("pharmacist.verdict") });
  const listCard = el("section", { class: "card", "aria-labelledby": "list-title" });

  // The verdict on screen, and when (this browser's clock) the chain last
  // confirmed it. A card the chain has not confirmed for VERDICT_STALE_MS is
  // greyed out and its actions are disabled.
  let current = null;
  let confirmedAt = 0;
  let card = null;

  // A language switch reloads the page: the prescription on screen comes
  // back, read again from the chain (a fresh verdict, never the old one).
  keepOnSwitch(() => (current?.payload ? { payload: current.payload } : {}));

  const showVerdict = async (v, note, noteKind = "ok", changed = false) => {
    current = v;
    confirmedAt = Date.now();
    await loadOrgs().catch(() => {});
    card = renderVerdict(verdictBox, v, { pharmacy, note, noteKind, changed, actions, refresh: () => rescan() });
    freshness();
  };

  // A new scan clears the old card first, so that nothing on screen can be
  // read as the verdict for the code just scanned.
  const clearVerdict = () => {
    current = null;
    card = null;
    verdictBox.replaceChildren();
  };

  const scanText = async (payload, button) => {
    clearVerdict();
    const text = payload.trim();
    if (!text) {
      say(scanStatus, t("pharmacist.the_field_is_empty_scan"), "error");
      return null;
    }
    const v = await withBusy(button, scanStatus, t("pharmacist.checking_the_code_against_the"),
      () => post("/v1/scan", { payload: text, pharmacy }));
    if (v) await showVerdict(v);
    return v;
  };

  const scanBytes = (blob, contentType) =>
    api("POST", `/v1/scan/image${query({ pharmacy })}`, { body: blob, contentType: contentType || "application/octet-stream" });

  // Re-reads the verdict for the current payload from the chain (after an
  // action, a refusal, a change seen in the background, or on request). If
  // the chain cannot be asked, the card is marked old at once.
  const rescan = async (note, noteKind = "ok", changed = false) => {
    if (!current) return;
    const payload = current.payload;
    const id = current.prescription.record.id;
    try {
      const v = payload ? await post("/v1/scan", { payload, pharmacy }) : recordVerdict(await get(`/v1/prescriptions/${encodeURIComponent(id)}`));
      if (current?.prescription.record.id === id) await showVerdict(v, note, noteKind, changed);
    } catch (e) {
      confirmedAt = 0;
      freshness();
      say(scanStatus, errorText(e), "error");
    }
    list.refresh();
  };

  // Greys the card out when its state is old, and says when it was read.
  const freshness = () => {
    if (!card || !current) return;
    const age = Date.now() - confirmedAt;
    card.setFresh(age <= VERDICT_STALE_MS, confirmedAt);
  };

  // In the background, the chain is asked whether the prescription on
  // screen changed (another tab, another pharmacist, the patient). A change
  // reloads the whole verdict; no change only renews the "checked" time.
  let checking = false;
  const recheck = async () => {
    if (!current || checking || document.hidden) return;
    checking = true;
    const v = current;
    try {
      const fresh = await get(`/v1/prescriptions/${encodeURIComponent(v.prescription.record.id)}`);
      if (current !== v) return;
      if (stateKey(fresh) === stateKey(v.prescription)) {
        confirmedAt = Date.now();
      } else {
        await rescan(t("pharmacist.this_prescription_changed_on_the"), "info", true);
      }
    } catch {
      // The card ages and greys out; the next check tries again.
    } finally {
      checking = false;
      freshness();
    }
  };
  setInterval(recheck, VERDICT_CHECK_MS);
  setInterval(freshness, 1000);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) recheck();
  });

  // Every action ends with the card reloaded from the chain: on success to
  // show the new state, on a refusal because the card was evidently wrong
  // about what may be done (the refusal's sentence is shown on the new card).
  const act = async (button, status, busyText, call, okNote) => {
    let failure = null;
    const r = await withBusy(button, status, busyText, async () => {
      try {
        return await call();
      } catch (e) {
        failure = e;
        throw e;
      }
    });
    if (failure) {
      if (failure instanceof ApiError && failure.status === 0) {
        confirmedAt = 0;
        freshness();
        return;
      }
      await rescan(t("pharmacist.refused_failure_the_card_below", { failure: errorText(failure) }), "error");
      return;
    }
    await rescan(typeof okNote === "function" ? okNote(r) : okNote);
  };

  const actions = {
    claim: (button, status) => act(button, status, t("pharmacist.claiming_the_prescription_on_the"),
      () => post("/v1/staff/claim", { payload: current.payload }),
      t("pharmacist.claimed_for_pharmacy_no_other", { pharmacy: session.org_name || orgName(pharmacy) })),
    release: (button, status) => act(button, status, t("pharmacist.releasing"),
      () => post("/v1/staff/release", { id: current.prescription.record.id }),
      t("pharmacist.released_the_prescription_is_available")),
    dispense: (button, status, lines, complete) => {
      const items = current.prescription.record.items;
      const what = lines.map((l) => t("pharmacist.quantity_unit_of_name", { quantity: l.quantity, unit: items[l.item].unit, name: items[l.item].name })).join(", ");
      return act(button, status, t("pharmacist.recording_the_dispense_on_the"),
        () => post("/v1/staff/dispense", { id: current.prescription.record.id, lines, complete }),
        t("pharmacist.dispensed_what_complete", { what: what || t("pharmacist.nothing_more"), complete: complete ? t("pharmacist.the_prescription_is_complete") : "" }));
    },
    delivery: (button, status, value, detail) => act(button, status, t("pharmacist.recording_the_delivery_status"),
      () => post("/v1/staff/delivery", { id: current.prescription.record.id, status: value, ...detail }),
      t("pharmacist.recorded_value", { value: deliveryLabel(value) })),
  };

  // 1. Camera.
  const camera = cameraScanner({ scanBytes, onStart: clearVerdict, onVerdict: (v) => showVerdict(v) });
  // 2. Photo upload.
  const photo = el("input", { type: "file", id: "photo", name: "photo", accept: "image/*", capture: "environment", "aria-describedby": "photo-hint" });
  photo.addEventListener("change", async () => {
    const file = photo.files?.[0];
    if (!file) return;
    clearVerdict();
    const v = await withBusy(photo, scanStatus, t("pharmacist.reading_the_qr_code_in"), () => scanBytes(file, file.type));
    if (v) await showVerdict(v);
    photo.value = "";
  });
  // 3. Handheld scanner (types the code and presses Enter) or typing.
  const text = el("input", { id: "scan-text", name: "payload", autocomplete: "off", spellcheck: "false", autocapitalize: "characters", "aria-describedby": "scan-text-hint" });
  const check = el("button", { type: "submit", class: "btn btn-primary", id: "scan-submit" }, t("pharmacist.check"));
  const textForm = el("form", { id: "scan-form", novalidate: true },
    el("div", { class: "field" }, el("label", { for: "scan-text" }, t("pharmacist.code_from_a_handheld_scanner")), text,
      el("p", { class: "hint", id: "scan-text-hint" }, t("pharmacist.click_here_and_scan_the"))),
    el("div", { class: "actions" }, check));
  textForm.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const v = await scanText(text.value, check);
    text.focus();
    // After a bad code the field keeps it, selected: the next scan replaces
    // it instead of being appended to it.
    if (v) text.value = "";
    else text.select();
  });

  // A row without a code (completed, or not handed over): its record only,
  // read from the chain, with no actions: acting needs the patient's code.
  const openRecord = async (id) => {
    clearVerdict();
    const view = await withBusy(null, scanStatus, t("pharmacist.reading_the_record_from_the"),
      () => get(`/v1/prescriptions/${encodeURIComponent(id)}`));
    if (view) await showVerdict(recordVerdict(view));
  };
  const list = pharmacyList(listCard, pharmacy, async (payload) => {
    await scanText(payload, null);
  }, openRecord);

  setChildren(app,
    el("section", { "aria-labelledby": "scan-title" },
      el("h2", { id: "scan-title", class: "visually-hidden" }, t("pharmacist.scan_a_prescription")),
      el("div", { class: "scan-methods" },
        el("div", { class: "card" }, el("h3", {}, t("pharmacist.camera")), camera.node),
        el("div", { class: "card" }, el("h3", {}, t("pharmacist.photo")),
          el("div", { class: "field" }, el("label", { for: "photo" }, t("pharmacist.photo_of_the_qr_code")), photo,
            el("p", { class: "hint", id: "photo-hint" }, t("pharmacist.take_or_choose_a_photo")))),
        el("div", { class: "card" }, el("h3", {}, t("pharmacist.scanner_or_keyboard")), textForm)),
      scanStatus),
    verdictBox,
    listCard);
  window.addEventListener("pagehide", () => camera.stop());
  text.focus();
  const back = keptOnSwitch();
  if (back?.payload) scanText(back.payload, null);
}

// ---------------------------------------------------------------------------
// Camera: frames go to the node every ~700 ms until it finds a verdict.

function cameraScanner({ scanBytes, onStart, onVerdict }) {
  const startBtn = el("button", { type: "button", class: "btn btn-primary", id: "camera-start" }, t("pharmacist.start_camera"));
  const stopBtn = el("button", { type: "button", class: "btn btn-quiet", id: "camera-stop", hidden: true }, t("pharmacist.stop_camera"));
  const video = el("video", { class: "camera", playsinline: true, muted: true, hidden: true, "aria-label": t("pharmacist.camera_view") });
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true, id: "camera-status" });
  const canvas = document.createElement("canvas");
  let stream = null;
  let timer = null;
  let busy = false;

  const stop = () => {
    clearInterval(timer);
    timer = null;
    stream?.getTracks().forEach((t) => t.stop());
    stream = null;
    video.srcObject = null;
    video.hidden = true;
    stopBtn.hidden = true;
    startBtn.hidden = false;
  };

  const frame = async () => {
    if (busy || !stream || video.readyState < 2 || !video.videoWidth) return;
    busy = true;
    try {
      const scale = Math.min(1, 1280 / video.videoWidth);
      canvas.width = Math.round(video.videoWidth * scale);
      canvas.height = Math.round(video.videoHeight * scale);
      canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
      const blob = await new Promise((res) => canvas.toBlob(res, "image/jpeg", 0.85));
      if (!blob || !stream) return;
      const v = await scanBytes(blob, "image/jpeg");
      stop();
      say(status, "");
      onVerdict(v);
    } catch (e) {
      if (e instanceof ApiError && e.status === 422) {
        say(status, t("pharmacist.looking_for_a_qr_code"), "busy");
      } else if (e instanceof ApiError && e.status === 0) {
        stop();
        say(status, errorText(e), "error");
      } else {
        // A readable code that is not a valid prescription: say so, keep looking.
        say(status, errorText(e), "error");
      }
    } finally {
      busy = false;
    }
  };

  startBtn.addEventListener("click", async () => {
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      say(status, t("pharmacist.this_browser_cannot_use_a"), "error");
      return;
    }
    onStart();
    say(status, t("pharmacist.asking_for_the_camera"), "busy");
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: { ideal: "environment" } }, audio: false });
    } catch (e) {
      stream = null;
      const msg = {
        NotAllowedError: t("pharmacist.camera_permission_was_denied_allow"),
        SecurityError: t("pharmacist.camera_permission_was_denied_allow"),
        NotFoundError: t("pharmacist.no_camera_was_found_upload"),
        OverconstrainedError: t("pharmacist.no_suitable_camera_was_found"),
        NotReadableError: t("pharmacist.the_camera_is_in_use"),
      }[e && e.name] || t("pharmacist.the_camera_could_not_be");
      say(status, msg, "error");
      return;
    }
    video.srcObject = stream;
    video.hidden = false;
    startBtn.hidden = true;
    stopBtn.hidden = false;
    await video.play().catch(() => {});
    say(status, t("pharmacist.looking_for_a_qr_code"), "busy");
    timer = setInterval(frame, FRAME_INTERVAL_MS);
    stopBtn.focus();
  });
  stopBtn.addEventListener("click", () => {
    stop();
    say(status, t("pharmacist.camera_stopped"));
    startBtn.focus();
  });

  const node = el("div", {}, el("p", { class: "hint" }, t("pharmacist.point_the_camera_at_the")), video, status,
    el("div", { class: "actions" }, startBtn, stopBtn));
  return { node, stop };
}

// ---------------------------------------------------------------------------
// The verdict card

/** A card for a record opened from the list, without a scanned code. */
function recordVerdict(view) {
  const rec = view.record;
  const code = view.public_status === "completed" ? "already_dispensed"
    : view.public_status === "cancelled" ? "cancelled"
    : view.public_status === "expired" ? "expired"
    : "record_only";
  return { verdict: "record", code, message: t("pharmacist.scan_the_patient_s_code"), payload: null, secret_ok: null, prescription: { ...view, record: rec }, height: null };
}

/** The sentence for a green verdict, in the page's language. */
function greenSentence(v) {
  if (v.code === "claimable") return t("pharmacist.verdict_claimable");
  return v.prescription?.public_status === "partially_dispensed"
    ? t("pharmacist.verdict_claimed_here_partly")
    : t("pharmacist.verdict_claimed_here");
}

/** The sentence for a red verdict, naming where and when from the record. */
export function redSentence(v) {
  const rec = v.prescription?.record || {};
  switch (v.code) {
    case "already_dispensed": {
      const f = rec.fills?.[rec.fills.length - 1];
      if (f) return t("pharmacist.already_dispensed_at_pharmacy_on", { pharmacy: orgName(f.pharmacy), at: fmtDateTime(f.at) });
      break;
    }
    case "claimed_by_other":
      if (rec.claim) return t("pharmacist.claimed_by_pharmacy_since_at", { pharmacy: orgName(rec.claim.pharmacy), at: fmtDateTime(rec.claim.at) });
      break;
    case "cancelled":
      if (rec.cancelled) return t("pharmacist.cancelled_on_cancelled_do_not", { cancelled: fmtDateTime(rec.cancelled[0]) });
      break;
    case "expired":
      return t("pharmacist.expired_on_valid_until_do", { valid_until: fmtDateTime(rec.valid_until) });
    case "not_yet_valid":
      return t("pharmacist.not_valid_until_valid_from", { valid_from: fmtDateTime(rec.valid_from) });
    case "assigned_elsewhere":
      if (rec.fulfilment) return t("pharmacist.the_patient_chose_pharmacy_for", { pharmacy: orgName(rec.fulfilment.pharmacy) });
      break;
    default:
  }
  // Any other refusal in the catalogue's words when they need no details
  // the verdict lacks; the server's sentence only for a code unknown here.
  const known = errorSentence(v.code, null);
  return known && !/\{\w+\}/.test(known) ? known : humanize(v.message);
}

function renderVerdict(box, v, { pharmacy, note, noteKind, changed, actions, refresh }) {
  const rx = v.prescription;
  const rec = rx.record;
  const lastFill = rec.fills?.[rec.fills.length - 1];
  // After our own final dispense the chain says "already dispensed": that is
  // the good ending here, shown as done rather than as a warning.
  const doneHere = v.verdict === "red" && v.code === "already_dispensed" && lastFill?.pharmacy === pharmacy && note && noteKind === "ok";
  const recordOnly = !v.payload;
  const kind = doneHere || (recordOnly && rx.public_status === "completed") ? "done" : v.verdict === "green" ? "green" : "red";
  const title = recordOnly
    ? t("pharmacist.record_public_status", { public_status: statusLabel(rx.public_status) })
    : doneHere
    ? t("pharmacist.dispensed_and_complete")
    : v.code === "claimable" ? t("pharmacist.genuine_you_may_claim_it")
    : v.code === "already_claimed_here" ? t("pharmacist.claimed_by_your_pharmacy_ready")
    : t("pharmacist.do_not_dispense");
  const sentence = doneHere
    ? t("pharmacist.dispensed_at_pharmacy_on_at", { pharmacy: orgName(lastFill.pharmacy), at: fmtDateTime(lastFill.at) })
    : v.verdict === "green" ? greenSentence(v) : redSentence(v);
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true, id: "action-status" });
  if (note) say(status, note, noteKind);
  if (changed) status.dataset.changed = "true";

  const f = rec.fulfilment;
  const facts = el("dl", { class: "facts" },
    el("dt", {}, t("pharmacist.prescription")), el("dd", {}, el("span", { class: "short-id", id: "verdict-short-id" }, rx.short_id), " ", statusBadge(rx.public_status)),
    el("dt", {}, t("pharmacist.prescriber")), el("dd", { id: "verdict-prescriber" }, rx.prescriber?.name || t("pharmacist.unknown_key")),
    el("dt", {}, t("pharmacist.hospital")), el("dd", {}, rx.hospital_name || orgName(rec.hospital)),
    el("dt", {}, t("pharmacist.issued")), el("dd", {}, fmtDateTime(rec.issued_at)),
    el("dt", {}, t("pharmacist.valid_until")), el("dd", {}, fmtDateTime(rec.valid_until)),
    el("dt", {}, t("pharmacist.code")), el("dd", { id: "verdict-code-check" }, recordOnly ? t("pharmacist.not_scanned_opened_from_the")
      : v.secret_ok ? t("pharmacist.genuine_it_belongs_to_this") : t("pharmacist.not_genuine_a_forged_or")),
    f ? [el("dt", {}, t("pharmacist.patient_chose")), el("dd", {}, f.mode === "delivery" ? t("pharmacist.home_delivery_by_pharmacy", { pharmacy: orgName(f.pharmacy) }) : t("pharmacist.pickup_at_pharmacy", { pharmacy: orgName(f.pharmacy) }))] : null,
    rec.repeats ? [el("dt", {}, t("pharmacist.repeat_fills")), el("dd", {}, String(rec.repeats))] : null);

  const items = el("table", { id: "verdict-items" },
    el("thead", {}, el("tr", {}, [t("pharmacist.medicine"), t("pharmacist.per_fill"), t("pharmacist.dispensed_allowed")].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rec.items.map((it, i) => el("tr", {},
      el("td", {}, drugText(it), it.controlled ? [" ", el("span", { class: "badge badge-controlled" }, t("pharmacist.controlled"))] : null),
      el("td", { class: "num" }, `${it.quantity} ${it.unit}`),
      el("td", { class: "num" }, `${rec.dispensed?.[i] ?? 0} / ${allowance(rx, i)}`)))));

  const heading = el("h2", { tabindex: "-1", id: "verdict-title" }, title);
  // The precise codes, for a call to the help desk or an audit; closed by default.
  const tech = el("details", { class: "tech", id: "verdict-tech" },
    el("summary", {}, t("pharmacist.technical_details")),
    el("dl", { class: "facts" },
      el("dt", {}, t("pharmacist.verdict_code")), el("dd", { class: "mono" }, v.code),
      recordOnly ? null : [el("dt", {}, t("pharmacist.qr_secret")), el("dd", {}, v.secret_ok ? t("pharmacist.matches_the_access_key_on") : t("pharmacist.does_not_match_the_access"))],
      el("dt", {}, t("pharmacist.prescription_id")), el("dd", { class: "mono" }, rec.id),
      v.height === null ? null : [el("dt", {}, t("pharmacist.read_at_block")), el("dd", {}, String(v.height))],
      rec.items.map((it) => [el("dt", {}, it.name), el("dd", { class: "mono" }, t("pharmacist.atc_atc", { atc: it.atc }))])));
  const info = el("div", { class: "verdict-info" }, facts, tableWrap(items, t("pharmacist.medicines")), tech);
  const act = el("div", { class: "verdict-actions" });

  const claimedHere = rec.claim?.pharmacy === pharmacy && rec.status === "claimed";
  if (v.code === "claimable" && !recordOnly) {
    const claim = el("button", { type: "button", class: "btn btn-ok", id: "claim" }, t("pharmacist.claim_for_my_pharmacy"));
    claim.addEventListener("click", () => actions.claim(claim, status));
    act.append(el("p", {}, t("pharmacist.claiming_locks_it_for_this")),
      el("div", { class: "actions" }, claim));
  }
  if (!recordOnly && (v.code === "already_claimed_here" || claimedHere)) {
    act.append(dispenseForm(rx, status, actions));
    const release = el("button", { type: "button", class: "btn btn-quiet", id: "release" }, t("pharmacist.release_return_it"));
    release.addEventListener("click", () => {
      if (window.confirm(t("pharmacist.release_this_prescription_another_pharma"))) actions.release(release, status);
    });
    act.append(el("div", { class: "actions" }, release));
  }
  // Delivery events follow the dispense, so they stay available after
  // completion; a pickup is only marked ready while it is still open.
  const open = !["completed", "cancelled", "expired"].includes(rx.public_status);
  if (!recordOnly && rec.claim?.pharmacy === pharmacy && f && (f.mode === "delivery" ? rx.public_status !== "cancelled" : open)) {
    act.append(deliveryControl(rec, status, actions));
  }
  // When the state was read, and a way to read it again once it is old.
  const checked = el("p", { class: "hint verdict-checked", id: "verdict-checked" });
  const again = el("button", { type: "button", class: "btn btn-primary", id: "verdict-refresh" }, t("pharmacist.check_again"));
  again.addEventListener("click", () => refresh());
  const stale = el("div", { class: "status verdict-stale-note", id: "verdict-stale", role: "alert", hidden: true, dataset: { kind: "error" } },
    el("span", { class: "stale-text" }), " ", again);
  const node = el("div", { class: `card verdict verdict-${kind}`, dataset: { verdict: v.verdict, code: v.code, height: String(v.height), restoreScope: rec.id } },
    el("div", { class: "verdict-title" }, el("span", { class: "icon", "aria-hidden": "true" }, kind === "red" ? "✕" : "✓"), heading),
    el("p", { class: "sentence", id: "verdict-sentence" }, sentence),
    checked,
    stale,
    status,
    el("div", { class: act.childElementCount ? "verdict-body" : "" }, info, act.childElementCount ? act : null));
  setChildren(box, node);
  heading.focus();
  const fmtTime = (ms) => new Date(ms).toLocaleTimeString(locale);
  return {
    // An old card is greyed out and cannot be acted on until it is read again.
    setFresh(fresh, at) {
      const state = v.height === null ? t("pharmacist.chain_state") : t("pharmacist.chain_state_at_block_height", { height: v.height });
      checked.textContent = at
        ? t("pharmacist.state_last_confirmed_at_at", { state, at: fmtTime(at) })
        : t("pharmacist.state_not_confirmed_since_it", { state });
      if ((node.dataset.stale === "true") === !fresh) return;
      node.dataset.stale = fresh ? "false" : "true";
      node.classList.toggle("verdict-old", !fresh);
      stale.hidden = fresh;
      stale.querySelector(".stale-text").textContent = fresh ? "" : at
        ? t("pharmacist.not_confirmed_by_the_chain", { at: fmtTime(at) })
        : t("pharmacist.this_card_could_not_be");
      for (const c of act.querySelectorAll("button, input, select")) c.disabled = !fresh;
    },
  };
}

function dispenseForm(rx, status, actions) {
  const rec = rx.record;
  const inputs = rec.items.map((it, i) => {
    // What may still be dispensed, as the chain computes it.
    const remaining = Number(rx.remaining[i]);
    const qty = el("input", { id: `dispense-qty-${i}`, type: "number", min: "0", max: String(remaining), step: "1", inputmode: "numeric", value: String(Math.min(it.quantity, remaining)) });
    const batch = el("input", { id: `dispense-batch-${i}`, autocomplete: "off", spellcheck: "false" });
    return {
      i, remaining, qty, batch,
      node: el("fieldset", {},
        el("legend", {}, drugText(it)),
        el("p", { class: "hint" }, t("pharmacist.remaining_unit_may_still_be", { remaining, unit: it.unit })),
        el("div", { class: "row" },
          el("div", { class: "field narrow" }, el("label", { for: qty.id }, t("pharmacist.quantity_unit", { unit: it.unit })), qty),
          el("div", { class: "field" }, el("label", { for: batch.id }, t("pharmacist.batch_number")), batch))),
    };
  });
  const remainingTotal = inputs.reduce((n, x) => n + x.remaining, 0);
  const complete = el("input", { type: "checkbox", id: "dispense-complete" });
  const syncComplete = () => {
    complete.checked = inputs.every((x) => Number(x.qty.value || 0) >= x.remaining);
  };
  inputs.forEach((x) => x.qty.addEventListener("input", syncComplete));
  syncComplete();
  const submit = el("button", { type: "submit", class: "btn btn-ok", id: "dispense" }, t("pharmacist.dispense"));
  const form = el("form", { id: "dispense-form", novalidate: true },
    el("h3", {}, t("pharmacist.dispense")),
    remainingTotal === 0 ? el("p", { class: "hint" }, t("pharmacist.everything_allowed_has_been_dispensed")) : null,
    inputs.map((x) => x.node),
    el("label", { class: "check", for: "dispense-complete" }, complete,
      el("span", {}, t("pharmacist.this_completes_the_prescription_nothing"))),
    el("div", { class: "actions" }, submit));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const lines = [];
    for (const x of inputs) {
      x.qty.removeAttribute("aria-invalid");
      x.batch.removeAttribute("aria-invalid");
      const q = Number(x.qty.value || 0);
      if (!Number.isInteger(q) || q < 0 || q > x.remaining) {
        say(status, t("pharmacist.quantity_for_items_must_be", { items: drugText(rec.items[x.i]), remaining: x.remaining }), "error");
        x.qty.setAttribute("aria-invalid", "true");
        x.qty.focus();
        return;
      }
      if (q > 0 && !x.batch.value.trim()) {
        say(status, t("pharmacist.enter_the_batch_number_for", { items: drugText(rec.items[x.i]) }), "error");
        x.batch.setAttribute("aria-invalid", "true");
        x.batch.focus();
        return;
      }
      if (q > 0) lines.push({ item: x.i, quantity: q, batch: x.batch.value.trim() });
    }
    if (!lines.length && !complete.checked) {
      say(status, t("pharmacist.enter_a_quantity_to_dispense"), "error");
      inputs[0]?.qty.focus();
      return;
    }
    actions.dispense(submit, status, lines, complete.checked);
  });
  return form;
}

function deliveryControl(rec, status, actions) {
  const mode = rec.fulfilment?.mode;
  const steps = mode === "delivery" ? DELIVERY_STEPS : ["ready_for_pickup"];
  const done = (rec.delivery || []).map((d) => d.status);
  const last = done[done.length - 1];
  const next = mode === "delivery"
    ? ({ undefined: "packed", packed: "dispatched", dispatched: "out_for_delivery", out_for_delivery: "delivered", failed: "returned" })[last]
    : (done.includes("ready_for_pickup") ? undefined : "ready_for_pickup");
  const select = el("select", { id: "delivery-status" },
    steps.map((s) => el("option", { value: s, selected: s === next }, deliveryLabel(s))));
  const submit = el("button", { type: "submit", class: "btn btn-primary", id: "delivery-submit" }, t("pharmacist.record"));
  const detail = deliveryDetailFields(select, "delivery", rec.controlled);
  const form = el("form", { id: "delivery-form" },
    el("h3", {}, mode === "delivery" ? t("pharmacist.delivery_progress") : t("pharmacist.pickup")),
    done.length
      ? el("ol", { class: "timeline" }, rec.delivery.map((d) => el("li", { class: "delivery" }, el("time", {}, fmtDateTime(d.at)), deliveryText(d))))
      : el("p", { class: "hint" }, mode === "delivery" ? t("pharmacist.no_delivery_events_yet") : t("pharmacist.not_marked_ready_yet")),
    el("div", { class: "row" },
      el("div", { class: "field" }, el("label", { for: "delivery-status" }, t("pharmacist.status")), select),
      ...detail.fields),
    el("div", { class: "actions" }, submit));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    actions.delivery(submit, status, select.value, detail.value());
  });
  return form;
}

// ---------------------------------------------------------------------------
// My pharmacy's prescriptions

const HEADERS = [t("pharmacist.short_id"), t("pharmacist.status"), t("pharmacist.mode"), t("pharmacist.medicines"), t("pharmacist.last_event"), t("pharmacist.valid_until"), t("pharmacist.action")];

function pharmacyList(card, pharmacy, openPayload, openRecord) {
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true, id: "list-status" });
  const body = el("div", { id: "pharmacy-list" }, el("p", { class: "empty" }, t("pharmacist.loading")));
  setChildren(card, el("h2", { id: "list-title" }, t("pharmacist.my_pharmacy_s_prescriptions")),
    el("p", { class: "hint" }, t("pharmacist.assigned_to_or_claimed_by")), status, body);
  let lastKey = "";

  const render = (items) => {
    const key = JSON.stringify(items);
    if (key === lastKey) return;
    lastKey = key;
    if (!items.length) {
      setChildren(body, el("p", { class: "empty" }, t("pharmacist.no_prescriptions_are_assigned_to")));
      return;
    }
    const rows = items.map((p) => {
      const rec = p.record || p;
      const f = rec.fulfilment;
      const events = rec.delivery || [];
      const last = events[events.length - 1];
      const open = el("button", { type: "button", class: "btn btn-small", "aria-label": t("pharmacist.open_prescription_short_id", { short_id: p.short_id }),
        onclick: () => (p.payload ? openPayload(p.payload) : openRecord(p.id)) }, t("pharmacist.open"));
      const mode = f
        ? (f.mode === "delivery" ? [t("pharmacist.delivery"), p.delivery_address ? el("div", { class: "hint" }, p.delivery_address) : null] : t("pharmacist.pickup"))
        : (p.claimed_here ? t("pharmacist.walk_in") : "");
      const cells = [
        [el("span", { class: "short-id" }, p.short_id), el("div", { class: "hint" }, p.hospital_name || "")],
        statusBadge(p.public_status),
        mode,
        (rec.items || []).map((it) => el("div", {}, `${it.name} ${it.strength || ""} × ${it.quantity}`)),
        last ? [deliveryLabel(last.status), el("div", { class: "hint" }, fmtDateTime(last.at))] : "—",
        fmtDate(rec.valid_until),
        open,
      ];
      return el("tr", { dataset: { id: p.id } }, cells.map((c, i) => el("td", { "data-label": HEADERS[i] }, el("div", {}, c))));
    });
    const tbl = el("table", { id: "pharmacy-table", class: "stack" },
      el("thead", {}, el("tr", {}, HEADERS.map((h, i) => el("th", { scope: "col" },
        i === HEADERS.length - 1 ? el("span", { class: "visually-hidden" }, h) : h)))),
      el("tbody", {}, rows));
    setChildren(body, tableWrap(tbl, t("pharmacist.prescription_list")));
  };

  const refresh = async () => {
    try {
      const items = await get("/v1/staff/pharmacy/prescriptions");
      render(Array.isArray(items) ? items : items.prescriptions || []);
      if (status.dataset.kind === "error") say(status, "");
    } catch (e) {
      say(status, errorText(e), "error");
    }
  };
  refresh();
  poll(refresh, 5000);
  return { refresh };
}
