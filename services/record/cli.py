"""``pisentry record`` and ``pisentry export --day YYYY-MM-DD [--camera NAME] OUT.mp4``.

Nothing heavy is imported here: every pisentry command imports this module.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from common.cli import add_config_arg, load_from_args, run_service


def _day(value: str) -> str:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise argparse.ArgumentTypeError(f"{value!r} is not a day as YYYY-MM-DD")
    return value


def _cmd_export(args: argparse.Namespace) -> int:
    from common.catalogue import CatalogueError, CatalogueReader
    from services.record.export import ExportError, export_day

    config, home = load_from_args(args)
    storage = Path(config.record.storage_dir).expanduser() if config.record.storage_dir \
        else home.recordings_dir
    try:
        cat = CatalogueReader(home.catalogue)
    except CatalogueError as exc:
        print(f"pisentry export: {exc}", file=sys.stderr)
        return 2
    try:
        result = export_day(cat, args.day, args.out, storage, camera=args.camera,
                            progress=not args.quiet)
    except ExportError as exc:
        print(f"pisentry export: {exc}", file=sys.stderr)
        return 1
    print(f"{args.out}: {result.clips} clip(s), {result.frames} frames, "
          f"{result.duration:.1f} s, {result.size} bytes")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("record", help="run the record service")
    add_config_arg(p)
    p.set_defaults(func=lambda args: run_service("record", args))

    p = sub.add_parser("export", help="join a day's event clips into one MP4 (no re-encoding)")
    p.add_argument("--day", required=True, type=_day, help="local day, YYYY-MM-DD")
    p.add_argument("--camera", default=None, help="only this camera's clips")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("out", metavar="OUT.mp4", help="file to write")
    add_config_arg(p)
    p.set_defaults(func=_cmd_export)
