"""The detect service's entry point: ``python -m services.detect [--config FILE]``,
or ``pisentry detect``, which comes here. Where the worker is built."""

from __future__ import annotations

import argparse

from common.cli import run_worker, service_main


def run(args: argparse.Namespace) -> int:
    from services.detect.service import DetectService

    return run_worker(DetectService, args)


if __name__ == "__main__":
    raise SystemExit(service_main("detect", run))
