/**
 * What every `taihu` command shares: a flag per config option (`--mqtt-port` for
 * TAIHU_MQTT_PORT), the flag parsers, and an abort signal for Ctrl-C. The commands
 * themselves are in main.ts (the gateway's), devices/cli.ts (simulator and demo) and
 * bench/cli.ts; only main.ts exits the process.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import { loadConfig, OPTIONS, parseDuration, type Config } from './config.js';

/** `--mqtt-port` for TAIHU_MQTT_PORT, and so on. */
function flagOf(env: string): string {
  return env
    .replace(/^TAIHU_/, '')
    .toLowerCase()
    .replaceAll('_', '-');
}

/** Adds a flag for every config option, and `--env-file`. */
export function addConfigFlags(cmd: Command): Command {
  for (const o of OPTIONS) {
    const flag = flagOf(o.env);
    cmd.addOption(
      new Option(
        `--${flag} <value>`,
        `${o.doc} [${o.env}]${o.default ? ` (default: ${o.default})` : ''}`,
      ),
    );
  }
  return cmd.addOption(
    new Option('--env-file <path>', 'read variables from this file').default('.env'),
  );
}

/** The config from the environment, `.env` and the flags `addConfigFlags` added (flags win). */
export function configFrom(opts: Record<string, string | undefined>): Readonly<Config> {
  const overrides: Record<string, string | undefined> = {};
  for (const o of OPTIONS) {
    const key = flagOf(o.env).replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
    if (opts[key] !== undefined) overrides[o.env] = opts[key];
  }
  return loadConfig({ overrides, envFile: opts.envFile, isTTY: Boolean(process.stdout.isTTY) });
}

export function positiveNumber(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('must be a positive number');
  return n;
}

export function ratio(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n < 0 || n > 1)
    throw new InvalidArgumentError('must be between 0 and 1');
  return n;
}

/** A duration flag (`30s`, `5m`, `2h`), in ms. */
export function duration(text: string): number {
  const ms = parseDuration(text);
  if (ms === undefined) throw new InvalidArgumentError('must be a duration such as 30s, 5m or 2h');
  return ms;
}

/** Aborts on the first SIGINT/SIGTERM: for commands that stop by themselves once told to. */
export function abortOnSignals(): AbortController {
  const ac = new AbortController();
  const stop = () => ac.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return ac;
}
