// Pharmacist page: scan a prescription QR code three ways (camera, photo,
// handheld scanner typing into a field), see the chain's verdict, then claim,
// dispense (fully or partly), release, and record delivery progress.

import {
  ApiError, api, get, post, el, setChildren, say, withBusy, errorText, staffPage, poll, loadOrgs,
  orgName, humanize, fmtDate, fmtDateTime, statusBadge, drugText, allowance, deliveryLabel, tableWrap, query,
} from "/assets/api.js";

const FRAME_INTERVAL_MS = 700;
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
  const verdictBox = el("section", { id: "verdict", "aria-live": "polite" });
  const listCard = el("section", { class: "card", "aria-labelledby": "list-title" });

  // State of the current scan: the last verdict and what we did with it.
  let current = null;

  const showVerdict = async (v, note) => {
    current = v;
    await loadOrgs().catch(() => {});
    renderVerdict(verdictBox, v, { pharmacy, note, actions });
  };

  const scanText = async (payload, button) => {
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

  // Re-reads the verdict for the current payload after an action.
  const rescan = async (note) => {
    if (!current) return;
    try {
      const v = await post("/v1/scan", { payload: current.payload, pharmacy });
      await showVerdict(v, note);
    } catch (e) {
      say(scanStatus, errorText(e), "error");
    }
    list.refresh();
  };

  const actions = {
    claim: async (button, status) => {
      const r = await withBusy(button, status, "Claiming the prescription on the chain…", () => post("/v1/staff/claim", { payload: current.payload }));
      if (r) await rescan(`Claimed for ${session.org_name || orgName(pharmacy)}. No other pharmacy can dispense it now.`);
    },
    release: async (button, status) => {
      const id = current.prescription.record.id;
      const r = await withBusy(button, status, "Releasing…", () => post("/v1/staff/release", { id }));
      if (r) await rescan("Released: the prescription is available to other pharmacies again.");
    },
    dispense: async (button, status, lines, complete) => {
      const id = current.prescription.record.id;
      const r = await withBusy(button, status, "Recording the dispense on the chain…", () => post("/v1/staff/dispense", { id, lines, complete }));
      if (r) {
        const items = current.prescription.record.items;
        const what = lines.map((l) => `${l.quantity} ${items[l.item].unit} of ${items[l.item].name}`).join(", ");
        await rescan(`Dispensed ${what || "nothing more"}${complete ? "; the prescription is complete" : ""}.`);
      }
    },
    delivery: async (button, status, value) => {
      const id = current.prescription.record.id;
      const r = await withBusy(button, status, "Recording the delivery status…", () => post("/v1/staff/delivery", { id, status: value }));
      if (r) await rescan(`Recorded: ${deliveryLabel(value)}.`);
    },
  };

  // 1. Camera.
  const camera = cameraScanner({ scanBytes, onVerdict: (v) => showVerdict(v) });
  // 2. Photo upload.
  const photo = el("input", { type: "file", id: "photo", name: "photo", accept: "image/*", capture: "environment", "aria-describedby": "photo-hint" });
  photo.addEventListener("change", async () => {
    const file = photo.files?.[0];
    if (!file) return;
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
    if (v) text.value = "";
    text.focus();
  });

  const list = pharmacyList(listCard, pharmacy, async (payload) => {
    await scanText(payload, null);
  });

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

function cameraScanner({ scanBytes, onVerdict }) {
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

function renderVerdict(box, v, { pharmacy, note, actions }) {
  const rx = v.prescription;
  const rec = rx.record;
  const lastFill = rec.fills?.[rec.fills.length - 1];
  // After our own final dispense the chain says "already dispensed": that is
  // the good ending here, shown as done rather than as a warning.
  const doneHere = v.verdict === "red" && v.code === "already_dispensed" && lastFill?.pharmacy === pharmacy && note;
  const kind = doneHere ? "done" : v.verdict === "green" ? "green" : "red";
  const title = doneHere
    ? "Dispensed and complete"
    : v.code === "claimable" ? "Genuine — you may claim it"
    : v.code === "already_claimed_here" ? "Claimed by your pharmacy — ready to dispense"
    : "Do not dispense";
  const sentence = doneHere
    ? `Dispensed at ${orgName(lastFill.pharmacy)} on ${fmtDateTime(lastFill.at)}.`
    : v.verdict === "green" ? v.message : redSentence(v);
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true, id: "action-status" });
  if (note) say(status, note, "ok");

  const f = rec.fulfilment;
  const facts = el("dl", { class: "facts" },
    el("dt", {}, "Prescription"), el("dd", {}, el("span", { class: "short-id", id: "verdict-short-id" }, rx.short_id), " ", statusBadge(rx.public_status)),
    el("dt", {}, "Prescriber"), el("dd", { id: "verdict-prescriber" }, rx.prescriber?.name || "Unknown key"),
    el("dt", {}, "Hospital"), el("dd", {}, rx.hospital_name || orgName(rec.hospital)),
    el("dt", {}, "Issued"), el("dd", {}, fmtDateTime(rec.issued_at)),
    el("dt", {}, "Valid until"), el("dd", {}, fmtDateTime(rec.valid_until)),
    el("dt", {}, "QR secret"), el("dd", {}, v.secret_ok ? "Matches the chain" : "Does NOT match — forged or damaged code"),
    f ? [el("dt", {}, "Patient chose"), el("dd", {}, f.mode === "delivery" ? `Home delivery by ${orgName(f.pharmacy)}` : `Pickup at ${orgName(f.pharmacy)}`)] : null,
    rec.repeats ? [el("dt", {}, "Repeat fills"), el("dd", {}, String(rec.repeats))] : null);

  const items = el("table", { id: "verdict-items" },
    el("thead", {}, el("tr", {}, ["Medicine", "Per fill", "Dispensed / allowed"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rec.items.map((it, i) => el("tr", {},
      el("td", {}, drugText(it), it.controlled ? [" ", el("span", { class: "badge badge-controlled" }, "Controlled")] : null, el("div", { class: "hint" }, `ATC ${it.atc}`)),
      el("td", { class: "num" }, `${it.quantity} ${it.unit}`),
      el("td", { class: "num" }, `${rec.dispensed?.[i] ?? 0} / ${allowance(rx, i)}`)))));

  const heading = el("h2", { tabindex: "-1", id: "verdict-title" }, title);
  const info = el("div", { class: "verdict-info" }, facts, tableWrap(items, "Medicines"));
  const act = el("div", { class: "verdict-actions" });

  const claimedHere = rec.claim?.pharmacy === pharmacy && rec.status === "claimed";
  if (v.code === "claimable") {
    const claim = el("button", { type: "button", class: "btn btn-ok", id: "claim" }, "Claim for my pharmacy");
    claim.addEventListener("click", () => actions.claim(claim, status));
    act.append(el("p", {}, "Claiming locks it for this pharmacy; nobody else can dispense it until you release it."),
      el("div", { class: "actions" }, claim));
  }
  if (v.code === "already_claimed_here" || claimedHere) {
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
  if (rec.claim?.pharmacy === pharmacy && f && (f.mode === "delivery" ? rx.public_status !== "cancelled" : open)) {
    act.append(deliveryControl(rec, status, actions));
  }
  setChildren(box, el("div", { class: `card verdict verdict-${kind}`, dataset: { verdict: v.verdict, code: v.code } },
    el("div", { class: "verdict-title" }, el("span", { class: "icon", "aria-hidden": "true" }, kind === "red" ? "✕" : "✓"), heading),
    el("p", { class: "sentence", id: "verdict-sentence" }, sentence),
    status,
    el("div", { class: act.childElementCount ? "verdict-body" : "" }, info, act.childElementCount ? act : null)));
  heading.focus();
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
  const form = el("form", { id: "delivery-form" },
    el("h3", {}, mode === "delivery" ? "Delivery progress" : "Pickup"),
    done.length
      ? el("ol", { class: "timeline" }, rec.delivery.map((d) => el("li", { class: "delivery" }, el("time", {}, fmtDateTime(d.at)), deliveryLabel(d.status))))
      : el("p", { class: "hint" }, mode === "delivery" ? "No delivery events yet." : "Not marked ready yet."),
    el("div", { class: "row" },
      el("div", { class: "field" }, el("label", { for: "delivery-status" }, "Status"), select)),
    el("div", { class: "actions" }, submit));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    actions.delivery(submit, status, select.value);
  });
  return form;
}

// ---------------------------------------------------------------------------
// My pharmacy's prescriptions

const HEADERS = ["Short id", "Status", "Mode", "Medicines", "Last event", "Valid until", ""];

function pharmacyList(card, pharmacy, openPayload) {
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
      const open = p.payload
        ? el("button", { type: "button", class: "btn btn-small", "aria-label": `Open prescription ${p.short_id}`, onclick: () => openPayload(p.payload) }, "Open")
        : "";
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
      el("thead", {}, el("tr", {}, HEADERS.map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows));
    setChildren(body, tableWrap(t, "My pharmacy's prescriptions"));
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
