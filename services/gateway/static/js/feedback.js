// The good/bad + correction control shown under every answer; posts /v1/feedback.

import { api } from "./api.js";
import { clearError, showError, showOk } from "./ui.js";

/**
 * A feedback control for one answer. `correctionLabel` names what the text box is for
 * ("The right answer" for VQA/QA, "What should be different?" for style).
 */
export function feedbackControl(requestId, { correctionLabel = "The right answer" } = {}) {
  const form = document.getElementById("feedback-template").content.firstElementChild.cloneNode(true);
  form.dataset.requestId = requestId;
  form.setAttribute("aria-label", "Feedback on this answer");
  form.querySelector(".correction-label").textContent = correctionLabel;

  const good = form.querySelector(".rate.good");
  const bad = form.querySelector(".rate.bad");
  const correction = form.querySelector(".correction");
  const input = correction.querySelector("input");
  const ok = form.querySelector(".message.ok");
  const error = form.querySelector(".message.error");
  let sending = false;

  const press = (rating) => {
    good.setAttribute("aria-pressed", String(rating === "good"));
    bad.setAttribute("aria-pressed", String(rating === "bad"));
  };

  async function send(rating) {
    if (sending) return;
    sending = true;
    clearError(error);
    const body = { request_id: requestId, rating };
    const text = input.value.trim();
    if (rating === "bad" && text) body.correction = text;
    for (const control of form.elements) control.disabled = true;
    try {
      const result = await api("/v1/feedback", { method: "POST", json: body, sticky: true });
      press(rating);
      correction.hidden = true;
      form.dataset.feedbackId = result.feedback_id;
      form.dataset.sent = rating;
      showOk(ok, rating === "good"
        ? "Thanks! Saved as a good answer."
        : !text ? "Thanks! Saved as a bad answer."
          : result.trust === "accepted" ? "Thanks! Your correction is saved and accepted for the next fine-tune."
            : "Thanks! Your correction is saved; it trains once a reviewer accepts it or other people send the same one.");
    } catch (err) {
      showError(error, err);
      for (const control of form.elements) control.disabled = false;
    } finally {
      sending = false;
    }
  }

  good.addEventListener("click", () => send("good"));
  bad.addEventListener("click", () => {
    press("bad");
    correction.hidden = false;
    input.focus();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    send("bad");
  });
  return form;
}
