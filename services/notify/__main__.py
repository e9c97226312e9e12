"""The notify service's entry point: ``python -m services.notify [--config FILE]``,
or ``pisentry notify``, which comes here. Where the worker is built."""

from __future__ import annotations

import argparse

from common.cli import run_worker, service_main


def run(args: argparse.Namespace) -> int:
    from services.notify.service import NotifyService

    return run_worker(NotifyService, args)


if __name__ == "__main__":
    raise SystemExit(service_main("notify", run))
