"""The record service's entry point: ``python -m services.record [--config FILE]``,
or ``pisentry record``, which comes here. Where the worker is built."""

from __future__ import annotations

import argparse
import importlib
import threading
from types import ModuleType
from typing import Any

from common.cli import run_worker, service_main


def run(args: argparse.Namespace) -> int:
    # The service's modules (PyAV, zmq, sqlite) are imported while the config
    # is validated in its child (common.config_view): a recorder restarted
    # mid-event subscribes that much sooner. What the config's loading
    # imports here is imported first, so the two threads share no module.
    import common.logs  # noqa: F401

    loaded: list[ModuleType] = []
    failed: list[BaseException] = []

    def load() -> None:
        try:
            loaded.append(importlib.import_module("services.record.service"))
        except BaseException as exc:  # noqa: BLE001 - raised again in the main thread
            failed.append(exc)

    loader = threading.Thread(target=load, name="record-imports", daemon=True)
    loader.start()

    def build(config: Any, home: Any) -> Any:
        loader.join()
        if failed:
            raise failed[0]
        return loaded[0].RecordService(config, home)

    return run_worker(build, args)


if __name__ == "__main__":
    raise SystemExit(service_main("record", run))
