// Small DOM helpers. Text always goes in through textContent: answers are model output.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("data-") || key.startsWith("aria-") || key === "role" || key === "for") node.setAttribute(key, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const STATUS_TITLES = {
  0: "Gateway unreachable",
  400: "Bad request",
  401: "Not authorised",
  403: "Forbidden",
  404: "Not found",
  409: "Conflict",
  413: "Too large",
  415: "Unsupported file",
  422: "Invalid input",
  429: "Too many requests",
  500: "Server error",
  502: "Backend error",
  503: "Service unavailable",
  504: "Timed out",
};

export function showError(box, err, hint = "") {
  const status = err && typeof err.status === "number" ? err.status : -1;
  const title = STATUS_TITLES[status] || (status >= 500 ? "Server error" : status >= 400 ? "Request refused" : "Error");
  box.replaceChildren(
    h("strong", { class: "error-title" }, status > 0 ? `${title} (${status})` : title),
    " ",
    h("span", { class: "error-text" }, err && err.message ? err.message : String(err)),
    hint ? h("span", { class: "error-hint" }, hint) : null,
  );
  box.dataset.status = String(status);
  box.hidden = false;
}

export function clearError(box) {
  box.hidden = true;
  box.replaceChildren();
  delete box.dataset.status;
}

export function showOk(box, text) {
  box.textContent = text;
  box.hidden = false;
}

// Disable a form's controls while a request runs; the submit button says what is happening.
export async function busy(form, label, work) {
  const button = form.querySelector("button[type=submit]");
  const original = button ? button.textContent : "";
  form.setAttribute("aria-busy", "true");
  for (const control of form.elements) control.disabled = true;
  if (button) button.textContent = label;
  try {
    return await work();
  } finally {
    for (const control of form.elements) control.disabled = false;
    if (button) button.textContent = original;
    form.removeAttribute("aria-busy");
  }
}

export const fmt = {
  pct(value, digits = 0) {
    return value === null || value === undefined ? "–" : `${(value * 100).toFixed(digits)}%`;
  },
  ms(value) {
    if (value === null || value === undefined) return "–";
    return value >= 1000 ? `${(value / 1000).toFixed(2)} s` : `${Math.round(value)} ms`;
  },
  num(value, digits = 2) {
    return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
  },
  int(value) {
    return value === null || value === undefined ? "–" : Number(value).toLocaleString("en");
  },
  version(value) {
    return value === null || value === undefined ? "no version" : `v${value}`;
  },
  when(iso) {
    if (!iso) return "–";
    const date = new Date(iso);
    return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
  },
};
