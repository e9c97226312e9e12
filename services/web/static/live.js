// Live page: one tile per camera (MJPEG <img>, or a WebSocket paced by acks).
"use strict";

const sockets = [];

function startWs(img, camera) {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws/live?camera=${encodeURIComponent(camera)}`);
  ws.binaryType = "blob";
  let url = null;
  ws.onmessage = (ev) => {
    const next = URL.createObjectURL(ev.data);
    img.onload = () => { if (url) URL.revokeObjectURL(url); url = next; ws.send("ack"); };
    img.src = next;
  };
  sockets.push(ws);
}

async function showCameras() {
  const useWs = document.getElementById("use-ws").checked;
  sockets.splice(0).forEach((ws) => ws.close());
  const grid = document.getElementById("cams");
  grid.replaceChildren();
  const cams = await api("/api/cameras");
  for (const cam of cams) {
    const img = el("img", { alt: `live ${cam.name}`, class: "live", "data-camera": cam.name });
    const state = el("span", { class: "muted", id: `cam-state-${cam.name}` });
    grid.append(el("div", { class: "cam" }, el("header", {}, el("strong", { text: cam.name }), state), img));
    if (useWs) startWs(img, cam.name);
    else img.src = `/stream.mjpg?camera=${encodeURIComponent(cam.name)}&t=${Date.now()}`;
  }
}

async function refreshStatus() {
  try {
    const st = await api("/api/status");
    showArm(st.armed);
    for (const [camera, rows] of Object.entries(st.services)) {
      const span = document.getElementById(`cam-state-${camera}`);
      if (!span) continue;
      const down = rows.filter((r) => !r.alive).map((r) => r.service);
      span.textContent = down.length ? `down: ${down.join(", ")}` : "all services up";
      span.className = down.length ? "bad" : "ok";
    }
    document.getElementById("live-status").textContent =
      st.all_alive ? "" : "some services are not reporting (see Health)";
  } catch (e) { /* next round */ }
}

function followEvents() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/ws/events`);
  const feed = document.getElementById("feed");
  ws.onmessage = (ev) => {
    const m = JSON.parse(ev.data);
    if (m.topic === "state") { showArm(m); }
    let text = `${when(m.ts || Date.now() / 1000)} ${m.camera || ""} ${m.topic}`;
    if (m.topic === "motion") text += ` ${m.phase} ${m.labels.join(",")}`;
    if (m.topic === "recording") text += ` ${m.phase} ${m.reason}`;
    if (m.topic === "state") text += m.armed ? " armed" : " disarmed";
    const li = el("li", { text });
    if (m.event_id) li.append(" ", el("a", { href: `/player?event=${encodeURIComponent(m.event_id)}`, text: "open" }));
    feed.prepend(li);
    while (feed.children.length > 30) feed.lastChild.remove();
  };
  ws.onclose = () => setTimeout(followEvents, 2000);
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("use-ws").onchange = showCameras;
  showCameras();
  refreshStatus();
  setInterval(refreshStatus, 3000);
  followEvents();
});
