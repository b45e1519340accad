#!/usr/bin/env bash
# Writes a screenshot of the cinema on the demo recording to _build/cinema.png (make demo-cinema).
# Needs Debian's chromium and node; installs the small npm driver into test/browser/node_modules.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v "${CHROMIUM:-/usr/bin/chromium}" >/dev/null || { echo "cinema screenshot: chromium not found (apt-get install chromium)"; exit 1; }
command -v node >/dev/null || { echo "cinema screenshot: node not found (apt-get install nodejs npm)"; exit 1; }
./test/browser/setup.sh
mkdir -p _build
MIX_ENV=test mix run examples/cinema_screenshot.exs
