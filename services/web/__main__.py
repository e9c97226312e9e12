"""The web service's entry point: ``python -m services.web [--config FILE]``,
or ``pisentry web``, which comes here. Where the worker is built.

web loads the full config (pydantic): its API models need it anyway."""

from __future__ import annotations

import argparse

from common.cli import run_worker, service_main


def run(args: argparse.Namespace) -> int:
    from common.config import Config
    from common.paths import Home
    from services.web.service import WebService

    def web(config: Config, home: Home) -> WebService:
        return WebService(config, home, config_path=args.config)

    return run_worker(web, args, view=False)


if __name__ == "__main__":
    raise SystemExit(service_main("web", run))
