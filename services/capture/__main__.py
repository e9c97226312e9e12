"""The capture service's entry point: ``python -m services.capture [--config FILE]``,
or ``pisentry capture``, which comes here. Where the worker is built."""

from __future__ import annotations

import argparse

from common.cli import run_worker, service_main


def run(args: argparse.Namespace) -> int:
    from services.capture.service import CaptureService

    return run_worker(CaptureService, args)


if __name__ == "__main__":
    raise SystemExit(service_main("capture", run))
