// Stacked bars with uPlot (vendored, a global): each group's bar starts where the one below ends. Drawn
// top of the stack first, so each lower layer paints over the part of the bar that is not its own.
const COLORS = ["#2f6fdf", "#e8730c", "#2a9d5b", "#c2185b", "#7b5cd6", "#00838f", "#b58900", "#6d4c41",
  "#5c6bc0", "#d81b60", "#43a047", "#757575"];

export function stackedBars(root, xs, lines, { zone, width, cost }) {
  const cumulative = [];
  let acc = xs.map(() => 0);
  for (const s of lines) {
    acc = acc.map((a, i) => a + s.values[i]);
    cumulative.push(acc);
  }
  const order = lines.map((_, i) => lines.length - 1 - i);
  const fmt = (v) => (v == null ? "" : cost ? Number(v).toFixed(4) : Number(v).toLocaleString("en-US"));
  const bars = uPlot.paths.bars({ size: [0.85, 80], align: 1 });
  const opts = {
    width: Math.max(360, root.clientWidth || 900),
    height: 300,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), zone),
    scales: { x: { time: true } },
    legend: { live: true },
    series: [
      { label: width === "month" ? "month" : width === "1h" ? "hour" : "day" },
      ...order.map((i) => ({
        label: lines[i].name, stroke: COLORS[i % COLORS.length], fill: COLORS[i % COLORS.length],
        paths: bars, points: { show: false }, value: (u, v, si, idx) => (idx == null ? "" : fmt(lines[i].values[idx])),
      })),
    ],
    axes: [{}, { size: 70, values: (u, vals) => vals.map((v) => (Math.abs(v) >= 1e6 ? `${v / 1e6}M` : Math.abs(v) >= 1e3 ? `${v / 1e3}k` : `${v}`)) }],
  };
  const data = [xs.length ? xs : [0], ...order.map((i) => (xs.length ? cumulative[i] : [0]))];
  return new uPlot(opts, data, root);
}
