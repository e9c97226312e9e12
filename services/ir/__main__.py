"""The ir service's entry point: ``python -m services.ir [--config FILE]``,
or ``pisentry ir``, which comes here. Where the worker is built."""

from __future__ import annotations

import argparse

from common.cli import run_worker, service_main


def run(args: argparse.Namespace) -> int:
    from services.ir.service import IrService

    return run_worker(IrService, args)


if __name__ == "__main__":
    raise SystemExit(service_main("ir", run))
