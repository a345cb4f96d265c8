// Staff admin page: the accounts of the admin's own organisation on this
// node. Enrol a person (account and chain registration in one step), and
// disable, enable, reset the password of, rotate the key of or revoke an
// account. Every call goes through /v1/admin/staff; the node signs the
// chain transactions with the admin's own staff key.

import {
  ApiError, get, post, el, setChildren, say, withBusy, errorText, staffPage,
  fmtDateTime, roleLabel, table, tableWrap, MIN_PASSWORD_LENGTH, t, tn, locale,
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
  const submit = el("button", { type: "submit", class: "btn btn-primary", id: "add-staff" }, t("admin.create_and_register"));
  const form = el("form", { id: "add-form", novalidate: true },
    el("div", { class: "row" },
      el("div", { class: "field" }, el("label", { for: "new-username" }, t("admin.username")), username),
      el("div", { class: "field wide" }, el("label", { for: "new-name" }, t("admin.display_name")), name)),
    el("div", { class: "row" },
      el("div", { class: "field" }, el("label", { for: "new-role" }, t("admin.role")), role),
      el("div", { class: "field" }, el("label", { for: "new-licence" }, t("admin.licence_number")), licence)),
    el("div", { class: "field" }, el("label", { for: "new-password-initial" }, t("admin.initial_password")), password,
      el("p", { class: "hint", id: "initial-hint" }, t("admin.at_least_min_password_length", { MIN_PASSWORD_LENGTH }))),
    status,
    el("div", { class: "actions" }, submit));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const missing = [[username, "username"], [name, t("admin.display_name_2")], [licence, t("admin.licence_number_2")], [password, t("admin.initial_password_2")]]
      .find(([f]) => !f.value.trim());
    if (missing) {
      say(status, t("admin.enter_the_missing", { missing: missing[1] }), "error");
      missing[0].focus();
      return;
    }
    const created = await withBusy(submit, status, t("admin.creating_the_account_and_registering"), () =>
      post("/v1/admin/staff", {
        username: username.value.trim(), name: name.value.trim(), role: role.value,
        licence: licence.value.trim(), password: password.value,
      }));
    if (created) {
      say(status, t("admin.username_is_enrolled_and_their", { username: created.username }), "ok");
      form.reset();
      await onAdded();
    }
  });
  setChildren(card, el("h2", { id: "add-title" }, t("admin.enrol_a_person")), form);
}

function staffList(card, session) {
  const status = el("div", { class: "status", role: "status", "aria-live": "polite", hidden: true, id: "staff-status" });
  const body = el("div", { id: "staff-list" });
  setChildren(card, el("h2", { id: "staff-title" }, t("admin.staff")), status, body);

  const act = async (button, text, path, json) => {
    const r = await withBusy(button, status, text, () => post(path, json || {}));
    if (r) await refresh();
    return r;
  };

  const actions = (a) => {
    const u = encodeURIComponent(a.username);
    const base = `/v1/admin/staff/${u}`;
    if (a.revoked) return el("span", { class: "empty" }, t("admin.state_revoked"));
    const out = [];
    const btn = (label, action, cls, fn) => {
      const b = el("button", { type: "button", class: `btn btn-small ${cls}`, dataset: { user: a.username, action } }, label);
      b.addEventListener("click", () => fn(b));
      return b;
    };
    if (a.username === session.username) return el("span", { class: "hint" }, t("admin.you"));
    out.push(a.disabled
      ? btn(t("admin.enable"), "enable", "btn-quiet", (b) => act(b, t("admin.enabling_username", { username: a.username }), `${base}/enable`))
      : btn(t("admin.disable"), "disable", "btn-quiet", (b) => act(b, t("admin.disabling_username", { username: a.username }), `${base}/disable`)));
    out.push(btn(t("admin.reset_password"), "reset-password", "btn-quiet", async (b) => {
      const pw = prompt(t("admin.new_initial_password_for_username", { username: a.username, MIN_PASSWORD_LENGTH }));
      if (pw) await act(b, t("admin.resetting_username_s_password", { username: a.username }), `${base}/reset-password`, { password: pw });
    }));
    out.push(btn(t("admin.rotate_key"), "rotate-key", "btn-quiet", async (b) => {
      if (confirm(t("admin.give_username_a_new_signing", { username: a.username }))) {
        await act(b, t("admin.rotating_username_s_key", { username: a.username }), `${base}/rotate-key`);
      }
    }));
    if (a.role === "practitioner") {
      out.push(btn(a.second_factor ? t("admin.replace_second_factor") : t("admin.require_second_factor"), a.second_factor ? "replace-second-factor" : "require-second-factor", "btn-quiet", async (b) => {
        if (!confirm(t("admin.from_now_on_username_signs", { username: a.username }))) return;
        const r = await act(b, t("admin.enrolling_a_second_factor_for", { username: a.username }), `${base}/second-factor`);
        if (r) {
          say(status, t("admin.give_username_this_secret_for", { username: a.username, secret_base32: r.secret_base32 }), "ok");
        }
      }));
    }
    out.push(btn(t("admin.revoke"), "revoke", "btn-danger", async (b) => {
      if (confirm(t("admin.revoke_username_for_good_their", { username: a.username }))) {
        await act(b, t("admin.revoking_username", { username: a.username }), `${base}/revoke`, { reason: "left_organisation" });
      }
    }));
    return el("div", { class: "actions" }, out);
  };

  const chainText = (a) => (a.chain_status === "active" ? t("admin.chain_active") : a.chain_status === "revoked" ? t("admin.state_revoked") : t("admin.not_registered"));

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
      [a.revoked ? t("admin.state_revoked") : a.disabled ? t("admin.state_disabled") : t("admin.state_enabled"), a.must_change_password ? t("admin.initial_password_3") : "", a.second_factor ? t("admin.2_factors") : ""].join(""),
      a.last_sign_in ? fmtDateTime(a.last_sign_in) : t("admin.never"),
      String(a.past_keys.length + 1),
      actions(a),
    ]);
    setChildren(body, data.staff.length
      ? tableWrap(table([t("admin.person"), t("admin.role"), t("admin.chain"), t("admin.account"), t("admin.last_sign_in"), t("admin.keys"), ""], rows, { className: "staff-table" }), t("admin.staff_accounts"))
      : el("p", { class: "empty" }, t("admin.no_accounts_yet")));
  }

  return { refresh };
}
