// The Feedback page: corrections grouped by model, served answer and correction, with how many
// senders agree and example inputs; a reviewer (or admin) key accepts or rejects a whole group
// or one correction. The key is kept in sessionStorage for this tab, like the admin token.

import { adminToken, api } from "./api.js";
import { taskClass } from "./families.js";
import { clearError, fmt, h, showError, showOk } from "./ui.js";

let page;
const thumbs = new Map(); // feedback id -> object URL, revoked when the list re-renders

async function thumbnail(feedbackId, question) {
  const img = h("img", { class: "thumb", alt: `Image of: ${question || "the request"}`, width: 64, height: 64 });
  try {
    const response = await fetch(`/v1/feedback/${encodeURIComponent(feedbackId)}/image`,
      { headers: { Authorization: `Bearer ${adminToken.get()}` } });
    if (!response.ok) return null;
    const url = URL.createObjectURL(await response.blob());
    thumbs.set(feedbackId, url);
    img.src = url;
    return img;
  } catch {
    return null;
  }
}

async function review(card, json, done) {
  const error = card.querySelector(".message.error");
  clearError(error);
  for (const button of card.querySelectorAll("button")) button.disabled = true;
  try {
    const result = await api("/v1/feedback/review", { method: "POST", json, admin: true });
    await load();
    showOk(page.querySelector("#review-status"), done(result));
  } catch (err) {
    showError(error, err, err.status === 401 ? "Enter a reviewer or admin key above." : "");
    for (const button of card.querySelectorAll("button")) button.disabled = false;
  }
}

function groupCard(g, index) {
  const title = `${g.model}: “${g.served ?? "?"}” → “${g.correction}”`;
  const card = h("article", { class: "card group-card", "data-group": g.group, "aria-labelledby": `group-${index}` });
  const states = ["pending", "accepted", "rejected"].filter((s) => g.states[s])
    .map((s) => h("span", { class: `badge trust-${s}` }, `${g.states[s]} ${s}`));
  const examples = h("ul", { class: "examples" });
  for (const ex of g.examples) {
    const item = h("li", {}, h("span", {}, ex.question || "–"), h("span", { class: "hint" }, ` from ${ex.sender}`));
    if (ex.image_path) thumbnail(ex.feedback_id, ex.question).then((img) => img && item.prepend(img));
    examples.append(item);
  }
  const one = g.feedback_ids.slice(0, 20).map((fid) => h("li", {}, h("code", {}, fid.slice(0, 8)), " ",
    h("button", { type: "button", class: "link", "aria-label": `Accept correction ${fid.slice(0, 8)}`,
      onclick: () => review(card, { action: "accept", feedback_ids: [fid] }, () => "Accepted one correction.") },
    "accept"), " ",
    h("button", { type: "button", class: "link", "aria-label": `Reject correction ${fid.slice(0, 8)}`,
      onclick: () => review(card, { action: "reject", feedback_ids: [fid] }, () => "Rejected one correction.") },
    "reject")));
  card.append(
    h("header", { class: "card-head" }, h("h2", { id: `group-${index}` }, title),
      h("span", { class: `badge task ${taskClass(g.task)}` }, g.task || "?")),
    h("p", {}, `${g.count} correction(s) from `, h("strong", { "data-senders": g.distinct_senders },
      `${g.distinct_senders} distinct sender(s)`), " · ", ...states, " · last ",
      h("time", {}, fmt.when(g.last_ts ? new Date(g.last_ts * 1000).toISOString() : null))),
    examples,
    h("details", {}, h("summary", {}, "One by one"), h("ul", { class: "one-by-one" }, one)),
    h("div", { class: "card-actions" },
      h("button", { type: "button", class: "primary", "aria-label": `Accept group ${title}`,
        onclick: () => review(card, { action: "accept", group: g.group },
          (r) => `Accepted ${r.count} correction(s): they train the next fine-tune.`) }, "Accept group"),
      h("button", { type: "button", "aria-label": `Reject group ${title}`,
        onclick: () => review(card, { action: "reject", group: g.group },
          (r) => `Rejected ${r.count} correction(s)${r.versions.length ? `; trained on them: ${r.versions
            .map((v) => `${v.model} v${v.version}`).join(", ")}` : ""}.`) }, "Reject group")),
    h("div", { class: "message error", role: "alert", hidden: true }));
  return card;
}

async function load() {
  const list = page.querySelector("#review-list");
  const error = page.querySelector("#review-error");
  clearError(error);
  for (const url of thumbs.values()) URL.revokeObjectURL(url);
  thumbs.clear();
  const state = page.querySelector("#review-state").value;
  list.setAttribute("aria-busy", "true");
  try {
    const data = await api(`/v1/feedback/groups${state ? `?state=${state}` : ""}`, { admin: true });
    page.querySelector("#review-quorum").textContent = String(data.quorum);
    list.replaceChildren(...(data.groups.length ? data.groups.map(groupCard)
      : [h("p", { class: "hint" }, state ? `No group with ${state} corrections.` : "No corrections yet.")]));
  } catch (err) {
    list.replaceChildren();
    showError(error, err, err.status === 401 ? "Enter a reviewer or admin key above." : "");
  } finally {
    list.setAttribute("aria-busy", "false");
  }
}

export function initReview() {
  page = document.getElementById("page-feedback");
  const form = page.querySelector("#review-key-form");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    adminToken.set(form.querySelector("#review-key").value.trim());
    form.querySelector("#review-key").value = "";
    load();
  });
  page.querySelector("#review-state").addEventListener("change", load);
  page.querySelector("#review-refresh").addEventListener("click", load);
}

export function showReview(visible) {
  if (visible) load();
}
