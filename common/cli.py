"""The ``pisentry`` command.

Core commands live here; a service adds its own (``pisentry detect --replay``,
``pisentry export`` ...) in ``services/<svc>/cli.py`` through ``register``.
A service without a cli module runs through its entry point,
``services/<svc>/__main__.py`` (also ``python -m services.<svc>``). Service
cli modules are imported for every command, so they import nothing heavy
(numpy, cv2, av) at module level: `pisentry ir` must stay free of them.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from common.config_view import SERVICES, ConfigError, load_view
from common.paths import Home

if TYPE_CHECKING:
    from common.config import Config
    from common.worker import Worker


def add_config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="TOML config (default: $PISENTRY_HOME/config.toml if present)")


def load_from_args(args: argparse.Namespace, view: bool = False) -> tuple[Config, Home]:
    """Config and home for a command; exits 2 with one line when the config is bad.
    ``view``: validated in a child, so this process never loads pydantic (for
    the long-running services; see ``common.config_view``)."""
    home = Home.from_env()
    path = getattr(args, "config", None)
    try:
        if view:
            config = load_view(path)
        else:
            from common.config import load_config

            config = load_config(path, home)
    except ConfigError as exc:
        print(f"pisentry: config error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    return config, home


def run_worker(worker: Callable[[Config, Home], Worker], args: argparse.Namespace,
               view: bool = True) -> int:
    """Build one service's worker from its config and run it to the end."""
    from common.logs import setup_logging

    config, home = load_from_args(args, view=view)
    setup_logging(config)
    return int(worker(config, home).run())


def run_service(service: str, args: argparse.Namespace) -> int:
    """``pisentry <service>``: that service's own entry point,
    ``services/<service>/__main__.py``."""
    return int(importlib.import_module(f"services.{service}.__main__").run(args))


def service_main(service: str, run: Callable[[argparse.Namespace], int],
                 argv: list[str] | None = None) -> int:
    """For ``python -m services.<name>``: the same ``--config`` as ``pisentry``."""
    parser = argparse.ArgumentParser(prog=f"python -m services.{service}",
                                     description=f"run the {service} service")
    add_config_arg(parser)
    return run(parser.parse_args(argv))


def service_exists(service: str) -> bool:
    return importlib.util.find_spec(f"services.{service}.__main__") is not None


def _cmd_check_config(args: argparse.Namespace) -> int:
    if args.example:
        from common.config_example import render_example

        print(render_example(), end="")
        return 0
    from common.config import masked_dump

    config, _ = load_from_args(args)
    print(json.dumps(masked_dump(config), indent=2))
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from common.supervise import run_supervised

    # Validated in a child, as for the services: this process lives as long as
    # they do, and pydantic would be 12 MB of it for nothing after the start.
    config, home = load_from_args(args, view=True)
    return run_supervised(config, home, args.config)


def _cmd_tap(args: argparse.Namespace) -> int:
    from common.tap import tap

    config, home = load_from_args(args)
    return tap(config, home, args.topic, as_json=args.json, seconds=args.seconds)


def _cmd_status(args: argparse.Namespace) -> int:
    from common.run_view import load
    from common.tap import status

    home = Home.from_env()
    # The file a running instance validated, unchanged: no pydantic (see common.run_view).
    config = load(args.config, home)
    if config is None:
        config, home = load_from_args(args)
    return status(config, home, as_json=args.json)


def _cmd_keygen(args: argparse.Namespace) -> int:
    import zmq

    public, secret = zmq.curve_keypair()
    print("# CURVE key pair for [bus.curve]; keep secret_key out of version control")
    print(f'public_key = "{public.decode()}"')
    print(f'secret_key = "{secret.decode()}"')
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from pathlib import Path

    from common.clipchain import PUBLIC_FILE, ProofError, load_public_key, verify

    key_path = Path(args.key) if args.key else Home.from_env().state_dir / PUBLIC_FILE
    try:
        key = load_public_key(key_path)
    except ProofError as exc:
        print(f"pisentry verify: {exc} (give the camera's clip-signing.pub with --key)",
              file=sys.stderr)
        return 2
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        print(f"pisentry verify: {missing[0]}: no such file or folder", file=sys.stderr)
        return 2
    report = verify([Path(p) for p in args.paths], key)
    for problem in report.problems:
        print(f"FAIL {problem}")
    spans = ", ".join(f"{cam} seq {a}..{b}" for cam, (a, b) in report.chains.items())
    print(f"{'OK' if report.ok else 'FAILED'}: {report.checked} clip(s) intact"
          + (f" ({spans})" if spans else "") + f", {len(report.problems)} problem(s)")
    return 0 if report.ok else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pisentry", description="pisentry: a Raspberry Pi security camera on a ZeroMQ bus")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="start every configured service under supervisord")
    add_config_arg(p)
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("check-config", help="validate a config and print it, secrets masked")
    p.add_argument("config", nargs="?", default=None, metavar="FILE")
    p.add_argument("--example", action="store_true",
                   help="print a config documenting every key with its default")
    p.set_defaults(func=_cmd_check_config)

    p = sub.add_parser("tap", help="print live bus messages")
    p.add_argument("topic", nargs="?", default="", help="topic prefix, e.g. motion/")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--seconds", type=float, default=0.0, help="stop after S seconds")
    add_config_arg(p)
    p.set_defaults(func=_cmd_tap)

    p = sub.add_parser("status", help="each service's last heartbeat; exit 0 if all are alive")
    p.add_argument("--json", action="store_true")
    add_config_arg(p)
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("verify", help="check signed clips offline: names any clip changed, "
                                      "removed from the chain or added")
    p.add_argument("paths", nargs="+", metavar="PATH", help="clips, proofs or folders (a NAS "
                                                            "folder, the recordings folder)")
    p.add_argument("--key", default="", help="the camera's public key, clip-signing.pub "
                                             "(default: $PISENTRY_HOME/state/clip-signing.pub)")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("keygen", help="print a new CURVE key pair for tcp:// endpoints")
    p.set_defaults(func=_cmd_keygen)

    for service in SERVICES:
        try:
            extra = importlib.import_module(f"services.{service}.cli")
        except ModuleNotFoundError as exc:
            if exc.name != f"services.{service}.cli":
                raise
            extra = None
        if extra is not None:
            extra.register(sub)
        if service not in sub.choices:
            p = sub.add_parser(service, help=f"run the {service} service")
            add_config_arg(p)
            p.set_defaults(func=_run_worker_for(service))
    return parser


def _run_worker_for(service: str) -> Callable[[argparse.Namespace], int]:
    return lambda args: run_service(service, args)


def main(argv: list[str] | None = None) -> Any:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
