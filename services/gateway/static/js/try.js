// The three "try it" panels: ask about an image, ask about a text, stylize an image.

import { api } from "./api.js";
import { feedbackControl } from "./feedback.js";
import { busy, clearError, fmt, h, showError } from "./ui.js";

const EXAMPLE = {
  question: "What is the capital of France?",
  context: "France is a country in Europe. Its capital city is Paris, which is known for the Eiffel Tower "
    + "and the Louvre Museum. The country has a population of about 68 million people.",
};

function panelParts(id) {
  const panel = document.getElementById(id);
  return { panel, form: panel.querySelector("form"), error: panel.querySelector(":scope > .message.error"),
    result: panel.querySelector(":scope > .result") };
}

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

function showResult(result, data, children, correctionLabel) {
  result.replaceChildren(...children, modelLine(data), feedbackControl(data.request_id, { correctionLabel }));
  result.dataset.requestId = data.request_id;
  result.hidden = false;
}

function initVqa() {
  const { form, error, result } = panelParts("vqa-panel");
  wirePreview(form.elements.image, document.getElementById("vqa-preview"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError(error);
    const problem = missing(form, ["image", "question"]);
    if (problem) return invalid(error, problem);
    const body = new FormData();
    body.append("image", form.elements.image.files[0]);
    body.append("question", form.elements.question.value.trim());
    await busy(form, "Asking…", async () => {
      try {
        const data = await api("/v1/vqa", { method: "POST", form: body, sticky: true });
        showResult(result, data, [
          h("p", { class: "answer-label" }, "Answer"),
          h("p", { class: "answer", "data-answer": "" }, data.answer || "(no answer)"),
          confidence(data.confidence),
        ], "The right answer");
      } catch (err) {
        showError(error, err);
      }
    });
  });
}

// The context with the answer span marked, so the user sees where it came from.
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

function initQa() {
  const { form, error, result } = panelParts("qa-panel");
  document.getElementById("qa-example").addEventListener("click", () => {
    form.elements.question.value = EXAMPLE.question;
    form.elements.context.value = EXAMPLE.context;
    form.elements.question.focus();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError(error);
    const problem = missing(form, ["question", "context"]);
    if (problem) return invalid(error, problem);
    const context = form.elements.context.value;
    const json = { question: form.elements.question.value.trim(), context };
    await busy(form, "Searching…", async () => {
      try {
        const data = await api("/v1/qa", { method: "POST", json, sticky: true });
        showResult(result, data, [
          h("p", { class: "answer-label" }, "Answer"),
          h("p", { class: "answer", "data-answer": "" }, data.answer || "(no answer found)"),
          confidence(data.confidence),
          highlighted(context, data.start, data.end),
        ], "The right answer");
      } catch (err) {
        showError(error, err);
      }
    });
  });
}

function pngBlob(b64) {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  return new Blob([bytes], { type: "image/png" });
}

async function loadStyles(select, error) {
  try {
    const data = await api("/v1/styles");
    const styles = data.styles || [];
    select.replaceChildren(...styles.map((s) =>
      h("option", { value: s.style }, s.production ? `${s.style} (v${s.production})` : `${s.style} (no production version)`)));
    if (!styles.length) select.replaceChildren(h("option", { value: "" }, "No styles in the registry"));
    select.dataset.loaded = String(styles.length);
  } catch (err) {
    select.replaceChildren(h("option", { value: "" }, "Styles unavailable"));
    showError(error, err);
  }
}

function initStyle() {
  const { form, error, result } = panelParts("style-panel");
  const select = form.elements.style;
  wirePreview(form.elements.image, document.getElementById("style-preview"));
  loadStyles(select, error);
  let downloadUrl = null;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError(error);
    const problem = missing(form, ["style", "image"]);
    if (problem) return invalid(error, problem);
    const style = select.value;
    const body = new FormData();
    body.append("image", form.elements.image.files[0]);
    body.append("style", style);
    await busy(form, "Stylizing…", async () => {
      try {
        const data = await api("/v1/style", { method: "POST", form: body, sticky: true });
        if (downloadUrl) URL.revokeObjectURL(downloadUrl);
        downloadUrl = URL.createObjectURL(pngBlob(data.image_b64));
        const name = `loopline-${data.style || style}-${data.request_id.slice(0, 8)}.png`;
        showResult(result, data, [
          h("img", { class: "stylized", src: `data:image/png;base64,${data.image_b64}`,
            alt: `Your image in the ${data.style || style} style` }),
          h("p", {}, h("a", { class: "download button", href: downloadUrl, download: name }, "Download PNG")),
        ], "What should be different?");
      } catch (err) {
        showError(error, err);
      }
    });
  });
}

export function initTry() {
  initVqa();
  initQa();
  initStyle();
}
