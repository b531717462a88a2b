// Costs: CostService.GetCosts (GET /v1/costs) by line item and project when the gateway serves it,
// else the cost sums of QueryUsage by model and project. Usage without a cost or a price is never
// shown as 0: each bucket says how many events are unpriced (and in no amount).
import { api, download, hasRoute } from "./api.js";
import { el, errorBox, money, num, select, table } from "./dom.js";
import { label, range } from "./zone.js";

const WIDTHS = [["1d", "1 day"], ["month", "month"]];

export async function render(root, params, ctx) {
  const zone = ctx.zone(params);
  const width = params.get("width") || "1d";
  const [start, end] = range(width, zone, { from: params.get("from"), to: params.get("to") });
  const csv = el("button", { id: "costs-csv", hidden: true }, "Download CSV");
  const box = el("div", { id: "costs-box" }, "loading…");
  root.append(el("h1", {}, "Costs"), el("div", { class: "controls" },
    select("costs-width", "Bucket", WIDTHS, width, (e) => ctx.go("costs", { width: e.target.value, tz: params.get("tz") })),
    el("span", { class: "status" }, `time zone ${zone}`), csv), box);
  const common = { start_time: new Date(start).toISOString(), end_time: new Date(end).toISOString(), time_zone: zone };
  try {
    if (await hasRoute("GET", "/v1/costs")) {
      const rows = [];
      let token = "";
      do {
        const page = await api("GET", "/v1/costs", { query: { ...common, bucket_width: width,
          group_by: ["line_item", "project_id"], page_size: 1000, page_token: token } });
        for (const b of page.buckets) {
          const when = label(Date.parse(b.start_time), width, zone);
          for (const r of b.results) {
            rows.push([when, r.line_item ?? "", r.project_id ?? "(none)", [num(r.quantity ?? ""), { class: "num" }],
              r.quantity_unit || "", [money(r.amount?.value, r.amount?.currency), { class: "num", "data-amount": r.amount?.value }]]);
          }
          if (Number(b.unpriced_events)) {
            rows.push([when, [el("span", { class: "unpriced" }, "unpriced usage"), {}], "", [num(b.unpriced_events), { class: "num" }],
              "events", [el("span", { class: "unpriced" }, "no price: not in any amount"), { "data-unpriced": b.unpriced_events }]]);
          }
        }
        token = page.next_page_token;
      } while (token);
      box.replaceChildren(table("costs-table", ["Bucket", "Line item", "Project", ["Quantity", { class: "num" }], "Unit", ["Amount", { class: "num" }]], rows));
    } else {
      const rows = [];
      let token = "";
      do {
        const page = await api("POST", "/v1/usage:query", { body: { ...common, width, group_by: ["model", "project_id", "currency"],
          metrics: ["input_cost", "output_cost", "cost", "unpriced_events"], page_size: 1000, page_token: token } });
        for (const b of page.buckets) {
          const when = label(Date.parse(b.start_time), width, zone);
          for (const g of b.groups) {
            const m = g.metrics;
            const unpriced = Number(m.unpriced_events || 0);
            const priced = Number(m.events) - unpriced;
            rows.push([when, g.key.model ?? "(none)", g.key.project_id ?? "(none)",
              [priced ? money(m.input_cost, g.key.currency) : "", { class: "num" }],
              [priced ? money(m.output_cost, g.key.currency) : "", { class: "num" }],
              [priced ? money(m.cost, g.key.currency) : el("span", { class: "unpriced" }, "unpriced"), { class: "num", "data-amount": priced ? m.cost : "" }],
              [unpriced ? el("span", { class: "unpriced" }, `${unpriced} unpriced events`) : "", { "data-unpriced": unpriced }]]);
          }
        }
        token = page.next_page_token;
      } while (token);
      box.replaceChildren(el("p", { class: "status" }, "Cost sums of the usage by model and project (this gateway does not serve GET /v1/costs)."),
        table("costs-table", ["Bucket", "Model", "Project", ["Input", { class: "num" }], ["Output", { class: "num" }], ["Cost", { class: "num" }], "Unpriced"], rows));
    }
  } catch (err) {
    ctx.loggedOut(err);
    box.replaceChildren(errorBox(err));
  }
  if (await hasRoute("GET", "/v1/usage:export")) {
    csv.hidden = false;
    csv.addEventListener("click", () => download("/v1/usage:export", { format: "csv", ...common, width,
      group_by: ["model", "project_id"], metrics: ["cost", "unpriced_events"] }, "costs.csv"));
  }
}
