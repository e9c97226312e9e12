#!/usr/bin/env bash
# Runs every test: installs what they need first (the venv, and the real
# servers they talk to). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")"
deploy/bootstrap.sh --test
deploy/test-servers.sh
exec .venv/bin/python -m pytest -q -rs "$@"
