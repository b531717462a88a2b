// Keys and users, for admins: AdminService over /v1/api_keys, /v1/users and /v1/projects. A new key is
// shown once, here, and never again; revoking asks for a second click.
import { api } from "./api.js";
import { el, errorBox, input, select, table } from "./dom.js";
import { time } from "./zone.js";

const ROLES = [["ROLE_MEMBER", "member"], ["ROLE_ADMIN", "admin"]];

export async function render(root, params, ctx) {
  const zone = ctx.zone(params);
  root.append(el("h1", {}, "API keys and users"));
  if (!ctx.admin) {
    root.append(el("p", {}, "Only an organization admin manages keys and users."));
    return;
  }
  const shown = el("div", { id: "new-key" });
  const keysBox = el("div", { id: "keys-box" }, "loading…");
  const usersBox = el("div", { id: "users-box" });
  root.append(
    el("h2", {}, "Create a key"),
    el("form", { id: "key-create", onsubmit: (e) => createKey(e, shown, reload) },
      input("key-name", "Name", "", { required: true }), input("key-project", "Project (optional)", ""),
      input("key-user", "User (optional)", ""), el("button", { type: "submit", class: "primary" }, "Create key")),
    shown, el("h2", {}, "Keys"), keysBox,
    el("h2", {}, "Users"),
    el("form", { id: "user-create", onsubmit: (e) => createUser(e, reload) },
      input("user-name", "Username", "", { required: true }), input("user-password", "Password", "", { type: "password", required: true }),
      select("user-role", "Role", ROLES, "ROLE_MEMBER"), el("button", { type: "submit" }, "Create user")),
    usersBox);

  async function reload() {
    try {
      const [keys, users] = await Promise.all([api("GET", "/v1/api_keys"), api("GET", "/v1/users")]);
      keysBox.replaceChildren(table("keys-table", ["Name", "Id", "Prefix", "Role", "Project", "User", `Created (${zone})`, "State", ""],
        keys.api_keys.map((k) => el("tr", { "data-key": k.api_key_id },
          el("td", {}, k.name), el("td", {}, k.api_key_id), el("td", {}, el("code", {}, k.prefix)), el("td", {}, k.role.replace("ROLE_", "").toLowerCase()),
          el("td", {}, k.project_id), el("td", {}, k.user_id), el("td", {}, time(k.create_time, zone)),
          el("td", { class: k.revoked ? "revoked" : "" }, k.revoked ? `revoked ${time(k.revoke_time, zone)}` : "active"),
          el("td", {}, k.revoked || k.api_key_id === ctx.who.api_key_id ? "" : revokeButton(k, reload))))));
      usersBox.replaceChildren(table("users-table", ["Username", "Id", "Role", `Created (${zone})`],
        users.users.map((u) => [u.username, u.user_id, u.role.replace("ROLE_", "").toLowerCase(), time(u.create_time, zone)])));
    } catch (err) {
      ctx.loggedOut(err);
      keysBox.replaceChildren(errorBox(err));
    }
  }
  await reload();
}

function revokeButton(key, reload) {
  const button = el("button", { class: "danger revoke", "data-key": key.api_key_id }, "Revoke");
  button.addEventListener("click", async () => {
    if (button.dataset.armed !== "1") {
      button.dataset.armed = "1";
      button.textContent = "Click again to revoke";
      return;
    }
    button.disabled = true;
    try {
      await api("POST", `/v1/api_keys/${encodeURIComponent(key.api_key_id)}:revoke`, { body: {} });
      await reload();
    } catch (err) {
      button.replaceWith(errorBox(err));
    }
  });
  return button;
}

async function createKey(e, shown, reload) {
  e.preventDefault();
  const value = (id) => document.getElementById(id).value.trim();
  try {
    const made = await api("POST", "/v1/api_keys", { body: { name: value("key-name"), project_id: value("key-project"), user_id: value("key-user") } });
    shown.replaceChildren(el("div", { class: "card" },
      el("p", {}, `Key ${made.api_key.api_key_id} created. Copy it now: it is shown once and cannot be shown again.`),
      el("div", { class: "secret", id: "new-key-value" }, made.key),
      el("button", { onclick: () => navigator.clipboard?.writeText(made.key) }, "Copy"),
      el("button", { onclick: () => shown.replaceChildren() }, "Done")));
    e.target.reset();
    await reload();
  } catch (err) {
    shown.replaceChildren(errorBox(err));
  }
}

async function createUser(e, reload) {
  e.preventDefault();
  const value = (id) => document.getElementById(id).value;
  try {
    await api("POST", "/v1/users", { body: { username: value("user-name"), password: value("user-password"), role: value("user-role") } });
    e.target.reset();
    await reload();
  } catch (err) {
    e.target.append(errorBox(err));
  }
}
