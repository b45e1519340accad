#!/usr/bin/env bash
# Installs VS Code's debug adapter test client (@vscode/debugadapter-testsupport) into test/dap/node_modules.
set -euo pipefail
cd "$(dirname "$0")"
if [ -d node_modules/@vscode/debugadapter-testsupport ]; then echo "dap tests: @vscode/debugadapter-testsupport present"; exit 0; fi
command -v npm >/dev/null || { echo "dap tests: npm not found (apt-get install npm)"; exit 1; }
npm ci --no-audit --no-fund --loglevel=error
