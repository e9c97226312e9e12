// Events page: a day's events as a timeline with thumbnails and an hourly chart.
"use strict";

let offset = 0;
const PAGE = 24;

function query() {
  const p = new URLSearchParams({ day: document.getElementById("day").value || today() });
  for (const k of ["label", "zone"]) {
    const v = document.getElementById(k).value.trim();
    if (v) p.set(k, v);
  }
  return p;
}

async function chart() {
  const p = query();
  const act = await api(`/api/activity?day=${p.get("day")}`);
  const max = Math.max(1, ...act.hours);
  const bars = document.getElementById("chart");
  const labels = document.getElementById("chart-labels");
  bars.replaceChildren(); labels.replaceChildren();
  act.hours.forEach((n, h) => {
    bars.append(el("div", { style: `height:${(100 * n) / max}%`, title: `${h}:00 ${n} events` }));
    labels.append(el("span", { text: h % 3 === 0 ? String(h) : "" }));
  });
  document.getElementById("total").textContent = `(${act.hours.reduce((a, b) => a + b, 0)} events)`;
}

async function load(reset) {
  if (reset) { offset = 0; document.getElementById("timeline").replaceChildren(); }
  const p = query();
  p.set("limit", PAGE); p.set("offset", offset);
  const page = await api(`/api/events?${p}`);
  const box = document.getElementById("timeline");
  for (const e of page.items) {
    const link = el("a", { href: `/player?event=${encodeURIComponent(e.id)}`, class: "event-link" });
    link.append(el("img", { src: e.snapshot_url, alt: "snapshot", loading: "lazy" }));
    const meta = el("div", { class: "meta" });
    meta.append(el("strong", { text: when(e.start) }), " ",
                el("span", { class: "muted", text: `${e.camera} ${e.labels.join(", ")} ${e.zones.join(", ")}` }));
    if (e.verdict) meta.append(" ", el("span", { class: "badge", text: e.verdict }));
    link.append(meta);
    box.append(el("div", { class: "event", "data-event": e.id }, link));
  }
  offset += page.count;
  document.getElementById("more").hidden = page.count < PAGE;
  if (!box.children.length) box.append(el("p", { class: "muted", text: "No events on this day." }));
}

function reload() { chart(); load(true); }

document.addEventListener("DOMContentLoaded", () => {
  const day = document.getElementById("day");
  day.value = new URLSearchParams(location.search).get("day") || today();
  document.getElementById("reload").onclick = reload;
  document.getElementById("more").onclick = () => load(false);
  reload();
});
