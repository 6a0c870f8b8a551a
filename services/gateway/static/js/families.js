// The model families the gateway serves (GET /v1/families): the try panels, the task filter, the
// legend and the task colours all come from here, so a new family needs no change to the UI.

import { api } from "./api.js";

const PALETTE = 6; // colours in style.css: --c0 .. --c5
let families = [];

export async function loadFamilies() {
  try {
    families = (await api("/v1/families")).families || [];
  } catch {
    families = [];
  }
  return families;
}

export function familyList() {
  return families;
}

// The CSS class that colours a task's badges, bars and swatches.
export function taskClass(task) {
  const index = families.findIndex((f) => f.name === task);
  return index < 0 ? "task-other" : `task-c${index % PALETTE}`;
}
