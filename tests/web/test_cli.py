"""`pisentry set-password` and `pisentry web` from the real command line."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

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


def _start_and_stop(home: Home, cfg: str) -> str:
    """Run `pisentry web` until it serves, SIGTERM it; its stderr."""
    env = {**os.environ, "PISENTRY_HOME": str(home.root)}
    proc = subprocess.Popen([sys.executable, "-m", "common.cli", "web", "--config", cfg],
                            env=env, stderr=subprocess.PIPE, text=True)
    lines = []
    assert proc.stderr is not None
    for line in proc.stderr:
        lines.append(line)
        if "web started" in line:  # listening from here on
            break
    proc.send_signal(signal.SIGTERM)
    _, rest = proc.communicate(timeout=10)
    assert proc.returncode == 0, "".join(lines) + rest
    return "".join(lines) + rest


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
        cfg.write_text(f"[web]\nport = {busy.getsockname()[1]}\n")
        r = pisentry("web", "--config", str(cfg), home=home, timeout=20)
    assert r.returncode == 2
    assert "web cannot listen on 127.0.0.1" in r.stderr and "Traceback" not in r.stderr
