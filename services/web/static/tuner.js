// Motion tuner: the detector's moving pixels and boxes over the live picture,
// and sliders whose values detect uses from its next frame.
"use strict";

const SLIDERS = [
  // name, label, step, shown as
  ["min_pixel_delta_trigger", "Threshold (luma change of a moving pixel)", 1, (v) => `${v}`],
  ["min_trigger_area", "Minimum area (of the picture)", 0.0005, (v) => `${(v * 100).toFixed(2)} %`],
  ["frames_to_start", "Frames to start an event", 1, (v) => `${v}`],
];
const UNSAVED = "Not saved: detect goes back to the saved values when it restarts";
const AREA_SLIDER_MAX = 0.05;  // the useful range; a saved value above it widens the slider

const tuner = { saved: null, keys: null, profile: null, sending: null, pending: false, lastOverlay: null };
window.tunerState = tuner;  // for tests and the curious: what the page last drew

function values() {
  const out = {};
  for (const [name] of SLIDERS) out[name] = Number(document.getElementById(name).value);
  return out;
}

function showValues(v) {
  for (const [name, , , shown] of SLIDERS) {
    document.getElementById(name).value = v[name];
    document.getElementById(`${name}-value`).textContent = shown(v[name]);
  }
}

function buildSliders(info) {
  const box = document.getElementById("sliders");
  for (const [name, label, step, shown] of SLIDERS) {
    const [low, high] = info.limits[name];
    const max = name === "min_trigger_area" ? Math.max(AREA_SLIDER_MAX, info.live[name], info.saved[name]) : high;
    const input = el("input", { type: "range", id: name, min: low, max, step });
    const value = el("span", { class: "value", id: `${name}-value` });
    input.oninput = () => { value.textContent = shown(Number(input.value)); send(); };
    box.append(el("label", { class: "slider" }, el("span", {}, `${label}: `, value), input,
                  el("span", { class: "muted", text: info.descriptions[name] })));
  }
}

// At most one request in flight; the newest values win.
async function send() {
  if (tuner.sending) { tuner.pending = true; return; }
  tuner.sending = postJson("/api/motion/tuning", { ...values(), profile: tuner.profile });
  try {
    await tuner.sending;
    say(sameAsSaved() ? "" : UNSAVED, "muted");
  } catch (err) {
    say(err.message, "bad");
  } finally {
    tuner.sending = null;
    if (tuner.pending) { tuner.pending = false; send(); }
  }
}

function sameAsSaved() {
  const v = values();
  return SLIDERS.every(([name]) => Math.abs(v[name] - tuner.saved[name]) < 1e-9);
}

function drawOverlay(o) {
  const canvas = document.getElementById("overlay");
  const g = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height;
  const bits = Uint8Array.from(atob(o.bits), (c) => c.charCodeAt(0));
  const small = new ImageData(o.width, o.height);
  let moving = 0;
  for (let i = 0; i < o.width * o.height; i++) {
    if (bits[i >> 3] & (0x80 >> (i & 7))) {
      small.data.set([248, 40, 40, 150], i * 4);
      moving++;
    }
  }
  const scratch = drawOverlay.scratch || (drawOverlay.scratch = document.createElement("canvas"));
  scratch.width = o.width; scratch.height = o.height;
  scratch.getContext("2d").putImageData(small, 0, 0);
  g.clearRect(0, 0, W, H);
  g.imageSmoothingEnabled = false;
  g.drawImage(scratch, 0, 0, W, H);
  g.lineWidth = Math.max(2, W / 240);
  g.strokeStyle = o.moving ? "#3fb950" : "#e3b341";
  for (const [x, y, w, h] of o.boxes) g.strokeRect(x * W, y * H, w * W, h * H);
  tuner.lastOverlay = { ...o, bits: undefined, movingPixels: moving, drawnAt: performance.now() };
  const t = o.tuning;
  if (o.profile && tuner.profile && o.profile !== tuner.profile && !tuner.sending && !tuner.loading) {
    load().catch(() => {});  // the next overlay tries again
  }
  document.getElementById("readout").textContent =
    `Moving: ${(o.area * 100).toFixed(2)} % of the picture (needs ${(t.min_trigger_area * 100).toFixed(2)} %)` +
    `${o.event ? " · event open" : ""} · detect uses threshold ${t.min_pixel_delta_trigger}, ` +
    `${t.frames_to_start} frame(s) to start`;
}

function follow() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws/overlay`);
  ws.onmessage = (ev) => { drawOverlay(JSON.parse(ev.data)); ws.send("ack"); };
  ws.onclose = () => setTimeout(follow, 1000);
}

async function save() {
  const button = document.getElementById("save");
  button.disabled = true;
  say("Saving…", "muted");
  const v = values();
  try {
    const outcome = await saveSettings(Object.fromEntries(
      Object.entries(v).map(([name, value]) => [tuner.keys[name], value])));
    tuner.saved = v;
    say(savedText(outcome));
  } catch (err) {
    say(err.message, "bad");
  } finally {
    button.disabled = false;
  }
}

// The values of the profile detect is in (again when it switches: day, night).
async function load() {
  const first = tuner.profile === null;
  tuner.loading = true;
  try {
    const info = await request("/api/motion/tuning");
    Object.assign(tuner, { saved: info.saved, keys: info.keys, profile: info.profile });
    document.getElementById("profile").textContent =
      `Tuning the ${info.profile} profile (Save writes ${Object.values(info.keys).join(", ")})`;
    if (!first) showValues(info.live);
    return info;
  } finally {
    tuner.loading = false;
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  showLive(document.getElementById("picture"), (w, h) => {
    const canvas = document.getElementById("overlay");
    canvas.width = w; canvas.height = h;
  });
  try {
    const info = await load();
    buildSliders(info);
    showValues(info.live);
    if (!sameAsSaved()) say(UNSAVED, "muted");
  } catch (err) {
    say(err.message, "bad");
  }
  document.getElementById("save").onclick = save;
  document.getElementById("revert").onclick = () => { showValues(tuner.saved); send(); };
  follow();
});
