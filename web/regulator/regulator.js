// Regulator page: dispensing report with a hand-drawn SVG bar chart and CSV
// export, refused attempts (alerts), controlled-drug volumes, and the chain's
// status with an on-demand full verification, and the open governance
// proposals (changes to the consortium awaiting approvals).

import {
  get, post, el, setChildren, say, withBusy, errorText, staffPage, loadOrgs, humanize,
  fmtDate, fmtDateTime, isoDay, tableWrap, query, orgName,
} from "/assets/api.js";

const GROUPS = [
  ["day", "Day"],
  ["pharmacy", "Pharmacy"],
  ["drug", "Drug"],
  ["prescriber", "Prescriber"],
  ["hospital", "Hospital"],
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
  setChildren(app, reportCard, el("div", { class: "grid grid-2-even" }, controlledCard, chainCard), alertsCard, governanceCard);

  const controlled = controlledSection(controlledCard);
  reportSection(reportCard, (from, to) => controlled.load(from, to));
  alertsSection(alertsCard);
  chainSection(chainCard);
  governanceSection(governanceCard);
}

// ---------------------------------------------------------------------------
// Dispensing report

function reportSection(card, onPeriod) {
  const from = el("input", { id: "from", name: "from", type: "date", value: isoDay(-30), required: true });
  const to = el("input", { id: "to", name: "to", type: "date", value: isoDay(0), required: true });
  const group = el("select", { id: "group-by", name: "group_by" }, GROUPS.map(([v, l]) => el("option", { value: v }, l)));
  const metric = el("select", { id: "metric", name: "metric" },
    el("option", { value: "quantity" }, "Units dispensed"),
    el("option", { value: "fills" }, "Number of fills"));
  const submit = el("button", { type: "submit", class: "btn btn-primary", id: "report-submit" }, "Show report");
  const csv = el("a", { class: "btn btn-quiet", id: "csv-link", href: "#", download: "" }, "Export CSV (one line per fill)");
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true, id: "report-status" });
  const out = el("div", { id: "report" });
  let last = null;

  const form = el("form", { id: "report-form", novalidate: true },
    el("div", { class: "row" },
      el("div", { class: "field" }, el("label", { for: "from" }, "From"), from),
      el("div", { class: "field" }, el("label", { for: "to" }, "To (inclusive)"), to),
      el("div", { class: "field wide" }, el("label", { for: "group-by" }, "Group by"), group),
      el("div", { class: "field wide" }, el("label", { for: "metric" }, "Chart shows"), metric)),
    el("div", { class: "actions" }, submit, csv));
  setChildren(card, el("h2", { id: "report-title" }, "Dispensing report"), form, status, out);

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
    const t = r.totals || {};
    const by = r.group_by || group.value;
    const byLabel = GROUPS.find(([v]) => v === by)?.[1] || "Group";
    const sum = (k) => rows.reduce((n, x) => n + (Number(x[k]) || 0), 0);
    const totals = el("p", { id: "report-totals" },
      `${dayText(r.from || from.value)} to ${dayText(r.to || to.value)}: `,
      el("strong", {}, plural(t.fills ?? sum("fills"), "fill")), ", ",
      el("strong", {}, plural(t.quantity ?? sum("quantity"), "unit")),
      ` (controlled: ${t.controlled_quantity ?? sum("controlled_quantity")} units).`);
    if (!rows.length) {
      setChildren(out, totals, el("p", { class: "empty" }, "Nothing was dispensed in this period."));
      return;
    }
    const body = rows.map((x) => el("tr", {},
      el("th", { scope: "row" }, rowLabel(x, by)),
      el("td", { class: "num" }, String(x.fills ?? "")),
      el("td", { class: "num" }, String(x.quantity ?? "")),
      el("td", { class: "num" }, String(x.controlled_quantity ?? ""))));
    const tbl = el("table", { id: "report-table" },
      el("caption", {}, `Dispensing by ${byLabel.toLowerCase()}`),
      el("thead", {}, el("tr", {},
        el("th", { scope: "col" }, byLabel),
        el("th", { scope: "col", class: "num" }, "Fills"),
        el("th", { scope: "col", class: "num" }, "Units"),
        el("th", { scope: "col", class: "num" }, "Controlled"))),
      el("tbody", {}, body));
    setChildren(out, totals, barChart(rows, m, byLabel, by, out.clientWidth), tableWrap(tbl, "Dispensing report table"));
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
      say(status, "Choose both dates.", "error");
      return;
    }
    if (from.value > to.value) {
      say(status, "The start date is after the end date.", "error");
      from.focus();
      return;
    }
    const r = await withBusy(submit, status, "Loading the report…", () => get(`/v1/reports/dispensing${query(params())}`));
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

function plural(n, word) {
  return `${n} ${word}${Number(n) === 1 ? "" : "s"}`;
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
  const metricLabel = metric === "fills" ? "fills" : "units";
  const title = svg("title", { id: "chart-title" }, `Bar chart: ${metricLabel} by ${groupLabel.toLowerCase()}`);
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
    el("span", {}, el("span", { class: "swatch", style: "background:#0b5cad" }), metric === "fills" ? "Fills" : "Units dispensed"),
    metric === "quantity" ? el("span", {}, el("span", { class: "swatch", style: "background:#a23b84" }), "of which controlled") : null);
  return el("figure", { style: "margin:0 0 1rem" }, legend, chart);
}

// ---------------------------------------------------------------------------
// Controlled drugs

function controlledSection(card) {
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true });
  const out = el("div", { id: "controlled" }, el("p", { class: "empty" }, "Loading…"));
  setChildren(card, el("h2", { id: "controlled-title" }, "Controlled-drug volumes"),
    el("p", { class: "hint", id: "controlled-period" }), status, out);
  return {
    load: async (from, to) => {
      card.querySelector("#controlled-period").textContent = `${dayText(from)} to ${dayText(to)}, by drug and pharmacy.`;
      try {
        const data = await get(`/v1/reports/controlled${query({ from, to })}`);
        say(status, "");
        const rows = Array.isArray(data) ? data : data.rows || [];
        if (!rows.length) {
          setChildren(out, el("p", { class: "empty" }, "No controlled drugs were dispensed in this period."));
          return;
        }
        const known = rows.every((r) => "drug" in r && "pharmacy" in r && "quantity" in r);
        setChildren(out, known
          ? tableWrap(el("table", { id: "controlled-table" },
              el("thead", {}, el("tr", {},
                el("th", { scope: "col" }, "Drug"), el("th", { scope: "col" }, "Pharmacy"),
                el("th", { scope: "col", class: "num" }, "Fills"), el("th", { scope: "col", class: "num" }, "Units"))),
              el("tbody", {}, rows.map((r) => el("tr", {},
                el("td", {}, r.drug, r.atc ? el("div", { class: "hint" }, `ATC ${r.atc}`) : null),
                el("td", {}, r.pharmacy_name || orgName(r.pharmacy)),
                el("td", { class: "num" }, String(r.fills ?? "")),
                el("td", { class: "num" }, `${r.quantity} ${r.unit || ""}`.trim())))),
              data.total_quantity !== undefined
                ? el("tfoot", {}, el("tr", {}, el("th", { scope: "row", colspan: "3" }, "Total units"), el("td", { class: "num" }, String(data.total_quantity))))
                : null), "Controlled-drug volumes table")
          : genericTable(rows, "Controlled-drug volumes table"));
      } catch (e) {
        say(status, errorText(e), "error");
        out.replaceChildren();
      }
    },
  };
}

const COLUMN_LABELS = {
  atc: "ATC", drug: "Drug", name: "Drug", pharmacy: "Pharmacy", pharmacy_name: "Pharmacy", quantity: "Units", unit: "Unit",
  fills: "Fills", controlled_quantity: "Controlled units", label: "Group", key: "Key", strength: "Strength",
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
  const out = el("div", { id: "alerts" }, el("p", { class: "empty" }, "Loading…"));
  const refresh = el("button", { type: "button", class: "btn btn-quiet btn-small", id: "alerts-refresh" }, "Refresh");
  setChildren(card, el("div", { class: "item-head" }, el("h2", { id: "alerts-title" }, "Alerts: refused attempts"), refresh),
    el("p", { class: "hint" }, "Second dispenses, wrong QR secrets, expired or cancelled prescriptions, and other refusals recorded on the chain."),
    status, out);
  const load = async () => {
    await loadOrgs().catch(() => {});
    const data = await withBusy(refresh, status, "Loading alerts…", () => get(`/v1/reports/alerts${query({ limit: 100 })}`));
    if (!data) return;
    const rows = Array.isArray(data) ? data : data.alerts || [];
    if (!rows.length) {
      setChildren(out, el("p", { class: "empty" }, "No refused attempts are recorded."));
      return;
    }
    rows.sort((a, b) => Number(b.at) - Number(a.at));
    setChildren(out, tableWrap(stackTable("alerts-table",
      ["When", "What was refused", "Reason", "Prescription", "Signed by", "Technical details"],
      rows.map((a) => ({
        dataset: { code: a.code || "" },
        cells: [
          fmtDateTime(a.at),
          attemptLabel(a.kind),
          humanize(a.message || a.code || ""),
          el("span", { class: a.short_id ? "short-id" : "mono" }, a.short_id || prescriptionText(a.prescription)),
          signerText(a.signer),
          // The precise codes stay one click away, for audits and exports.
          el("details", { class: "tech" }, el("summary", {}, "Codes"),
            el("dl", { class: "facts" },
              el("dt", {}, "Refusal code"), el("dd", { class: "mono" }, a.code || ""),
              el("dt", {}, "Transaction"), el("dd", { class: "mono" }, `${a.kind || ""} ${String(a.tx_id || "").slice(0, 16)}…`),
              el("dt", {}, "Block"), el("dd", {}, String(a.height ?? "")))),
        ],
      }))), "Alerts"));
  };
  refresh.addEventListener("click", load);
  load();
}

/** What a refused transaction tried to do, for people. */
function attemptLabel(kind) {
  return {
    issue: "Issuing a prescription", assign: "Choosing a pharmacy", claim: "Claiming", release: "Releasing",
    dispense: "Dispensing", cancel: "Cancelling", delivery: "A delivery update", hand_to_carrier: "Handing to a courier",
    set_controlled: "Changing the controlled-drug list", propose: "A consortium proposal", approve: "Approving a proposal", leave_node: "A node leaving",
    register_staff: "Registering staff", revoke_staff: "Revoking staff",
  }[kind] || "Another change";
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
    const who = s.name || (s.key ? `${String(s.key).slice(0, 10)}…` : "unknown key");
    return s.org ? `${who}, ${orgName(s.org)}` : s.role === "patient" ? `${who} (patient)` : who;
  }
  const t = String(s);
  return t.length > 24 ? `${t.slice(0, 10)}…` : t;
}

// ---------------------------------------------------------------------------
// Chain status and verification

function chainSection(card) {
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true, id: "chain-status" });
  const facts = el("dl", { class: "facts", id: "chain-facts" });
  const verify = el("button", { type: "button", class: "btn btn-primary", id: "verify" }, "Verify now");
  setChildren(card, el("h2", { id: "chain-title" }, "Chain status"), facts, el("div", { class: "actions" }, verify), status);

  const show = (c) => {
    const v = c.last_verification;
    setChildren(facts,
      el("dt", {}, "Height"), el("dd", { id: "chain-height" }, String(c.height)),
      el("dt", {}, "Head hash"), el("dd", { class: "hash" }, String(c.hash || "")),
      c.state_digest ? [el("dt", {}, "State digest"), el("dd", { class: "hash" }, String(c.state_digest))] : null,
      el("dt", {}, "Last full check"),
      el("dd", { id: "last-verification" }, v
        ? [el("span", { class: `badge ${v.ok ? "status-completed" : "status-cancelled"}` }, v.ok ? "Passed" : "FAILED"),
          ` ${fmtDateTime(v.at)}, up to block ${v.height}`, v.message ? `: ${humanize(v.message)}` : ""]
        : "Not run yet on this node."));
  };
  const load = async () => {
    const c = await get("/v1/reports/chain");
    show(c);
    return c;
  };
  load().catch((e) => say(status, errorText(e), "error"));

  verify.addEventListener("click", () => withBusy(verify, status, "Verifying every block, signature and the derived state…", async () => {
    const before = (await load()).last_verification?.at;
    await post("/v1/reports/verify", {});
    const deadline = Date.now() + 120000;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 1000));
      const c = await load();
      const v = c.last_verification;
      if (v && v.at !== before) {
        say(status, v.ok ? `The chain verified: blocks 0 to ${v.height} are intact.` : `Verification FAILED: ${humanize(v.message || "see the node's log")}`, v.ok ? "ok" : "error");
        return;
      }
    }
    say(status, "The verification is still running; check back shortly.", "info");
  }));
}

// ---------------------------------------------------------------------------
// Governance: open proposals to change the consortium

const ACTIONS = {
  add_node: (a) => `add node ${a.node?.id} for ${orgName(a.org)}`,
  remove_node: (a) => `remove node ${a.node}`,
  add_org: (a) => `admit ${a.org?.name || a.org?.id} (${a.org?.kind})`,
  rotate_admin_key: (a) => `new admin key for ${orgName(a.org)}`,
  rotate_node_keys: (a) => `new keys for node ${a.node?.id}`,
  set_params: () => "change the chain parameters",
};

function governanceSection(card) {
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true, id: "governance-status" });
  const list = el("ul", { class: "rx-list", id: "proposals" });
  const rule = el("p", { class: "hint", id: "governance-rule" });
  setChildren(card, el("h2", { id: "governance-title" }, "Open governance proposals"), rule, list, status);
  get("/v1/governance/proposals").then((r) => {
    rule.textContent = `A proposal takes effect once ${r.threshold} of the ${r.orgs} member organisations approve it (rxchain governance approve).`;
    const open = (r.proposals || []).filter((p) => p.status === "open");
    setChildren(list, open.length === 0
      ? el("li", { class: "empty" }, "No proposal is waiting for approvals.")
      : open.map((p) => {
        const a = p.proposal.action || {};
        const what = (ACTIONS[a.action] || (() => humanize(a.action || "change")))(a);
        return el("li", { class: "rx-entry" },
          el("strong", {}, what),
          el("div", { class: "hint" },
            `proposed by ${orgName(p.proposal.proposer)}; approved by ${p.proposal.approvals.map(orgName).join(", ")}; `,
            `${p.missing} more needed; open until ${fmtDateTime(p.proposal.expires_at)}`),
          el("div", { class: "mono" }, p.proposal.id));
      }));
  }).catch((e) => say(status, errorText(e), "error"));
}
