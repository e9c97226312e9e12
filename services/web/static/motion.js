// Shared by the mask editor and the motion tuner: the live picture, and
// requests whose refusal (the config schema's own words) is shown on the page.
"use strict";

async function request(path, options = {}) {
  const res = await fetch(path, { credentials: "same-origin", ...options });
  if (res.status === 401) { location.href = "/login"; throw new Error("login required"); }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const detail = body.detail;
    throw new Error(typeof detail === "string" ? detail
      : Array.isArray(detail) ? detail.map((d) => `${d.loc.slice(1).join(".")}: ${d.msg}`).join("; ")
      : `${path}: ${res.status}`);
  }
  return body;
}

function postJson(path, body) {
  return request(path, { method: "POST", headers: { "Content-Type": "application/json" },
                         body: JSON.stringify(body) });
}

// kind: "ok", "bad" (a refusal) or "muted" (a note).
// Saving goes through the settings page's own save (config.toml kept as the
// user wrote it, its history, a restart of the services concerned with
// rollback); its refusal lists the fields at fault.
async function saveSettings(changes) {
  const res = await fetch("/api/settings", {
    method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ changes }) });
  if (res.status === 401) { location.href = "/login"; throw new Error("login required"); }
  const body = await res.json().catch(() => ({}));
  if (res.ok && body.ok) return body;
  if (body.errors) throw new Error(body.errors.map((e) => `${e.key}: ${e.message}`).join("; "));
  if (body.failed) throw new Error("Rolled back: " + Object.entries(body.failed).map(([s, why]) => `${s}: ${why}`).join("; "));
  throw new Error(typeof body.detail === "string" ? body.detail : `save: ${res.status}`);
}

function savedText(outcome) {
  return "Saved" + (outcome.restarted && outcome.restarted.length ? `; restarted ${outcome.restarted.join(", ")}` : "");
}

function say(text, kind = "ok") {
  const box = document.getElementById("message");
  box.textContent = text;
  box.className = `message ${kind}`;
}

// The camera's MJPEG stream in `img`; `onSize(w, h)` once its first frame shows.
function showLive(img, onSize) {
  img.src = `/stream.mjpg?t=${Date.now()}`;
  const wait = setInterval(() => {
    if (!img.naturalWidth) return;
    clearInterval(wait);
    onSize(img.naturalWidth, img.naturalHeight);
  }, 100);
}
