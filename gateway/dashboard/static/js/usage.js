// Usage over time: QueryService.QueryUsage (POST /v1/usage:query) in 1h, 1d or month buckets of any
// IANA zone, stacked by one dimension, filtered, drawn with uPlot; the numbers are also in the table
// under the chart (#usage-table), as the API returned them. Refresh sends the etags of the buckets
// it holds (known_etags): unchanged buckets come back empty and are taken from here.
import { api, download, hasRoute } from "./api.js";
import { el, errorBox, input, num, select, table } from "./dom.js";
import { stackedBars } from "./chart.js";
import { isZone, label, localDate, range, zones } from "./zone.js";

const WIDTHS = [["1h", "1 hour"], ["1d", "1 day"], ["month", "month"]];
export const GROUPS = [["model", "model"], ["project_id", "project"], ["user_id", "user"],
  ["api_key_id", "API key"], ["kind", "kind"], ["", "nothing"]];
const METRICS = [["events", "events"], ["input_tokens", "input tokens"], ["output_tokens", "output tokens"],
  ["input_cached_tokens", "cached input tokens"], ["num_model_requests", "model requests"], ["cost", "cost"]];
const FILTERS = ["model", "project_id", "user_id", "api_key_id", "kind", "provider", "status"];
const TOP = 12; // groups drawn one by one; the rest are summed as "other"
const REFRESH_SECONDS = 30;

// Buckets held, by etag, for the query they answer (one query at a time), kept in the tab's
// sessionStorage too, so coming back to the view (a reload, another view and back) asks only for what
// changed. Up to HELD_BYTES of JSON; a bigger answer is held in memory only.
const HELD = "metering.usage.held";
const HELD_BYTES = 2_000_000;
const held = { query: "", buckets: [], byEtag: new Map() };
try {
  Object.assign(held, JSON.parse(sessionStorage.getItem(HELD) || "{}"));
  held.byEtag = new Map(held.buckets.filter((b) => b.etag).map((b) => [b.etag, b]));
} catch {
  sessionStorage.removeItem(HELD);
}

export function queryOf(params, zone) {
  const width = params.get("width") || "1d";
  const [start, end] = range(width, zone, { from: params.get("from"), to: params.get("to") });
  const group = params.has("group") ? params.get("group") : "model";
  const metric = params.get("metric") || "input_tokens";
  const filters = FILTERS.filter((f) => params.get(`f.${f}`))
    .map((f) => ({ field: f, values: params.get(`f.${f}`).split(",").map((v) => v.trim()) }));
  return {
    start_time: new Date(start).toISOString(), end_time: new Date(end).toISOString(), width, time_zone: zone,
    group_by: group ? [group] : [], filters,
    metrics: metric === "cost" ? ["cost", "unpriced_events"] : [metric],
  };
}

// Every bucket of the query; `known` etags make the server skip what is unchanged.
export async function fetchBuckets(query) {
  const key = JSON.stringify(query);
  if (held.query !== key) Object.assign(held, { query: key, buckets: [], byEtag: new Map() });
  const known = held.buckets.filter((b) => b.etag).map((b) => b.etag).slice(0, 1000);
  const buckets = [];
  let token = "";
  let reused = 0;
  let freshness = null;
  do {
    const page = await api("POST", "/v1/usage:query",
      { body: { ...query, page_size: 1000, page_token: token, known_etags: known } });
    for (const b of page.buckets) {
      if (b.not_modified && held.byEtag.has(b.etag)) {
        buckets.push(held.byEtag.get(b.etag));
        reused++;
      } else {
        buckets.push(b);
      }
    }
    token = page.next_page_token;
    freshness = page.freshness;
  } while (token);
  held.buckets = buckets;
  held.byEtag = new Map(buckets.filter((b) => b.etag).map((b) => [b.etag, b]));
  const kept = JSON.stringify({ query: key, buckets: buckets.filter((b) => b.etag) });
  try {
    if (kept.length <= HELD_BYTES) sessionStorage.setItem(HELD, kept);
    else sessionStorage.removeItem(HELD);
  } catch {
    sessionStorage.removeItem(HELD); // storage full: held in memory only
  }
  return { buckets, reused, freshness };
}

// Per group: values by bucket, the cost's unpriced events, the total; groups ordered by total.
export function series(buckets, group, metric) {
  const groups = new Map();
  buckets.forEach((b, i) => {
    for (const g of b.groups || []) {
      const name = group ? (g.key?.[group] ?? "(unset)") : "all";
      let s = groups.get(name);
      if (!s) groups.set(name, s = { name, values: new Array(buckets.length).fill(0), exact: new Array(buckets.length).fill(""), unpriced: new Array(buckets.length).fill(0), total: 0 });
      const raw = g.metrics?.[metric] ?? 0;
      const value = metric === "cost" ? Number(raw || 0) : Number(raw);
      s.values[i] += value;
      s.exact[i] = String(raw ?? 0);
      s.unpriced[i] += Number(g.metrics?.unpriced_events || 0);
      s.total += value;
    }
  });
  const sorted = [...groups.values()].sort((a, b) => b.total - a.total || a.name.localeCompare(b.name));
  if (sorted.length <= TOP) return sorted;
  const other = { name: "other", values: new Array(buckets.length).fill(0), exact: [], unpriced: new Array(buckets.length).fill(0), total: 0 };
  for (const s of sorted.slice(TOP - 1)) {
    s.values.forEach((v, i) => { other.values[i] += v; other.unpriced[i] += s.unpriced[i]; });
    other.total += s.total;
  }
  other.exact = other.values.map(String);
  return [...sorted.slice(0, TOP - 1), other];
}

function cellOf(s, i, metric) {
  const attrs = { class: "num", "data-group": s.name, "data-value": s.exact[i] || "0" };
  if (metric !== "cost") return [num(s.exact[i] || "0"), attrs];
  const unpriced = s.unpriced[i];
  attrs["data-unpriced"] = String(unpriced);
  if (unpriced && !Number(s.exact[i] || 0)) return [el("span", { class: "unpriced" }, `unpriced (${unpriced} events)`), attrs];
  return [el("span", {}, num(s.exact[i] || "0"), unpriced ? el("span", { class: "unpriced" }, ` + ${unpriced} unpriced`) : ""), attrs];
}

export async function render(root, params, ctx) {
  const zone = ctx.zone(params);
  const query = queryOf(params, zone);
  const width = query.width;
  const group = query.group_by[0] || "";
  const metric = params.get("metric") || "input_tokens";
  const set = (changes) => ctx.go("usage", { ...Object.fromEntries(params), ...changes });
  const filterInputs = FILTERS.map((f) => input(`filter-${f}`, `${f} =`, params.get(`f.${f}`) || "",
    { placeholder: "any", size: 12, onchange: (e) => set({ [`f.${f}`]: e.target.value.trim() }) }));
  const csv = el("button", { id: "usage-csv", hidden: true }, "Download CSV");
  const refresh = el("button", { id: "usage-refresh" }, "Refresh");
  const auto = el("input", { type: "checkbox", id: "usage-auto" });
  const status = el("p", { class: "status", id: "usage-status" }, "loading…");
  const chart = el("div", { id: "usage-chart" });
  const tableBox = el("div", { id: "usage-table-box" });
  root.append(
    el("h1", {}, "Usage"),
    el("div", { class: "controls" },
      select("usage-width", "Bucket", WIDTHS, width, (e) => set({ width: e.target.value, from: "", to: "" })),
      select("usage-group", "Stacked by", GROUPS, group, (e) => set({ group: e.target.value })),
      select("usage-metric", "Metric", METRICS, metric, (e) => set({ metric: e.target.value })),
      zonePicker(zone, (tz) => {
        ctx.setZone(tz);
        set({ tz });
      }),
      input("usage-from", "From", localDate(Date.parse(query.start_time), zone),
        { type: "date", onchange: (e) => set({ from: e.target.value, to: document.getElementById("usage-to").value }) }),
      input("usage-to", "To (exclusive)", localDate(Date.parse(query.end_time), zone),
        { type: "date", onchange: (e) => set({ from: document.getElementById("usage-from").value, to: e.target.value }) }),
      refresh, el("label", {}, "auto-refresh", auto), csv),
    el("details", {}, el("summary", {}, "Filters"), el("div", { class: "controls" }, filterInputs)),
    el("div", { class: "card" }, chart, status),
    tableBox,
  );

  let plot = null;
  let timer = null;
  let disposed = false;

  async function load(kind) {
    const t0 = performance.now();
    let got;
    try {
      got = await fetchBuckets(query);
    } catch (err) {
      ctx.loggedOut(err);
      tableBox.replaceChildren(errorBox(err));
      status.textContent = "";
      return;
    }
    if (disposed) return;
    const t1 = performance.now();
    const lines = series(got.buckets, group, metric);
    const xs = got.buckets.map((b) => Date.parse(b.start_time) / 1000);
    plot?.destroy();
    chart.replaceChildren();
    plot = stackedBars(chart, xs, lines, { zone, width, cost: metric === "cost" });
    const labels = got.buckets.map((b) => label(Date.parse(b.start_time), width, zone));
    const rows = got.buckets.map((b, i) => el("tr", { "data-start": b.start_time },
      el("td", {}, labels[i]),
      lines.map((s) => { const [text, attrs] = cellOf(s, i, metric); return el("td", attrs, text); }),
      el("td", { class: "num total" }, metric === "cost"
        ? num(lines.reduce((a, s) => a + s.values[i], 0).toFixed(6).replace(/\.?0+$/, ""))
        : num(lines.reduce((a, s) => a + s.values[i], 0)))));
    tableBox.replaceChildren(table("usage-table", [`Bucket (${zone})`, ...lines.map((s) => [s.name, { class: "num" }]), ["Total", { class: "num" }]], rows,
      { "data-metric": metric, "data-group-by": group, "data-query": JSON.stringify(query) }));
    const t2 = performance.now();
    const fresh = got.freshness?.settled_before ? `settled before ${label(Date.parse(got.freshness.settled_before), "1h", zone)}` : "";
    status.textContent = `${got.buckets.length} buckets, ${got.reused} unchanged since the last read; ` +
      `fetched in ${Math.round(t1 - t0)} ms, drawn in ${Math.round(t2 - t1)} ms; ${fresh}`;
    Object.assign(root.dataset, { [kind === "refresh" ? "refreshMs" : "loadMs"]: (t2 - t0).toFixed(1), reused: got.reused,
      drawnAt: t2.toFixed(1), renders: Number(root.dataset.renders || 0) + 1 });
  }

  refresh.addEventListener("click", () => load("refresh"));
  auto.addEventListener("change", () => {
    clearInterval(timer);
    if (auto.checked) timer = setInterval(() => load("refresh"), REFRESH_SECONDS * 1000);
  });
  await load("load");
  if (await hasRoute("GET", "/v1/usage:export")) {
    csv.hidden = false;
    csv.addEventListener("click", () => download("/v1/usage:export", exportQuery(query), "usage.csv"));
  }
  return () => { disposed = true; clearInterval(timer); plot?.destroy(); };
}

// The export route takes the query's fields as query parameters (filters as field=values).
function exportQuery(query) {
  const q = { format: "csv", start_time: query.start_time, end_time: query.end_time, width: query.width,
    time_zone: query.time_zone, group_by: query.group_by, metrics: query.metrics };
  for (const f of query.filters) q[`filter.${f.field}`] = f.values;
  return q;
}

// Any IANA name, typed or picked from the browser's list (which has canonical names only: Asia/Calcutta,
// not Asia/Kolkata; both are accepted).
function zonePicker(zone, onZone) {
  const list = el("datalist", { id: "zones" }, zones().map((z) => el("option", { value: z })));
  const field = el("input", { id: "usage-zone", list: "zones", value: zone, size: 22, spellcheck: "false" });
  field.addEventListener("change", () => {
    const tz = field.value.trim();
    field.setCustomValidity(isZone(tz) ? "" : "not an IANA time zone");
    if (isZone(tz)) onZone(tz);
    else field.reportValidity();
  });
  return el("label", {}, "Time zone", field, list);
}
