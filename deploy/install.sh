#!/usr/bin/env bash
# Installs pisentry on Raspberry Pi OS (Bookworm or newer) from this checkout:
# the camera stack from apt, a venv that can see it, and a systemd unit that
# starts everything at boot. Run as the user who owns the camera (e.g. pi).
set -euo pipefail
dir="$(cd "$(dirname "$0")/.." && pwd)"
user="$(id -un)"
home_dir="$HOME"

sudo apt-get update -qq
sudo apt-get install -y -qq python3-venv python3-picamera2 --no-install-recommends
"$dir/deploy/bootstrap.sh"

mkdir -p "$home_dir/.pisentry"
if [ ! -f "$home_dir/.pisentry/config.toml" ]; then
    # Only what differs from the defaults; every key is in deploy/pisentry.example.toml.
    cat > "$home_dir/.pisentry/config.toml" <<'CONF'
[capture]
source = "picamera2"

[ir]
# With the IR/servo Arduino fitted: enabled = true, serial_port = "/dev/serial0"
enabled = false
CONF
    chmod 600 "$home_dir/.pisentry/config.toml"
fi
"$dir/.venv/bin/pisentry" check-config "$home_dir/.pisentry/config.toml" >/dev/null

sed -e "s|@USER@|$user|g" -e "s|@HOME@|$home_dir|g" -e "s|@DIR@|$dir|g" \
    "$dir/deploy/pisentry.service" | sudo tee /etc/systemd/system/pisentry.service >/dev/null
sudo systemctl daemon-reload
sudo systemctl enable --now pisentry.service
echo "pisentry is running. The first web login password is in: journalctl -u pisentry | grep login"
echo "Edit $home_dir/.pisentry/config.toml, then: sudo systemctl restart pisentry"
