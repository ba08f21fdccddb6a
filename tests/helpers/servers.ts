/**
 * Real database servers for integration tests: the launchers the tests share with the
 * benchmarks (support/servers.ts), and a raw InfluxQL query to read back what a store wrote.
 */
import type { Server } from '../../support/servers.js';

export {
  freePort,
  launch,
  manage,
  startInfluxDB,
  startVictoriaMetrics,
  type InfluxOptions,
  type Server as TestServer,
  type Spec,
} from '../../support/servers.js';
export { requireTool } from '../../support/tools.js';

/** A raw InfluxQL statement against influxd's /query, times in epoch ms: to read back what a store wrote. */
export async function influxql(server: Server, db: string, q: string, auth?: string): Promise<any> {
  const res = await fetch(`${server.url}/query?db=${encodeURIComponent(db)}&epoch=ms`, {
    method: 'POST',
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      ...(auth === undefined ? {} : { authorization: auth }),
    },
    body: new URLSearchParams({ q }).toString(),
  });
  return res.json();
}
