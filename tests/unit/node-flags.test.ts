import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NODE_FLAGS } from '../../src/node-flags.js';

const ROOT = join(import.meta.dirname, '../..');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const flags = NODE_FLAGS.join(' ');

describe('the V8 flags the gateway runs with', () => {
  it('are the same in the taihu command, the npm scripts and the image', () => {
    expect(read('src/main.ts').split('\n')[0]).toBe(`#!/usr/bin/env -S node ${flags}`);
    const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> })
      .scripts;
    expect(scripts.start).toContain(`node ${flags} dist/src/main.js start`);
    expect(scripts.demo).toContain(`node ${flags} dist/src/main.js demo`);
    expect(read('docker/Dockerfile')).toMatch(
      new RegExp(`^\\s*NODE_OPTIONS=${flags.replace(/ /g, '\\ ')}\\s*\\\\?$`, 'm'),
    );
  });

  it('are flags this Node accepts in NODE_OPTIONS', () => {
    expect(NODE_FLAGS.length).toBeGreaterThan(0);
    for (const flag of NODE_FLAGS) {
      expect(process.allowedNodeEnvironmentFlags.has(flag.split('=')[0]!), flag).toBe(true);
    }
  });
});
