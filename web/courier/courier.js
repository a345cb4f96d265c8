// Courier page: the open home deliveries of the courier's organisation (those
// a pharmacy handed to it, or a pharmacy's own), each with its address and
// trail, and the next step preselected. A courier never sees the QR code,
// the patient's name or the medicines: only where the parcel goes.

import {
  get, post, el, setChildren, say, withBusy, errorText, staffPage, poll, fmtDateTime, deliveryLabel, t, tn, locale,
  deliveryText, deliveryDetailFields,
} from "/assets/api.js";

staffPage({
  root: document.getElementById("app"),
  roles: ["courier"],
  userArea: document.getElementById("user-area"),
  start,
});

function start() {
  const app = document.getElementById("app");
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true, id: "courier-status" });
  const list = el("div", { id: "deliveries" }, el("p", { class: "empty" }, t("courier.loading")));
  setChildren(app, el("section", { class: "card", "aria-labelledby": "deliveries-title" },
    el("h2", { id: "deliveries-title" }, t("courier.open_deliveries")),
    el("p", { class: "hint" }, t("courier.parcels_your_organisation_carries_the")),
    status, list));
  let lastKey = "";

  const record = async (button, d, value, detail) => {
    const ok = await withBusy(button, status, t("courier.recording_on_the_chain"), () => post("/v1/staff/delivery", { id: d.id, status: value, ...detail }));
    if (ok) say(status, t("courier.short_id_value_recorded", { short_id: d.short_id, value: deliveryLabel(value) }), "ok");
    lastKey = "";
    await refresh();
  };

  const render = (items) => {
    const key = JSON.stringify(items);
    if (key === lastKey) return;
    lastKey = key;
    if (!items.length) {
      setChildren(list, el("p", { class: "empty", id: "no-deliveries" }, t("courier.no_open_deliveries")));
      return;
    }
    setChildren(list, el("ul", { class: "rx-list", "aria-label": t("courier.open_deliveries") }, items.map((d) => {
      const select = el("select", { id: `next-${d.id}`, name: "status" },
        d.allowed.map((s) => el("option", { value: s, selected: s === d.next }, deliveryLabel(s))));
      const button = el("button", { type: "submit", class: "btn btn-primary", id: `record-${d.id}` }, t("courier.record"));
      const detail = deliveryDetailFields(select, `detail-${d.id}`, d.controlled);
      const form = el("form", { class: "row", dataset: { id: d.id } },
        el("div", { class: "field" }, el("label", { for: select.id }, t("courier.next_step")), select),
        ...detail.fields,
        el("div", { class: "actions" }, button));
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        record(button, d, select.value, detail.value());
      });
      return el("li", { class: "rx-entry delivery-entry", dataset: { id: d.id } },
        el("div", { class: "rx-entry-head" }, el("span", { class: "short-id" }, d.short_id), el("span", { class: "hint" }, t("courier.from_pharmacy_name", { pharmacy_name: d.pharmacy_name }))),
        el("address", { class: "delivery-address", id: `address-${d.id}` },
          d.address || t("courier.the_address_cannot_be_opened")),
        el("ol", { class: "timeline" }, d.events.map((e) => el("li", { class: "delivery" },
          el("time", { datetime: new Date(Number(e.at)).toISOString() }, fmtDateTime(e.at)), deliveryText(e)))),
        d.allowed.length ? form : el("p", { class: "hint" }, t("courier.nothing_to_record_until_the")));
    })));
  };

  const refresh = async () => {
    try {
      render(await get("/v1/staff/courier/deliveries"));
      if (status.dataset.kind === "error") say(status, "");
    } catch (e) {
      say(status, errorText(e), "error");
    }
  };
  refresh();
  poll(refresh, 5000);
}
