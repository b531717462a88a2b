// Events: RecordService.ListEvents (GET /v1/events) searched by model, kind, project, user and time,
// page by page (the page tokens kept for "previous"); one event (GetEvent) with its payloads, what its
// record says (updated_at, voided) and its history (GetEventHistory: recorded, then each update, void
// and repricing with its time, actor, reason and the fields it changed).
import { api, download, hasRoute } from "./api.js";
import { el, errorBox, input, num, table } from "./dom.js";
import { time } from "./zone.js";

const SEARCH = [["models", "model"], ["kinds", "kind"], ["project_ids", "project"], ["user_ids", "user"]];
const PAYLOADS = ["config_json", "request_json", "request_raw", "response_json", "response_raw"];

export async function render(root, params, ctx) {
  const zone = ctx.zone(params);
  const set = (changes) => ctx.go("events", { ...Object.fromEntries(params), ...changes });
  const csv = el("button", { id: "events-csv", hidden: true }, "Download CSV");
  root.append(el("h1", {}, "Events"),
    el("form", { id: "events-search", onsubmit: (e) => {
      e.preventDefault();
      const changes = { page: "", event: "" };
      for (const [name] of SEARCH) changes[name] = document.getElementById(`events-${name}`).value.trim();
      set(changes);
    } },
    SEARCH.map(([name, text]) => input(`events-${name}`, text, params.get(name) || "", { size: 14, placeholder: "any" })),
    el("label", {}, "voided too", el("input", { type: "checkbox", id: "events-voided", checked: params.get("voided") === "1",
      onchange: (e) => set({ voided: e.target.checked ? "1" : "", page: "" }) })),
    el("button", { type: "submit" }, "Search"), csv));
  const box = el("div", { id: "events-box" }, "loading…");
  const detail = el("div", { id: "event-detail" });
  root.append(box, detail);
  const query = { page_size: 50, include_voided: params.get("voided") === "1" };
  for (const [name] of SEARCH) if (params.get(name)) query[name] = params.get(name).split(",").map((v) => v.trim());
  const tokens = (params.get("page") || "").split(" ").filter(Boolean); // the tokens of the pages before this one
  try {
    const page = await api("GET", "/v1/events", { query: { ...query, page_token: tokens.at(-1) || "" } });
    const rows = page.events.map((e) => el("tr", { class: "clickable", "data-event": e.event_id, onclick: () => set({ event: e.event_id }) },
      el("td", {}, time(e.timestamp, zone)), el("td", {}, e.kind), el("td", {}, e.model), el("td", {}, e.project_id),
      el("td", {}, e.user_id), el("td", { class: "num" }, num(e.input_tokens)), el("td", { class: "num" }, num(e.output_tokens)),
      el("td", { class: "num" }, e.unpriced ? el("span", { class: "unpriced" }, "unpriced") : `${num(e.cost)} ${(e.currency || "").toUpperCase()}`),
      el("td", {}, e.active ? "" : "voided")));
    box.replaceChildren(
      table("events-table", [`Time (${zone})`, "Kind", "Model", "Project", "User", ["Input", { class: "num" }], ["Output", { class: "num" }], ["Cost", { class: "num" }], ""], rows),
      el("div", { class: "pager" },
        el("button", { id: "events-prev", disabled: !tokens.length, onclick: () => set({ page: tokens.slice(0, -1).join(" "), event: "" }) }, "← Previous"),
        el("span", { class: "status" }, `page ${tokens.length + 1}, ${page.events.length} events`),
        el("button", { id: "events-next", disabled: !page.next_page_token, onclick: () => set({ page: [...tokens, page.next_page_token].join(" "), event: "" }) }, "Next →")));
  } catch (err) {
    ctx.loggedOut(err);
    box.replaceChildren(errorBox(err));
  }
  if (params.get("event")) await showEvent(detail, params.get("event"), zone, ctx);
  if (await hasRoute("GET", "/v1/events:export")) {
    csv.hidden = false;
    csv.addEventListener("click", () => download("/v1/events:export", { format: "csv", ...query, page_size: undefined }, "events.csv"));
  }
}

async function showEvent(box, id, zone, ctx) {
  try {
    const path = `/v1/events/${encodeURIComponent(id)}`;
    const [e, history] = await Promise.all([api("GET", path),
      hasRoute("GET", "/v1/events/{event_id}/history").then((served) => (served ? api("GET", `${path}/history`) : null))]);
    const fields = Object.entries(e).filter(([k, v]) => !PAYLOADS.includes(k) && v !== "" && v !== 0 && v !== false
      && !(typeof v === "object" && v !== null && !Object.keys(v).length));
    const trail = [["received", time(e.received_at, zone)], ["last changed", e.updated_at !== e.received_at ? time(e.updated_at, zone) : "never"],
      ["state", e.active ? "active" : "voided"], ["priced by", e.unpriced ? "nothing (unpriced)" : e.price_version || "the caller's cost"]];
    box.replaceChildren(el("div", { class: "card", id: "event-card" },
      el("h2", {}, `Event ${e.event_id}`),
      table("event-trail", ["Record", ""], trail),
      history && [el("h2", {}, "History"), historyTable(history, zone)],
      el("h2", {}, "Fields"),
      table("event-fields", ["Field", "Value"], fields.map(([k, v]) => [k, typeof v === "object" ? JSON.stringify(v) : String(v)])),
      PAYLOADS.filter((k) => e[k]).map((k) => [el("h2", {}, k), el("pre", {}, pretty(e[k]))])));
  } catch (err) {
    ctx.loggedOut(err);
    box.replaceChildren(errorBox(err));
  }
}

// One row per change, oldest first: when, what, by whom, why, and each field before -> after.
function historyTable(history, zone) {
  const value = (v) => (v === undefined || v === null ? "unset" : v === "" ? '""' : v);
  const rows = history.changes.map((c) => {
    const action = c.action.replace(/^ACTION_/, "").toLowerCase();
    return el("tr", { "data-action": action },
      el("td", {}, time(c.time, zone)), el("td", {}, action), el("td", {}, c.actor), el("td", {}, c.reason),
      el("td", {}, c.fields.map((f) => el("div", { class: "change" }, `${f.field}: ${value(f.before)} → ${value(f.after)}`))));
  });
  return table("event-history", [`Time (${zone})`, "What", "By", "Reason", "Changed"], rows);
}

function pretty(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}
