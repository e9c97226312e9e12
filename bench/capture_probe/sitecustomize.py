"""A probe for ``bench/capture.py service --probe``: CPU of each step of the
live capture service, per camera frame, as it runs on the real feed.

Python imports ``sitecustomize`` at start-up from the path; the bench puts this
folder on PYTHONPATH of the capture process only, with PISENTRY_PROBE_OUT set.
Each step is wrapped in ``time.thread_time()`` (the calling thread's CPU, so
the reader thread's steps count apart from the loop's), and the sums go to
that JSON file when the service tears down. Without the variable nothing is
wrapped. The wrappers cost ~1 us a call, ~15 calls a frame.
"""

from __future__ import annotations

import collections
import json
import os
import time
from typing import Any

STEPS = (  # (module, class, method, row)
    ("services.capture.service", "CaptureService", "_publish", "loop: _publish, all of it"),
    ("services.capture.service", "CaptureService", "_gray", "grey lores (DCT-scaled decode)"),
    ("services.capture.jpeg", "YuvDecoder", "decode", "JPEG -> I420 (PyAV mjpeg)"),
    ("services.capture.encoder", "H264Encoder", "encode_i420", "x264 encode"),
    ("services.capture.service", "CaptureService", "_annotate_in_place", "timestamp"),
    ("common.bus", "Publisher", "send", "bus sends"),
    ("common.bus", "Publisher", "interest", "h264 interest"),
    ("common.worker", "Inbox", "take", "inbox take"),
    ("services.capture.service", "CaptureService", "tick", "tick"),
    ("common.worker", "Worker", "heartbeat", "heartbeat"),
    ("services.capture.sources.url", "UrlSource", "read", "reader: source read"),
    ("common.worker", "Inbox", "put", "reader: inbox put"),
)


def _install(out: str) -> None:
    import importlib

    cpu: collections.Counter[str] = collections.Counter()
    calls: collections.Counter[str] = collections.Counter()

    def wrap(cls: Any, name: str, row: str) -> None:
        inner = getattr(cls, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.thread_time()
            try:
                return inner(*args, **kwargs)
            finally:
                cpu[row] += time.thread_time() - t0
                calls[row] += 1

        setattr(cls, name, timed)

    for module, cls_name, name, row in STEPS:
        wrap(getattr(importlib.import_module(module), cls_name), name, row)
    service = importlib.import_module("services.capture.service").CaptureService
    teardown = service.teardown

    def dump(self: Any) -> None:
        with open(out, "w") as f:
            json.dump({"cpu_s": dict(cpu), "calls": dict(calls),
                       "camera_frames": calls["reader: source read"]}, f, indent=1)
        teardown(self)

    service.teardown = dump


if os.environ.get("PISENTRY_PROBE_OUT"):
    _install(os.environ["PISENTRY_PROBE_OUT"])
