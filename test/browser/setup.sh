#!/usr/bin/env bash
# Installs the browser test driver (playwright-core, no browser download) into test/browser/node_modules.
# Chromium itself comes from Debian: apt-get install chromium.
set -euo pipefail
cd "$(dirname "$0")"
if [ -d node_modules/playwright-core ]; then echo "browser tests: playwright-core present"; exit 0; fi
command -v npm >/dev/null || { echo "browser tests: npm not found (apt-get install npm)"; exit 1; }
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --no-audit --no-fund --loglevel=error
