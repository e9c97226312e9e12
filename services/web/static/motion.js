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
