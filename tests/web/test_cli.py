"""`pisentry set-password` and `pisentry web` from the real command line."""

from __future__ import annotations

import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time

from common.paths import Home
from services.web import auth
from tests.support import pisentry
from tests.web.test_service import free_port


def test_set_password_from_stdin(home: Home) -> None:
    r = pisentry("set-password", "--stdin", home=home, input="a fine new password\n")
    assert r.returncode == 0, r.stderr
    assert "a fine new password" not in r.stdout + r.stderr
    assert auth.verify_password("a fine new password", auth.load_password_record(home))


def test_set_password_refuses_a_short_one(home: Home) -> None:
    auth.set_password(home, "the old password")
    r = pisentry("set-password", "--stdin", home=home, input="short\n")
    assert r.returncode == 2 and "too short" in r.stderr
    assert auth.verify_password("the old password", auth.load_password_record(home))


def test_web_fails_fast_on_half_a_tls_config(home: Home) -> None:
    cfg = home.root / "c.toml"
    cfg.write_text('[web]\ncertfile_path = "/nonexistent/cert.pem"\n')
    r = pisentry("web", "--config", str(cfg), home=home, timeout=20)
    assert r.returncode == 2
    assert "certfile_path and web.keyfile_path go together" in r.stderr


def _start_and_stop(home: Home, cfg: str, console: bool = True) -> str:
    """Run `pisentry web` until it serves, SIGTERM it; its stderr, which is a
    terminal (``console``) or a file, as under supervisord."""
    env = {**os.environ, "PISENTRY_HOME": str(home.root)}
    log = home.root / "web-stderr.log"
    master, slave = pty.openpty() if console else (-1, os.open(log, os.O_WRONLY | os.O_CREAT
                                                                | os.O_TRUNC, 0o600))
    proc = subprocess.Popen([sys.executable, "-m", "common.cli", "web", "--config", cfg],
                            env=env, stderr=slave, text=True)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 30
    while b"web started" not in out and time.monotonic() < deadline:
        if console:
            if select.select([master], [], [], 0.2)[0]:
                out += os.read(master, 65536)
        else:
            time.sleep(0.2)
            out = log.read_bytes()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)
    if console:
        while select.select([master], [], [], 0.2)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed its end
                break
            if not chunk:
                break
            out += chunk
        os.close(master)
    else:
        out = log.read_bytes()
    assert proc.returncode == 0, out.decode(errors="replace")
    return out.decode(errors="replace")


def test_web_first_start_prints_the_password_once(home: Home) -> None:
    cfg = home.root / "c.toml"
    cfg.write_text(f"[web]\nport = {free_port()}\n")
    first = _start_and_stop(home, str(cfg))
    second = _start_and_stop(home, str(cfg))
    assert first.count("login: admin / ") == 1
    assert "login: admin / " not in second  # shown once, only its hash kept
    password = first.split("login: admin / ")[1].split()[0]
    assert auth.verify_password(password, auth.load_password_record(home))
    assert password not in auth.password_file(home).read_text()


def test_web_fails_fast_when_the_port_is_taken(home: Home) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        cfg = home.root / "c.toml"
        port = busy.getsockname()[1]
        cfg.write_text(f"[web]\nport = {port}\n")
        r = pisentry("web", "--config", str(cfg), home=home, timeout=20)
    assert r.returncode == 2
    assert (f"web cannot start: 127.0.0.1:{port} is in use by another program; set web.port"
            in r.stderr) and "Traceback" not in r.stderr
