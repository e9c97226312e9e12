"""A venv with pisentry and only its runtime dependencies, as ``./run.sh``
installs them, for the benches that measure memory: the test venv also holds
test tools that libraries pick up when present (httpx loads click, rich and
pygments for its command line if they are installed), which a Pi never has.

    .venv/bin/python bench/runtime_venv.py   # prints the interpreter's path
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / "bench" / "out" / "runtime-venv"


def runtime_python() -> str:
    """The venv's python, made or refreshed when pyproject.toml changed."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".pyproject-sha256"
    want = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == want:
        return str(python)
    print(f"runtime venv: installing pisentry into {VENV}", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", str(REPO)], check=True)
    stamp.write_text(want)
    return str(python)


if __name__ == "__main__":
    print(runtime_python())
