#!/usr/bin/env bash
# Builds, locally, the base image docker/Dockerfile's FROM names (node:<version>-bookworm-slim)
# and tags it with that exact name, so `podman build --pull=never` builds the real Dockerfile
# where no third-party image can be pulled. Laid out as the official image is: Debian bookworm
# (mmdebstrap's minbase, with the slim image's dpkg excludes), Node.js, npm and the headers in
# /usr/local (scripts/node-line.sh: from the npm registry), a `node` user and group with id
# 1000, docker-entrypoint.sh as the entrypoint and `node` as the command. Only libatomic1 is
# added to minbase: the Node binary links it, and the official image keeps it for that reason.
# Yarn, which the official image also carries, is left out: nothing here uses it.
# An image with the tag and this recipe's hash is reused. Needs root (mmdebstrap, podman).
set -euo pipefail
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/scripts/podman/containers.conf}"

prefix=$(bash scripts/node-line.sh)
version=$("$prefix/bin/node" -p 'process.versions.node')
tag="docker.io/library/node:$version-bookworm-slim"
recipe=$(cat scripts/node-base-image.sh scripts/node-line.sh | sha256sum | cut -c1-16)

for tool in podman mmdebstrap; do
  command -v "$tool" >/dev/null ||
    { echo "error: $tool is not installed (apt-get install $tool, or run bash scripts/test.sh)" >&2; exit 1; }
done

# Several checkouts on one machine share podman's image store: one builds, the others wait.
exec 9>/tmp/taihu-node-base-image.lock
flock 9

if [ "$(podman image inspect --format '{{index .Labels "org.taihu.base-recipe"}}' "$tag" 2>/dev/null)" = "$recipe" ]; then
  echo "==> base image $tag: present (recipe $recipe)"
  exit 0
fi

echo "==> building base image $tag (recipe $recipe)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -cf "$work/usr-local.tar" --owner=0 --group=0 -C "$prefix" .
cat >"$work/docker-entrypoint.sh" <<'SH'
#!/bin/sh
set -e
# As the official image's: a first argument that is an option, or not a command, runs node.
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ] || { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then
  set -- node "$@"
fi
exec "$@"
SH
chmod 755 "$work/docker-entrypoint.sh"

# The slim image's dpkg excludes, kept in the image (apt installs in later stages follow them).
excludes=(
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-include=/usr/share/locale/locale.alias'
)
# stdin is closed: mmdebstrap reads extra sources from a stdin that is not a terminal.
mmdebstrap --variant=minbase --mode=root --quiet "${excludes[@]}" \
  --include=libatomic1 \
  --customize-hook="tar-in $work/usr-local.tar /usr/local" \
  --customize-hook="copy-in $work/docker-entrypoint.sh /usr/local/bin" \
  --customize-hook='chroot "$1" sh -ec "groupadd --gid 1000 node; useradd --uid 1000 --gid node --shell /bin/bash --create-home node; ln -s node /usr/local/bin/nodejs; node --version; npm --version"' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
  bookworm "$work/rootfs.tar" \
  'deb http://deb.debian.org/debian bookworm main' \
  'deb http://deb.debian.org/debian bookworm-updates main' \
  'deb http://deb.debian.org/debian-security bookworm-security main' </dev/null

podman import --quiet \
  --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  --change "ENV NODE_VERSION=$version" \
  --change "LABEL org.taihu.base-recipe=$recipe" \
  --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
  --change 'CMD ["node"]' \
  "$work/rootfs.tar" "$tag" >/dev/null
podman run --rm --network none "$tag" node -e 'console.log("==> base image ready: node " + process.version)'
