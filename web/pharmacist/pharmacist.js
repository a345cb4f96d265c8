// Pharmacist page: scan a prescription QR code three ways (camera, photo,
// handheld scanner typing into a field), see the chain's verdict, then claim,
// dispense (fully or partly), release, and record delivery progress.

import {
  ApiError, api, get, post, el, setChildren, say, withBusy, errorText, staffPage, poll, loadOrgs,
  orgName, humanize, fmtDate, fmtDateTime, statusBadge, statusLabel, drugText, allowance, deliveryLabel, deliveryText, deliveryDetailFields, tableWrap, query,
} from "/assets/api.js";

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
  const verdictBox = el("section", { id: "verdict", "aria-label": "Verdict" });
  const listCard = el("section", { class: "card", "aria-labelledby": "list-title" });

  // The verdict on screen, and when (this browser's clock) the chain last
  // confirmed it. A card the chain has not confirmed for VERDICT_STALE_MS is
  // greyed out and its actions are disabled.
  let current = null;
  let confirmedAt = 0;
  let card = null;

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
      say(scanStatus, "The field is empty: scan the code into it, or type it.", "error");
      return null;
    }
    const v = await withBusy(button, scanStatus, "Checking the code against the chain…",
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
        await rescan("This prescription changed on the chain while it was on screen; the card now shows its current state.", "info", true);
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
      await rescan(`Refused: ${errorText(failure)} The card below was reloaded from the chain.`, "error");
      return;
    }
    await rescan(typeof okNote === "function" ? okNote(r) : okNote);
  };

  const actions = {
    claim: (button, status) => act(button, status, "Claiming the prescription on the chain…",
      () => post("/v1/staff/claim", { payload: current.payload }),
      `Claimed for ${session.org_name || orgName(pharmacy)}. No other pharmacy can dispense it now.`),
    release: (button, status) => act(button, status, "Releasing…",
      () => post("/v1/staff/release", { id: current.prescription.record.id }),
      "Released: the prescription is available to other pharmacies again."),
    dispense: (button, status, lines, complete) => {
      const items = current.prescription.record.items;
      const what = lines.map((l) => `${l.quantity} ${items[l.item].unit} of ${items[l.item].name}`).join(", ");
      return act(button, status, "Recording the dispense on the chain…",
        () => post("/v1/staff/dispense", { id: current.prescription.record.id, lines, complete }),
        `Dispensed ${what || "nothing more"}${complete ? "; the prescription is complete" : ""}.`);
    },
    delivery: (button, status, value, detail) => act(button, status, "Recording the delivery status…",
      () => post("/v1/staff/delivery", { id: current.prescription.record.id, status: value, ...detail }),
      `Recorded: ${deliveryLabel(value)}.`),
  };

  // 1. Camera.
  const camera = cameraScanner({ scanBytes, onStart: clearVerdict, onVerdict: (v) => showVerdict(v) });
  // 2. Photo upload.
  const photo = el("input", { type: "file", id: "photo", name: "photo", accept: "image/*", capture: "environment", "aria-describedby": "photo-hint" });
  photo.addEventListener("change", async () => {
    const file = photo.files?.[0];
    if (!file) return;
    clearVerdict();
    const v = await withBusy(photo, scanStatus, "Reading the QR code in the photo…", () => scanBytes(file, file.type));
    if (v) await showVerdict(v);
    photo.value = "";
  });
  // 3. Handheld scanner (types the code and presses Enter) or typing.
  const text = el("input", { id: "scan-text", name: "payload", autocomplete: "off", spellcheck: "false", autocapitalize: "characters", "aria-describedby": "scan-text-hint" });
  const check = el("button", { type: "submit", class: "btn btn-primary", id: "scan-submit" }, "Check");
  const textForm = el("form", { id: "scan-form", novalidate: true },
    el("div", { class: "field" }, el("label", { for: "scan-text" }, "Code from a handheld scanner"), text,
      el("p", { class: "hint", id: "scan-text-hint" }, "Click here and scan; the scanner presses Enter for you.")),
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
    const view = await withBusy(null, scanStatus, "Reading the record from the chain…",
      () => get(`/v1/prescriptions/${encodeURIComponent(id)}`));
    if (view) await showVerdict(recordVerdict(view));
  };
  const list = pharmacyList(listCard, pharmacy, async (payload) => {
    await scanText(payload, null);
  }, openRecord);

  setChildren(app,
    el("section", { "aria-labelledby": "scan-title" },
      el("h2", { id: "scan-title", class: "visually-hidden" }, "Scan a prescription"),
      el("div", { class: "scan-methods" },
        el("div", { class: "card" }, el("h3", {}, "Camera"), camera.node),
        el("div", { class: "card" }, el("h3", {}, "Photo"),
          el("div", { class: "field" }, el("label", { for: "photo" }, "Photo of the QR code"), photo,
            el("p", { class: "hint", id: "photo-hint" }, "Take or choose a photo; it is checked as soon as you pick it."))),
        el("div", { class: "card" }, el("h3", {}, "Scanner or keyboard"), textForm)),
      scanStatus),
    verdictBox,
    listCard);
  window.addEventListener("pagehide", () => camera.stop());
  text.focus();
}

// ---------------------------------------------------------------------------
// Camera: frames go to the node every ~700 ms until it finds a verdict.

function cameraScanner({ scanBytes, onStart, onVerdict }) {
  const startBtn = el("button", { type: "button", class: "btn btn-primary", id: "camera-start" }, "Start camera");
  const stopBtn = el("button", { type: "button", class: "btn btn-quiet", id: "camera-stop", hidden: true }, "Stop camera");
  const video = el("video", { class: "camera", playsinline: true, muted: true, hidden: true, "aria-label": "Camera view" });
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
        say(status, "Looking for a QR code… hold it steady in front of the camera.", "busy");
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
      say(status, "This browser cannot use a camera on this page (it needs a secure https address). Upload a photo or use the scanner field instead.", "error");
      return;
    }
    onStart();
    say(status, "Asking for the camera…", "busy");
    try {
      stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: { ideal: "environment" } }, audio: false });
    } catch (e) {
      stream = null;
      const msg = {
        NotAllowedError: "Camera permission was denied. Allow the camera in the browser's site settings, or upload a photo instead.",
        SecurityError: "Camera permission was denied. Allow the camera in the browser's site settings, or upload a photo instead.",
        NotFoundError: "No camera was found. Upload a photo or use the scanner field instead.",
        OverconstrainedError: "No suitable camera was found. Upload a photo or use the scanner field instead.",
        NotReadableError: "The camera is in use by another program. Close it and try again, or upload a photo.",
      }[e && e.name] || "The camera could not be started. Upload a photo or use the scanner field instead.";
      say(status, msg, "error");
      return;
    }
    video.srcObject = stream;
    video.hidden = false;
    startBtn.hidden = true;
    stopBtn.hidden = false;
    await video.play().catch(() => {});
    say(status, "Looking for a QR code… hold it steady in front of the camera.", "busy");
    timer = setInterval(frame, FRAME_INTERVAL_MS);
    stopBtn.focus();
  });
  stopBtn.addEventListener("click", () => {
    stop();
    say(status, "Camera stopped.");
    startBtn.focus();
  });

  const node = el("div", {}, el("p", { class: "hint" }, "Point the camera at the patient's QR code."), video, status,
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
  return { verdict: "record", code, message: "Scan the patient's code to act on this prescription.", payload: null, secret_ok: null, prescription: { ...view, record: rec }, height: null };
}

/** The sentence for a red verdict, naming where and when from the record. */
export function redSentence(v) {
  const rec = v.prescription?.record || {};
  switch (v.code) {
    case "already_dispensed": {
      const f = rec.fills?.[rec.fills.length - 1];
      if (f) return `Already dispensed at ${orgName(f.pharmacy)} on ${fmtDateTime(f.at)}. Do not dispense it again.`;
      break;
    }
    case "claimed_by_other":
      if (rec.claim) return `Claimed by ${orgName(rec.claim.pharmacy)} since ${fmtDateTime(rec.claim.at)}; only that pharmacy may dispense it.`;
      break;
    case "cancelled":
      if (rec.cancelled) return `Cancelled on ${fmtDateTime(rec.cancelled[0])}. Do not dispense.`;
      break;
    case "expired":
      return `Expired on ${fmtDateTime(rec.valid_until)}. Do not dispense.`;
    case "not_yet_valid":
      return `Not valid until ${fmtDateTime(rec.valid_from)}.`;
    case "assigned_elsewhere":
      if (rec.fulfilment) return `The patient chose ${orgName(rec.fulfilment.pharmacy)} for this prescription; it cannot be claimed here.`;
      break;
    default:
  }
  return humanize(v.message);
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
    ? `Record: ${statusLabel(rx.public_status)}`
    : doneHere
    ? "Dispensed and complete"
    : v.code === "claimable" ? "Genuine — you may claim it"
    : v.code === "already_claimed_here" ? "Claimed by your pharmacy — ready to dispense"
    : "Do not dispense";
  const sentence = doneHere
    ? `Dispensed at ${orgName(lastFill.pharmacy)} on ${fmtDateTime(lastFill.at)}.`
    : v.verdict === "green" ? v.message : redSentence(v);
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true, id: "action-status" });
  if (note) say(status, note, noteKind);
  if (changed) status.dataset.changed = "true";

  const f = rec.fulfilment;
  const facts = el("dl", { class: "facts" },
    el("dt", {}, "Prescription"), el("dd", {}, el("span", { class: "short-id", id: "verdict-short-id" }, rx.short_id), " ", statusBadge(rx.public_status)),
    el("dt", {}, "Prescriber"), el("dd", { id: "verdict-prescriber" }, rx.prescriber?.name || "Unknown key"),
    el("dt", {}, "Hospital"), el("dd", {}, rx.hospital_name || orgName(rec.hospital)),
    el("dt", {}, "Issued"), el("dd", {}, fmtDateTime(rec.issued_at)),
    el("dt", {}, "Valid until"), el("dd", {}, fmtDateTime(rec.valid_until)),
    el("dt", {}, "Code"), el("dd", { id: "verdict-code-check" }, recordOnly ? "Not scanned: opened from the list"
      : v.secret_ok ? "Genuine: it belongs to this prescription" : "NOT genuine: a forged or damaged code"),
    f ? [el("dt", {}, "Patient chose"), el("dd", {}, f.mode === "delivery" ? `Home delivery by ${orgName(f.pharmacy)}` : `Pickup at ${orgName(f.pharmacy)}`)] : null,
    rec.repeats ? [el("dt", {}, "Repeat fills"), el("dd", {}, String(rec.repeats))] : null);

  const items = el("table", { id: "verdict-items" },
    el("thead", {}, el("tr", {}, ["Medicine", "Per fill", "Dispensed / allowed"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rec.items.map((it, i) => el("tr", {},
      el("td", {}, drugText(it), it.controlled ? [" ", el("span", { class: "badge badge-controlled" }, "Controlled")] : null),
      el("td", { class: "num" }, `${it.quantity} ${it.unit}`),
      el("td", { class: "num" }, `${rec.dispensed?.[i] ?? 0} / ${allowance(rx, i)}`)))));

  const heading = el("h2", { tabindex: "-1", id: "verdict-title" }, title);
  // The precise codes, for a call to the help desk or an audit; closed by default.
  const tech = el("details", { class: "tech", id: "verdict-tech" },
    el("summary", {}, "Technical details"),
    el("dl", { class: "facts" },
      el("dt", {}, "Verdict code"), el("dd", { class: "mono" }, v.code),
      recordOnly ? null : [el("dt", {}, "QR secret"), el("dd", {}, v.secret_ok ? "matches the access key on the chain" : "does not match the access key on the chain")],
      el("dt", {}, "Prescription id"), el("dd", { class: "mono" }, rec.id),
      v.height === null ? null : [el("dt", {}, "Read at block"), el("dd", {}, String(v.height))],
      rec.items.map((it) => [el("dt", {}, it.name), el("dd", { class: "mono" }, `ATC ${it.atc}`)])));
  const info = el("div", { class: "verdict-info" }, facts, tableWrap(items, "Medicines"), tech);
  const act = el("div", { class: "verdict-actions" });

  const claimedHere = rec.claim?.pharmacy === pharmacy && rec.status === "claimed";
  if (v.code === "claimable" && !recordOnly) {
    const claim = el("button", { type: "button", class: "btn btn-ok", id: "claim" }, "Claim for my pharmacy");
    claim.addEventListener("click", () => actions.claim(claim, status));
    act.append(el("p", {}, "Claiming locks it for this pharmacy; nobody else can dispense it until you release it."),
      el("div", { class: "actions" }, claim));
  }
  if (!recordOnly && (v.code === "already_claimed_here" || claimedHere)) {
    act.append(dispenseForm(rx, status, actions));
    const release = el("button", { type: "button", class: "btn btn-quiet", id: "release" }, "Release (return it)");
    release.addEventListener("click", () => {
      if (window.confirm("Release this prescription? Another pharmacy may then claim it.")) actions.release(release, status);
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
  const again = el("button", { type: "button", class: "btn btn-primary", id: "verdict-refresh" }, "Check again");
  again.addEventListener("click", () => refresh());
  const stale = el("div", { class: "status verdict-stale-note", id: "verdict-stale", role: "alert", hidden: true, dataset: { kind: "error" } },
    el("span", { class: "stale-text" }), " ", again);
  const node = el("div", { class: `card verdict verdict-${kind}`, dataset: { verdict: v.verdict, code: v.code, height: String(v.height) } },
    el("div", { class: "verdict-title" }, el("span", { class: "icon", "aria-hidden": "true" }, kind === "red" ? "✕" : "✓"), heading),
    el("p", { class: "sentence", id: "verdict-sentence" }, sentence),
    checked,
    stale,
    status,
    el("div", { class: act.childElementCount ? "verdict-body" : "" }, info, act.childElementCount ? act : null));
  setChildren(box, node);
  heading.focus();
  const fmtTime = (ms) => new Date(ms).toLocaleTimeString();
  return {
    // An old card is greyed out and cannot be acted on until it is read again.
    setFresh(fresh, at) {
      const state = v.height === null ? "Chain state" : `Chain state at block ${v.height}`;
      checked.textContent = at
        ? `${state}; last confirmed at ${fmtTime(at)}.`
        : `${state}; not confirmed since it was read.`;
      if ((node.dataset.stale === "true") === !fresh) return;
      node.dataset.stale = fresh ? "false" : "true";
      node.classList.toggle("verdict-old", !fresh);
      stale.hidden = fresh;
      stale.querySelector(".stale-text").textContent = fresh ? "" : at
        ? `Not confirmed by the chain since ${fmtTime(at)}: it may have changed. Do not act on this card.`
        : "This card could not be confirmed by the chain: it may have changed. Do not act on this card.";
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
        el("p", { class: "hint" }, `${remaining} ${it.unit} may still be dispensed.`),
        el("div", { class: "row" },
          el("div", { class: "field narrow" }, el("label", { for: qty.id }, `Quantity (${it.unit})`), qty),
          el("div", { class: "field" }, el("label", { for: batch.id }, "Batch number"), batch))),
    };
  });
  const remainingTotal = inputs.reduce((n, x) => n + x.remaining, 0);
  const complete = el("input", { type: "checkbox", id: "dispense-complete" });
  const syncComplete = () => {
    complete.checked = inputs.every((x) => Number(x.qty.value || 0) >= x.remaining);
  };
  inputs.forEach((x) => x.qty.addEventListener("input", syncComplete));
  syncComplete();
  const submit = el("button", { type: "submit", class: "btn btn-ok", id: "dispense" }, "Dispense");
  const form = el("form", { id: "dispense-form", novalidate: true },
    el("h3", {}, "Dispense"),
    remainingTotal === 0 ? el("p", { class: "hint" }, "Everything allowed has been dispensed; tick complete to close it.") : null,
    inputs.map((x) => x.node),
    el("label", { class: "check", for: "dispense-complete" }, complete,
      el("span", {}, "This completes the prescription (nothing more will be dispensed on it)")),
    el("div", { class: "actions" }, submit));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const lines = [];
    for (const x of inputs) {
      x.qty.removeAttribute("aria-invalid");
      x.batch.removeAttribute("aria-invalid");
      const q = Number(x.qty.value || 0);
      if (!Number.isInteger(q) || q < 0 || q > x.remaining) {
        say(status, `Quantity for ${drugText(rec.items[x.i])} must be a whole number from 0 to ${x.remaining}.`, "error");
        x.qty.setAttribute("aria-invalid", "true");
        x.qty.focus();
        return;
      }
      if (q > 0 && !x.batch.value.trim()) {
        say(status, `Enter the batch number for ${drugText(rec.items[x.i])}.`, "error");
        x.batch.setAttribute("aria-invalid", "true");
        x.batch.focus();
        return;
      }
      if (q > 0) lines.push({ item: x.i, quantity: q, batch: x.batch.value.trim() });
    }
    if (!lines.length && !complete.checked) {
      say(status, "Enter a quantity to dispense, or tick complete.", "error");
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
  const submit = el("button", { type: "submit", class: "btn btn-primary", id: "delivery-submit" }, "Record");
  const detail = deliveryDetailFields(select, "delivery", rec.controlled);
  const form = el("form", { id: "delivery-form" },
    el("h3", {}, mode === "delivery" ? "Delivery progress" : "Pickup"),
    done.length
      ? el("ol", { class: "timeline" }, rec.delivery.map((d) => el("li", { class: "delivery" }, el("time", {}, fmtDateTime(d.at)), deliveryText(d))))
      : el("p", { class: "hint" }, mode === "delivery" ? "No delivery events yet." : "Not marked ready yet."),
    el("div", { class: "row" },
      el("div", { class: "field" }, el("label", { for: "delivery-status" }, "Status"), select),
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

const HEADERS = ["Short id", "Status", "Mode", "Medicines", "Last event", "Valid until", "Action"];

function pharmacyList(card, pharmacy, openPayload, openRecord) {
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true, id: "list-status" });
  const body = el("div", { id: "pharmacy-list" }, el("p", { class: "empty" }, "Loading…"));
  setChildren(card, el("h2", { id: "list-title" }, "My pharmacy's prescriptions"),
    el("p", { class: "hint" }, "Assigned to or claimed by this pharmacy; updates every few seconds."), status, body);
  let lastKey = "";

  const render = (items) => {
    const key = JSON.stringify(items);
    if (key === lastKey) return;
    lastKey = key;
    if (!items.length) {
      setChildren(body, el("p", { class: "empty" }, "No prescriptions are assigned to or claimed by this pharmacy."));
      return;
    }
    const rows = items.map((p) => {
      const rec = p.record || p;
      const f = rec.fulfilment;
      const events = rec.delivery || [];
      const last = events[events.length - 1];
      const open = el("button", { type: "button", class: "btn btn-small", "aria-label": `Open prescription ${p.short_id}`,
        onclick: () => (p.payload ? openPayload(p.payload) : openRecord(p.id)) }, "Open");
      const mode = f
        ? (f.mode === "delivery" ? ["Delivery", p.delivery_address ? el("div", { class: "hint" }, p.delivery_address) : null] : "Pickup")
        : (p.claimed_here ? "Walk-in" : "");
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
    const t = el("table", { id: "pharmacy-table", class: "stack" },
      el("thead", {}, el("tr", {}, HEADERS.map((h, i) => el("th", { scope: "col" },
        i === HEADERS.length - 1 ? el("span", { class: "visually-hidden" }, h) : h)))),
      el("tbody", {}, rows));
    setChildren(body, tableWrap(t, "Prescription list"));
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
