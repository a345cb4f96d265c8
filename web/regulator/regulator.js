// Regulator page, two views. Oversight: dispensing report with a hand-drawn
// SVG bar chart and CSV export, refused attempts (alerts), controlled-drug
// volumes, and the chain's status with an on-demand full verification, and
// the open governance proposals (changes to the consortium awaiting
// approvals). Access (`#access`): who read private content on this node
// (by staff member), unusual volumes (one staff member opening many
// patients' records), and this node's access log checked against the head
// anchored on the chain.

import {
  get, post, el, errorSentence, setChildren, say, withBusy, errorText, staffPage, loadOrgs, humanize,
  fmtDate, fmtDateTime, isoDay, tableWrap, query, orgName, roleLabel, t, tn, locale,
} from "/assets/api.js";

const GROUPS = [
  ["day", t("regulator.day")],
  ["pharmacy", t("regulator.pharmacy")],
  ["drug", t("regulator.drug")],
  ["prescriber", t("regulator.prescriber")],
  ["hospital", t("regulator.hospital")],
];

staffPage({
  root: document.getElementById("app"),
  roles: ["regulator_officer"],
  userArea: document.getElementById("user-area"),
  start,
});

function start() {
  const app = document.getElementById("app");
  loadOrgs().catch(() => {});
  const reportCard = el("section", { class: "card", "aria-labelledby": "report-title" });
  const alertsCard = el("section", { class: "card", "aria-labelledby": "alerts-title" });
  const controlledCard = el("section", { class: "card", "aria-labelledby": "controlled-title" });
  const chainCard = el("section", { class: "card", "aria-labelledby": "chain-title" });
  const governanceCard = el("section", { class: "card", "aria-labelledby": "governance-title" });
  const oversight = el("div", { id: "oversight-view" },
    reportCard, el("div", { class: "grid grid-2-even" }, controlledCard, chainCard), alertsCard, governanceCard);
  const access = el("div", { id: "access-view", hidden: true });
  const links = [
    el("a", { href: "#oversight", id: "nav-oversight", class: "btn btn-quiet" }, t("regulator.view_oversight")),
    el("a", { href: "#access", id: "nav-access", class: "btn btn-quiet" }, t("regulator.view_access")),
  ];
  const nav = el("nav", { class: "actions", "aria-label": t("regulator.views") }, links);
  setChildren(app, nav, oversight, access);

  const controlled = controlledSection(controlledCard);
  reportSection(reportCard, (from, to) => controlled.load(from, to));
  alertsSection(alertsCard);
  chainSection(chainCard);
  governanceSection(governanceCard);

  let accessStarted = false;
  const show = () => {
    const onAccess = location.hash === "#access";
    oversight.hidden = onAccess;
    access.hidden = !onAccess;
    links[0].toggleAttribute("aria-current", !onAccess);
    links[1].toggleAttribute("aria-current", onAccess);
    if (onAccess && !accessStarted) {
      accessStarted = true;
      accessView(access);
    }
  };
  window.addEventListener("hashchange", show);
  show();
}

// ---------------------------------------------------------------------------
// Access: who read private content on this node

const PURPOSES = {
  patient_open: t("regulator.purpose_patient_open"),
  staff_list: t("regulator.purpose_staff_list"),
  pharmacy_handover: t("regulator.purpose_pharmacy_handover"),
  fhir_export: t("regulator.purpose_fhir_export"),
  shared_read: t("regulator.purpose_shared_read"),
  regulator_view: t("regulator.purpose_regulator_view"),
};

function accessView(view) {
  const staffCard = el("section", { class: "card", "aria-labelledby": "access-staff-title", id: "access-staff-card" });
  const volumeCard = el("section", { class: "card", "aria-labelledby": "access-volumes-title", id: "access-volumes-card" });
  const logCard = el("section", { class: "card", "aria-labelledby": "access-log-title", id: "access-log-card" });
  setChildren(view, el("p", { class: "hint", id: "access-scope" }, t("regulator.access_this_node_only")), volumeCard, staffCard, logCard);
  const byStaff = staffSection(staffCard);
  volumeSection(volumeCard, (username) => byStaff.load(username));
  accessLogSection(logCard);
}

function staffSection(card) {
  const staff = el("input", { id: "access-staff", name: "staff", type: "text", autocomplete: "off", spellcheck: "false", required: true });
  const hours = el("input", { id: "access-hours", name: "hours", type: "number", min: "1", max: "87840", value: "720", inputmode: "numeric" });
  const submit = el("button", { type: "submit", class: "btn btn-primary", id: "access-staff-submit" }, t("regulator.show_reads"));
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true, id: "access-staff-status" });
  const out = el("div", { id: "access-reads" });
  const form = el("form", { id: "access-staff-form", novalidate: true },
    el("div", { class: "row" },
      el("div", { class: "field wide" }, el("label", { for: "access-staff" }, t("regulator.staff_sign_in_name")), staff),
      el("div", { class: "field" }, el("label", { for: "access-hours" }, t("regulator.in_the_last_hours")), hours)),
    el("div", { class: "actions" }, submit));
  setChildren(card, el("h2", { id: "access-staff-title" }, t("regulator.reads_by_a_staff_member")), form, status, out);

  const load = async () => {
    const who = staff.value.trim();
    if (!who) {
      say(status, t("regulator.enter_a_sign_in_name"), "error");
      staff.setAttribute("aria-invalid", "true");
      staff.focus();
      return;
    }
    staff.removeAttribute("aria-invalid");
    const r = await withBusy(submit, status, t("regulator.loading_the_reads"), () => get(`/v1/regulator/access${query({ staff: who, hours: hours.value })}`));
    if (!r) return;
    const reads = r.reads || [];
    const summary = el("p", { id: "access-summary" }, t("regulator.who_read_count", { who, reads: tn("regulator.read_count", reads.length), prescriptions: tn("regulator.prescription_count", r.prescriptions) }));
    if (!reads.length) {
      setChildren(out, summary);
      return;
    }
    const name = reads[0].name;
    setChildren(out, summary, tableWrap(stackTable("access-reads-table",
      [t("regulator.when"), t("regulator.who"), t("regulator.prescription"), t("regulator.why"), t("regulator.node"), t("regulator.anchored")],
      [...reads].reverse().map((x) => ({
        dataset: { purpose: x.purpose, username: x.username || "" },
        cells: [
          fmtDateTime(x.at),
          x.org_name ? `${x.name}, ${x.org_name}` : x.name || name,
          el("span", { class: "mono" }, `${String(x.prescription).slice(0, 8)}…`),
          PURPOSES[x.purpose] || x.purpose,
          String(x.node),
          x.anchored ? t("regulator.yes") : t("regulator.not_yet"),
        ],
      }))), t("regulator.access_reads_table")));
  };
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    load();
  });
  return {
    load: (username) => {
      staff.value = username;
      load();
    },
  };
}

function volumeSection(card, onStaff) {
  const hours = el("input", { id: "volume-hours", name: "hours", type: "number", min: "1", max: "87840", value: "24", inputmode: "numeric" });
  const threshold = el("input", { id: "volume-threshold", name: "threshold", type: "number", min: "1", value: "50", inputmode: "numeric" });
  const submit = el("button", { type: "submit", class: "btn btn-primary", id: "volumes-submit" }, t("regulator.look_for_unusual_volumes"));
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true, id: "volumes-status" });
  const out = el("div", { id: "access-volumes" });
  const form = el("form", { id: "volumes-form", novalidate: true },
    el("div", { class: "row" },
      el("div", { class: "field" }, el("label", { for: "volume-hours" }, t("regulator.in_the_last_hours")), hours),
      el("div", { class: "field" }, el("label", { for: "volume-threshold" }, t("regulator.flag_from_prescriptions")), threshold)),
    el("div", { class: "actions" }, submit));
  setChildren(card, el("h2", { id: "access-volumes-title" }, t("regulator.unusual_volumes")),
    el("p", { class: "hint" }, t("regulator.a_staff_member_who_opened")), form, status, out);

  const load = async () => {
    const n = Number(threshold.value);
    if (!Number.isInteger(n) || n < 1) {
      say(status, t("regulator.the_threshold_is_at_least"), "error");
      threshold.setAttribute("aria-invalid", "true");
      threshold.focus();
      return;
    }
    threshold.removeAttribute("aria-invalid");
    await loadOrgs().catch(() => {});
    const r = await withBusy(submit, status, t("regulator.loading_the_volumes"), () => get(`/v1/regulator/access/volumes${query({ hours: hours.value, threshold: n })}`));
    if (!r) return;
    const rows = r.rows || [];
    if (!rows.length) {
      setChildren(out, el("p", { class: "empty" }, t("regulator.no_staff_member_read_anything")));
      return;
    }
    const flagged = rows.filter((x) => x.flagged).length;
    setChildren(out,
      el("p", { id: "volumes-summary" }, flagged
        ? t("regulator.flagged_count_of_threshold", { count: flagged, threshold: r.threshold })
        : t("regulator.nobody_reached_threshold", { threshold: r.threshold })),
      tableWrap(stackTable("access-volumes-table",
        [t("regulator.staff_member"), t("regulator.organisation"), t("regulator.role"), t("regulator.reads"), t("regulator.prescriptions"), t("regulator.flag")],
        rows.map((x) => {
          const who = el("button", { type: "button", class: "btn btn-quiet btn-small", "data-staff": x.username }, x.name);
          who.addEventListener("click", () => onStaff(x.username));
          return {
            dataset: { username: x.username, flagged: String(x.flagged) },
            cells: [
              [who, el("div", { class: "hint mono" }, x.username)],
              x.org ? orgName(x.org) : "",
              roleLabel(x.role),
              String(x.reads),
              String(x.prescriptions),
              x.flagged ? el("span", { class: "badge status-cancelled" }, t("regulator.unusual_volume")) : "",
            ],
          };
        })), t("regulator.access_volumes_table")));
  };
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    load();
  });
  load();
}

function accessLogSection(card) {
  const verify = el("button", { type: "button", class: "btn btn-primary", id: "access-verify" }, t("regulator.check_the_access_log"));
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true, id: "access-verify-status" });
  setChildren(card, el("h2", { id: "access-log-title" }, t("regulator.this_node_s_access_log")),
    el("p", { class: "hint" }, t("regulator.every_record_links_to_the")),
    el("div", { class: "actions" }, verify), status);
  verify.addEventListener("click", async () => {
    const c = await withBusy(verify, status, t("regulator.checking_the_access_log"), () => get("/v1/regulator/access/verify"));
    if (!c) return;
    say(status, t("regulator.the_access_log_verifies", { node: c.node, records: c.records, anchored: c.anchored_seq }), "ok");
  });
}

// ---------------------------------------------------------------------------
// Dispensing report

function reportSection(card, onPeriod) {
  const from = el("input", { id: "from", name: "from", type: "date", value: isoDay(-30), required: true });
  const to = el("input", { id: "to", name: "to", type: "date", value: isoDay(0), required: true });
  const group = el("select", { id: "group-by", name: "group_by" }, GROUPS.map(([v, l]) => el("option", { value: v }, l)));
  const metric = el("select", { id: "metric", name: "metric" },
    el("option", { value: "quantity" }, t("regulator.units_dispensed")),
    el("option", { value: "fills" }, t("regulator.number_of_fills")));
  const submit = el("button", { type: "submit", class: "btn btn-primary", id: "report-submit" }, t("regulator.show_report"));
  const csv = el("a", { class: "btn btn-quiet", id: "csv-link", href: "#", download: "" }, t("regulator.export_csv_one_line_per"));
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true, id: "report-status" });
  const out = el("div", { id: "report" });
  let last = null;

  const form = el("form", { id: "report-form", novalidate: true },
    el("div", { class: "row" },
      el("div", { class: "field" }, el("label", { for: "from" }, t("regulator.from")), from),
      el("div", { class: "field" }, el("label", { for: "to" }, t("regulator.to_inclusive")), to),
      el("div", { class: "field wide" }, el("label", { for: "group-by" }, t("regulator.group_by")), group),
      el("div", { class: "field wide" }, el("label", { for: "metric" }, t("regulator.chart_shows")), metric)),
    el("div", { class: "actions" }, submit, csv));
  setChildren(card, el("h2", { id: "report-title" }, t("regulator.dispensing_report")), form, status, out);

  const params = () => ({ from: from.value, to: to.value, group_by: group.value });
  const syncCsv = () => {
    csv.href = `/v1/reports/dispensing.csv${query(params())}`;
    csv.setAttribute("download", `dispensing-${from.value}-to-${to.value}.csv`);
  };
  [from, to, group].forEach((i) => i.addEventListener("change", syncCsv));
  syncCsv();
  metric.addEventListener("change", () => last && draw(last));

  const draw = (r) => {
    const rows = r.rows || [];
    const m = metric.value;
    const tot = r.totals || {};
    const by = r.group_by || group.value;
    const byLabel = GROUPS.find(([v]) => v === by)?.[1] || t("regulator.group");
    const sum = (k) => rows.reduce((n, x) => n + (Number(x[k]) || 0), 0);
    const totals = el("p", { id: "report-totals" },
      t("regulator.value_to_value2", { value: dayText(r.from || from.value), value2: dayText(r.to || to.value) }),
      el("strong", {}, tn("regulator.fill_count", tot.fills ?? sum("fills"))), ", ",
      el("strong", {}, tn("regulator.units_count", tot.quantity ?? sum("quantity"))),
      t("regulator.controlled_sum_units", { sum: tot.controlled_quantity ?? sum("controlled_quantity") }));
    if (!rows.length) {
      setChildren(out, totals, el("p", { class: "empty" }, t("regulator.nothing_was_dispensed_in_this")));
      return;
    }
    const body = rows.map((x) => el("tr", {},
      el("th", { scope: "row" }, rowLabel(x, by)),
      el("td", { class: "num" }, String(x.fills ?? "")),
      el("td", { class: "num" }, String(x.quantity ?? "")),
      el("td", { class: "num" }, String(x.controlled_quantity ?? ""))));
    const tbl = el("table", { id: "report-table" },
      el("caption", {}, t("regulator.dispensing_by_tolowercase", { group: byLabel.toLowerCase() })),
      el("thead", {}, el("tr", {},
        el("th", { scope: "col" }, byLabel),
        el("th", { scope: "col", class: "num" }, t("regulator.fills")),
        el("th", { scope: "col", class: "num" }, t("regulator.units")),
        el("th", { scope: "col", class: "num" }, t("regulator.controlled")))),
      el("tbody", {}, body));
    setChildren(out, totals, barChart(rows, m, byLabel, by, out.clientWidth), tableWrap(tbl, t("regulator.dispensing_report_table")));
  };
  let resizeTimer = null;
  let lastWidth = out.clientWidth;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      if (last && out.clientWidth !== lastWidth) {
        lastWidth = out.clientWidth;
        draw(last);
      }
    }, 150);
  });

  const load = async () => {
    if (!from.value || !to.value) {
      say(status, t("regulator.choose_both_dates"), "error");
      return;
    }
    if (from.value > to.value) {
      say(status, t("regulator.the_start_date_is_after"), "error");
      from.focus();
      return;
    }
    const r = await withBusy(submit, status, t("regulator.loading_the_report"), () => get(`/v1/reports/dispensing${query(params())}`));
    if (!r) return;
    last = r;
    draw(r);
    onPeriod(from.value, to.value);
  };
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    load();
  });
  load();
}

/** A local date for a `YYYY-MM-DD` day, without a time-zone shift. */
function dayText(day) {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(String(day || ""));
  return m ? fmtDate(new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3])).getTime()) : String(day || "");
}

function rowLabel(row, groupBy) {
  if (groupBy === "day") return dayText(row.label || row.key);
  if (row.label) return row.label;
  if (groupBy === "pharmacy" || groupBy === "hospital") return orgName(row.key);
  return String(row.key ?? "");
}

const SVG_NS = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}, ...children) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

/** A horizontal bar chart of `metric` per row, drawn as SVG. */
function barChart(rows, metric, groupLabel, groupBy, width) {
  // Drawn at the container's own width, so that the text stays 12 px on a
  // phone as on a desktop.
  const W = Math.max(280, Math.min(760, Math.round(width || 640)));
  const labelW = Math.round(Math.min(200, W * 0.36));
  const valueW = 48;
  const barH = 20;
  const gap = 10;
  const top = 8;
  const H = top + rows.length * (barH + gap);
  const max = Math.max(1, ...rows.map((r) => Number(r[metric] || 0)));
  const plotW = W - labelW - valueW;
  const metricLabel = metric === "fills" ? t("regulator.metric_fills") : t("regulator.metric_units");
  const title = svg("title", { id: "chart-title" }, t("regulator.bar_chart_metriclabel_by_tolowercase", { metric: metricLabel, group: groupLabel.toLowerCase() }));
  const chart = svg("svg", { class: "chart", id: "report-chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": "chart-title", preserveAspectRatio: "xMinYMin meet" }, title);
  rows.forEach((r, i) => {
    const y = top + i * (barH + gap);
    const v = Number(r[metric] || 0);
    const w = Math.max(v > 0 ? 2 : 0, (v / max) * plotW);
    let label = rowLabel(r, groupBy);
    const maxChars = Math.floor(labelW / 7);
    if (label.length > maxChars) label = `${label.slice(0, maxChars - 1)}…`;
    chart.append(
      svg("text", { x: labelW - 8, y: y + barH * 0.72, "text-anchor": "end" }, label),
      svg("rect", { class: "bar", x: labelW, y, width: w.toFixed(1), height: barH, rx: 3 }),
      metric === "quantity" && r.controlled_quantity
        ? svg("rect", { class: "bar-controlled", x: labelW, y: y + barH - 5, width: ((Number(r.controlled_quantity) / max) * plotW).toFixed(1), height: 5 })
        : svg("g"),
      svg("text", { x: labelW + w + 6, y: y + barH * 0.72 }, String(v)));
  });
  chart.append(svg("line", { class: "axis", x1: labelW, y1: 0, x2: labelW, y2: H }));
  const legend = el("div", { class: "legend", "aria-hidden": "true" },
    el("span", {}, el("span", { class: "swatch", style: "background:#0b5cad" }), metric === "fills" ? t("regulator.fills") : t("regulator.units_dispensed")),
    metric === "quantity" ? el("span", {}, el("span", { class: "swatch", style: "background:#a23b84" }), t("regulator.of_which_controlled")) : null);
  return el("figure", { style: "margin:0 0 1rem" }, legend, chart);
}

// ---------------------------------------------------------------------------
// Controlled drugs

function controlledSection(card) {
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true });
  const out = el("div", { id: "controlled" }, el("p", { class: "empty" }, t("regulator.loading")));
  setChildren(card, el("h2", { id: "controlled-title" }, t("regulator.controlled_drug_volumes")),
    el("p", { class: "hint", id: "controlled-period" }), status, out);
  return {
    load: async (from, to) => {
      card.querySelector("#controlled-period").textContent = t("regulator.from_to_to_by_drug", { from: dayText(from), to: dayText(to) });
      try {
        const data = await get(`/v1/reports/controlled${query({ from, to })}`);
        say(status, "");
        const rows = Array.isArray(data) ? data : data.rows || [];
        if (!rows.length) {
          setChildren(out, el("p", { class: "empty" }, t("regulator.no_controlled_drugs_were_dispensed")));
          return;
        }
        const known = rows.every((r) => "drug" in r && "pharmacy" in r && "quantity" in r);
        setChildren(out, known
          ? tableWrap(el("table", { id: "controlled-table" },
              el("thead", {}, el("tr", {},
                el("th", { scope: "col" }, t("regulator.drug")), el("th", { scope: "col" }, t("regulator.pharmacy")),
                el("th", { scope: "col", class: "num" }, t("regulator.fills")), el("th", { scope: "col", class: "num" }, t("regulator.units")))),
              el("tbody", {}, rows.map((r) => el("tr", {},
                el("td", {}, r.drug, r.atc ? el("div", { class: "hint" }, t("regulator.atc_atc", { atc: r.atc })) : null),
                el("td", {}, r.pharmacy_name || orgName(r.pharmacy)),
                el("td", { class: "num" }, String(r.fills ?? "")),
                el("td", { class: "num" }, `${r.quantity} ${r.unit || ""}`.trim())))),
              data.total_quantity !== undefined
                ? el("tfoot", {}, el("tr", {}, el("th", { scope: "row", colspan: "3" }, t("regulator.total_units")), el("td", { class: "num" }, String(data.total_quantity))))
                : null), t("regulator.controlled_drug_volumes_table"))
          : genericTable(rows, t("regulator.controlled_drug_volumes_table")));
      } catch (e) {
        say(status, errorText(e), "error");
        out.replaceChildren();
      }
    },
  };
}

const COLUMN_LABELS = {
  atc: t("regulator.atc"), drug: t("regulator.drug"), name: t("regulator.drug"), pharmacy: t("regulator.pharmacy"), pharmacy_name: t("regulator.pharmacy"), quantity: t("regulator.units"), unit: t("regulator.unit"),
  fills: t("regulator.fills"), controlled_quantity: t("regulator.controlled_units"), label: t("regulator.group"), key: t("regulator.key"), strength: t("regulator.strength"),
};

/** A table of objects whose exact shape is the server's: one column per key. */
function genericTable(rows, label) {
  const keys = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!keys.includes(k)) keys.push(k);
  const cell = (k, v) => {
    if (v === null || v === undefined) return "";
    if (typeof v === "object") return v.name || v.label || v.id || JSON.stringify(v);
    if (k === "pharmacy" || k === "hospital") return orgName(v);
    return String(v);
  };
  const numeric = (k) => rows.every((r) => typeof r[k] === "number");
  return tableWrap(el("table", {},
    el("thead", {}, el("tr", {}, keys.map((k) => el("th", { scope: "col", class: numeric(k) ? "num" : "" }, COLUMN_LABELS[k] || k.replace(/_/g, " "))))),
    el("tbody", {}, rows.map((r) => el("tr", {}, keys.map((k) => el("td", { class: numeric(k) ? "num" : "" }, cell(k, r[k]))))))), label);
}

// ---------------------------------------------------------------------------
// Alerts: refused attempts

function alertsSection(card) {
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true, id: "alerts-status" });
  const out = el("div", { id: "alerts" }, el("p", { class: "empty" }, t("regulator.loading")));
  const refresh = el("button", { type: "button", class: "btn btn-quiet btn-small", id: "alerts-refresh" }, t("regulator.refresh"));
  setChildren(card, el("div", { class: "item-head" }, el("h2", { id: "alerts-title" }, t("regulator.alerts_refused_attempts")), refresh),
    el("p", { class: "hint" }, t("regulator.second_dispenses_wrong_qr_secrets")),
    status, out);
  const load = async () => {
    await loadOrgs().catch(() => {});
    const data = await withBusy(refresh, status, t("regulator.loading_alerts"), () => get(`/v1/reports/alerts${query({ limit: 100 })}`));
    if (!data) return;
    const rows = Array.isArray(data) ? data : data.alerts || [];
    if (!rows.length) {
      setChildren(out, el("p", { class: "empty" }, t("regulator.no_refused_attempts_are_recorded")));
      return;
    }
    rows.sort((a, b) => Number(b.at) - Number(a.at));
    setChildren(out, tableWrap(stackTable("alerts-table",
      [t("regulator.when"), t("regulator.what_was_refused"), t("regulator.reason"), t("regulator.prescription"), t("regulator.signed_by"), t("regulator.technical_details")],
      rows.map((a) => ({
        dataset: { code: a.code || "" },
        cells: [
          fmtDateTime(a.at),
          attemptLabel(a.kind),
          errorSentence(a.code, a.detail) || humanize(a.message || a.code || ""),
          el("span", { class: a.short_id ? "short-id" : "mono" }, a.short_id || prescriptionText(a.prescription)),
          signerText(a.signer),
          // The precise codes stay one click away, for audits and exports.
          el("details", { class: "tech" }, el("summary", {}, t("regulator.codes")),
            el("dl", { class: "facts" },
              el("dt", {}, t("regulator.refusal_code")), el("dd", { class: "mono" }, a.code || ""),
              el("dt", {}, t("regulator.transaction")), el("dd", { class: "mono" }, `${a.kind || ""} ${String(a.tx_id || "").slice(0, 16)}…`),
              el("dt", {}, t("regulator.block")), el("dd", {}, String(a.height ?? "")))),
        ],
      }))), t("regulator.alerts")));
  };
  refresh.addEventListener("click", load);
  load();
}

/** What a refused transaction tried to do, for people. */
function attemptLabel(kind) {
  return {
    issue: t("regulator.issuing_a_prescription"), assign: t("regulator.choosing_a_pharmacy"), claim: t("regulator.claiming"), release: t("regulator.releasing"),
    dispense: t("regulator.dispensing"), cancel: t("regulator.cancelling"), delivery: t("regulator.a_delivery_update"), hand_to_carrier: t("regulator.handing_to_a_courier"),
    set_controlled: t("regulator.changing_the_controlled_drug_list"), propose: t("regulator.a_consortium_proposal"), approve: t("regulator.approving_a_proposal"), leave_node: t("regulator.a_node_leaving"),
    register_staff: t("regulator.registering_staff"), revoke_staff: t("regulator.revoking_staff"),
  }[kind] || t("regulator.another_change");
}

/** A table that becomes labelled blocks on narrow screens (see app.css). */
function stackTable(id, headers, rows) {
  return el("table", { id, class: "stack" },
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, rows.map((r) => el("tr", { dataset: r.dataset },
      r.cells.map((c, i) => el("td", { "data-label": headers[i] }, el("div", {}, c)))))));
}

function prescriptionText(p) {
  if (!p) return "";
  if (typeof p === "object") return p.short_id || p.id || "";
  return String(p);
}

function signerText(s) {
  if (!s) return "";
  if (typeof s === "object") {
    const who = s.name || (s.key ? `${String(s.key).slice(0, 10)}…` : t("regulator.unknown_key"));
    return s.org ? `${who}, ${orgName(s.org)}` : s.role === "patient" ? t("regulator.who_patient", { who }) : who;
  }
  const str = String(s);
  return str.length > 24 ? `${str.slice(0, 10)}…` : str;
}

// ---------------------------------------------------------------------------
// Chain status and verification

function chainSection(card) {
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true, id: "chain-status" });
  const facts = el("dl", { class: "facts", id: "chain-facts" });
  const verify = el("button", { type: "button", class: "btn btn-primary", id: "verify" }, t("regulator.verify_now"));
  setChildren(card, el("h2", { id: "chain-title" }, t("regulator.chain_status")), facts, el("div", { class: "actions" }, verify), status);

  const show = (c) => {
    const v = c.last_verification;
    setChildren(facts,
      el("dt", {}, t("regulator.height")), el("dd", { id: "chain-height" }, String(c.height)),
      el("dt", {}, t("regulator.head_hash")), el("dd", { class: "hash" }, String(c.hash || "")),
      c.state_digest ? [el("dt", {}, t("regulator.state_digest")), el("dd", { class: "hash" }, String(c.state_digest))] : null,
      el("dt", {}, t("regulator.last_full_check")),
      el("dd", { id: "last-verification" }, v
        ? [el("span", { class: `badge ${v.ok ? "status-completed" : "status-cancelled"}` }, v.ok ? t("regulator.passed") : t("regulator.failed")),
          t("regulator.at_up_to_block_height", { at: fmtDateTime(v.at), height: v.height }), ": ",
          // A failure's precise cause is the node's own sentence, verbatim
          // (English), for the operators; a pass is said in the page's words.
          v.ok ? t("regulator.every_check_passed") : el("span", { class: "mono", lang: "en" }, v.message || "")]
        : t("regulator.not_run_yet_on_this")));
  };
  const load = async () => {
    const c = await get("/v1/reports/chain");
    show(c);
    return c;
  };
  load().catch((e) => say(status, errorText(e), "error"));

  verify.addEventListener("click", () => withBusy(verify, status, t("regulator.verifying_every_block_signature_and"), async () => {
    const before = (await load()).last_verification?.at;
    await post("/v1/reports/verify", {});
    const deadline = Date.now() + 120000;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 1000));
      const c = await load();
      const v = c.last_verification;
      if (v && v.at !== before) {
        say(status, v.ok ? t("regulator.the_chain_verified_blocks_0", { height: v.height }) : t("regulator.verification_failed_message", { message: t("regulator.see_the_node_s_log") }), v.ok ? "ok" : "error");
        return;
      }
    }
    say(status, t("regulator.the_verification_is_still_running"), "info");
  }));
}

// ---------------------------------------------------------------------------
// Governance: open proposals to change the consortium

const ACTIONS = {
  add_node: (a) => t("regulator.add_node_id_for_org", { id: a.node?.id, org: orgName(a.org) }),
  remove_node: (a) => t("regulator.remove_node_node", { node: a.node }),
  add_org: (a) => t("regulator.admit_id_kind", { id: a.org?.name || a.org?.id, kind: a.org?.kind }),
  rotate_admin_key: (a) => t("regulator.new_admin_key_for_org", { org: orgName(a.org) }),
  rotate_node_keys: (a) => t("regulator.new_keys_for_node_id", { id: a.node?.id }),
  set_params: () => t("regulator.change_the_chain_parameters"),
};

function governanceSection(card) {
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true, id: "governance-status" });
  const list = el("ul", { class: "rx-list", id: "proposals" });
  const rule = el("p", { class: "hint", id: "governance-rule" });
  setChildren(card, el("h2", { id: "governance-title" }, t("regulator.open_governance_proposals")), rule, list, status);
  get("/v1/governance/proposals").then((r) => {
    // The command is a command, the same in every language.
    const command = ["rxchain", "governance", "approve"].join(" ");
    setChildren(rule, t("regulator.a_proposal_takes_effect_once", { threshold: r.threshold, orgs: r.orgs }), " ", el("code", {}, command));
    const open = (r.proposals || []).filter((p) => p.status === "open");
    setChildren(list, open.length === 0
      ? el("li", { class: "empty" }, t("regulator.no_proposal_is_waiting_for"))
      : open.map((p) => {
        const a = p.proposal.action || {};
        const what = (ACTIONS[a.action] || (() => humanize(a.action || "change")))(a);
        return el("li", { class: "rx-entry" },
          el("strong", {}, what),
          el("div", { class: "hint" },
            t("regulator.proposed_by_proposer_approved_by", { proposer: orgName(p.proposal.proposer), approvals: p.proposal.approvals.map(orgName).join(", ") }),
            t("regulator.missing_more_needed_open_until", { missing: p.missing, expires_at: fmtDateTime(p.proposal.expires_at) })),
          el("div", { class: "mono" }, p.proposal.id));
      }));
  }).catch((e) => say(status, errorText(e), "error"));
}
