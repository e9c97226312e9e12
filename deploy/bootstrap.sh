#!/usr/bin/env bash
# Makes ./.venv with pisentry installed (and its test tools with --test).
# Re-installs only when pyproject.toml changed. On Raspberry Pi OS the venv
# sees the system's python3-picamera2 (apt), which pip cannot provide.
set -euo pipefail
cd "$(dirname "$0")/.."

extras="pi"
[ "${1:-}" = "--test" ] && extras="pi,test"

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "pisentry needs Python 3.11 or newer ($python is $("$python" --version 2>&1))" >&2
    exit 1
fi
if ! "$python" -m venv --help >/dev/null 2>&1 || ! "$python" -c 'import ensurepip' 2>/dev/null; then
    echo "bootstrap: installing python3-venv" >&2
    ${SUDO:-$( [ "$(id -u)" = 0 ] || echo sudo )} apt-get install -y -qq python3-venv >&2
fi

if [ ! -x .venv/bin/python ]; then
    site=""
    if /usr/bin/python3 -c 'import picamera2' 2>/dev/null; then
        site="--system-site-packages"  # the Pi camera stack comes from apt
    fi
    "$python" -m venv $site .venv
fi

stamp=".venv/.pisentry-installed"
want="$(sha256sum pyproject.toml | cut -d' ' -f1) $extras"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "bootstrap: installing pisentry [$extras] into .venv (first run takes a few minutes)" >&2
    log=.venv/pip-install.log
    if ! { .venv/bin/python -m pip install --upgrade pip &&
           .venv/bin/python -m pip install -e ".[$extras]"; } > "$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "bootstrap: pip install failed; full log in $log" >&2
        exit 1
    fi
    echo "$want" > "$stamp"
fi
