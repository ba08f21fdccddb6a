#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine, then runs every test: lint,
# type check, unit and integration suites and the image test, on the supported Node.js line
# (the one the image ships: docker/Dockerfile's FROM), and a smoke of the quick start on this
# machine's Node. Safe to run again. Arguments go to the main vitest run (e.g. a test file).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
mkdir -p test-output

# Debian packages: the real MQTT clients and servers the tests drive, podman for the image.
bash scripts/install-test-deps.sh

# npm packages, exactly as locked. better-sqlite3 is compiled here rather than fetched as a
# prebuilt binary from outside the npm registry.
npm_ci() { npm_config_build_from_source=true npm ci --no-audit --no-fund; }

# ---- This machine's Node: what the quick start runs on (20.19+) ------------------------------
# The working tree keeps node_modules built for this Node, so `npm run demo` here still works.
machine_node=$(node -v)
echo "==> Node $machine_node, this machine's: npm ci, build, unit tests, the quick start's first minute"
npm_ci
npm run build --silent >/dev/null
npx vitest run tests/unit --reporter=dot --reporter=json --outputFile.json=test-output/smoke-vitest.json
node scripts/quickstart-smoke.mjs

# ---- The supported line: every test ---------------------------------------------------------
# Its own copy of the tree (sources as they are now, without node_modules or build output) with
# its own node_modules, native addons built against that Node's headers: the machine's npm
# config points nodedir at its own Node's. The two never share a node_modules.
prefix=$(bash scripts/node-line.sh)
version=$("$prefix/bin/node" -p 'process.versions.node')
tree="$root/.cache/tree-node-$version"
echo "==> Node $version, the supported line: a copy of the tree in ${tree#"$root"/}"
rm -rf "$tree"
mkdir -p "$tree"
tar -cf - --exclude=./.git --exclude=./.cache --exclude=./node_modules --exclude=./dist \
  --exclude=./data --exclude=./test-output --exclude=./bench-results --exclude=./coverage . |
  tar -xf - -C "$tree"
cd "$tree"
export PATH="$prefix/bin:$PATH" npm_config_nodedir="$prefix" NODE_LINE_PREFIX="$prefix"
[ "$(node -v)" = "v$version" ] || { echo "error: node on PATH is $(node -v), not v$version" >&2; exit 1; }

echo "==> npm ci"
npm_ci

echo "==> lint and type check"
npx eslint .
npx prettier --check . >/dev/null || { npx prettier --check .; exit 1; }
npx tsc -p tsconfig.test.json

echo "==> tests"
status=0
if [ $# -gt 0 ]; then
  npx vitest run --reporter=default --reporter=json --outputFile.json="$root/test-output/vitest.json" "$@" || status=$?
  reports=("$root/test-output/vitest.json")
else
  # Two files run on their own after the rest: the catch-up test compares other devices' PUBACK
  # p99 with and without a device draining its queue (a ratio that other test files running on
  # the same two cores would blur), and the image test builds and runs the image with podman
  # (its compile steps would compete for the cores with timing-sensitive tests).
  npx vitest run --exclude tests/integration/image.test.ts \
    --exclude tests/integration/rate-catch-up.test.ts \
    --reporter=default --reporter=json --outputFile.json="$root/test-output/vitest.json" || status=$?
  echo "==> a device catching up at its rate, alone"
  npx vitest run tests/integration/rate-catch-up.test.ts \
    --reporter=default --reporter=json --outputFile.json="$root/test-output/catch-up-vitest.json" || status=$?
  echo "==> the image, built and run"
  npx vitest run tests/integration/image.test.ts \
    --reporter=default --reporter=json --outputFile.json="$root/test-output/image-vitest.json" || status=$?
  reports=("$root/test-output/vitest.json" "$root/test-output/catch-up-vitest.json"
    "$root/test-output/image-vitest.json")
fi

node -e '
  const [label, ...files] = process.argv.slice(1);
  const [smoke, ...main] = files.map((f) => require(f));
  console.log(`${label} smoke (unit tests): ${smoke.numPassedTests} passed, ${smoke.numFailedTests} failed`);
  const sum = (k) => main.reduce((n, r) => n + r[k], 0);
  console.log(`${sum("numPassedTests")} passed, ${sum("numFailedTests")} failed`);
' "Node $machine_node" "$root/test-output/smoke-vitest.json" "${reports[@]}"
exit "$status"
