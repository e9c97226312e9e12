"""``pisentry web`` (run the service) and ``pisentry set-password``.

Imported for every pisentry command, so nothing heavy at module level.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from common.cli import add_config_arg, run_service


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("web", help="run the web service")
    add_config_arg(p)
    p.set_defaults(func=_cmd_web)

    p = subparsers.add_parser("set-password", help="set the web login password (user admin)")
    p.add_argument("--stdin", action="store_true",
                   help="read the password from the first line of stdin (for scripts)")
    p.set_defaults(func=_cmd_set_password)


def _cmd_web(args: argparse.Namespace) -> int:
    return run_service("web", args)


def _cmd_set_password(args: argparse.Namespace) -> int:
    from common.paths import Home
    from services.web.auth import PasswordError, set_password

    home = Home.from_env().ensure()
    if args.stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("New web password: ")
        if getpass.getpass("Again: ") != password:
            print("pisentry: the passwords differ; nothing changed", file=sys.stderr)
            return 2
    try:
        set_password(home, password)
    except PasswordError as exc:
        print(f"pisentry: {exc}; nothing changed", file=sys.stderr)
        return 2
    print("pisentry: web password set; existing sessions are logged out")
    return 0
