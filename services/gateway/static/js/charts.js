// A small horizontal bar chart drawn as SVG: one row per model version.
// Colours come from CSS classes (task-c0 .. task-c5, one per family: families.js), never inline styles (CSP).

import { taskClass } from "./families.js";

const NS = "http://www.w3.org/2000/svg";
const ROW = 28;
const BAR = 16;
const CHAR_PX = 6.6; // average glyph width at the chart's 12px font, to ellipsize labels

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value !== null && value !== undefined) node.setAttribute(key, String(value));
  }
  if (text !== undefined) node.textContent = text;
  return node;
}

function fit(text, px) {
  const room = Math.max(3, Math.floor(px / CHAR_PX));
  return text.length <= room ? text : `${text.slice(0, room - 1)}…`;
}

// A round upper bound so bars of similar values do not look wildly different.
export function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * power >= value) return step * power;
  }
  return 10 * power;
}

/**
 * Draw `rows` ([{key, label, task, value, tick?, title}]) into `container`.
 * Options: name (data-chart), format(value) -> text, max (fixed scale, e.g. 1 for rates).
 * The SVG carries data-rows, data-bars and data-total so tests and tools can read it.
 */
export function barChart(container, rows, { name, format = String, max = null, label = name } = {}) {
  const width = Math.max(200, Math.floor(container.clientWidth || 320));
  // narrow screens put each label above its bar so neither gets squeezed
  const stacked = width < 460;
  const labelW = stacked ? 0 : Math.min(180, Math.max(96, Math.round(width * 0.36)));
  const valueW = 70;
  const barX = stacked ? 0 : labelW;
  const barW = Math.max(40, width - barX - valueW - 4);
  const rowH = stacked ? ROW + 16 : ROW;
  const barDY = stacked ? 17 : 3;
  const values = rows.map((r) => r.value).filter((v) => typeof v === "number");
  const ticks = rows.map((r) => r.tick).filter((v) => typeof v === "number");
  const scale = max ?? niceMax(Math.max(0, ...values, ...ticks));
  const height = Math.max(1, rows.length) * rowH + 6;
  const total = values.reduce((a, b) => a + b, 0);

  const chart = svg("svg", {
    class: "bar-chart", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": rows.length
      ? `${label}: ${rows.map((r) => `${r.label} ${format(r.value)}`).join(", ")}`
      : `${label}: no data in this window`,
    "data-chart": name, "data-rows": rows.length, "data-bars": values.length,
    "data-total": Number.isInteger(total) ? total : total.toFixed(4),
  });

  if (!rows.length) {
    chart.append(svg("text", { class: "empty", x: width / 2, y: ROW / 2 + 4, "text-anchor": "middle" },
      "No requests in this window"));
  }
  rows.forEach((row, i) => {
    const top = i * rowH;
    const y = top + barDY;
    const g = svg("g", { class: "row", "data-key": row.key });
    g.append(svg("title", {}, row.title || `${row.label}: ${format(row.value)}`));
    g.append(stacked
      ? svg("text", { class: "label", x: 0, y: top + 12 }, fit(row.label, width))
      : svg("text", { class: "label", x: labelW - 8, y: y + BAR / 2 + 4, "text-anchor": "end" },
        fit(row.label, labelW - 12)));
    g.append(svg("rect", { class: "track", x: barX, y, width: barW, height: BAR, rx: 3 }));
    let end = barX;
    if (typeof row.value === "number") {
      const w = Math.max(row.value > 0 ? 2 : 0, Math.min(1, row.value / scale) * barW);
      end = barX + w;
      g.append(svg("rect", { class: `bar ${taskClass(row.task)}`, x: barX, y, width: w.toFixed(1), height: BAR, rx: 3,
        "data-value": row.value }));
    }
    if (typeof row.tick === "number") {
      const x = barX + Math.min(1, row.tick / scale) * barW;
      g.append(svg("line", { class: "tick", x1: x.toFixed(1), x2: x.toFixed(1), y1: y - 2, y2: y + BAR + 2,
        "data-value": row.tick }));
    }
    g.append(svg("text", { class: typeof row.value === "number" ? "value" : "value none",
      x: Math.min(end + 6, barX + barW + 4), y: y + BAR / 2 + 4 }, format(row.value)));
    chart.append(g);
  });
  container.replaceChildren(chart);
  return chart;
}
