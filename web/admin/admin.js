// Staff admin page: the accounts of the admin's own organisation on this
// node. Enrol a person (account and chain registration in one step), and
// disable, enable, reset the password of, rotate the key of or revoke an
// account. Every call goes through /v1/admin/staff; the node signs the
// chain transactions with the admin's own staff key.

import {
  ApiError, get, post, el, setChildren, say, withBusy, errorText, staffPage,
  fmtDateTime, roleLabel, table, tableWrap, MIN_PASSWORD_LENGTH,
} from "/assets/api.js";

staffPage({
  root: document.getElementById("app"),
  roles: ["admin"],
  userArea: document.getElementById("user-area"),
  start,
});

const ROLES = ["practitioner", "pharmacist", "courier", "regulator_officer", "admin"];

async function start(session) {
  const app = document.getElementById("app");
  const addCard = el("section", { class: "card", "aria-labelledby": "add-title" });
  const listCard = el("section", { class: "card", "aria-labelledby": "staff-title" });
  // The table needs the width: the list spans the page, the form below it.
  setChildren(app, el("div", { class: "grid" }, listCard, addCard));
  const list = staffList(listCard, session);
  addForm(addCard, list.refresh);
  await list.refresh();
}

function addForm(card, onAdded) {
  const username = el("input", { id: "new-username", autocomplete: "off", autocapitalize: "none", spellcheck: "false", required: true });
  const name = el("input", { id: "new-name", autocomplete: "off", required: true });
  const role = el("select", { id: "new-role" }, ROLES.map((r) => el("option", { value: r }, roleLabel(r))));
  const licence = el("input", { id: "new-licence", autocomplete: "off", required: true });
  const password = el("input", { id: "new-password-initial", type: "text", autocomplete: "off", required: true, "aria-describedby": "initial-hint" });
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true, id: "add-status" });
  const submit = el("button", { type: "submit", class: "btn btn-primary", id: "add-staff" }, "Create and register");
  const form = el("form", { id: "add-form", novalidate: true },
    el("div", { class: "row" },
      el("div", { class: "field" }, el("label", { for: "new-username" }, "Username"), username),
      el("div", { class: "field wide" }, el("label", { for: "new-name" }, "Display name"), name)),
    el("div", { class: "row" },
      el("div", { class: "field" }, el("label", { for: "new-role" }, "Role"), role),
      el("div", { class: "field" }, el("label", { for: "new-licence" }, "Licence number"), licence)),
    el("div", { class: "field" }, el("label", { for: "new-password-initial" }, "Initial password"), password,
      el("p", { class: "hint", id: "initial-hint" }, `At least ${MIN_PASSWORD_LENGTH} characters. Give it to the person privately; they must change it at first sign-in.`)),
    status,
    el("div", { class: "actions" }, submit));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const missing = [[username, "username"], [name, "display name"], [licence, "licence number"], [password, "initial password"]]
      .find(([f]) => !f.value.trim());
    if (missing) {
      say(status, `Enter the ${missing[1]}.`, "error");
      missing[0].focus();
      return;
    }
    const created = await withBusy(submit, status, "Creating the account and registering its key on the chain…", () =>
      post("/v1/admin/staff", {
        username: username.value.trim(), name: name.value.trim(), role: role.value,
        licence: licence.value.trim(), password: password.value,
      }));
    if (created) {
      say(status, `${created.username} is enrolled and their key is registered on the chain. They must change the initial password at first sign-in.`, "ok");
      form.reset();
      await onAdded();
    }
  });
  setChildren(card, el("h2", { id: "add-title" }, "Enrol a person"), form);
}

function staffList(card, session) {
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true, id: "staff-status" });
  const body = el("div", { id: "staff-list" });
  setChildren(card, el("h2", { id: "staff-title" }, "Staff"), status, body);

  const act = async (button, text, path, json) => {
    const r = await withBusy(button, status, text, () => post(path, json || {}));
    if (r) await refresh();
    return r;
  };

  const actions = (a) => {
    const u = encodeURIComponent(a.username);
    const base = `/v1/admin/staff/${u}`;
    if (a.revoked) return el("span", { class: "empty" }, "revoked");
    const out = [];
    const btn = (label, cls, fn) => {
      const b = el("button", { type: "button", class: `btn btn-small ${cls}`, dataset: { user: a.username, action: label.toLowerCase().replace(/\s+/g, "-") } }, label);
      b.addEventListener("click", () => fn(b));
      return b;
    };
    if (a.username === session.username) return el("span", { class: "hint" }, "you");
    out.push(a.disabled
      ? btn("Enable", "btn-quiet", (b) => act(b, `Enabling ${a.username}…`, `${base}/enable`))
      : btn("Disable", "btn-quiet", (b) => act(b, `Disabling ${a.username}…`, `${base}/disable`)));
    out.push(btn("Reset password", "btn-quiet", async (b) => {
      const pw = prompt(`New initial password for ${a.username} (at least ${MIN_PASSWORD_LENGTH} characters; they must change it):`);
      if (pw) await act(b, `Resetting ${a.username}'s password…`, `${base}/reset-password`, { password: pw });
    }));
    out.push(btn("Rotate key", "btn-quiet", async (b) => {
      if (confirm(`Give ${a.username} a new signing key and revoke the old one on the chain?`)) {
        await act(b, `Rotating ${a.username}'s key…`, `${base}/rotate-key`);
      }
    }));
    if (a.role === "practitioner") {
      out.push(btn(a.second_factor ? "Replace second factor" : "Require second factor", "btn-quiet", async (b) => {
        if (!confirm(`From now on ${a.username} signs in with a code from an authenticator app as well. Continue?`)) return;
        const r = await act(b, `Enrolling a second factor for ${a.username}…`, `${base}/second-factor`);
        if (r) {
          say(status, `Give ${a.username} this secret for their authenticator app (shown once): ${r.secret_base32}`, "ok");
        }
      }));
    }
    out.push(btn("Revoke", "btn-danger", async (b) => {
      if (confirm(`Revoke ${a.username} for good? Their key is revoked on the chain and the account can never be used again.`)) {
        await act(b, `Revoking ${a.username}…`, `${base}/revoke`, { reason: "left_organisation" });
      }
    }));
    return el("div", { class: "actions" }, out);
  };

  const chainText = (a) => (a.chain_status === "active" ? "active" : a.chain_status === "revoked" ? "revoked" : "not registered");

  async function refresh() {
    let data;
    try {
      data = await get("/v1/admin/staff");
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) location.reload();
      say(status, errorText(e), "error");
      return;
    }
    const rows = data.staff.map((a) => [
      el("span", {}, el("strong", {}, a.name), el("br"), el("span", { class: "mono" }, a.username)),
      roleLabel(a.role),
      el("span", { class: "badge", dataset: { chain: a.chain_status } }, chainText(a)),
      [a.revoked ? "revoked" : a.disabled ? "disabled" : "enabled", a.must_change_password ? " · initial password" : "", a.second_factor ? " · 2 factors" : ""].join(""),
      a.last_sign_in ? fmtDateTime(a.last_sign_in) : "never",
      String(a.past_keys.length + 1),
      actions(a),
    ]);
    setChildren(body, data.staff.length
      ? tableWrap(table(["Person", "Role", "Chain", "Account", "Last sign-in", "Keys", ""], rows, { className: "staff-table" }), "Staff accounts")
      : el("p", { class: "empty" }, "No accounts yet."));
  }

  return { refresh };
}
