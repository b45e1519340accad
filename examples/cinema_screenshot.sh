#!/usr/bin/env bash
# Writes a screenshot of the cinema on the demo's own recording to _build/cinema.png (make demo-cinema).
# Runs the demo first when its recording is missing. Needs Debian's chromium and node; installs the
# small npm driver into test/browser/node_modules.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v "${CHROMIUM:-/usr/bin/chromium}" >/dev/null || { echo "cinema screenshot: chromium not found (apt-get install chromium)"; exit 1; }
command -v node >/dev/null || { echo "cinema screenshot: node not found (apt-get install nodejs npm)"; exit 1; }
./test/browser/setup.sh
recording="${ELIXIR_SCOPE_DEMO_RECORDING:-$PWD/_build/demo.esrec}"
[ -f "$recording" ] || ELIXIR_SCOPE_DEMO_RECORDING="$recording" ./examples/run_demo.sh >/dev/null
mkdir -p _build
ELIXIR_SCOPE_DEMO_RECORDING="$recording" mix run examples/cinema_screenshot.exs
