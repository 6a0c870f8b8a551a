// The Monitoring page: charts and a table from GET /v1/metrics/summary, refreshed on demand
// and every 10 s while the page is visible.

import { api } from "./api.js";
import { barChart } from "./charts.js";
import { familyList, taskClass } from "./families.js";
import { clearError, fmt, h, showError } from "./ui.js";

const AUTO_MS = 10_000;
const CHARTS = [
  { slot: "count", label: "Requests", value: (r) => r.count, format: fmt.int },
  { slot: "latency", label: "Latency p95", value: (r) => r.latency_p95_ms, tick: (r) => r.latency_p50_ms,
    format: fmt.ms, title: (r) => `${rowLabel(r)}: p95 ${fmt.ms(r.latency_p95_ms)}, p50 ${fmt.ms(r.latency_p50_ms)}` },
  { slot: "confidence", label: "Mean confidence", value: (r) => r.mean_confidence, max: 1,
    format: (v) => fmt.pct(v, 1) },
  { slot: "bad_feedback", label: "Bad-feedback rate", value: (r) => r.bad_feedback_rate, max: 1,
    format: (v) => fmt.pct(v),
    title: (r) => `${rowLabel(r)}: ${fmt.pct(r.bad_feedback_rate)} bad of ${r.feedback_count} ratings` },
  { slot: "errors", label: "Error rate", value: (r) => r.error_rate, max: 1, format: (v) => fmt.pct(v, 1) },
];

let page;
let timer = null;
let last = null;
let inflight = null;

function rowLabel(r) {
  return `${r.model} ${r.version === null || r.version === undefined ? "(failed)" : `v${r.version}`}`;
}

function weighted(rows, value, weight) {
  let sum = 0;
  let n = 0;
  for (const r of rows) {
    const v = value(r);
    if (typeof v === "number" && weight(r) > 0) {
      sum += v * weight(r);
      n += weight(r);
    }
  }
  return n ? sum / n : null;
}

function renderTiles(rows) {
  const count = rows.reduce((a, r) => a + r.count, 0);
  const feedback = rows.reduce((a, r) => a + r.feedback_count, 0);
  const tiles = {
    count: fmt.int(count),
    errors: count ? fmt.pct(weighted(rows, (r) => r.error_rate, (r) => r.count), 1) : "–",
    feedback: fmt.int(feedback),
    bad: feedback ? fmt.pct(weighted(rows, (r) => r.bad_feedback_rate, (r) => r.feedback_count)) : "–",
  };
  for (const [key, text] of Object.entries(tiles)) page.querySelector(`[data-tile="${key}"]`).textContent = text;
}

function renderCharts(rows) {
  for (const spec of CHARTS) {
    const body = page.querySelector(`[data-chart-slot="${spec.slot}"] .chart-body`);
    const data = rows.map((r) => ({
      key: `${r.model}:${r.version ?? "none"}`, label: rowLabel(r), task: r.task, value: spec.value(r),
      tick: spec.tick ? spec.tick(r) : undefined, title: spec.title ? spec.title(r) : undefined,
    }));
    barChart(body, data, { name: spec.slot, label: spec.label, format: spec.format, max: spec.max ?? null });
  }
}

function renderTable(rows) {
  const tbody = page.querySelector("#monitor-table tbody");
  if (!rows.length) {
    tbody.replaceChildren(h("tr", {}, h("td", { colSpan: 9, class: "hint" }, "No requests in this window.")));
    return;
  }
  tbody.replaceChildren(...rows.map((r) => h("tr", { "data-key": `${r.model}:${r.version ?? "none"}` },
    h("th", { scope: "row" }, r.model), h("td", {}, r.version ?? "–"), h("td", { class: "num" }, fmt.int(r.count)),
    h("td", { class: "num" }, fmt.pct(r.error_rate, 1)), h("td", { class: "num" }, fmt.ms(r.latency_p50_ms)),
    h("td", { class: "num" }, fmt.ms(r.latency_p95_ms)), h("td", { class: "num" }, fmt.pct(r.mean_confidence, 1)),
    h("td", { class: "num" }, fmt.int(r.feedback_count)), h("td", { class: "num" }, fmt.pct(r.bad_feedback_rate)))));
}

function render(rows) {
  renderTiles(rows);
  renderCharts(rows);
  renderTable(rows);
}

export async function refresh() {
  const form = page.querySelector("#monitor-form");
  const error = page.querySelector("#monitor-error");
  const params = new URLSearchParams({ window: form.elements.window.value });
  if (form.elements.task.value) params.set("task", form.elements.task.value);
  if (inflight) inflight.abort();
  const controller = new AbortController();
  inflight = controller;
  page.setAttribute("aria-busy", "true");
  try {
    const data = await api(`/v1/metrics/summary?${params}`, { signal: controller.signal });
    clearError(error);
    last = (data.models || []).slice().sort((a, b) =>
      a.task.localeCompare(b.task) || a.model.localeCompare(b.model) || (a.version ?? 0) - (b.version ?? 0));
    render(last);
    const updated = page.querySelector("#monitor-updated");
    updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    page.dataset.refreshes = String(Number(page.dataset.refreshes || 0) + 1);
  } catch (err) {
    if (err.name !== "AbortError") showError(error, err);
  } finally {
    if (inflight === controller) {
      inflight = null;
      page.removeAttribute("aria-busy");
    }
  }
}

function schedule() {
  clearInterval(timer);
  timer = null;
  const auto = page.querySelector("#monitor-auto");
  if (auto.checked && !page.hidden && document.visibilityState === "visible") {
    timer = setInterval(refresh, AUTO_MS);
  }
}

export function initMonitoring() {
  page = document.getElementById("page-monitoring");
  const form = page.querySelector("#monitor-form");
  // one filter option and one legend entry per registered family
  for (const family of familyList()) {
    form.elements.task.append(h("option", { value: family.name }, `${family.summary} (${family.name})`));
    page.querySelector("#monitor-legend").append(
      h("li", {}, h("span", { class: `swatch ${taskClass(family.name)}` }), family.name));
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    refresh();
  });
  form.elements.task.addEventListener("change", refresh);
  form.elements.window.addEventListener("change", refresh);
  form.elements.auto.addEventListener("change", schedule);
  document.addEventListener("visibilitychange", schedule);
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { if (last && !page.hidden) renderCharts(last); }, 150);
  });
}

export function showMonitoring(visible) {
  if (visible) refresh();
  schedule();
}
