#!/usr/bin/env bash
# The real peers the tests talk to: OpenSSH (a NAS for backups), Mosquitto
# (MQTT for Home Assistant) and Chromium (the web page). Installed from the
# distribution when missing; tests that need one skip with a reason otherwise.
set -uo pipefail
missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
[ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
[ -x /usr/bin/chromium ] || missing+=(chromium fonts-dejavu-core)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo -n"; else
    echo "test-servers: cannot install ${missing[*]} (not root, no sudo): their tests will skip" >&2
    exit 0
fi
echo "test-servers: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2 || true
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
    echo "test-servers: apt-get failed: the tests needing ${missing[*]} will skip" >&2
exit 0
