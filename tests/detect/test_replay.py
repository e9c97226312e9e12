"""``pisentry detect --replay`` as a real process on real frames."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from services.detect.evalset import Sequence

ROOT = Path(__file__).resolve().parents[2]


def pisentry(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PISENTRY_HOME=str(home))
    return subprocess.run([sys.executable, "-m", "common.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_replay_folder_jsonl_with_a_corrupt_image(trees: Sequence, tmp_path: Path) -> None:
    folder = tmp_path / "frames"
    folder.mkdir()
    for path in trees.frames[200:262]:
        shutil.copy(path, folder / path.name)
    (folder / "b00220.bmp").write_bytes(b"garbage, not a bitmap")
    proc = pisentry("detect", "--replay", str(folder), "--jsonl", home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [x["frame"] for x in lines] == list(range(62))
    assert set(lines[0]) == {"frame", "motion", "boxes", "event", "ms"}
    assert lines[20]["error"] and lines[20]["motion"] is False
    starts = [x["frame"] + 200 for x in lines if x["event"] == "start"]
    assert starts and 243 <= starts[0] <= 245
    assert not any(x["motion"] for x in lines[:42])
    assert all(x["boxes"] for x in lines if x["motion"])
    assert all(0 <= v <= 1 for x in lines for b in x["boxes"] for v in b)


def test_replay_video_file(trees: Sequence, tmp_path: Path) -> None:
    import av

    video = tmp_path / "clip.mp4"
    with av.open(str(video), "w") as out:
        stream = out.add_stream("mpeg4", rate=15)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for path in trees.frames[200:262]:
            frame = av.VideoFrame.from_ndarray(cv2.imread(str(path)), format="bgr24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    proc = pisentry("detect", "--replay", str(video), "--jsonl", home=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(lines) == 62
    assert any(x["event"] == "start" for x in lines[43:47])


def test_replay_bad_inputs(tmp_path: Path) -> None:
    proc = pisentry("detect", "--replay", str(tmp_path / "missing.mp4"), home=tmp_path)
    assert proc.returncode == 1 and "no such file" in proc.stderr
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(os.urandom(2000))
    proc = pisentry("detect", "--replay", str(junk), home=tmp_path)
    assert proc.returncode == 1 and "not a video" in proc.stderr, proc.stderr
    cfg = tmp_path / "c.toml"
    cfg.write_text('[detect]\nmask_image = "/nonexistent.png"\n')
    img = tmp_path / "imgs"
    img.mkdir()
    cv2.imwrite(str(img / "a.png"), np.zeros((10, 10), np.uint8))
    proc = pisentry("detect", "--replay", str(img), "--config", str(cfg), home=tmp_path)
    assert proc.returncode == 2 and "mask_image" in proc.stderr
    cfg.write_text('[detect]\nmasks = [[[0, 0], [1.5, 0], [1, 1]]]\n')
    proc = pisentry("detect", "--replay", str(img), "--config", str(cfg), home=tmp_path)
    assert proc.returncode == 2 and "detect.masks" in proc.stderr
