// The Models page: versions and aliases from GET /v1/models, promote and rollback with the
// admin token (kept in sessionStorage for this tab only).

import { adminToken, api } from "./api.js";
import { taskClass } from "./families.js";
import { clearError, fmt, h, showError, showOk } from "./ui.js";

let page;
let notice = null; // a message to show on a model's card after the list re-renders

function metricsText(metrics) {
  const entries = Object.entries(metrics || {}).filter(([, v]) => v !== null && typeof v !== "object");
  if (!entries.length) return "–";
  return entries.slice(0, 4).map(([k, v]) => `${k} ${typeof v === "number" ? +v.toFixed(3) : v}`).join(", ");
}

function lineageText(manifest) {
  const lineage = manifest.lineage || {};
  const parts = [];
  if (manifest.kind === "lora-adapter" && manifest.base) parts.push(`adapter on v${manifest.base.version}`);
  if (lineage.parent_version) parts.push(`from v${lineage.parent_version}`);
  if (lineage.job) parts.push(`job ${lineage.job}`);
  if (lineage.feedback_ids && lineage.feedback_ids.length) parts.push(`${lineage.feedback_ids.length} feedback`);
  return parts.join(", ") || "–";
}

// Production versions as a stack, as the registry computes it: promotions push, rollbacks pop.
function productionStack(history) {
  const stack = [];
  for (const entry of history || []) {
    if (entry.alias !== "production") continue;
    if (entry.action === "promote") stack.push(entry.to);
    else if (entry.action === "rollback") stack.pop();
  }
  return stack;
}

function aliasBadges(version, aliases) {
  const badges = [];
  if (aliases.production === version) badges.push(h("span", { class: "badge production" }, "production"));
  if (aliases.canary === version) {
    badges.push(h("span", { class: "badge canary" }, `canary ${fmt.pct(aliases.canary_weight)}`));
  }
  return badges.length ? badges : ["–"];
}

function historyList(history) {
  const items = (history || []).slice(-10).reverse().map((e) =>
    h("li", {}, h("time", { dateTime: e.at }, fmt.when(e.at)), " ",
      `${e.action} ${e.alias}: ${e.from ? `v${e.from}` : "none"} → ${e.to ? `v${e.to}` : "none"}`,
      e.weight !== undefined ? ` (${fmt.pct(e.weight)})` : "", e.actor ? ` by ${e.actor}` : ""));
  return h("details", { class: "history" }, h("summary", {}, `Alias history (${(history || []).length})`),
    items.length ? h("ol", {}, items) : h("p", { class: "hint" }, "No changes yet."));
}

async function act(card, model, path, json, describe) {
  const error = card.querySelector(".message.error");
  clearError(error);
  for (const button of card.querySelectorAll("button")) button.disabled = true;
  try {
    const result = await api(`/v1/models/${encodeURIComponent(model)}/${path}`, { method: "POST", json, admin: true });
    notice = { model, ok: describe(result.aliases) };
    await load();
  } catch (err) {
    const hint = err.status === 401 ? (adminToken.get() ? "Check the admin token above." : "Enter the admin token above.") : "";
    notice = { model, err, hint };
    await load();
  }
}

function modelCard(info) {
  const { name, task, versions, aliases } = info;
  const card = h("article", { class: "card model-card", "data-model": name, "aria-labelledby": `model-${name}` });
  const weight = h("input", { type: "number", min: 1, max: 100, step: 1, value: 10, id: `weight-${name}`,
    class: "weight", inputMode: "numeric" });

  const stack = productionStack(aliases.history);
  const rollbackTo = stack.length >= 2 ? stack[stack.length - 2] : null;
  const rows = versions.slice().reverse().map((m) => {
    const v = m.version;
    const isProd = aliases.production === v;
    const isCanary = aliases.canary === v;
    return h("tr", { "data-version": v },
      h("th", { scope: "row" }, `v${v}`),
      h("td", { "data-label": "Kind" }, `${m.kind || "full"} · ${m.framework || "?"}`),
      h("td", { "data-label": "Created" }, h("time", { dateTime: m.created_at || "" }, fmt.when(m.created_at))),
      h("td", { "data-label": "Eval" }, metricsText(m.metrics)),
      h("td", { "data-label": "Lineage" }, lineageText(m)),
      h("td", { class: "aliases-cell", "data-label": "Aliases" }, aliasBadges(v, aliases)),
      h("td", { class: "actions" },
        h("button", { type: "button", class: "promote", disabled: isProd, "data-action": "production",
          "aria-label": `Make ${name} v${v} production`,
          onclick: () => act(card, name, "promote", { version: v, alias: "production" },
            (a) => `${name}: production is now v${a.production} (was ${fmt.version(aliases.production)}).`) },
        "Make production"),
        h("button", { type: "button", class: "canary", disabled: isProd || isCanary, "data-action": "canary",
          "aria-label": `Make ${name} v${v} the canary`,
          onclick: () => {
            const share = Math.min(100, Math.max(1, Number(weight.value) || 10)) / 100;
            act(card, name, "promote", { version: v, alias: "canary", weight: share },
              (a) => `${name}: canary is now v${a.canary} with ${fmt.pct(a.canary_weight)} of traffic.`);
          } },
        "Canary")));
  });

  card.append(
    h("header", { class: "card-head" },
      h("h2", { id: `model-${name}` }, name), h("span", { class: `badge task ${taskClass(task)}` }, task)),
    h("p", { class: "alias-line" },
      "Production ", h("strong", { "data-alias": "production" }, fmt.version(aliases.production)),
      " · Canary ", h("strong", { "data-alias": "canary" },
        aliases.canary ? `v${aliases.canary} (${fmt.pct(aliases.canary_weight)})` : "none")),
    h("div", { class: "table-wrap" },
      h("table", { class: "versions" },
        h("caption", { class: "visually-hidden" }, `Versions of ${name}`),
        h("thead", {}, h("tr", {}, ["Version", "Kind", "Created", "Eval", "Lineage", "Aliases", "Actions"]
          .map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows))),
    h("div", { class: "card-actions" },
      h("label", { for: `weight-${name}` }, "Canary share (%)"), weight,
      rollbackTo
        ? h("button", { type: "button", class: "rollback", "aria-label": `Roll back ${name} production to v${rollbackTo}`,
          onclick: () => act(card, name, "rollback", undefined,
            (a) => `${name}: production rolled back to v${a.production}.`) }, `Roll back to v${rollbackTo}`)
        : h("button", { type: "button", class: "rollback", disabled: true,
          "aria-label": `Roll back ${name} production: no earlier production version` }, "Nothing to roll back")),
    historyList(aliases.history),
  );
  // messages sit under the alias line, where the change they report is visible
  card.querySelector(".alias-line").after(
    h("div", { class: "message error", role: "alert", hidden: true }),
    h("p", { class: "message ok", role: "status", hidden: true }));
  return card;
}

function applyNotice(list) {
  if (!notice) return;
  const card = list.querySelector(`[data-model="${CSS.escape(notice.model)}"]`);
  if (card) {
    if (notice.err) showError(card.querySelector(".message.error"), notice.err, notice.hint);
    else showOk(card.querySelector(".message.ok"), notice.ok);
    card.querySelector(notice.err ? ".message.error" : ".message.ok").scrollIntoView({ block: "nearest" });
  }
  notice = null;
}

export async function load() {
  const list = page.querySelector("#models-list");
  const error = page.querySelector("#models-error");
  list.setAttribute("aria-busy", "true");
  try {
    const data = await api("/v1/models");
    clearError(error);
    const models = (data.models || []).slice().sort((a, b) => a.task.localeCompare(b.task) || a.name.localeCompare(b.name));
    list.replaceChildren(...(models.length ? models.map(modelCard)
      : [h("p", { class: "hint" }, "The registry is empty. Build the tiny models with `loopline bootstrap`.")]));
    applyNotice(list);
  } catch (err) {
    showError(error, err);
  } finally {
    list.removeAttribute("aria-busy");
  }
}

function showTokenState() {
  page.querySelector("#token-state").textContent = adminToken.get()
    ? "A token is set for this tab; it is sent only with promote and rollback."
    : "No token set: promote and rollback will be refused.";
}

export function initModels() {
  page = document.getElementById("page-models");
  const form = page.querySelector("#token-form");
  form.elements.token.value = adminToken.get();
  showTokenState();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    adminToken.set(form.elements.token.value.trim());
    showTokenState();
  });
  page.querySelector("#token-forget").addEventListener("click", () => {
    adminToken.set("");
    form.elements.token.value = "";
    showTokenState();
  });
  page.querySelector("#models-refresh").addEventListener("click", load);
}

export function showModels(visible) {
  if (visible) load();
}
