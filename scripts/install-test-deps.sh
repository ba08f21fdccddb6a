#!/usr/bin/env bash
# Installs the Debian packages the tests drive: mosquitto_pub/mosquitto_sub, InfluxDB 1.x
# (influxd), VictoriaMetrics, and Redis and HAProxy for the cluster tests. Installs only what
# is missing; safe to run again. openssl makes the throwaway CA of the TLS tests; Eclipse Paho
# (python3-paho-mqtt) is a second real MQTT client, one that can connect with keepalive 0. The
# image test builds and runs docker/Dockerfile with podman (runtime runc; slirp4netns lets a
# container reach a test server on the host's loopback), makes the base image with mmdebstrap,
# and has Debian's Prometheus scrape the container.
# The tests start their own servers on free loopback ports with temp data dirs: the system
# services these packages ship are never used, and must not be left running.
set -euo pipefail

PACKAGES=(mosquitto-clients influxdb victoria-metrics redis-server haproxy chromium openssl
  python3-paho-mqtt podman runc slirp4netns mmdebstrap prometheus)
# Services of those packages, and the ports a running one would hold (influxd: HTTP and RPC;
# redis-server: 6379; prometheus: 9090; Debian's default haproxy.cfg opens no port).
SERVICES=(influxdb victoria-metrics redis-server haproxy prometheus)
PORTS=(8086 8088 8428 6379 9090)
# `--bench`: also what `taihu bench` drives besides those, Debian's mosquitto (its reference
# broker, which Debian puts in /usr/sbin).
bench=""
if [ "${1:-}" = "--bench" ]; then
  bench=1
  PACKAGES+=(mosquitto)
  SERVICES+=(mosquitto)
  PORTS+=(1883)
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || missing+=("$pkg")
done

if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"

  # The postinst scripts start their service through invoke-rc.d, and influxdb's exits 1 when
  # that fails (no init system in a container). A policy-rc.d answering 101 ("action
  # forbidden") makes invoke-rc.d and deb-systemd-invoke skip the start. An existing
  # policy-rc.d is the machine's own policy and is left alone.
  policy=/usr/sbin/policy-rc.d
  created_policy=""
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\n# temporary, from taihu scripts/install-test-deps.sh\nexit 101\n' |
      $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    created_policy=1
  fi
  cleanup() { if [ -n "$created_policy" ]; then $SUDO rm -f "$policy"; fi; }
  trap cleanup EXIT

  echo "==> installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null

  # Only services this run installed: stop one that started anyway (a site policy-rc.d that
  # allows starts) and, under systemd, keep it from starting at boot.
  for svc in "${SERVICES[@]}"; do
    case " ${missing[*]} " in *" $svc "*) ;; *) continue ;; esac
    if [ -d /run/systemd/system ]; then
      $SUDO systemctl disable --now "$svc.service" >/dev/null 2>&1 || true
    elif [ -x "/etc/init.d/$svc" ]; then
      $SUDO "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
    fi
  done
fi

for bin in mosquitto_pub mosquitto_sub influxd victoria-metrics redis-server haproxy \
  podman runc slirp4netns mmdebstrap prometheus promtool; do
  command -v "$bin" >/dev/null || { echo "error: $bin still missing after install" >&2; exit 1; }
done
if [ -n "$bench" ] && ! PATH="$PATH:/usr/sbin" command -v mosquitto >/dev/null; then
  echo "error: mosquitto still missing after install" >&2
  exit 1
fi

for port in "${PORTS[@]}"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "note: something listens on 127.0.0.1:$port; the tests use their own free ports anyway"
  fi
done
echo "==> test packages present: ${PACKAGES[*]}"
