// The dashboard's shell: log in (an API key, or a username and password traded for a login token),
// then one view per location hash ("#usage?width=1d&group=model"): the hash holds what is shown,
// never the credential.
import { ApiError, api, credential, forget, login, setCredential } from "./api.js";
import { errorBox } from "./dom.js";
import { browserZone, isZone } from "./zone.js";

const VIEWS = {
  usage: () => import("./usage.js"),
  costs: () => import("./costs.js"),
  budgets: () => import("./budgets.js"),
  events: () => import("./events.js"),
  keys: () => import("./keys.js"),
  prices: () => import("./prices.js"),
};
const ZONE = "metering.zone";
const $ = (id) => document.getElementById(id);
let who = null;
let current = null; // the view shown: {name, module, dispose}

function location_() {
  const [name, query = ""] = location.hash.slice(1).split("?");
  return { name: VIEWS[name] ? name : "usage", params: new URLSearchParams(query) };
}

export const ctx = {
  get who() { return who; },
  get admin() { return who && (who.role === "ROLE_ADMIN" || who.master); },
  zone(params) {
    const tz = params?.get("tz") || sessionStorage.getItem(ZONE) || browserZone();
    return isZone(tz) ? tz : "UTC";
  },
  setZone(tz) { sessionStorage.setItem(ZONE, tz); },
  // Replaces the hash's parameters of the current view (history keeps one entry per change).
  go(name, params) {
    const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v != null)).toString();
    location.hash = `${name}${query ? "?" + query : ""}`;
  },
  loggedOut(err) {
    if (err instanceof ApiError && err.status === 401) {
      forget();
      showLogin("The credential was refused (revoked or expired): log in again.");
    }
  },
};

function showLogin(message = "") {
  who = null;
  $("login").hidden = false;
  $("view").replaceChildren();
  $("nav").hidden = true;
  $("logout").hidden = true;
  $("who").textContent = "";
  $("login-error").textContent = message;
}

// Who the credential is, asked while the view loads (the view's own calls need no answer from it).
async function start() {
  const asking = api("GET", "/v1/whoami");
  $("login").hidden = true;
  const drawn = route(asking);
  try {
    who = await asking;
  } catch (err) {
    forget();
    current?.dispose?.();
    current = null;
    showLogin(err instanceof ApiError && err.status === 401 ? "That credential was refused." : String(err.message));
    return;
  }
  $("nav").hidden = false;
  $("logout").hidden = false;
  const role = who.master ? "master key" : (who.role || "").replace("ROLE_", "").toLowerCase();
  $("who").textContent = `${who.organization_id} · ${role}${who.user_id ? " · " + who.user_id : ""}`;
  for (const a of document.querySelectorAll("nav a[data-admin]")) a.hidden = !ctx.admin;
  await drawn;
}

async function route(asking) {
  if (!who && !asking) return;
  const { name, params } = location_();
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.view === name);
  const root = $("view");
  current?.dispose?.();
  root.replaceChildren();
  root.dataset.view = name;
  try {
    const module = await VIEWS[name]();
    current = { name, module, dispose: null };
    if (name !== "usage") await asking; // the other views show or hide what depends on the caller's role
    current.dispose = await module.render(root, params, ctx);
  } catch (err) {
    root.append(errorBox(err));
  }
}

$("key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const key = $("key").value.trim();
  $("key").value = "";
  if (!key) return;
  setCredential(key);
  start();
});

$("password-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    const token = await login($("username").value, $("password").value);
    $("password").value = "";
    setCredential(token);
    start();
  } catch (err) {
    $("login-error").textContent = err.message;
  }
});

$("logout").addEventListener("click", () => {
  forget();
  current?.dispose?.();
  current = null;
  showLogin();
});

window.addEventListener("hashchange", () => route());
if (credential()) start();
else showLogin();
