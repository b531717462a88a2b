// The REST API as the dashboard calls it: the credential from sessionStorage as a bearer header,
// JSON in and out, the service's errors as ApiError. The credential never goes into a URL.
const KEY = "metering.credential";

export class ApiError extends Error {
  constructor(status, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
  }
}

export const credential = () => sessionStorage.getItem(KEY);
export const setCredential = (value) => sessionStorage.setItem(KEY, value);
// Logging out forgets the credential and what the views keep in the tab.
export const forget = () => {
  for (const name of Object.keys(sessionStorage)) if (name.startsWith("metering.") && name !== "metering.zone") sessionStorage.removeItem(name);
};

export function url(path, query = {}) {
  const u = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== undefined && v !== null && v !== "") u.searchParams.append(name, v);
    }
  }
  return u;
}

async function send(method, path, { query, body } = {}) {
  const headers = { Authorization: `Bearer ${credential()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const reply = await fetch(url(path, query), {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store",
  });
  if (!reply.ok) {
    let message = "";
    try {
      const data = await reply.json();
      message = data.message || data.detail || data.error?.message || JSON.stringify(data);
    } catch {
      message = reply.statusText;
    }
    throw new ApiError(reply.status, message);
  }
  return reply;
}

export async function api(method, path, options) {
  const reply = await send(method, path, options);
  return reply.status === 204 ? null : reply.json();
}

// Trades a username and password for a login token (AdminService.Login); no credential needed.
export async function login(username, password) {
  const reply = await fetch("/v1/login", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username, password }),
  });
  const data = await reply.json();
  if (!reply.ok) throw new ApiError(reply.status, data.message);
  return data.token;
}

// Saves what a GET answers as a file (the export routes): fetched with the bearer header, so the key
// stays out of the URL, then handed to the browser as a blob.
export async function download(path, query, filename) {
  const reply = await send("GET", path, { query });
  const blob = await reply.blob();
  const href = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = href;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10000);
}

let spec = null;
// The routes this gateway serves (from /openapi.json): views whose routes are missing say so.
export async function hasRoute(method, path) {
  spec ??= fetch("/openapi.json").then((r) => r.json());
  return Boolean((await spec).paths?.[path]?.[method.toLowerCase()]);
}
