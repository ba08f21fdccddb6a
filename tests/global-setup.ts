/**
 * Runs once before every test file: builds the gateway (integration tests start
 * `dist/src/main.js` as a user would) and checks the real clients the tests use
 * are installed. A missing tool is a failure with a message, never a skip.
 */
import { execFileSync } from 'node:child_process';

const REQUIRED_TOOLS: readonly [string, string][] = [
  ['mosquitto_pub', 'apt-get install mosquitto-clients'],
  ['mosquitto_sub', 'apt-get install mosquitto-clients'],
  ['influxd', 'apt-get install influxdb'],
  ['victoria-metrics', 'apt-get install victoria-metrics'],
  ['redis-server', 'apt-get install redis-server'],
  ['haproxy', 'apt-get install haproxy'],
  ['/usr/bin/chromium', 'apt-get install chromium'],
  ['podman', 'apt-get install podman runc slirp4netns'],
  ['mmdebstrap', 'apt-get install mmdebstrap'],
  ['prometheus', 'apt-get install prometheus'],
  ['promtool', 'apt-get install prometheus'],
];

export default function setup(): void {
  for (const [tool, fix] of REQUIRED_TOOLS) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'pipe' });
    } catch {
      throw new Error(
        `${tool} is not installed; the tests need it (${fix}, or run: bash scripts/test.sh)`,
      );
    }
  }
  try {
    execFileSync('/usr/bin/python3', ['-c', 'import paho.mqtt.client'], { stdio: 'pipe' });
  } catch {
    throw new Error(
      "Eclipse Paho for Debian's python3 is not installed; the tests need it (apt-get install python3-paho-mqtt, or run: bash scripts/test.sh)",
    );
  }
  execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
  execFileSync('node', ['scripts/build-web.mjs'], { stdio: 'inherit' });
}
