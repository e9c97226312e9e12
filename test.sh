#!/usr/bin/env bash
# Runs every test: installs what they need first (the venv, and the real
# servers they talk to). Extra arguments go to pytest.
#
# Two workers, each taking whole files (the files that start a whole pipeline
# run one after another on one worker: tests/conftest.py): the suite mostly
# waits on real time (passers-by, restarts, outages), under one core on
# average. Every test makes its own home in /tmp and asks the kernel for ports.
set -euo pipefail
cd "$(dirname "$0")"
deploy/bootstrap.sh --test
deploy/test-servers.sh
exec .venv/bin/python -m pytest -q -rs --numprocesses 2 --dist loadfile "$@"
