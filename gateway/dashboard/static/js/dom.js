// Small DOM helpers shared by the views.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== undefined && child !== null && child !== false) node.append(child);
  }
  return node;
}

export function select(id, label, options, value, onchange) {
  return el("label", {}, label, el("select", { id, onchange },
    options.map(([v, text]) => el("option", { value: v, selected: v === value }, text))));
}

export function input(id, label, value, attrs = {}) {
  return el("label", {}, label, el("input", { id, value: value ?? "", ...attrs }));
}

// A table from rows of cells; a cell is text or [text, attrs].
export function table(id, head, rows, attrs = {}) {
  const cell = (tag, c) => (Array.isArray(c) ? el(tag, c[1], c[0]) : el(tag, {}, c));
  return el("div", { class: "scroll" }, el("table", { id, ...attrs },
    el("thead", {}, el("tr", {}, head.map((h) => cell("th", h)))),
    el("tbody", {}, rows.map((r) => (r instanceof HTMLElement ? r : el("tr", {}, r.map((c) => cell("td", c))))))));
}

export function errorBox(err) {
  return el("p", { class: "error", role: "alert" }, String(err.message || err));
}

// Exact decimals stay strings; this only groups digits for reading.
export function num(v) {
  if (v === undefined || v === null || v === "") return "";
  if (typeof v === "number") return v.toLocaleString("en-US");
  const [whole, frac] = String(v).split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return frac ? `${grouped}.${frac}` : grouped;
}

export function money(value, currency) {
  return `${num(value)} ${(currency || "usd").toUpperCase()}`;
}
