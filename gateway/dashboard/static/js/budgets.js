// Budgets: BudgetService.ListBudgets (GET /v1/budgets), each with its current period's state: used
// against the limit, reserved, remaining, when it resets (in the chosen zone), unpriced usage. Then the
// alerts sent (AlertService.ListDeliveries, GET /v1/deliveries) where the gateway serves them.
import { api, hasRoute } from "./api.js";
import { el, errorBox, num, table } from "./dom.js";
import { time } from "./zone.js";

const PERIODS = { BUDGET_PERIOD_DAY: "day", BUDGET_PERIOD_WEEK: "week", BUDGET_PERIOD_MONTH: "month",
  BUDGET_PERIOD_TOTAL: "total", BUDGET_PERIOD_ROLLING: "rolling" };

function progress(state) {
  const limit = Number(state.limit || 0);
  const used = Number(state.used || 0);
  const share = limit > 0 ? used / limit : used > 0 ? 1 : 0;
  return el("div", { class: `bar${share >= 1 ? " over" : ""}`, title: `${(share * 100).toFixed(1)}%`, "data-share": share.toFixed(4) },
    el("div", { style: `width:${Math.min(100, share * 100).toFixed(1)}%` }));
}

export async function render(root, params, ctx) {
  const zone = ctx.zone(params);
  const box = el("div", { id: "budgets-box" }, "loading…");
  const alerts = el("div", { id: "alerts-box" });
  root.append(el("h1", {}, "Budgets"), box, alerts);
  if (ctx.admin && (await hasRoute("GET", "/v1/deliveries"))) showAlerts(alerts, zone, ctx);
  try {
    const budgets = [];
    let token = "";
    do {
      const page = await api("GET", "/v1/budgets", { query: { page_size: 1000, page_token: token } });
      budgets.push(...page.budgets);
      token = page.next_page_token;
    } while (token);
    if (!budgets.length) {
      box.replaceChildren(el("p", {}, "No budgets yet (POST /v1/budgets creates one; see the API reference)."));
      return;
    }
    box.replaceChildren(table("budgets-table", ["Name", "Metric", "Period", ["Used", { class: "num" }], ["Limit", { class: "num" }],
      "Progress", ["Remaining", { class: "num" }], `Resets at (${zone})`, "State"],
    budgets.map((b) => {
      const s = b.state || {};
      const metric = b.metric || "cost";
      const unit = metric === "cost" ? ` ${(b.currency || "usd").toUpperCase()}` : "";
      return el("tr", { "data-budget": b.budget_id },
        el("td", {}, b.name || b.budget_id), el("td", {}, metric), el("td", {}, PERIODS[b.period] || b.period || ""),
        el("td", { class: "num" }, num(s.used) + unit, Number(s.reserved) ? el("div", { class: "status" }, `${num(s.reserved)} reserved`) : ""),
        el("td", { class: "num" }, num(b.limit) + unit), el("td", {}, progress({ ...s, limit: b.limit })),
        el("td", { class: "num" }, num(s.remaining)), el("td", {}, s.resets_at ? time(s.resets_at, zone) : "never"),
        el("td", {}, s.reason || "within limit",
          Number(s.unpriced_events) ? el("div", { class: "unpriced" }, `${s.unpriced_events} unpriced events`) : ""));
    })));
  } catch (err) {
    ctx.loggedOut(err);
    box.replaceChildren(errorBox(err));
  }
}

async function showAlerts(box, zone, ctx) {
  try {
    const page = await api("GET", "/v1/deliveries", { query: { page_size: 50 } });
    box.replaceChildren(el("h2", {}, "Alerts sent (latest 50)"), page.deliveries.length
      ? table("alerts-table", [`Created (${zone})`, "Event", "Channel", "State", ["Attempts", { class: "num" }], "Last answer"],
        page.deliveries.map((d) => {
          const last = d.log?.at(-1);
          return [time(d.create_time, zone), d.event_type, d.channel, (d.state || "").replace("DELIVERY_STATE_", "").toLowerCase(),
            [String(d.attempts), { class: "num" }], last ? (last.status_code ? `HTTP ${last.status_code}` : last.error) : ""];
        }))
      : el("p", {}, "No alert sent yet (webhook endpoints and spend alerts: see the API reference)."));
  } catch (err) {
    ctx.loggedOut(err);
    box.replaceChildren(errorBox(err));
  }
}
