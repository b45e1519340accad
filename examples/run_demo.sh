#!/usr/bin/env bash
# `make demo`: compiles the demo application with the :elixir_scope compiler (every module
# instrumented at :full), runs its scenario and prints the recording. Ends by itself.
set -euo pipefail
cd "$(dirname "$0")/demo"
export MIX_ENV="${MIX_ENV:-dev}"
echo "==> compiling examples/demo with ElixirScope instrumentation"
mix compile
mix scope.status
echo
echo "==> running the scenario"
mix run -e 'Demo.Scenario.run()'
