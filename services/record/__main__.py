"""The record service's entry point: ``python -m services.record [--config FILE]``,
or ``pisentry record``, which comes here. Where the worker is built."""

from __future__ import annotations

import argparse

from common.cli import run_worker, service_main


def run(args: argparse.Namespace) -> int:
    from services.record.service import RecordService

    return run_worker(RecordService, args)


if __name__ == "__main__":
    raise SystemExit(service_main("record", run))
