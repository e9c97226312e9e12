"""What the capture path costs, stage by stage, and side by side with Motion.

    .venv/bin/python bench/capture.py stages [--size 640x480] [--frames 300]
    .venv/bin/python bench/capture.py peer [--repeats 3] [--cases highway,trees]
                                           [--services capture,detect]
    .venv/bin/python bench/capture.py service [--record] [--seconds 20] [--repo CHECKOUT] [--probe]

``service``: the real capture service alone (its own process, ``--repo``'s
code) on the real looping feed, with a real lores subscriber (and an h264
one with ``--record``): CPU per frame of all its threads. Minus the sum of
the capture rows of ``stages`` (run under the same load), that is the
per-frame overhead no stage shows (threads, hand-offs, bus I/O, heartbeats).
With ``--probe`` each step inside the live service is timed as well
(``bench/capture_probe/sitecustomize.py``): live steps run cold, 20-30 %
slower than back to back offline.

``stages``: ms per frame of every step a frame of an MJPEG camera goes
through in the capture service and in detect, timed offline on the shared
footage served the way the peer harness serves it (resized, JPEG q90), with
the very functions the services call: receive (PyAV demuxing the
multipart stream, here from a file), JPEG decode, lores resize/convert,
timestamp, h264 encode, bus publish (real PUB socket to a real subscriber
over ipc), live-view conversion (amortised over ``live_fps``) and detect
(``Detector.process``). One thread, OpenCV on one thread as in the services.

``peer``: the live runs. For each case and repeat, Motion (movie output off,
or on with ``--services ...,record``) and then pisentry read the same
real-time MJPEG feed from ``../shared/peer``'s harness (feed server, sampler
of the whole process tree's utime+stime and PSS, the same event scorer),
back to back, so their ratio is taken under the same load. The per-frame
overhead row is the capture service's measured CPU per frame minus the sum
of its offline stages. Needs ``motion`` on PATH (the bench installs nothing
and says when it is missing) and ``../shared/peer`` and ``../shared/eval``.

JSON in ``bench/out/capture_stages.json`` / ``bench/out/capture_peer.json``.
Figures are from an x86 VM shared with other work; nothing here ran on a Pi.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import zmq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common.bus import Publisher, Subscriber
from common.config import parse_config
from common.messages import Frame, LiveFrame
from services.capture import frames as pictures
from services.capture.encoder import H264Encoder
from services.detect.pipeline import Detector

SHARED = Path(os.environ.get("EVAL_SHARED", REPO.parent / "shared"))
PEER = SHARED / "peer"
EVAL = SHARED / "eval"
OUT = REPO / "bench" / "out"
CASES = {  # name: (sequence folder, frame glob, fps)
    "highway": ("cdnet_highway", "input/in*.jpg", 30.0),
    "trees": ("wallflower_wavingtrees", "b*.bmp", 15.0),
}


# -- stages ---------------------------------------------------------------------
def feed_jpegs(case: str, size: tuple[int, int], count: int) -> list[bytes]:
    """Frames as the peer feed serves them: resized (linear), JPEG q90."""
    folder, pattern, _ = CASES[case]
    files = sorted(glob.glob(str(EVAL / folder / pattern)))
    if not files:
        files = sorted(glob.glob(str(EVAL / folder / "**" / "*.*"), recursive=True))
        files = [f for f in files if f.lower().endswith((".jpg", ".bmp", ".png"))]
    if not files:
        raise SystemExit(f"no frames under {EVAL / folder}")
    out = []
    for path in files[:count]:
        img = cv2.imread(path, cv2.IMREAD_COLOR)
        img = cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
        buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1]
        out.append(buf.tobytes())
    return out


def write_multipart(jpegs: list[bytes], path: str) -> None:
    with open(path, "wb") as f:
        f.writelines(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                     + str(len(j)).encode() + b"\r\n\r\n" + j + b"\r\n" for j in jpegs)


def per_frame_ms(fn: Callable[[int], Any], n: int, repeats: int = 3) -> float:
    """Median over ``repeats`` of the mean CPU ms of ``fn(i)`` for i < n
    (process CPU time, so other work on the machine does not count)."""
    runs = []
    for _ in range(repeats):
        t0 = time.process_time()
        for i in range(n):
            fn(i)
        runs.append(1000 * (time.process_time() - t0) / n)
    return round(statistics.median(runs), 3)


def cmd_stages(args: argparse.Namespace) -> dict[str, Any]:
    import av

    cv2.setNumThreads(1)
    w, h = (int(x) for x in args.size.split("x"))
    config = parse_config({"capture": {"source": "url", "url": "http://127.0.0.1:1/",
                                       "width": w, "height": h, "fps": args.fps}})
    c = config.capture
    jpegs_ = feed_jpegs(args.case, (w, h), args.frames)
    n = len(jpegs_)
    tmp = tempfile.mkdtemp(prefix="pisentry-capture-bench-")
    try:
        stream = os.path.join(tmp, "feed.mjpeg")
        write_multipart(jpegs_, stream)

        def receive_all() -> list[Any]:
            with av.open(stream, format="mpjpeg") as cont:
                return [bytes(p) for p in cont.demux(video=0) if p.size]

        t0 = time.process_time()
        for _ in range(3):
            packets = receive_all()
        receive_ms = round(1000 * (time.process_time() - t0) / (3 * len(packets)), 3)

        codec = av.CodecContext.create("mjpeg", "r")

        def decode_bgr(i: int) -> np.ndarray:
            frame = codec.decode(av.Packet(jpegs_[i]))[0]
            return frame.to_ndarray(format="bgr24")

        bgr = [decode_bgr(i) for i in range(n)]
        lores = [pictures.to_i420(b, c.lores_width, c.lores_height) for b in bgr]
        text = pictures.annotation_text(c, time.time(), 0.5)
        stamp = pictures.Stamp()
        encoder = H264Encoder(w, h, c.fps, c.keyframe_interval, c.bitrate)

        ctx = zmq.Context.instance()
        pub_sock = ctx.socket(zmq.PUB)
        url = f"ipc://{tmp}/frames.sock"
        pub_sock.bind(url)
        sub_sock = ctx.socket(zmq.SUB)
        sub_sock.setsockopt(zmq.SUBSCRIBE, b"")
        sub_sock.connect(url)
        pub = Publisher(pub_sock, "cam", url)
        sub = Subscriber(sub_sock, latest_only=False)
        time.sleep(0.3)

        def publish_lores(i: int) -> None:
            y = lores[i]
            pub.publish(Frame, [y], ts=time.time(), width=y.shape[1],
                        height=y.shape[0] * 2 // 3, format="yuv420")
            sub.read()

        def live(i: int) -> None:
            small = cv2.resize(bgr[i], (c.live_width, c.live_height))
            pub.publish(LiveFrame, [small], ts=time.time(), width=c.live_width,
                        height=c.live_height, format="bgr24")
            sub.read()

        detector = Detector(config.detect)
        luma = [y[: y.shape[0] * 2 // 3] for y in lores]

        def detect(i: int) -> None:
            detector.process(luma[i], i / c.fps)

        from services.capture import jpeg as jpegs

        scale = jpegs.reduction(w, h, *pictures.fit(w, h, c.lores_width, c.lores_height))
        gray = [pictures.to_lores_gray(jpegs.decode_gray(j, scale), c) for j in jpegs_]

        def gray_lores(i: int) -> np.ndarray:
            jpegs.jpeg_size(jpegs_[i])
            return pictures.to_lores_gray(jpegs.decode_gray(jpegs_[i], scale), c)

        def publish_gray(i: int) -> None:
            y = gray[i]
            pub.publish(Frame, [y], ts=time.time(), width=y.shape[1], height=y.shape[0],
                        format="gray")
            sub.read()

        def live_jpeg(i: int) -> None:
            width, height = jpegs.jpeg_size(jpegs_[i])
            pub.publish(LiveFrame, [jpegs_[i]], ts=time.time(), width=width, height=height,
                        format="jpeg")
            sub.read()

        detector_gray = Detector(config.detect)

        def detect_gray(i: int) -> None:
            detector_gray.process(gray[i], i / c.fps)

        live_share = min(1.0, c.live_fps / c.fps)
        before = {
            "receive (demux multipart)": receive_ms,
            "JPEG decode to BGR (PyAV mjpeg + bgr24)": per_frame_ms(decode_bgr, n),
            "lores resize + BGR->I420": per_frame_ms(
                lambda i: pictures.to_i420(bgr[i], c.lores_width, c.lores_height), n),
            "timestamp (annotate)": per_frame_ms(
                lambda i: pictures.annotate(bgr[i].copy(), text), n),
            "copy for annotation (reference)": per_frame_ms(lambda i: bgr[i].copy(), n),
            "h264 encode (x264 ultrafast)": per_frame_ms(
                lambda i: encoder.encode(bgr[i], i * 33_333), n, repeats=1),
            "bus publish lores + receive": per_frame_ms(publish_lores, n),
            f"live view (resize + publish bgr24) x {live_share:.2f}": round(
                per_frame_ms(live, n) * live_share, 3),
            "detect (Detector.process)": per_frame_ms(detect, n),
        }
        # What an MJPEG camera's frame costs now that nobody subscribes to h264
        # (capture,detect: Motion's job with movie output off).
        now = {
            "receive (demux multipart)": receive_ms,
            f"JPEG decode to grey lores at 1/{scale} in the DCT domain (+ fit)":
                per_frame_ms(gray_lores, n),
            "h264 encode": 0.0,
            "bus publish grey lores + receive": per_frame_ms(publish_gray, n),
            f"live view (forward the camera JPEG) x {live_share:.2f}": round(
                per_frame_ms(live_jpeg, n) * live_share, 3),
            "detect (Detector.process, grey lores)": per_frame_ms(detect_gray, n),
        }
        # With a recorder subscribed the full picture is decoded and encoded too.
        yuv = jpegs.YuvDecoder()
        i420 = [yuv.decode(j) for j in jpegs_]
        encoder_yuv = H264Encoder(w, h, c.fps, c.keyframe_interval, c.bitrate, full_range=True)
        gray_key = f"JPEG decode to grey lores at 1/{scale} in the DCT domain (+ fit)"
        recording = {
            "receive (demux multipart)": receive_ms,
            gray_key: now[gray_key],
            "JPEG decode to I420 (PyAV mjpeg, its own YCbCr: no colour conversion)":
                per_frame_ms(lambda i: yuv.decode(jpegs_[i]), n),
            "timestamp (cached patch on luma + chroma, Stamp.on_i420)": per_frame_ms(
                lambda i: stamp.on_i420(i420[i], text), n),
            "h264 encode (x264 ultrafast, from the I420)": per_frame_ms(
                lambda i: encoder_yuv.encode_i420(i420[i], i * 33_333), n, repeats=1),
            "bus publish grey lores + receive": now["bus publish grey lores + receive"],
            f"live view (forward the camera JPEG) x {live_share:.2f}":
                now[f"live view (forward the camera JPEG) x {live_share:.2f}"],
            "detect (Detector.process, grey lores)": now["detect (Detector.process, grey lores)"],
        }
        pub.close()
        sub.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    tables = {"before: PyAV decode to BGR, I420 lores, h264 always": before,
              "now, nobody records (capture,detect)": now,
              "now, recording (h264 subscribed)": recording}
    result = {"case": args.case, "size": args.size, "fps": c.fps, "frames": n,
              "jpeg_bytes_mean": round(statistics.mean(len(j) for j in jpegs_)),
              "ms_per_frame": tables, "host": "x86 VM (2 cores, shared)", "pi": "not measured"}
    for title, rows in tables.items():
        total = sum(v for k, v in rows.items() if "reference" not in k)
        print(f"\n{args.case} {args.size} @{c.fps:g}, {title}: ms per frame (CPU)")
        for name, ms in rows.items():
            print(f"  {name:<62} {ms:7.3f}")
        print(f"  {'sum':<62} {total:7.3f}  = {total * c.fps / 10:.1f} % of a core")
    return result


# -- peer -----------------------------------------------------------------------
def run(cmd: list[str], log: Path) -> int:
    with open(log, "w") as f:
        return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=PEER,
                              check=False).returncode


def spread(xs: list[float | None]) -> dict[str, Any] | None:
    vals = [x for x in xs if x is not None]
    if not vals:
        return None
    return {"mean": round(statistics.mean(vals), 2), "min": round(min(vals), 2),
            "max": round(max(vals), 2), "n": len(vals)}


def p95(xs: list[float]) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(0.95 * len(xs)))], 3)


def onset_latencies(score: dict[str, Any]) -> list[float]:
    """Event start minus the onset frame's send time, per onset. An event that
    opened less than a second before the onset frame (on the frame before,
    where the car covered just under the ground truth's 0.5 %) counts with
    its negative latency; the scorer leaves those out as "open at onset"."""
    events = {e["event"]: e for e in score["events"]}
    out = []
    for onset in score["onsets"]:
        if onset.get("event_start_latency_s") is not None:
            out.append(onset["event_start_latency_s"])
        elif onset.get("event_open_at_onset"):
            early = onset["t_onset_sent"] - events[onset["open_event"]]["t_start"]
            if early < 1.0:
                out.append(round(-early, 3))
    return out


def cpu_by_service(res: dict[str, Any]) -> dict[str, float]:
    """% of one core per service, approximated from the harness's records.

    The harness looks for services among the direct children of ``pisentry
    run``; supervisord starts them one level further down, so its own
    per-service table comes back empty. Its whole-tree record still lists
    each process with its CPU seconds over the process's life (start-up
    included), so the tree's CPU in the measured window is shared out in
    those proportions."""
    procs = res.get("cpu", {}).get("tree_processes") or []
    window_pct = res["headline"].get("cpu_pct_of_one_core") or 0.0
    life = sum(p.get("cpu_s", 0.0) for p in procs)
    by: dict[str, float] = {}
    for proc in procs:
        m = re.search(r"common\.cli (\w+)", proc.get("cmdline", ""))
        if m and life:
            share = proc.get("cpu_s", 0.0) / life
            by[m.group(1)] = by.get(m.group(1), 0.0) + share * window_pct
    return {k: round(v, 2) for k, v in by.items()}


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for path in glob.glob(f"/proc/{todo.pop()}/task/*/children"):
            try:
                with open(path) as f:
                    kids = [int(x) for x in f.read().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def _process_name(pid: int) -> str | None:
    """A service's name, ``supervisord`` or ``run`` (``pisentry run``); None
    for the rest (the harness's tap and feed)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    m = re.search(r"common\.cli (\w+)", cmd)
    if m:
        return m.group(1)
    if "supervisord" in cmd:
        return "supervisord"
    return "run" if re.search(r"pisentry run\b", cmd) else None


def _pss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _cpu_ticks(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])  # utime + stime


class ServicePss:
    """PSS and CPU time of each pisentry process under the harness, sampled
    every ``interval`` s: the harness sums the whole tree, and a service runs
    two levels below ``pisentry run`` (under supervisord), where it does not
    look."""

    def __init__(self, root: int, interval: float = 0.5) -> None:
        self.root, self.interval = root, interval
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.cpu: list[tuple[float, dict[int, tuple[str, int]]]] = []  # pid -> (name, ticks)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            now: dict[str, int] = {}
            ticks: dict[int, tuple[str, int]] = {}
            t = time.time()
            for pid in _descendants(self.root):
                name = _process_name(pid)
                kb = _pss_kb(pid) if name else None
                if name and kb is not None:
                    now[name] = now.get(name, 0) + kb
                cpu = _cpu_ticks(pid) if name else None
                if name and cpu is not None:
                    ticks[pid] = (name, cpu)
            if now:
                self.samples.append((t, now))
            if ticks:
                self.cpu.append((t, ticks))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def cpu_pct(self, t_from: float, t_to: float) -> dict[str, float]:
        """% of one core per process name (services, ``run``, ``supervisord``)
        between the first sample at or after ``t_from`` and the last at or
        before ``t_to``, from each process's own CPU time: a process that
        started or ended meanwhile counts from or to its first or last sample."""
        win = [(t, s) for t, s in self.cpu if t_from <= t <= t_to]
        if len(win) < 2:
            return {}
        t0, t1 = win[0][0], win[-1][0]
        seen: dict[int, tuple[str, int, int]] = {}  # pid -> (name, first, last ticks)
        for _, sample in win:
            for pid, (name, ticks) in sample.items():
                lo = seen[pid][1] if pid in seen else ticks
                seen[pid] = (name, lo, ticks)
        hz = os.sysconf("SC_CLK_TCK")
        out: dict[str, float] = {}
        for name, lo, hi in seen.values():
            out[name] = out.get(name, 0.0) + 100.0 * (hi - lo) / hz / (t1 - t0)
        return {k: round(v, 2) for k, v in out.items()}

    def peaks_mb(self, services: list[str], t_from: float, t_to: float) -> dict[str, float]:
        """Peak MB per process while the feed streamed, and ``services``: the
        peak of their sum in one sample (capture+detect, the issue's figure)."""
        win = [s for t, s in self.samples if t_from <= t <= t_to] or [
            s for _, s in self.samples]
        out: dict[str, float] = {}
        for sample in win:
            for name, kb in sample.items():
                out[name] = max(out.get(name, 0.0), round(kb / 1024, 1))
            total = sum(sample.get(name, 0) for name in services)
            out["services"] = max(out.get("services", 0.0), round(total / 1024, 1))
        return out


def cmd_peer(args: argparse.Namespace) -> dict[str, Any]:
    if shutil.which(os.environ.get("MOTION_BIN", "motion")) is None:
        print("motion is not installed (apt-get install motion): pisentry runs alone",
              file=sys.stderr)
        with_motion = False
    else:
        with_motion = True
    if not (PEER / "run_pisentry.py").exists():
        raise SystemExit(f"{PEER}/run_pisentry.py is missing: the peer harness is needed")
    py = sys.executable
    pisentry = args.pisentry or str(Path(sys.executable).parent / "pisentry")
    record = "record" in args.services.split(",")
    work = Path(tempfile.mkdtemp(prefix="pisentry-peer-"))
    cases: dict[str, Any] = {}
    try:
        for case in args.cases.split(","):
            folder, _, fps = CASES[case]
            seq = str(EVAL / folder)
            runs = []
            for r in range(args.repeats):
                one: dict[str, Any] = {}
                if with_motion:
                    out = work / f"motion_{case}_{r}.json"
                    cmd = [py, "run_pisentry.py", "motion", "--seq", seq, "--size", args.size,
                           "--passes", "cpu", "--out", str(out)]
                    if record:
                        cmd += ["--motion-option", "movie_output on",
                                "--workdir", str(work / f"motion_{case}_{r}")]
                    run(cmd, work / f"motion_{case}_{r}.log")
                    hl = json.loads(out.read_text())["headline"]
                    one["motion"] = {"cpu_pct": hl.get("motion_cpu_pct_of_one_core"),
                                     "pss_mb": round((hl.get("motion_peak_pss_kb") or 0) / 1024, 1),
                                     "latency_s": hl.get("cpu_event_start_latency_s"),
                                     "events": hl.get("cpu_events")}
                out = work / f"pisentry_{case}_{r}.json"
                cmd = [py, "run_pisentry.py", "--seq", seq, "--size", args.size,
                       "--pisentry", pisentry, "--services", args.services, "--out", str(out)]
                for s in args.set:
                    cmd += ["--set", s]
                with open(work / f"pisentry_{case}_{r}.log", "w") as log:
                    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=PEER)
                    pss = ServicePss(proc.pid)
                    proc.wait()
                    pss.stop()
                res = json.loads(out.read_text())
                hl = res["headline"]
                sc = res["score_recv"]
                services = [s for s in args.services.split(",") if s]
                pss_by = pss.peaks_mb(services, sc["t_first_frame_sent"],
                                      sc["t_last_frame_sent"])
                # Each process's own CPU time over the window; the harness's
                # lifetime shares (cpu_by_service) only when none was sampled.
                by = (hl["cpu_pct_by_service"]
                      or pss.cpu_pct(sc["t_first_frame_sent"], sc["t_last_frame_sent"])
                      or cpu_by_service(res))
                cap = by.get("capture")
                empty = [v for k, v in hl.items() if k.startswith("event_starts_in_")]
                one["pisentry"] = {
                    "cpu_pct": hl["cpu_pct_of_one_core"], "by_service": by,
                    "pss_mb": round((hl["peak_pss_sum_kb"] or 0) / 1024, 1),
                    "services_pss_mb": pss_by.pop("services", None), "pss_mb_by_process": pss_by,
                    "latencies_s": onset_latencies(res["score_recv"]),
                    "events": hl["n_events"], "false_alarms": sum(empty) if empty else None,
                    "capture_ms_per_frame": round(10 * cap / fps, 3) if cap else None,
                    "dropped": hl["feed_dropped_frames"]}
                if "motion" in one and one["motion"]["cpu_pct"]:
                    one["ratio"] = round(one["pisentry"]["cpu_pct"] / one["motion"]["cpu_pct"], 2)
                runs.append(one)
                print(f"{case} run {r + 1}: {json.dumps(one)}", file=sys.stderr)
            lat = [x for one in runs for x in one["pisentry"]["latencies_s"]]
            cases[case] = {
                "fps": fps, "runs": runs,
                "pisentry_cpu_pct": spread([o["pisentry"]["cpu_pct"] for o in runs]),
                "capture_cpu_pct": spread([o["pisentry"]["by_service"].get("capture")
                                           for o in runs]),
                "detect_cpu_pct": spread([o["pisentry"]["by_service"].get("detect")
                                          for o in runs]),
                "motion_cpu_pct": spread([o.get("motion", {}).get("cpu_pct") for o in runs]),
                "ratio": spread([o.get("ratio") for o in runs]),
                "pisentry_pss_mb": spread([o["pisentry"]["pss_mb"] for o in runs]),
                "services_pss_mb": spread([o["pisentry"]["services_pss_mb"] for o in runs]),
                "motion_pss_mb": spread([o.get("motion", {}).get("pss_mb") for o in runs]),
                "event_start_p95_s": p95(lat), "latencies_s": lat,
                "false_alarms": [o["pisentry"]["false_alarms"] for o in runs],
            }
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\npisentry ({args.services}) and Motion on the same live MJPEG feed, "
          f"{args.size}, {args.repeats} runs, % of one core, mean (min-max):")
    print(f"| feed | pisentry | capture / detect | Motion | ratio | PSS tree pisentry / Motion MB "
          f"| PSS {'+'.join(args.services.split(','))} MB | event start p95 s | false alarms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")

    def f(s: dict[str, Any] | None) -> str:
        return "-" if not s else f"{s['mean']} ({s['min']}-{s['max']})"

    for case, r in cases.items():
        print(f"| {case} @{r['fps']:g} | {f(r['pisentry_cpu_pct'])} | "
              f"{(r['capture_cpu_pct'] or {}).get('mean')} / {(r['detect_cpu_pct'] or {}).get('mean')}"
              f" | {f(r['motion_cpu_pct'])} | {f(r['ratio'])} | {f(r['pisentry_pss_mb'])} / "
              f"{f(r['motion_pss_mb'])} | {f(r['services_pss_mb'])} | {r['event_start_p95_s']} | "
              f"{r['false_alarms']} |")
    return {"size": args.size, "services": args.services, "set": args.set,
            "repeats": args.repeats, "motion": with_motion, "cases": cases,
            "host": "x86 VM (2 cores, shared with other engineers' work)", "pi": "not measured"}


# -- service --------------------------------------------------------------------
def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) of each thread of ``pid``, by thread id."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        out[tid] = (int(fields[11]) + int(fields[12])) / tick
    return out


def cmd_service(args: argparse.Namespace) -> dict[str, Any]:
    """The real capture service (a process of ``--repo``'s code) on the real
    looping MJPEG feed of ``../shared/peer``, a real lores subscriber beside
    it, h264 subscribed with ``--record``; its CPU per frame over
    ``--seconds``, all threads (reader, bus I/O...) included. Minus the
    stages' sum, that is the per-frame overhead the stage table misses."""
    import socket

    repo = Path(args.repo).resolve()
    folder, pattern, fps = CASES[args.case]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = Path(tempfile.mkdtemp(prefix="pisentry-capture-service-"))
    w, h = (int(x) for x in args.size.split("x"))
    (home / "config.toml").write_text(
        f'[general]\nservices = ["capture"]\n[capture]\nsource = "url"\n'
        f'url = "http://127.0.0.1:{port}/"\nwidth = {w}\nheight = {h}\nfps = {fps}\n'
        f'reconnect_max_seconds = 1.0\n')
    env = dict(os.environ, PISENTRY_HOME=str(home))
    probe_out = home / "probe.json"
    if args.probe:  # bench/capture_probe/sitecustomize.py wraps each step of the service
        env["PYTHONPATH"] = os.pathsep.join([str(REPO / "bench" / "capture_probe"), str(repo)])
        env["PISENTRY_PROBE_OUT"] = str(probe_out)
    probe = None
    procs: list[subprocess.Popen] = []
    try:
        feed = subprocess.Popen(
            [sys.executable, str(PEER / "mjpeg_feed.py"), "--frames", str(EVAL / folder / Path(
                pattern).parent), "--pattern", Path(pattern).name, "--fps", str(fps), "--size",
             args.size, "--loops", "0", "--port", str(port), "--start", "now"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(feed)
        if not feed.stdout.readline():
            raise SystemExit("the feed did not start")
        capture = subprocess.Popen([sys.executable, "-m", "common.cli", "capture"], cwd=repo,
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(capture)
        from common.bus import Bus
        from common.paths import Home

        config = parse_config({"capture": {"source": "url", "url": "http://x/"}})
        bus = Bus(config, Home(home), context=zmq.Context())
        lores = bus.subscriber(["frames"], [Frame.TOPIC], latest_only=True)
        video = bus.subscriber(["video"], [b"h264/"]) if args.record else None
        got = {"frames": 0}
        stop = threading.Event()

        def drain() -> None:
            while not stop.is_set():
                # Camera frames, not lores frames: capture.lores_fps sends fewer.
                got["frames"] += sum(1 + m.header.skipped for m in lores.recv(0.1))
                if video is not None:
                    video.read()

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        time.sleep(args.warmup)
        before, frames0, t0 = thread_cpu(capture.pid), got["frames"], time.monotonic()
        time.sleep(args.seconds)
        after, frames1, t1 = thread_cpu(capture.pid), got["frames"], time.monotonic()
        stop.set()
        reader.join()
        bus.close()
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        if args.probe and probe_out.exists():
            probe = json.loads(probe_out.read_text())
        shutil.rmtree(home, ignore_errors=True)
    cpu = sum(after.values()) - sum(before.get(t, 0.0) for t in after)
    frames = frames1 - frames0
    result = {"case": args.case, "size": args.size, "fps": fps, "record": args.record,
              "repo": str(repo), "seconds": round(t1 - t0, 1), "frames": frames,
              "cpu_pct_of_one_core": round(100 * cpu / (t1 - t0), 2),
              "ms_per_frame": round(1000 * cpu / max(1, frames), 3),
              "threads": len(after), "loadavg": os.getloadavg(),
              "host": "x86 VM (2 cores, shared)", "pi": "not measured"}
    print(f"capture service ({'h264 subscribed' if args.record else 'nobody records'}), "
          f"{args.case} {args.size} @{fps:g}: {result['cpu_pct_of_one_core']} % of a core, "
          f"{result['ms_per_frame']} ms per frame over {frames} frames, {len(after)} threads; "
          f"load {result['loadavg'][0]:.1f}")
    print("per-frame overhead = this minus the stage table's capture rows (same machine load)")
    if args.probe:
        if probe is None:
            raise SystemExit("the probe wrote nothing (did the capture service stop cleanly?)")
        n = max(1, probe["camera_frames"])
        result["probe_ms_per_camera_frame"] = {
            row: round(1000 * s / n, 3) for row, s in probe["cpu_s"].items()}
        result["probe_calls_per_camera_frame"] = {
            row: round(c / n, 2) for row, c in probe["calls"].items()}
        print(f"\nlive steps, ms of the calling thread's CPU per camera frame ({n} frames, "
              "the service's whole run):")
        for row, ms in result["probe_ms_per_camera_frame"].items():
            print(f"  {row:<36} {ms:7.3f}  ({result['probe_calls_per_camera_frame'][row]} calls)")
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    st = sub.add_parser("stages")
    st.add_argument("--case", default="highway", choices=sorted(CASES))
    st.add_argument("--size", default="640x480")
    st.add_argument("--fps", type=float, default=30.0)
    st.add_argument("--frames", type=int, default=300)
    st.add_argument("--out", default=str(OUT / "capture_stages.json"))
    pe = sub.add_parser("peer")
    pe.add_argument("--cases", default="highway,trees")
    pe.add_argument("--size", default="640x480")
    pe.add_argument("--repeats", type=int, default=3)
    pe.add_argument("--services", default="capture,detect")
    pe.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    pe.add_argument("--keep", action="store_true")
    pe.add_argument("--pisentry", default=None,
                    help="the pisentry to run (default: this venv's; e.g. an older checkout's)")
    pe.add_argument("--out", default=str(OUT / "capture_peer.json"))
    sv = sub.add_parser("service")
    sv.add_argument("--case", default="highway", choices=sorted(CASES))
    sv.add_argument("--size", default="640x480")
    sv.add_argument("--seconds", type=float, default=20.0)
    sv.add_argument("--warmup", type=float, default=6.0)
    sv.add_argument("--record", action="store_true", help="subscribe to h264 (as a recorder)")
    sv.add_argument("--repo", default=str(REPO), help="the checkout whose capture runs")
    sv.add_argument("--probe", action="store_true",
                    help="also time each step inside the live service (bench/capture_probe)")
    sv.add_argument("--out", default=str(OUT / "capture_service.json"))
    args = ap.parse_args()
    result = {"stages": cmd_stages, "peer": cmd_peer, "service": cmd_service}[args.cmd](args)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"\nJSON: {args.out}")


if __name__ == "__main__":
    main()
