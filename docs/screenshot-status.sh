#!/usr/bin/env bash
# Takes docs/status-page.png, the status page picture in README.md: a bridge
# (build/rest2mqtt) with a few healthy endpoints and one failing one, against
# the e2e suite's fake API and a mosquitto on a free loopback port, shot by
# headless Chromium at 1200x700. The scene is the one the e2e case
# status_page_in_a_browser checks (tests/e2e/status_cases.py).
#
#   docs/screenshot-status.sh [BIN] [PNG]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-build/rest2mqtt}
png=${2:-docs/status-page.png}
[ -x "$bin" ] || { echo "error: $bin not found; build first (tests/run or ninja -C build)" >&2; exit 1; }
command -v chromium >/dev/null || { echo "error: chromium not found: apt-get install -y chromium" >&2; exit 1; }
python3 tests/e2e/status_cases.py --screenshot "$png" "$bin"
