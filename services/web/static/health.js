// Health page: every service's heartbeat per camera, and this host's load.
"use strict";

function row(cells, tag = "td") {
  const tr = el("tr");
  for (const c of cells) tr.append(el(tag, {}, c instanceof Node ? c : String(c)));
  return tr;
}

// The firmware's throttled flags, as `vcgencmd get_throttled` reports them.
function powerText(pi) {
  if (pi.throttled_hex == null) return "no throttled flags (not a Raspberry Pi)";
  const now = pi.flags_now.length ? `NOW: ${pi.flags_now.join(", ")}` : "fine now";
  const boot = pi.flags_since_boot.length ? `; since boot: ${pi.flags_since_boot.join(", ")}` : "";
  return `${now}${boot} (throttled=${pi.throttled_hex})`;
}

// What wears the SD card, per service a day (clips apart), and its expected life.
function writesText(w) {
  const per = Object.entries(w.services_mb_day).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", ");
  const life = w.card_life_years == null ? "" : `; card life about ${w.card_life_years} years at this rate`;
  const clips = w.clips_on_card ? `, clips ${w.clips_mb_day} MB/day on the card too` : `, clips ${w.clips_mb_day} MB/day elsewhere`;
  return `${w.total_mb_day.toFixed(1)} MB/day (${per || "no figures yet"})${clips}${life}`;
}

function diskText(d) {
  const kind = d.usb ? "USB disk" : "not USB (the card?)";
  const ro = d.read_only ? " — READ-ONLY" : "";
  return `${d.path} on ${d.device || "?"} (${kind}, ${d.fstype || "?"} at ${d.mount || "?"})${ro}`;
}

function selftestCell(t) {
  const cell = el("span", { text: (t && t.report) || "no self-test yet" });
  const button = el("button", { type: "button", text: "Run now" });
  button.addEventListener("click", async () => { button.disabled = true; await post("/api/selftest"); });
  return el("span", {}, cell, " ", button);
}

async function refresh() {
  const st = await api("/api/status");
  st.selftest = await api("/api/selftest");
  showArm(st.armed);
  const s = st.system;
  const sys = document.getElementById("system");
  sys.replaceChildren(
    row(["CPU", `${s.cpu_percent.toFixed(0)} % of ${s.cpu_count} cores, load ${s.load.map((x) => x.toFixed(2)).join(" ")}`]),
    row(["Memory", `${s.memory.percent.toFixed(0)} % used, ${bytes(s.memory.available)} free`]),
    row(["Disk", s.disk.error ? s.disk.error : `${s.disk.percent} % used, ${bytes(s.disk.free)} free (${s.disk.path})`]),
    row(["Temperature", s.temperature == null ? "no sensor" : `${s.temperature.toFixed(1)} °C`]),
    row(["Power", powerText(s.pi)]),
    row(["Card writes", writesText(s.writes)]),
    row(["Recordings disk", diskText(s.writes.storage)]),
    row(["Self-test", selftestCell(st.selftest)]),
    row(["Viewers", `${st.web.viewers} live, ${st.web.encoded} frames encoded`]));
  const box = document.getElementById("services");
  box.replaceChildren();
  for (const [camera, rows] of Object.entries(st.services)) {
    const table = el("table", { class: "services", "data-camera": camera });
    table.append(row(["service", "state", "last seen", "fps", "in", "out", "dropped", "errors", "last error"], "th"));
    for (const r of rows) {
      const c = r.counters || {};
      const state = el("span", { class: r.alive ? "ok" : "bad", text: r.alive ? `up (${r.status})` : `down (${r.status})` });
      table.append(row([r.service, state, r.age == null ? "never" : `${r.age.toFixed(1)} s ago`,
                        c.fps != null ? Number(c.fps).toFixed(1) : "", c.in ?? "", c.out ?? "",
                        c.dropped ?? "", c.errors ?? "", r.reason || c.last_error || c.degraded || ""]));
    }
    // Which detection settings are in force: the day's, or the night's (IR on, or the schedule).
    const detect = rows.find((r) => r.service === "detect" && r.profile);
    const profile = el("p", { class: "profile", "data-profile": detect ? detect.profile.name : "",
                              text: detect ? `Detection: ${detect.profile.text}` : "" });
    box.append(el("div", { class: "panel" }, el("h3", { text: `Camera ${camera}` }), profile, table));
  }
}

document.addEventListener("DOMContentLoaded", () => { refresh(); setInterval(refresh, 2000); });
