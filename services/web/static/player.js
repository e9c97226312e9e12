// Clip player: an event's clips (seekable: the server answers HTTP ranges), its
// snapshots and the real / false-alarm verdict.
"use strict";

function play(clip) {
  const video = document.getElementById("video");
  video.src = clip.video_url;
  document.getElementById("meta").textContent =
    `${clip.camera} · ${new Date(clip.start * 1000).toLocaleString()} · ${clip.duration.toFixed(1)} s · ${bytes(clip.size)} · ${clip.reason}`;
}

async function showEvent(id) {
  const e = await api(`/api/events/${encodeURIComponent(id)}`);
  document.getElementById("title").textContent =
    `Event ${when(e.start)} · ${e.camera} ${e.labels.join(", ")}`;
  document.getElementById("verdict").textContent = e.verdict || "not labelled";
  const list = document.getElementById("clips");
  list.replaceChildren();
  e.clips.forEach((c, i) => {
    const b = el("button", { text: `clip ${i + 1} (${c.duration.toFixed(0)} s)` });
    b.onclick = () => play(c);
    list.append(b, " ");
  });
  if (e.clips.length) play(e.clips[0]);
  else document.getElementById("meta").textContent = "No clip for this event (yet).";
  const snaps = document.getElementById("snaps");
  snaps.replaceChildren();
  for (const s of e.snapshots) {
    if (s.url) snaps.append(el("div", { class: "event" }, el("img", { src: s.url, alt: s.kind })));
  }
  for (const [button, verdict] of [["real", "real"], ["false", "false"]]) {
    document.getElementById(button).onclick = async () => {
      const out = await post(`/api/events/${encodeURIComponent(id)}/label`, { verdict });
      document.getElementById("verdict").textContent = out.verdict || "not labelled";
    };
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  const q = new URLSearchParams(location.search);
  if (q.get("event")) {
    await showEvent(q.get("event"));
  } else if (q.get("clip")) {
    play(await api(`/api/recordings/${encodeURIComponent(q.get("clip"))}`));
    for (const id of ["real", "false", "verdict"]) document.getElementById(id).hidden = true;
  }
});
