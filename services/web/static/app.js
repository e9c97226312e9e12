// Shared by every page: navigation, JSON helpers, arm state.
"use strict";

const PAGES = [["/", "Live"], ["/events", "Events"], ["/masks", "Masks"], ["/tuner", "Tuner"], ["/health", "Health"],
               ["/config", "Config"], ["/settings", "Settings"]];

async function api(path, options = {}) {
  const res = await fetch(path, { credentials: "same-origin", ...options });
  if (res.status === 401) { location.href = "/login"; throw new Error("login required"); }
  if (!res.ok) throw new Error(`${path}: ${res.status}`);
  return res.json();
}

function post(path, body) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" },
                     body: JSON.stringify(body || {}) });
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c);
  return node;
}

function when(ts) { return new Date(ts * 1000).toLocaleTimeString(); }
function today() {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}
function bytes(n) {
  if (n == null) return "?";
  const u = ["B", "KB", "MB", "GB", "TB"]; let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(1)} ${u[i]}`;
}

function showArm(state) {
  const badge = document.getElementById("arm-state");
  if (!badge) return;
  badge.textContent = state.armed ? "armed" : "disarmed";
  badge.className = "badge " + (state.armed ? "on" : "off");
}

function buildNav() {
  const nav = document.querySelector("nav");
  nav.append(el("strong", { text: "pisentry" }));
  for (const [href, name] of PAGES) {
    nav.append(el("a", { href, class: location.pathname === href ? "here" : "", text: name }));
  }
  const right = el("span", { class: "right" });
  right.append(el("span", { id: "arm-state", class: "badge", text: "…" }));
  const arm = el("button", { id: "arm", class: "primary", text: "Arm" });
  const disarm = el("button", { id: "disarm", text: "Disarm" });
  arm.onclick = async () => showArm(await post("/api/arm"));
  disarm.onclick = async () => showArm(await post("/api/disarm"));
  const logout = el("button", { id: "logout", text: "Log out" });
  logout.onclick = async () => { await post("/logout"); location.href = "/login"; };
  right.append(arm, disarm, logout);
  nav.append(right);
  api("/api/arm").then(showArm).catch(() => {});
}

document.addEventListener("DOMContentLoaded", buildNav);
