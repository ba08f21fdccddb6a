/**
 * Runs once before the test files: builds the gateway (integration tests start
 * `dist/src/main.js` as a user would, and the embedded store's workers run from dist/).
 *
 * It asks for no external tool: each suite asks for the real clients and servers it
 * drives when it starts them (support/tools.ts, support/servers.ts), so the unit suite
 * runs on a machine with none installed. A missing tool is a failure naming its
 * package, never a skip.
 */
import { execFileSync } from 'node:child_process';

export default function setup(): void {
  execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
  execFileSync('node', ['scripts/build-web.mjs'], { stdio: 'inherit' });
}
