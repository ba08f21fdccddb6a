#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine, then runs every
# test: lint, type check, unit and integration suites. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: the real MQTT clients and servers the tests drive.
bash scripts/install-test-deps.sh

# npm packages, exactly as locked. better-sqlite3 is compiled here rather than
# fetched as a prebuilt binary from outside the npm registry.
echo "==> npm ci"
npm_config_build_from_source=true npm ci --no-audit --no-fund

echo "==> lint and type check"
npx eslint .
npx prettier --check . >/dev/null || { npx prettier --check .; exit 1; }
npx tsc -p tsconfig.test.json

echo "==> tests"
mkdir -p test-output
npx vitest run --reporter=default --reporter=json --outputFile.json=test-output/vitest.json "$@"
node -e '
  const r = require("./test-output/vitest.json");
  console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed`);
'
