#!/usr/bin/env bash
# The demo application's own tests, compiled with instrumentation at :full (run by `make test`).
set -euo pipefail
cd "$(dirname "$0")/demo"
MIX_ENV=test mix test "$@"
