"""Helpers shared by the tests: instance homes, configs, whole pipelines.

Homes live in short /tmp paths because an ipc socket path must fit in 107
bytes, which pytest's own tmp_path does not promise.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import tomli_w

from common.config import Config, parse_config
from common.paths import Home

REPO = Path(__file__).resolve().parents[1]
EVAL = REPO.parent / "shared" / "eval"


def new_home() -> Home:
    return Home(Path(tempfile.mkdtemp(prefix="ps-"))).ensure()


def write_config(home: Home, raw: dict[str, Any], name: str = "config.toml") -> tuple[Path, Config]:
    path = home.root / name
    path.write_text(tomli_w.dumps(raw))
    return path, parse_config(raw)


def pisentry(*args: str, home: Home, timeout: float = 30, env: dict[str, str] | None = None,
             **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run the real command line, as a user would."""
    env = {**os.environ, "PISENTRY_HOME": str(home.root), **(env or {})}
    return subprocess.run([sys.executable, "-m", "common.cli", *args], env=env, text=True,
                          capture_output=True, timeout=timeout, check=False, **kw)


class Pipeline:
    """``pisentry run`` in its own home, as a real process tree under supervisord.
    ``python``: the interpreter it runs under (the benches pass one from a venv
    with only the runtime dependencies, as ``./run.sh`` installs them)."""

    def __init__(self, home: Home, config_path: Path | None, python: str = sys.executable
                 ) -> None:
        self.home = home
        self.config_path = config_path
        self.python = python
        self.proc: subprocess.Popen[str] | None = None
        self.log = home.root / "run.out"

    def start(self) -> Pipeline:
        args = [self.python, "-m", "common.cli", "run"]
        if self.config_path:
            args += ["--config", str(self.config_path)]
        env = {**os.environ, "PISENTRY_HOME": str(self.home.root)}
        self.proc = subprocess.Popen(args, env=env, stdout=self.log.open("w"),
                                     stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)
        return self

    def status_ok(self) -> bool:
        args = ["status"] + (["--config", str(self.config_path)] if self.config_path else [])
        return pisentry(*args, home=self.home).returncode == 0

    def wait_healthy(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.output()
            if self.status_ok():
                return
            time.sleep(0.5)
        raise AssertionError(f"pipeline not healthy after {timeout} s:\n{self.output()}")

    def service_pid(self, service: str) -> int:
        out = subprocess.run(
            [str(Path(sys.executable).with_name("supervisorctl")), "-c",
             str(self.home.run_dir / "supervisord.conf"), "pid", service],
            capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        return int(out)

    def output(self) -> str:
        text = self.log.read_text() if self.log.exists() else ""
        for log in sorted(self.home.log_dir.glob("*.log")):
            text += f"\n--- {log.name} ---\n" + log.read_text()[-3000:]
        return text[-12000:]

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


@contextmanager
def running_pipeline(raw_config: dict[str, Any] | None = None, home: Home | None = None,
                     python: str = sys.executable) -> Iterator[Pipeline]:
    home = home or new_home()
    config_path = write_config(home, raw_config)[0] if raw_config is not None else None
    pipeline = Pipeline(home, config_path, python).start()
    try:
        yield pipeline
    finally:
        pipeline.stop()
        shutil.rmtree(home.root, ignore_errors=True)


@contextmanager
def pisentry_process(service: str, *, home: Home, config: dict[str, Any] | None = None,
                     args: tuple[str, ...] = (), env: dict[str, str] | None = None
                     ) -> Iterator[subprocess.Popen[str]]:
    """One service as a real process (what supervisord would start)."""
    cmd = [sys.executable, "-m", "common.cli", service, *args]
    if config is not None:
        cmd += ["--config", str(write_config(home, config, f"{service}.toml")[0])]
    env = {**os.environ, "PISENTRY_HOME": str(home.root), **(env or {})}
    log = (home.root / f"{service}.out").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
