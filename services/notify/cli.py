"""``pisentry decrypt``, ``pisentry backup-keygen`` and ``pisentry watch`` (``pisentry notify`` runs the
service through the default worker runner). Imports nothing heavy at module level."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path


def _cmd_decrypt(args: argparse.Namespace) -> int:
    from services.notify.crypto import SUFFIX, CryptoError, decrypt_file, load_private_key

    src = Path(args.input)
    out = Path(args.output) if args.output else (
        src.with_suffix("") if src.name.endswith(SUFFIX) else src.with_name(src.name + ".plain"))
    password = os.environ.get("PISENTRY_KEY_PASSWORD")
    try:
        try:
            key = load_private_key(args.key, password.encode() if password else None)
        except CryptoError as exc:
            if "password" not in str(exc) or password or not sys.stdin.isatty():
                raise
            key = load_private_key(args.key, getpass.getpass("key password: ").encode())
        if out.exists() and not args.force:
            raise CryptoError(f"{out} exists (use --force to overwrite)")
        size = decrypt_file(src, out, key)
    except FileNotFoundError as exc:
        print(f"pisentry decrypt: {exc.filename}: no such file", file=sys.stderr)
        return 2
    except CryptoError as exc:
        print(f"pisentry decrypt: {src}: {exc}", file=sys.stderr)
        return 2
    print(f"{out} ({size} bytes)")
    return 0


def _cmd_keygen(args: argparse.Namespace) -> int:
    from services.notify.crypto import generate_keypair

    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    private, public = folder / "backup_private.pem", folder / "backup_public.pem"
    if private.exists() and not args.force:
        print(f"pisentry backup-keygen: {private} exists (use --force)", file=sys.stderr)
        return 2
    private_pem, public_pem = generate_keypair()
    fd = os.open(private, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem)
    public.write_bytes(public_pem)
    print(f"public key (set notify.backup.encrypt_public_key): {public}")
    print(f"private key (keep it OFF the camera; needed by `pisentry decrypt`): {private}")
    return 0


def _cmd_watch(args: argparse.Namespace) -> int:
    from common.cli import load_from_args
    from common.logs import setup_logging
    from services.notify.watch_cmd import run_watch, targets

    config, home = load_from_args(args)
    setup_logging(config)
    watched = targets(config, args.endpoint, args.server_key, args.camera)
    timeout = args.timeout or config.health.watch_timeout_seconds
    return run_watch(config, home, watched, timeout, args.seconds, args.json)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("decrypt", help="restore an encrypted backup clip")
    p.add_argument("input", help="the .enc file from the NAS")
    p.add_argument("--key", required=True, help="private key PEM (password from "
                                                "$PISENTRY_KEY_PASSWORD or a prompt)")
    p.add_argument("-o", "--output", help="where to write the clip (default: without .enc)")
    p.add_argument("--force", action="store_true", help="overwrite the output")
    p.set_defaults(func=_cmd_decrypt)

    p = sub.add_parser("backup-keygen", help="make a key pair for encrypted backups")
    p.add_argument("folder", help="where to write backup_private.pem and backup_public.pem")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=_cmd_keygen)

    p = sub.add_parser("watch", help="alert when cameras stop sending heartbeats, and when "
                                     "they return (run it off the camera, e.g. on a NAS)")
    p.add_argument("--endpoint", action="append", default=[], metavar="URL",
                   help="a camera's heartbeat endpoint, tcp://HOST:PORT (repeatable; default: "
                        "every web.cameras entry of the config)")
    p.add_argument("--server-key", default="", help="that camera's CURVE public key")
    p.add_argument("--camera", default="", help="its name, so silence from the start counts")
    p.add_argument("--timeout", type=float, default=0.0,
                   help="seconds without a heartbeat (default health.watch_timeout_seconds)")
    p.add_argument("--seconds", type=float, default=0.0, help="stop after S seconds")
    p.add_argument("--json", action="store_true", help="one JSON object per notice")
    from common.cli import add_config_arg

    add_config_arg(p)
    p.set_defaults(func=_cmd_watch)
