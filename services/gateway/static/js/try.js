// The "try it" panels, one per model family, drawn from what each family declares
// (GET /v1/families: its route, named inputs and outputs, and its panel's words).

import { api } from "./api.js";
import { familyList } from "./families.js";
import { feedbackControl } from "./feedback.js";
import { busy, clearError, fmt, h, showError } from "./ui.js";

const IMAGE_TYPES = "image/jpeg,image/png,image/webp";
const capital = (text) => text.charAt(0).toUpperCase() + text.slice(1);

// Show a preview of the chosen file; the object URL is released when replaced.
function wirePreview(input, img) {
  const box = img.closest(".preview-box");
  input.addEventListener("change", () => {
    if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
    const file = input.files && input.files[0];
    if (file && file.type.startsWith("image/")) {
      img.src = URL.createObjectURL(file);
      box.hidden = false;
    } else {
      img.removeAttribute("src");
      box.hidden = true;
    }
  });
}

// Checks the browser can make before sending; the gateway checks everything again.
function missing(form, names) {
  for (const name of names) {
    const control = form.elements[name];
    const empty = control.type === "file" ? !control.files.length : !control.value.trim();
    if (empty) {
      const label = form.querySelector(`label[for="${control.id}"]`);
      control.focus();
      return `${label ? label.firstChild.textContent.trim() : name} is required.`;
    }
  }
  return null;
}

function invalid(error, message) {
  showError(error, { status: -1, message });
  error.querySelector(".error-title").textContent = "Missing input";
}

function modelLine(data) {
  const m = data.model || {};
  const parts = [`${m.name} ${fmt.version(m.version)}`, fmt.ms(data.latency_ms)];
  return h("p", { class: "meta" }, parts.join(" · "),
    h("span", { class: "request-id" }, ` · request ${data.request_id}`));
}

function confidence(value) {
  return h("div", { class: "confidence" },
    h("label", {}, "Confidence ", h("meter", { min: 0, max: 1, low: 0.3, high: 0.7, optimum: 1, value: value ?? 0 }),
      ` ${fmt.pct(value, 1)}`));
}

// The text with the answer span marked, so the user sees where it came from.
function highlighted(context, start, end) {
  if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && end > start && end <= context.length)) {
    return null;
  }
  const radius = 240;
  const from = Math.max(0, start - radius);
  const to = Math.min(context.length, end + radius);
  return h("blockquote", { class: "context" },
    from > 0 ? "…" : "", context.slice(from, start), h("mark", {}, context.slice(start, end)),
    context.slice(end, to), to < context.length ? "…" : "");
}

function pngBlob(b64) {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type: "image/png" });
}

// The inputs in the order a person fills them: the variant, the image, then the texts.
function orderedInputs(family) {
  const rank = { variant: 0, image: 1 };
  return [...family.inputs].sort((a, b) => (rank[a.kind] ?? 2) - (rank[b.kind] ?? 2));
}

function control(family, input) {
  const ui = family.ui || {};
  const id = `${family.name}-${input.kind === "variant" ? "choice" : input.name}`;
  const name = input.kind === "image" ? "image" : input.field;
  const hint = input.kind === "image" ? "JPEG, PNG or WebP" : (ui.hints || {})[input.name];
  const label = h("label", { for: id }, (ui.labels || {})[input.name] || capital(input.name),
    hint ? " " : null, hint ? h("span", { class: "hint" }, hint) : null);
  let widget;
  if (input.kind === "image") {
    widget = h("input", { id, name, type: "file", accept: IMAGE_TYPES, required: true });
  } else if (input.kind === "variant") {
    widget = h("select", { id, name, required: true }, h("option", { value: "" }, `Loading ${input.field}s…`));
  } else if ((ui.multiline || []).includes(input.name)) {
    widget = h("textarea", { id, name, rows: 6, required: true, placeholder: (ui.placeholders || {})[input.name] });
  } else {
    widget = h("input", { id, name, type: "text", maxLength: input.max_length || undefined, required: true,
      placeholder: (ui.placeholders || {})[input.name], autocomplete: "off" });
  }
  const parts = [h("div", { class: "field" }, label, widget)];
  if (input.kind === "image") {
    parts.push(h("figure", { class: "preview-box", hidden: true },
      h("img", { id: `${family.name}-preview`, class: "preview", alt: "The image you chose" })));
  }
  return parts;
}

function panel(family) {
  const ui = family.ui || {};
  const inputs = orderedInputs(family);
  const buttons = [h("button", { type: "submit", class: "primary" }, ui.button || "Run")];
  if (ui.example) buttons.push(h("button", { type: "button", id: `${family.name}-example`, class: "link" }, "Fill in an example"));
  const form = h("form", { id: `${family.name}-form`, class: "stack", novalidate: true },
    ...inputs.flatMap((input) => control(family, input)),
    buttons.length > 1 ? h("div", { class: "row" }, ...buttons) : buttons[0]);
  return h("article", { class: "panel", id: `${family.name}-panel`, "aria-labelledby": `${family.name}-title` },
    h("h2", { id: `${family.name}-title` }, ui.title || family.summary), form,
    h("div", { class: "message error", role: "alert", hidden: true }),
    h("div", { class: "result", "aria-live": "polite", hidden: true }));
}

async function loadVariants(family, field, select, error) {
  try {
    const data = await api(family.variants);
    const items = data[`${field}s`] || [];
    select.replaceChildren(...items.map((s) => h("option", { value: s[field] },
      s.production ? `${s[field]} (v${s.production})` : `${s[field]} (no production version)`)));
    if (!items.length) select.replaceChildren(h("option", { value: "" }, `No ${field}s in the registry`));
    select.dataset.loaded = String(items.length);
  } catch (err) {
    select.replaceChildren(h("option", { value: "" }, `${capital(field)}s unavailable`));
    showError(error, err);
  }
}

// What an answer shows: its text and confidence, the span in the text it came from, its image.
function resultParts(family, data, sent, state) {
  const ui = family.ui || {};
  const parts = [];
  const outputs = Object.fromEntries(family.outputs.map((o) => [o.name, o]));
  const text = family.outputs.find((o) => o.kind === "text");
  if (text) {
    parts.push(h("p", { class: "answer-label" }, "Answer"),
      h("p", { class: "answer", "data-answer": "" }, data[text.field] || ui.answer_empty || "(no answer)"));
  }
  if (outputs.confidence) parts.push(confidence(data[outputs.confidence.field]));
  if (ui.highlight && outputs.start && outputs.end) {
    parts.push(highlighted(sent[ui.highlight] || "", data[outputs.start.field], data[outputs.end.field]));
  }
  const image = family.outputs.find((o) => o.kind === "image");
  if (image) {
    const variant = family.inputs.find((i) => i.kind === "variant");
    const chosen = variant ? data[variant.field] || sent[variant.field] : null;
    if (state.downloadUrl) URL.revokeObjectURL(state.downloadUrl);
    state.downloadUrl = URL.createObjectURL(pngBlob(data[image.field]));
    const name = `loopline-${chosen || family.name}-${data.request_id.slice(0, 8)}.png`;
    parts.push(h("img", { class: "stylized", src: `data:image/png;base64,${data[image.field]}`,
      alt: chosen ? `Your image in the ${chosen} ${variant.field}` : `The ${family.name} model's image` }),
    h("p", {}, h("a", { class: "download button", href: state.downloadUrl, download: name }, "Download PNG")));
  }
  return parts;
}

function initPanel(family, article) {
  const ui = family.ui || {};
  const form = article.querySelector("form");
  const error = article.querySelector(":scope > .message.error");
  const result = article.querySelector(":scope > .result");
  const inputs = orderedInputs(family);
  const names = inputs.map((i) => (i.kind === "image" ? "image" : i.field));
  const state = { downloadUrl: null };
  for (const input of inputs) {
    if (input.kind === "image") wirePreview(form.elements.image, document.getElementById(`${family.name}-preview`));
    if (input.kind === "variant") loadVariants(family, input.field, form.elements[input.field], error);
  }
  if (ui.example) {
    document.getElementById(`${family.name}-example`).addEventListener("click", () => {
      for (const [field, value] of Object.entries(ui.example)) form.elements[field].value = value;
      form.elements[names[0]].focus();
    });
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError(error);
    const problem = missing(form, names);
    if (problem) return invalid(error, problem);
    const sent = {};
    for (const input of inputs) {
      if (input.kind !== "image") {
        const value = form.elements[input.field].value;
        sent[input.field] = input.kind === "text" && !(ui.multiline || []).includes(input.name) ? value.trim() : value;
      }
    }
    let request;
    if (names.includes("image")) {
      const body = new FormData();
      body.append("image", form.elements.image.files[0]);
      for (const [field, value] of Object.entries(sent)) body.append(field, value);
      request = { method: "POST", form: body, sticky: true };
    } else {
      request = { method: "POST", json: sent, sticky: true };
    }
    await busy(form, ui.busy || "Working…", async () => {
      try {
        const data = await api(family.route, request);
        result.replaceChildren(...resultParts(family, data, sent, state), modelLine(data),
          feedbackControl(data.request_id, { correctionLabel: ui.correction || "What should be different?" }));
        result.dataset.requestId = data.request_id;
        result.hidden = false;
      } catch (err) {
        showError(error, err);
      }
    });
  });
}

export function initTry() {
  const container = document.getElementById("try-panels");
  const families = familyList();
  container.replaceChildren(...families.map(panel));
  if (!families.length) container.replaceChildren(h("p", { class: "hint" }, "No model family is registered."));
  for (const family of families) initPanel(family, document.getElementById(`${family.name}-panel`));
}
