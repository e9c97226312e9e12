"""Run every benchmark in bench/ and write docs/benchmarks.md.

    .venv/bin/python bench/report.py [--reuse] [--only a,b] [--soak-minutes 5]

Each benchmark writes its JSON to bench/out/<name>.json; ``--reuse`` keeps a
JSON that is already there instead of running that benchmark again (the soak
of 30 minutes is run on its own: ``bench/soak.py --minutes 30``). The report
has a table per benchmark, the machine it ran on, and two plots as SVG files
in docs/benchmarks/ (CPU per service; resident memory over the soak), drawn
here without a plotting library.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "out"
DOC = REPO / "docs" / "benchmarks.md"
IMG = REPO / "docs" / "benchmarks"
PY = sys.executable


def commands(soak_minutes: float) -> dict[str, list[str]]:
    """name -> command line; each writes bench/out/<name>.json."""
    o = lambda n: str(OUT / f"{n}.json")
    return {
        "bus": [PY, "bench/bus.py", "--quick", "--out", o("bus")],
        "detect": [PY, "bench/detect.py", "--out", o("detect")],
        "record": [PY, "bench/record.py", "--out", o("record")],
        "stream": [PY, "bench/stream.py", "--out", o("stream")],
        "alert_latency": [PY, "bench/alert_latency.py", "--events", "10", "--out",
                          o("alert_latency")],
        "ir_memory": [PY, "bench/ir_memory.py", "--out", o("ir_memory")],
        "footprint": [PY, "bench/footprint.py", "--out", o("footprint")],
        "faults": [PY, "bench/faults.py", "--out", o("faults")],
        "soak": [PY, "bench/soak.py", "--minutes", str(soak_minutes), "--out", o("soak")],
    }


def run_all(names: list[str], reuse: bool, soak_minutes: float) -> dict[str, Any]:
    results: dict[str, Any] = {}
    cmds = commands(soak_minutes)
    for name in names:
        path = OUT / f"{name}.json"
        if not (reuse and path.exists()):
            print(f"report: running {name} ...", flush=True)
            t0 = time.monotonic()
            r = subprocess.run(cmds[name], cwd=REPO, capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
            print(f"report: {name} exit {r.returncode} in {time.monotonic() - t0:.0f} s",
                  flush=True)
            if r.returncode != 0:
                results[name] = {"error": (r.stderr or r.stdout)[-800:]}
                continue
        try:
            results[name] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            results[name] = {"error": str(exc)}
    return results


# -- tables -------------------------------------------------------------------------------
def table(head: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
        return "" if v is None else str(v)
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def bars_svg(title: str, items: list[tuple[str, float]], unit: str) -> str:
    w, bar, gap, left = 520, 22, 8, 90
    h = 40 + len(items) * (bar + gap)
    top = max((v for _, v in items), default=1) or 1
    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
            'font-family="sans-serif" font-size="12">'),
           f'<text x="10" y="18" font-weight="bold">{title}</text>']
    for i, (name, v) in enumerate(items):
        y = 30 + i * (bar + gap)
        length = (w - left - 80) * v / top
        out.append(f'<text x="10" y="{y + 15}">{name}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{length:.1f}" height="{bar}" '
                   'fill="#4a7bb7"/>')
        out.append(f'<text x="{left + length + 5:.1f}" y="{y + 15}">{v:.1f} {unit}</text>')
    out.append("</svg>")
    return "\n".join(out)


def lines_svg(title: str, series: dict[str, list[tuple[float, float]]], xunit: str,
              yunit: str) -> str:
    w, h, l, b, t, r = 620, 320, 50, 40, 30, 110
    xs = [x for s in series.values() for x, _ in s] or [0, 1]
    ys = [y for s in series.values() for _, y in s] or [0, 1]
    x0, x1, y1 = min(xs), max(xs) or 1, max(ys) * 1.1 or 1
    sx = lambda x: l + (w - l - r) * (x - x0) / ((x1 - x0) or 1)
    sy = lambda y: h - b - (h - b - t) * y / y1
    colours = ["#4a7bb7", "#d1495b", "#edae49", "#00798c", "#66a182", "#8e6c8a", "#333"]
    out = [(f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
            'font-family="sans-serif" font-size="11">'),
           f'<text x="10" y="18" font-weight="bold">{title}</text>',
           f'<line x1="{l}" y1="{h - b}" x2="{w - r}" y2="{h - b}" stroke="#999"/>',
           f'<line x1="{l}" y1="{t}" x2="{l}" y2="{h - b}" stroke="#999"/>',
           f'<text x="{(w - r) / 2}" y="{h - 8}">{xunit}</text>',
           f'<text x="4" y="{t - 6}">{yunit}</text>']
    for k in range(5):
        yv = y1 * k / 4
        out.append(f'<text x="8" y="{sy(yv) + 4:.0f}">{yv:.0f}</text>')
        xv = x0 + (x1 - x0) * k / 4
        out.append(f'<text x="{sx(xv) - 10:.0f}" y="{h - b + 14}">{xv:.0f}</text>')
    for i, (name, pts) in enumerate(series.items()):
        c = colours[i % len(colours)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        out.append(f'<polyline fill="none" stroke="{c}" stroke-width="1.5" points="{path}"/>')
        out.append(f'<text x="{w - r + 8}" y="{t + 14 * i + 10}" fill="{c}">{name}</text>')
    out.append("</svg>")
    return "\n".join(out)


# -- sections -------------------------------------------------------------------------------
def sec_footprint(d: dict[str, Any]) -> str:
    s = [(f"Synthetic camera, {d['video']} h264 (software x264 here) and {d['lores']} "
          f"detection frames at {d['fps']:g} fps (measured {d['measured_fps']}), every "
          f"channel on; {d['seconds']:g} s after warm-up. PSS splits shared pages between "
          "processes, so the PSS total is what the services cost together; the RSS total "
          "counts shared libraries once per process. The services run from a venv with "
          "only the runtime dependencies, as `./run.sh` installs them "
          f"(`{Path(d.get('services_python', '?')).parent.parent.name}`).\n")]
    rows = [[n, r["rss_mb"], r["pss_mb"], r["cpu_pct"], r["cpu_ms_per_frame"], r["fds"],
             ", ".join(r["native"]) or "none"] for n, r in d["services"].items()]
    rows.append(["**total**", d["total_rss_mb"], d["total_pss_mb"], d["total_cpu_pct"], "", "",
                 ""])
    s.append(table(["service", "RSS MB", "PSS MB", "CPU % of a core", "CPU ms / frame",
                    "open fds", "native libraries mapped"], rows))
    verdict = "meets" if d["under_target_pss"] else "does **not** meet"
    s.append(f"\nTarget: {d['target_mb']} MB for all services: PSS total "
             f"{d['total_pss_mb']} MB {verdict} it on this x86-64 machine. Only web maps "
             "pydantic (the others validate their config in a child process); ir and web "
             "map none of NumPy, OpenCV, PyAV (web loads them once someone watches).\n")
    s.append("\n![CPU per service](benchmarks/cpu.svg)\n")
    return "\n".join(s)


def sec_soak(d: dict[str, Any]) -> str:
    c, summ = d["counts"], d["summary"]
    s = [(f"{d['minutes']:g} minutes at {d['fps']:g} fps ({d['size'][0]}x{d['size'][1]} h264), "
          f"a passer-by every {d['period_s']:g} s; samples every {d['interval_s']:g} s; growth "
          f"measured after {d['warmup_s']:g} s of warm-up (median of the last 3 samples "
          "against the first 3).\n")]
    rows = [[n, r["rss_first_mb"], r["rss_last_mb"], r["rss_growth_pct"], r["pss_last_mb"],
             f"{r['fds_first']} → {r['fds_last']}", r["restarts"], r["cpu_pct"]]
            for n, r in summ.items() if n != "total"]
    t = summ["total"]
    rows.append(["**total**", "", t["rss_last_mb"], t["rss_growth_pct"], t["pss_last_mb"], "",
                 "", ""])
    s.append(table(["service", "RSS MB after warm-up", "RSS MB at end", "growth %",
                    "PSS MB", "open fds", "restarts", "CPU %"], rows))
    s.append("\n" + table(["events", "clips", "Telegram photos", "Telegram clips", "mails",
                           "NAS clips", "NAS duplicates", "frames captured",
                           "detector skipped", "skipped %"],
                          [[c["events"], c["clips_finished"], c["telegram_photos"],
                            c["telegram_videos"], c["mails"], c["nas_clips"],
                            c["nas_duplicates"], c["capture_frames"], c["detector_dropped"],
                            c["detector_dropped_pct"]]]))
    s.append("\nThe detector subscribes to raw frames with `latest_only`: a frame it was too "
             "busy to take is replaced by a newer one and counted as skipped.\n")
    s.append("\n![RSS over the soak](benchmarks/soak_rss.svg)\n")
    return "\n".join(s)


def sec_faults(d: dict[str, Any]) -> str:
    rows = [[svc, len(ts), min(ts), statistics.median(ts), max(ts)]
            for svc, ts in d["recovery_s"].items()]
    out = [(f"kill -9 of each service in turn, {d['kills_per_service']} times each, while a "
            "passer-by crosses every 8 s: seconds until the new process heartbeats and "
            "`pisentry status` is healthy (target 5 s).\n"),
           table(["service", "kills", "min s", "median s", "max s"], rows),
           (f"\nThen the NAS down for {d['nas_outage_s']:g} s (shown in `pisentry status`: "
            f"{d['nas_outage_shown_in_status']}; the backlog was on the NAS "
            f"{d['backlog_shipped_s_after_nas_back']} s after it came back) and Telegram "
            f"answering 500 for {d['telegram_outage_s']:g} s. Afterwards {d['events']} events "
            f"and {d['clips']} clips: every clip decodes, is on the NAS exactly once and "
            "byte-identical, every event has its clip and exactly one alert: "
            f"{d['all_intact_and_exactly_once']}.\n")]
    problems = d.get("problems", [])  # bench/faults.py keeps only the event and clip lines
    if problems:
        out.append("Problems found:\n\n" + "\n".join(f"- {p}" for p in problems) + "\n")
    for e in d.get("events_without_alert", []):
        out.append(f"- no alert for event {e['event']}: {e['while']}\n")
    return "\n".join(out)


def sec_bus(d: dict[str, Any]) -> str:
    rows = [[r.get("payload"), r.get("transport"), r.get("raw_mb_per_s"), r.get("bus_mb_per_s"),
             r.get("bus_vs_raw_throughput"), r.get("raw_p50_ms"), r.get("bus_p50_ms"),
             r.get("bus_p99_ms")] for r in d["rows"]]  # plain tcp has no bus column
    return table(["payload", "transport", "raw MB/s", "bus MB/s", "bus/raw", "raw p50 ms",
                  "bus p50 ms", "bus p99 ms"], rows)


def sec_generic(d: dict[str, Any], limit: int = 2500) -> str:
    text = json.dumps({k: v for k, v in d.items() if k != "samples"}, indent=1)
    if len(text) > limit:
        text = text[:limit] + "\n..."
    return "```json\n" + text + "\n```\n"


def sec_detect(d: dict[str, Any]) -> str:
    rows = [[r["sequence"], r["case"], r["algorithm"], r["precision"], r["recall"], r["f1"],
             r["false_alarm_rate"], r["ms_median"]] for r in d["rows"] if r["case"] == "none"]
    extra = {k: d[k] for k in ("hog", "latency") if k in d}
    return (table(["sequence", "case", "algorithm", "precision", "recall", "F1",
                   "false alarms", "ms/frame"], rows)
            + "\nStress cases, HOG cost and bus latency: `bench/out/detect.json`.\n"
            + sec_generic(extra, 1200))


def sec_alert(d: dict[str, Any]) -> str:
    rows = []
    for key in ("end_to_end", "notify_hop"):
        lat = (d.get(key) or {}).get("latency")
        if lat:
            rows.append([key, lat["n"], lat["p50_ms"], lat["p95_ms"], lat["max_ms"]])
    out = table(["path", "n", "p50 ms", "p95 ms", "max ms"], rows) if rows else ""
    up = d.get("upload")
    if up:
        out += "\n" + table([f"upload of {up['file_mb']} MB", "MB/s"],
                            [[k, v["MB_s"]] for k, v in up.items() if isinstance(v, dict)])
    return out or sec_generic(d)


SECTIONS = {
    "footprint": ("Footprint: memory and CPU per service", sec_footprint),
    "faults": ("Faults and outages at full length", sec_faults),
    "soak": ("Soak", sec_soak),
    "alert_latency": ("Alert latency and NAS upload", sec_alert),
    "detect": ("Detection quality and cost", sec_detect),
    "record": ("Recorder", sec_generic),
    "stream": ("Live view", sec_generic),
    "bus": ("Bus", sec_bus),
    "ir_memory": ("IR service", sec_generic),
}


def plots(results: dict[str, Any]) -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    fp = results.get("footprint", {})
    if "services" in fp:
        items = [(n, r["cpu_pct"]) for n, r in fp["services"].items()]
        (IMG / "cpu.svg").write_text(bars_svg(
            f"CPU per service, % of one core ({fp['video']} h264, {fp['lores']} lores)",
            items, "%"))
    soak = results.get("soak", {})
    if "samples" in soak:
        series: dict[str, list[tuple[float, float]]] = {}
        for smp in soak["samples"]:
            for n, r in smp["services"].items():
                if "rss_mb" in r:
                    series.setdefault(n, []).append((smp["t"] / 60, r["rss_mb"]))
        (IMG / "soak_rss.svg").write_text(lines_svg("Resident memory per service over the soak",
                                                    series, "minutes", "MB"))


def write(results: dict[str, Any], extra: str) -> None:
    plots(results)
    cpu = platform.processor() or platform.machine()
    try:
        model = next(line.split(":", 1)[1].strip() for line in
                     Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        model = cpu
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    parts = ["# Benchmarks\n",
             "Generated by `bench/report.py` (do not edit by hand); raw JSON in `bench/out/`.\n",
             (f"Machine: {model}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, "
              f"{platform.platform()}, Python {platform.python_version()}; shared with other "
              "work while measuring, so read timings as ±30 %. Generated "
              f"{time.strftime('%Y-%m-%d %H:%M')}.\n")]
    if extra:
        parts.append(Path(extra).read_text())
    for name, (title, fn) in SECTIONS.items():
        d = results.get(name)
        if d is None:
            continue
        parts.append(f"\n## {title}\n")
        if "error" in d:
            parts.append(f"Not measured: `{d['error'][-300:]}`\n")
            continue
        try:
            parts.append(fn(d))
        except (KeyError, TypeError, IndexError) as exc:
            parts.append(f"(layout changed: {exc})\n" + sec_generic(d))
    DOC.write_text("\n".join(parts))
    print(f"report: wrote {DOC.relative_to(REPO)}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reuse", action="store_true", help="keep JSON already in bench/out")
    ap.add_argument("--only", default="", help="comma-separated benchmark names")
    ap.add_argument("--soak-minutes", type=float, default=5.0)
    ap.add_argument("--notes", default=str(REPO / "bench" / "notes.md"),
                    help="Markdown put before the tables (fault and outage figures)")
    args = ap.parse_args()
    names = [n for n in commands(args.soak_minutes)
             if not args.only or n in args.only.split(",")]
    OUT.mkdir(parents=True, exist_ok=True)
    results = run_all(names, args.reuse, args.soak_minutes)
    write(results, args.notes if Path(args.notes).exists() else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
