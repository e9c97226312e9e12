// Mask and zone editor: polygons drawn over the live picture, saved as the
// normalised corners detect reads (detect.masks, detect.zones).
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const MAX_CORNERS = 64;
const editor = { shapes: [], selected: -1, corner: -1, dragging: false, size: [640, 480] };

const round4 = (v) => Math.round(Math.min(1, Math.max(0, v)) * 10000) / 10000;

function svgNode(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function pointOf(ev) {
  const box = document.getElementById("drawing").getBoundingClientRect();
  return [round4((ev.clientX - box.left) / box.width), round4((ev.clientY - box.top) / box.height)];
}

function select(shape, corner = -1) {
  editor.selected = shape;
  editor.corner = corner;
  render();
}

function changed() {
  say("Not saved yet", "muted");
  render();
}

function newShape(kind) {
  const zones = editor.shapes.filter((s) => s.kind === "zone").length;
  editor.shapes.push({ kind, points: [], name: kind === "zone" ? `zone ${zones + 1}` : "",
                       required: false });
  select(editor.shapes.length - 1);
}

function drawShapes() {
  const svg = document.getElementById("drawing");
  const [W, H] = editor.size;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.replaceChildren();
  const line = W / 320;
  editor.shapes.forEach((s, i) => {
    const cls = [s.kind, s.kind === "zone" && s.required ? "required" : "",
                 i === editor.selected ? "selected" : ""].join(" ");
    const pts = s.points.map(([x, y]) => `${x * W},${y * H}`).join(" ");
    svg.append(svgNode("polygon", { points: pts, class: cls, "stroke-width": line,
                                    "data-shape": i }));
    if (s.kind === "zone" && s.points.length) {
      const cx = s.points.reduce((a, p) => a + p[0], 0) / s.points.length;
      const cy = s.points.reduce((a, p) => a + p[1], 0) / s.points.length;
      const label = svgNode("text", { x: cx * W, y: cy * H, "font-size": W / 32,
                                      "text-anchor": "middle", "pointer-events": "none" });
      label.textContent = s.name + (s.required ? " (required)" : "");
      svg.append(label);
    }
  });
  const s = editor.shapes[editor.selected];
  if (!s) return;
  s.points.forEach(([x, y], c) => {
    svg.append(svgNode("circle", { cx: x * W, cy: y * H, r: W / 80, "stroke-width": line,
                                   class: c === editor.corner ? "selected" : "",
                                   "data-shape": editor.selected, "data-corner": c }));
  });
}

function drawList() {
  const list = document.getElementById("shapes");
  list.replaceChildren();
  editor.shapes.forEach((s, i) => {
    const kind = el("select", { "aria-label": "kind" },
                    el("option", { value: "mask", text: "Mask (ignored)" }),
                    el("option", { value: "zone", text: "Zone" }));
    kind.value = s.kind;
    kind.onchange = () => { s.kind = kind.value; if (!s.name) s.name = `zone ${i + 1}`; changed(); };
    const row = el("div", { class: "row" }, kind);
    if (s.kind === "zone") {
      const name = el("input", { type: "text", value: s.name, "aria-label": "zone name",
                                 maxlength: "32" });
      name.oninput = () => { s.name = name.value; say("Not saved yet", "muted"); drawShapes(); };
      const required = el("input", { type: "checkbox" });
      required.checked = s.required;
      required.onchange = () => { s.required = required.checked; changed(); };
      row.append(name, el("label", {}, required, " required"));
    }
    const remove = el("button", { text: "Delete" });
    remove.onclick = (ev) => {
      ev.stopPropagation();
      editor.shapes.splice(i, 1);
      editor.selected = -1;
      changed();
    };
    const count = el("span", { class: s.points.length < 3 ? "bad" : "muted",
                               text: `${s.points.length} corners` + (s.points.length < 3 ? " (needs 3)" : "") });
    const item = el("li", { class: i === editor.selected ? "selected" : "" }, row,
                    el("div", { class: "row" }, count, remove));
    item.onclick = (ev) => { if (ev.target === item || ev.target.tagName === "SPAN") select(i); };
    list.append(item);
  });
  if (!editor.shapes.length) list.append(el("li", { class: "muted", text: "No masks or zones: all of the picture counts." }));
}

function render() {
  drawShapes();
  drawList();
  document.getElementById("delete-corner").disabled = editor.corner < 0;
}

function deleteCorner() {
  const s = editor.shapes[editor.selected];
  if (!s || editor.corner < 0) return;
  s.points.splice(editor.corner, 1);
  editor.corner = Math.min(editor.corner, s.points.length - 1);
  changed();
}

function bindDrawing() {
  const svg = document.getElementById("drawing");
  svg.addEventListener("pointerdown", (ev) => {
    ev.preventDefault();
    const t = ev.target;
    if (t.dataset.corner !== undefined) {
      select(Number(t.dataset.shape), Number(t.dataset.corner));
      editor.dragging = true;
      svg.setPointerCapture(ev.pointerId);
      return;
    }
    if (t.dataset.shape !== undefined && Number(t.dataset.shape) !== editor.selected) {
      select(Number(t.dataset.shape));
      return;
    }
    if (editor.selected < 0) newShape("mask");
    const s = editor.shapes[editor.selected];
    if (s.points.length >= MAX_CORNERS) { say(`A shape has at most ${MAX_CORNERS} corners`, "bad"); return; }
    s.points.push(pointOf(ev));
    editor.corner = s.points.length - 1;
    changed();
  });
  svg.addEventListener("pointermove", (ev) => {
    if (!editor.dragging) return;
    editor.shapes[editor.selected].points[editor.corner] = pointOf(ev);
    drawShapes();
  });
  const stop = () => { if (editor.dragging) { editor.dragging = false; changed(); } };
  svg.addEventListener("pointerup", stop);
  svg.addEventListener("pointercancel", stop);
  document.addEventListener("keydown", (ev) => {
    if (ev.target.tagName === "INPUT" || ev.target.tagName === "SELECT") return;
    if (ev.key === "Delete" || ev.key === "Backspace") { ev.preventDefault(); deleteCorner(); }
    if (ev.key === "Escape") select(-1);
  });
}

async function load() {
  const regions = await request("/api/motion/regions");
  editor.shapes = regions.masks.map((points) => ({ kind: "mask", points, name: "", required: false }))
    .concat(regions.zones.map((z) => ({ kind: "zone", points: z.polygon, name: z.name,
                                        required: z.required, extra: z })));
  if (regions.mask_image) {
    const note = document.getElementById("mask-image-note");
    note.hidden = false;
    note.textContent = `detect.mask_image (${regions.mask_image}) also applies. Load it with ` +
      "“Mask from image” to edit it here as polygons.";
  }
  select(-1);
}

async function fromImage(file) {
  try {
    const got = await request("/api/motion/mask-image", {
      method: "POST", headers: { "Content-Type": file.type || "application/octet-stream" }, body: file });
    for (const points of got.masks) editor.shapes.push({ kind: "mask", points, name: "", required: false });
    editor.selected = -1;
    changed();
    say(`${got.masks.length} mask polygon(s) from ${file.name}; Save to keep them`);
  } catch (err) {
    say(err.message, "bad");
  }
}

async function save() {
  const open = editor.shapes.findIndex((s) => s.points.length < 3);
  if (open >= 0) { select(open); say("Every shape needs at least 3 corners", "bad"); return; }
  const body = {
    masks: editor.shapes.filter((s) => s.kind === "mask").map((s) => s.points),
    zones: editor.shapes.filter((s) => s.kind === "zone")
      // a zone's other settings (loitering ...) are kept as they were
      .map((s) => ({ ...(s.extra || {}), name: s.name.trim(), polygon: s.points,
                     required: s.required })),
  };
  const button = document.getElementById("save");
  button.disabled = true;
  say("Saving…", "muted");
  try {
    say(savedText(await saveSettings({ "detect.masks": body.masks, "detect.zones": body.zones })));
  } catch (err) {
    say(err.message, "bad");
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  bindDrawing();
  document.getElementById("new-mask").onclick = () => newShape("mask");
  document.getElementById("new-zone").onclick = () => newShape("zone");
  document.getElementById("delete-corner").onclick = deleteCorner;
  document.getElementById("save").onclick = save;
  document.getElementById("mask-file").onchange = (ev) => {
    if (ev.target.files.length) fromImage(ev.target.files[0]);
    ev.target.value = "";
  };
  showLive(document.getElementById("picture"), (w, h) => { editor.size = [w, h]; render(); });
  load().catch((err) => say(err.message, "bad"));
});
