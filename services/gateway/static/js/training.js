// The Training page: fine-tune jobs with status and progress, the gate's report check by check
// (slices included), the version each job produced and its canary state, promote / roll back.
// Every call needs the admin token (the Models page's field, or the key field here).

import { adminToken, api } from "./api.js";
import { clearError, fmt, h, showError, showOk } from "./ui.js";

let page;
let timer = null;
const REFRESH_MS = 5000;

function progressText(job) {
  const p = job.progress || {};
  const steps = p.total ? ` ${p.step}/${p.total}` : "";
  const eta = p.eta_s ? `, about ${Math.round(p.eta_s)} s left` : "";
  return `${p.phase || job.status}${steps}${eta}`;
}

function sliceTable(check) {
  return h("details", { class: "slices" }, h("summary", {}, `${check.slices.length} slices`),
    h("table", {}, h("thead", {}, h("tr", {}, ["Slice", "New", "Production", "Items", ""]
      .map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, check.slices.map((s) => h("tr", { class: s.passed ? "" : "failed", "data-slice": s.slice },
      h("th", { scope: "row" }, s.slice), h("td", { class: "num" }, fmt.num(s.new)),
      h("td", { class: "num" }, fmt.num(s.production)), h("td", { class: "num" }, String(s.count)),
      h("td", {}, s.passed ? "ok" : "lost too much"))))));
}

function gateReport(gate) {
  if (!gate) return h("p", { class: "hint" }, "No gate report yet.");
  return h("ul", { class: "checks" }, (gate.checks || []).map((c) => h("li", { "data-check": c.name,
    class: c.passed ? "passed" : "failed" }, h("strong", {}, `${c.passed ? "✓" : "✗"} ${c.name}`), ": ", c.detail,
  c.slices ? sliceTable(c) : "")));
}

async function act(card, model, path, json, describe) {
  const status = card.querySelector(".message.ok");
  const error = card.querySelector(".message.error");
  clearError(error);
  try {
    const result = await api(`/v1/models/${encodeURIComponent(model)}/${path}`, { method: "POST", json, admin: true });
    await load();
    showOk(page.querySelector("#training-status"), describe(result.aliases));
  } catch (err) {
    showError(error, err);
    if (status) status.hidden = true;
  }
}

function jobCard(job, aliases) {
  const card = h("article", { class: "card job-card", "data-job": job.id, "aria-labelledby": `job-${job.id}` });
  const v = job.version;
  const a = aliases[job.model] || {};
  const refused = job.status === "rejected";
  const state = v === null || v === undefined
    ? (refused ? (job.gate && job.gate.quarantined
      ? `refused: never a version (weights kept in ${job.gate.quarantined} for inspection)`
      : "refused: never a version (weights deleted)") : "no version")
    : a.production === v ? "production" : a.canary === v ? `canary ${fmt.pct(a.canary_weight)}` : "not serving";
  const corrections = (job.data && job.data.corrections) || [];
  const senders = [...new Set(corrections.map((c) => c.sender))];
  card.append(
    h("header", { class: "card-head" }, h("h2", { id: `job-${job.id}` }, `${job.model} · job ${job.id.slice(0, 8)}`),
      h("span", { class: `badge status-${job.status}`, "data-status": job.status }, job.status)),
    h("p", {}, "Progress: ", h("span", { "data-progress": "" }, progressText(job)), " · started ",
      fmt.when(job.created_at ? new Date(job.created_at * 1000).toISOString() : null),
      " · trigger ", (job.request && job.request.trigger) || "–"),
    corrections.length ? h("p", {}, `Trained on ${corrections.length} accepted correction(s) from `,
      h("span", { "data-senders": "" }, senders.join(", "))) : "",
    job.error ? h("p", { class: "message error-inline" }, job.error) : "",
    h("p", {}, "Version: ", h("strong", { "data-version": v ?? "" }, fmt.version(v)), " · ",
      h("span", { "data-serving": "" }, state)),
    gateReport(job.gate),
    h("div", { class: "card-actions" },
      v && a.production !== v ? h("button", { type: "button", class: "primary",
        "aria-label": `Make ${job.model} v${v} production`,
        onclick: () => act(card, job.model, "promote", { version: v, alias: "production" },
          (x) => `${job.model}: production is now v${x.production}.`) }, "Make production") : "",
      v && a.production === v ? h("button", { type: "button", "aria-label": `Roll back ${job.model} production`,
        onclick: () => act(card, job.model, "rollback", undefined,
          (x) => `${job.model}: production rolled back to v${x.production}.`) }, "Roll back") : ""),
    h("div", { class: "message error", role: "alert", hidden: true }));
  return card;
}

async function load() {
  const list = page.querySelector("#training-list");
  const error = page.querySelector("#training-error");
  clearError(error);
  try {
    const [jobs, models] = await Promise.all([api("/v1/finetune", { admin: true }), api("/v1/models")]);
    const aliases = Object.fromEntries(models.models.map((m) => [m.name, m.aliases]));
    list.replaceChildren(...(jobs.jobs.length ? jobs.jobs.map((j) => jobCard(j, aliases))
      : [h("p", { class: "hint" }, "No fine-tune job yet.")]));
  } catch (err) {
    list.replaceChildren();
    showError(error, err, err.status === 401 ? "Enter the admin token above." : "");
  }
}

export function initTraining() {
  page = document.getElementById("page-training");
  const form = page.querySelector("#training-key-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    adminToken.set(form.querySelector("#training-key").value.trim());
    form.querySelector("#training-key").value = "";
    load();
  });
  page.querySelector("#training-refresh").addEventListener("click", load);
}

export function showTraining(visible) {
  clearInterval(timer);
  timer = null;
  if (!visible) return;
  load();
  timer = setInterval(() => { if (document.visibilityState === "visible") load(); }, REFRESH_MS);
}
