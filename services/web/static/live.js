// Live page: one tile per camera (MJPEG <img>, or a WebSocket paced by acks).
"use strict";

const sockets = [];
const wsBase = () => `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`;

// The camera's h264 in fragmented MP4, appended to a MediaSource; the player
// stays near the live edge and trims what it has shown.
function startH264(video, camera) {
  const ws = new WebSocket(`${wsBase()}/ws/h264?camera=${encodeURIComponent(camera)}`);
  ws.binaryType = "arraybuffer";
  const pending = [];
  let buffer = null;
  const pump = () => {
    if (!buffer || buffer.updating || !pending.length) return;
    buffer.appendBuffer(pending.shift());
  };
  const follow = () => {
    const b = video.buffered;
    if (!b.length) return;
    const start = b.start(0), end = b.end(b.length - 1);
    if (video.currentTime < start || end - video.currentTime > 1.5) video.currentTime = Math.max(start, end - 0.3);
    if (video.paused) video.play().catch(() => {});
    if (!buffer.updating && video.currentTime - start > 30) buffer.remove(start, video.currentTime - 10);
  };
  ws.onmessage = (ev) => {
    if (typeof ev.data === "string") {
      const info = JSON.parse(ev.data);
      const type = `video/mp4; codecs="${info.codec}"`;
      if (!window.MediaSource || !MediaSource.isTypeSupported(type)) {
        video.replaceWith(el("p", { class: "bad", text: `This browser cannot play ${type}` }));
        ws.close();
        return;
      }
      const source = new MediaSource();
      video.src = URL.createObjectURL(source);
      source.addEventListener("sourceopen", () => {
        buffer = source.addSourceBuffer(type);
        buffer.addEventListener("updateend", () => { follow(); pump(); });
        pump();
      }, { once: true });
      return;
    }
    pending.push(ev.data);
    pump();
  };
  ws.onclose = (ev) => {
    if (ev.code === 1012 && sockets.includes(ws)) setTimeout(() => startH264(video, camera), 200);
  };
  sockets.push(ws);
}

function startWs(img, camera) {
  const ws = new WebSocket(`${wsBase()}/ws/live?camera=${encodeURIComponent(camera)}`);
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
  const mode = document.getElementById("mode").value;
  sockets.splice(0).forEach((ws) => ws.close());
  const grid = document.getElementById("cams");
  grid.replaceChildren();
  const cams = await api("/api/cameras");
  for (const cam of cams) {
    const state = el("span", { class: "muted", id: `cam-state-${cam.name}` });
    const view = mode === "h264"
      ? el("video", { class: "live-video", muted: "", autoplay: "", playsinline: "", "data-camera": cam.name })
      : el("img", { alt: `live ${cam.name}`, class: "live", "data-camera": cam.name });
    grid.append(el("div", { class: "cam" }, el("header", {}, el("strong", { text: cam.name }), state), view));
    if (mode === "h264") { view.muted = true; startH264(view, cam.name); }
    else if (mode === "ws") startWs(view, cam.name);
    else view.src = `/stream.mjpg?camera=${encodeURIComponent(cam.name)}&t=${Date.now()}`;
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
  const ws = new WebSocket(`${wsBase()}/ws/events`);
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
  document.getElementById("mode").onchange = showCameras;
  showCameras();
  refreshStatus();
  setInterval(refreshStatus, 3000);
  followEvents();
});
