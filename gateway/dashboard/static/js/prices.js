// The price book: PriceService.ListPriceVersions (GET /v1/prices) when the gateway serves it, the
// versions in force now (or every version, superseded ones too), with each unit price exactly.
import { api, hasRoute } from "./api.js";
import { el, errorBox, table } from "./dom.js";
import { time } from "./zone.js";

export async function render(root, params, ctx) {
  const zone = ctx.zone(params);
  const all = params.get("all") === "1";
  root.append(el("h1", {}, "Price book"), el("label", {}, "every version (superseded too)",
    el("input", { type: "checkbox", id: "prices-all", checked: all, onchange: (e) => ctx.go("prices", { all: e.target.checked ? "1" : "" }) })));
  const box = el("div", { id: "prices-box" }, "loading…");
  root.append(box);
  if (!(await hasRoute("GET", "/v1/prices"))) {
    box.replaceChildren(el("p", {}, "This gateway does not serve the price book over REST (GET /v1/prices); use `metering prices list`."));
    return;
  }
  try {
    const reply = await api("GET", "/v1/prices", { query: all ? {} : { at: new Date().toISOString() } });
    box.replaceChildren(table("prices-table", ["Model", "Provider", "Currency", "Version", `From (${zone})`, "Until", "Prices (per unit)", "Note"],
      reply.versions.map((v) => [v.model, v.provider || "any", (v.currency || "").toUpperCase(), v.version,
        time(v.effective_from, zone), v.effective_until ? time(v.effective_until, zone) : (v.superseded_by ? `superseded by ${v.superseded_by}` : "now"),
        [el("span", {}, v.prices.map((p) => el("div", {}, `${p.usage_type}${p.variant ? " " + p.variant : ""}: ${p.unit_price} per ${p.unit || "unit"}`))), {}],
        v.note || ""])));
  } catch (err) {
    ctx.loggedOut(err);
    box.replaceChildren(errorBox(err));
  }
}
