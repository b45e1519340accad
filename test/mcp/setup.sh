#!/usr/bin/env bash
# Installs the official MCP TypeScript SDK (@modelcontextprotocol/sdk) into test/mcp/node_modules.
set -euo pipefail
cd "$(dirname "$0")"
if [ -d node_modules/@modelcontextprotocol/sdk ]; then echo "mcp tests: @modelcontextprotocol/sdk present"; exit 0; fi
command -v npm >/dev/null || { echo "mcp tests: npm not found (apt-get install npm)"; exit 1; }
npm ci --no-audit --no-fund --loglevel=error
