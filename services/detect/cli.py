"""``pisentry detect``: the service, or ``--replay PATH`` offline. Imports
nothing heavy at module level (every pisentry command imports this)."""

from __future__ import annotations

import argparse
from typing import Any

from common.cli import add_config_arg, load_from_args, run_service


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("detect", help="run the detect service, or replay a file offline")
    p.add_argument("--replay", metavar="PATH",
                   help="run detection over a video file or a folder of images instead")
    p.add_argument("--jsonl", action="store_true",
                   help="with --replay: one JSON line per frame (else a summary)")
    p.add_argument("--fps", type=float, default=None,
                   help="with --replay: frame rate for timing (default: the file's, or 15)")
    add_config_arg(p)
    p.set_defaults(func=_handle)


def _handle(args: argparse.Namespace) -> int:
    if not args.replay:
        return run_service("detect", args)
    import logging

    import cv2

    from services.detect import replay

    config, _ = load_from_args(args)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cv2.setNumThreads(1)
    return replay.main(args.replay, config.detect, args.jsonl, args.fps)
