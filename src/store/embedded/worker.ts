/**
 * Entry of an embedded-store worker thread: one SQLite connection (`SqliteEngine`), requests
 * answered one at a time in the order they arrive, so writes stay in the drainer's order.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { ERR_STORE_UNDECODABLE } from '../../errors.js';
import { decodePacked } from '../../points/codec.js';
import { SqliteEngine } from './engine.js';
import { type Reply, type Request, type WorkerData, toWire } from './protocol.js';

const port = parentPort;
if (port === null) throw new Error('embedded store worker: run me with new Worker()');
const data = workerData as WorkerData;

const post = (reply: Reply) => port.postMessage(reply);
const engine = new SqliteEngine({
  path: data.path,
  readonly: data.role === 'reader',
  warn: (obj, msg) => post({ warn: obj, msg }),
});

function run(req: Request): unknown {
  switch (req.op) {
    case 'open':
      return engine.open(req.tables);
    case 'write':
      return engine.write(req.points);
    case 'writeEncoded':
      return engine.write(decodeOrRefuse(req.packed));
    case 'aggregate':
      return engine.aggregate(req.query, req.kind);
    case 'close':
      return engine.close();
  }
}

/**
 * A payload that does not decode is refused for good (not retried): the drainer then decodes the
 * batch itself, which skips and logs that record and writes the rest.
 */
function decodeOrRefuse(packed: Uint8Array) {
  try {
    return decodePacked(packed);
  } catch (err) {
    throw ERR_STORE_UNDECODABLE(err, String(err));
  }
}

port.on('message', (req: Request & { readonly id: number }) => {
  let reply: Reply;
  try {
    reply = { id: req.id, ok: true, value: run(req) };
  } catch (err) {
    reply = { id: req.id, ok: false, error: toWire(err) };
  }
  post(reply);
  // nothing else arrives once the store closes: let the thread end on its own
  if (req.op === 'close') port.close();
});
