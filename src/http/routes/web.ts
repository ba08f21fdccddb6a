/**
 * The city dashboard: the page built by `scripts/build-web.mjs` into `dist/web/`, served
 * at `/` without a key (the page asks for one and sends it to the API itself).
 *
 * City networks often run cut off from the internet, so the page is self-contained and
 * its Content-Security-Policy says so: a browser refuses anything it would fetch from
 * elsewhere, which also catches a dependency that quietly reaches for a CDN.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyPluginAsync } from 'fastify';
import type { Logger } from 'pino';

export interface WebDeps {
  readonly log: Logger;
  /** Folder of the built page. Default: `dist/web`, beside the compiled server. */
  readonly root?: string;
}

/** dist/src/http/routes/web.js → dist/web/ */
const DEFAULT_ROOT = fileURLToPath(new URL('../../../web/', import.meta.url));

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export function webRoutes({ log, root = DEFAULT_ROOT }: WebDeps): FastifyPluginAsync {
  return async (app) => {
    if (!existsSync(`${root}/index.html`)) {
      // The API works without the page; say why `/` is empty rather than failing the start.
      log.warn({ root }, 'dashboard not built (npm run build builds it); serving the API only');
      app.get('/', { schema: { hide: true } }, async (_req, reply) =>
        reply
          .status(503)
          .type('text/plain; charset=utf-8')
          .send('The dashboard was not built with this gateway; `npm run build` builds it.\n'),
      );
      return;
    }
    await app.register(fastifyStatic, {
      root,
      // One route per built file, found at start: unknown paths keep the API's 404 answer.
      wildcard: false,
      // The build writes .br and .gz beside each file; the browser gets the smallest it accepts.
      preCompressed: true,
      globIgnore: ['**/*.br', '**/*.gz'],
      decorateReply: false,
      cacheControl: false,
      setHeaders(res, path) {
        res.setHeader('x-content-type-options', 'nosniff');
        // `path` is the file sent, which may be the precompressed copy.
        if (/\.html(\.br|\.gz)?$/.test(path)) {
          // The page names its assets by content hash: re-checking the page is enough.
          res.setHeader('cache-control', 'no-cache');
          res.setHeader('content-security-policy', CSP);
          res.setHeader('referrer-policy', 'no-referrer');
        } else {
          res.setHeader('cache-control', 'public, max-age=31536000, immutable');
        }
      },
    });
  };
}
