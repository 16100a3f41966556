// seawatch review station: selection and keyboard on the object grid, and the JSON
// decisions (each carries the CSRF token; a stale one is refused and shown).
"use strict";

const csrf = () => document.querySelector('meta[name="csrf-token"]')?.content || "";

function say(text, kind) {
  const box = document.getElementById("messages");
  if (!box) return;
  const p = document.createElement("p");
  p.className = kind || "info";
  p.textContent = text;
  box.replaceChildren(p);
}

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  let data = {};
  try { data = await response.json(); } catch (e) { /* not JSON */ }
  if (response.status === 409) {
    const who = data.stale.map((s) => `${s.subject} (now version ${s.version}${s.by ? " by " + s.by : ""})`);
    say(`Refused, changed by someone else since you saw it: ${who.join(", ")}. ` +
        `Applied: ${data.applied.length}. The page shows the current state.`, "conflict");
  } else if (!response.ok) {
    say(`Not saved: ${data.detail ? JSON.stringify(data.detail) : response.status}`, "error");
  } else {
    say(`Saved: ${data.applied ? data.applied.length : 1} decision(s).`, "ok");
  }
  return response;
}

// ---- the object grid -------------------------------------------------------------
let anchor = null;
const cells = () => Array.from(document.querySelectorAll("#grid .cell"));
const selected = () => cells().filter((c) => c.getAttribute("aria-selected") === "true");
const focused = () => document.activeElement?.closest?.(".cell") || cells()[0];
const ref = (c) => ({ uid: c.dataset.uid, idx: Number(c.dataset.idx), version: Number(c.dataset.version) });

function focusCell(cell) {
  if (!cell) return;
  cells().forEach((c) => c.setAttribute("tabindex", "-1"));
  cell.setAttribute("tabindex", "0");
  cell.focus();
}

function toggle(cell, on) {
  const value = on === undefined ? cell.getAttribute("aria-selected") !== "true" : on;
  cell.setAttribute("aria-selected", value ? "true" : "false");
}

function refreshGrid() {
  return htmx.ajax("GET", window.location.pathname + window.location.search,
                   { target: "#grid", swap: "outerHTML" });
}

async function decide(action, items, taxon) {
  if (!items.length) { say("Select objects first (space, click, or a for all).", "error"); return; }
  await post("/api/objects/decide", { action, items: items.map(ref), taxon: taxon || null });
  await refreshGrid();
}

function columns() {
  const all = cells();
  if (all.length < 2) return 1;
  const top = all[0].offsetTop;
  const n = all.findIndex((c) => c.offsetTop !== top);
  return n < 0 ? all.length : n;
}

function move(delta) {
  const all = cells();
  const at = Math.max(0, all.indexOf(focused()));
  focusCell(all[Math.min(all.length - 1, Math.max(0, at + delta))]);
}

function openReassign() {
  const box = document.getElementById("reassign");
  if (!box) return;
  box.hidden = false;
  const input = document.getElementById("reassign-taxon");
  input.value = "";
  input.focus();
}

function applyReassign() {
  const box = document.getElementById("reassign");
  const taxon = document.getElementById("reassign-taxon").value.trim();
  box.hidden = true;
  if (taxon) decide("reassign", selected(), taxon);
}

document.addEventListener("click", (event) => {
  const cell = event.target.closest?.("#grid .cell");
  if (!cell) return;
  const all = cells();
  if (event.shiftKey && anchor) {
    const [a, b] = [all.indexOf(anchor), all.indexOf(cell)].sort((x, y) => x - y);
    all.slice(a, b + 1).forEach((c) => toggle(c, true));
  } else {
    toggle(cell);
    anchor = cell;
  }
  focusCell(cell);
});

document.addEventListener("keydown", (event) => {
  const target = event.target;
  if (target.id === "reassign-taxon") {
    if (event.key === "Enter") { event.preventDefault(); applyReassign(); }
    if (event.key === "Escape") { document.getElementById("reassign").hidden = true; focusCell(focused()); }
    return;
  }
  if (!document.getElementById("grid") || target.matches?.("input, select, textarea")) return;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const key = event.key;
  const handlers = {
    ArrowRight: () => move(1),
    ArrowLeft: () => move(-1),
    ArrowDown: () => move(columns()),
    ArrowUp: () => move(-columns()),
    " ": () => { const c = focused(); if (c) { toggle(c); anchor = c; } },
    a: () => cells().forEach((c) => toggle(c, true)),
    Escape: () => cells().forEach((c) => toggle(c, false)),
    v: () => decide("validate", selected()),
    V: () => decide("validate", cells()),
    d: () => decide("dubious", selected()),
    t: () => (selected().length ? openReassign() : say("Select objects first.", "error")),
    n: () => document.querySelector('#grid a[rel="next"]')?.click(),
    p: () => document.querySelector('#grid a[rel="prev"]')?.click(),
    o: () => { const c = focused(); if (c) window.location = `/object?uid=${encodeURIComponent(c.dataset.uid)}&idx=${c.dataset.idx}`; },
  };
  if (handlers[key]) { event.preventDefault(); handlers[key](); }
});

document.addEventListener("click", (event) => {
  if (event.target.id === "reassign-go") applyReassign();
});

// ---- otoliths, fish, taxonomy (forms posted as JSON) ------------------------------
document.addEventListener("submit", async (event) => {
  const form = event.target;
  const action = event.submitter?.value;
  if (form.classList.contains("decide-otolith")) {
    event.preventDefault();
    const card = form.closest(".otolith");
    const body = { uid: card.dataset.uid, version: Number(card.dataset.version), action,
                   anomaly_type: action === "confirm" ? form.anomaly_type.value : null };
    const r = await post("/api/otoliths/decide", body);
    if (r.ok || r.status === 409) setTimeout(() => window.location.reload(), 600);
  } else if (form.classList.contains("decide-fish")) {
    event.preventDefault();
    const card = form.closest(".fish");
    const sightings = Array.from(card.querySelectorAll('input[name="sighting"]:checked')).map((i) => i.value);
    const body = { individual: card.dataset.individual, version: Number(card.dataset.version), action,
                   target: form.target.value || null, sightings };
    const r = await post("/api/fish/decide", body);
    if (r.ok || r.status === 409) setTimeout(() => window.location.reload(), 600);
  } else if (form.classList.contains("decide-merge")) {
    event.preventDefault();
    const card = form.closest(".merge");
    const body = { individual: card.dataset.individual, merged_at_us: Number(card.dataset.mergedAt),
                   version: Number(card.dataset.version), action };
    await post("/api/fish/merges/decide", body);
    await htmx.ajax("GET", "/merges", { target: "#merges", swap: "outerHTML" });
  } else if (form.id === "add-taxon") {
    event.preventDefault();
    const r = await post("/api/taxa", { group: form.group.value, taxon: form.taxon.value });
    if (r.ok) setTimeout(() => window.location.reload(), 600);
  }
});
