// Entry point: hash routing between the pages and the services' health line.

import { api } from "./api.js";
import { initModels, showModels } from "./models.js";
import { initMonitoring, showMonitoring } from "./monitoring.js";
import { initReview, showReview } from "./review.js";
import { initTraining, showTraining } from "./training.js";
import { initTry } from "./try.js";
import { loadFamilies } from "./families.js";

const PAGES = {
  try: { title: "Try the models", show: () => {} },
  models: { title: "Models", show: showModels },
  monitoring: { title: "Monitoring", show: showMonitoring },
  feedback: { title: "Feedback", show: showReview },
  training: { title: "Training", show: showTraining },
};
const HEALTH_MS = 30_000;
let current = null;

function route() {
  const name = (location.hash.match(/^#\/([a-z]+)/) || [])[1];
  const target = PAGES[name] ? name : "try";
  if (target === current) return;
  const previous = current;
  current = target;
  for (const section of document.querySelectorAll(".page")) section.hidden = section.dataset.page !== target;
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === target) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${PAGES[target].title} · Loopline`;
  document.body.dataset.page = target;
  if (previous) {
    PAGES[previous].show(false);
    document.getElementById("main").focus({ preventScroll: true });
  }
  PAGES[target].show(true);
}

async function checkHealth() {
  const line = document.getElementById("health");
  try {
    await api("/readyz?all=true");
    line.dataset.state = "ready";
    line.textContent = "All services ready";
  } catch (err) {
    line.dataset.state = "down";
    line.textContent = err.status === 503 ? `Degraded: ${err.message}` : "Gateway unreachable";
  }
}

async function start() {
  await loadFamilies();
  initTry();
  initModels();
  initMonitoring();
  initReview();
  initTraining();
  window.addEventListener("hashchange", route);
  route();
  checkHealth();
  setInterval(() => { if (document.visibilityState === "visible") checkHealth(); }, HEALTH_MS);
}

start();
