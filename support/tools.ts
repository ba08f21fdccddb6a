/**
 * The external programs the tests and benchmarks drive (Debian packages), found on demand: a
 * suite asks for a tool only when it runs, so the unit suite needs none of them. A missing tool
 * is an error naming the package that installs it, never a reason to skip.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

/** The Debian package of each tool. */
const PACKAGES = new Map<string, string>([
  ['mosquitto', 'mosquitto'],
  ['mosquitto_pub', 'mosquitto-clients'],
  ['mosquitto_sub', 'mosquitto-clients'],
  ['influxd', 'influxdb'],
  ['victoria-metrics', 'victoria-metrics'],
  ['redis-server', 'redis-server'],
  ['haproxy', 'haproxy'],
  ['/usr/bin/chromium', 'chromium'],
  ['/usr/bin/python3', 'python3'],
  ['podman', 'podman runc slirp4netns'],
  ['mmdebstrap', 'mmdebstrap'],
  ['prometheus', 'prometheus'],
  ['promtool', 'prometheus'],
]);

/** Who asks, for the message: the tests by default; `taihu bench` says it is the benchmarks. */
let asker = { who: 'the tests', script: 'bash scripts/test.sh' };

export function toolsNeededBy(who: string, script: string): void {
  asker = { who, script };
}

function missing(what: string, pkg: string): Error {
  return new Error(
    `${what} is not installed; ${asker.who} need it (apt-get install ${pkg}, or run: ${asker.script})`,
  );
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The path of a tool: an absolute name as it is, else the first match on PATH, then in
 * /usr/sbin and /sbin (where Debian puts mosquitto, and which a user's PATH may lack).
 */
export function requireTool(name: string): string {
  const pkg = PACKAGES.get(name) ?? name;
  if (isAbsolute(name)) {
    if (executable(name)) return name;
    throw missing(name, pkg);
  }
  const dirs = (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin']);
  for (const dir of dirs) {
    if (dir !== '' && executable(join(dir, name))) return join(dir, name);
  }
  throw missing(name, pkg);
}

/** Checks that Debian's python3 can import `module` (e.g. `paho.mqtt.client`). */
export function requirePythonModule(module: string, pkg: string, what: string): void {
  const python = requireTool('/usr/bin/python3');
  try {
    execFileSync(python, ['-c', `import ${module}`], { stdio: 'pipe' });
  } catch {
    throw missing(what, pkg);
  }
}
