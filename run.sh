#!/usr/bin/env bash
# Runs the whole pisentry pipeline here, in the foreground, under supervisord:
# a synthetic camera when there is none, the web viewer on http://127.0.0.1:8080.
# Extra arguments go to `pisentry run` (e.g. --config my.toml).
set -euo pipefail
cd "$(dirname "$0")"
deploy/bootstrap.sh
exec .venv/bin/pisentry run "$@"
