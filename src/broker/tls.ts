/**
 * TLS material from TAIHU_TLS_CERT / TAIHU_TLS_KEY (and optionally TAIHU_TLS_CA,
 * TAIHU_TLS_CRL), read and checked once at start: a missing file or a key that does not
 * match its certificate stops the start with a message naming the variable.
 */
import { readFileSync } from 'node:fs';
import { createSecureContext, type TLSSocket } from 'node:tls';
import type { Config } from '../config.js';
import { ERR_CONFIG } from '../errors.js';

export interface TlsMaterial {
  readonly key: Buffer;
  readonly cert: Buffer;
  /** Client certificates must chain to this CA (mqtts only). */
  readonly ca?: Buffer | undefined;
  /** Revoked client certificates (mqtts only). */
  readonly crl?: Buffer | undefined;
}

type TlsConfig = Pick<Config, 'tlsCert' | 'tlsKey' | 'tlsCa' | 'tlsCrl'>;

function readPem(variable: string, path: string): Buffer {
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (err) {
    throw ERR_CONFIG(`${variable}=${JSON.stringify(path)}: ${(err as Error).message}`);
  }
  if (!pem.includes('-----BEGIN ')) {
    throw ERR_CONFIG(`${variable}=${JSON.stringify(path)} is not a PEM file`);
  }
  return pem;
}

/**
 * The TLS material, or undefined when TLS is not configured. For the HTTP API, Fastify
 * takes `{ key, cert }` as its `https` option.
 */
export function loadTls(config: TlsConfig): TlsMaterial | undefined {
  const { tlsCert, tlsKey, tlsCa, tlsCrl } = config;
  if (!tlsCert && !tlsKey) {
    if (tlsCa) throw ERR_CONFIG('TAIHU_TLS_CA needs TAIHU_TLS_CERT and TAIHU_TLS_KEY');
    if (tlsCrl) throw ERR_CONFIG('TAIHU_TLS_CRL needs TAIHU_TLS_CERT and TAIHU_TLS_KEY');
    return undefined;
  }
  if (!tlsCert) throw ERR_CONFIG('TAIHU_TLS_KEY is set but TAIHU_TLS_CERT is not');
  if (!tlsKey) throw ERR_CONFIG('TAIHU_TLS_CERT is set but TAIHU_TLS_KEY is not');
  if (tlsCrl && !tlsCa) throw ERR_CONFIG('TAIHU_TLS_CRL needs TAIHU_TLS_CA');
  const material: TlsMaterial = {
    cert: readPem('TAIHU_TLS_CERT', tlsCert),
    key: readPem('TAIHU_TLS_KEY', tlsKey),
    ca: tlsCa ? readPem('TAIHU_TLS_CA', tlsCa) : undefined,
    crl: tlsCrl ? readPem('TAIHU_TLS_CRL', tlsCrl) : undefined,
  };
  // Parse now, not at the first handshake: a wrong key or a broken file fails the start.
  try {
    createSecureContext({ key: material.key, cert: material.cert });
  } catch (err) {
    throw ERR_CONFIG(
      `TAIHU_TLS_CERT / TAIHU_TLS_KEY (${tlsCert}, ${tlsKey}): ${(err as Error).message}`,
    );
  }
  if (material.ca) {
    try {
      createSecureContext({ ca: material.ca, crl: material.crl });
    } catch (err) {
      throw ERR_CONFIG(
        `${tlsCrl ? 'TAIHU_TLS_CA / TAIHU_TLS_CRL' : 'TAIHU_TLS_CA'}: ${(err as Error).message}`,
      );
    }
  }
  return material;
}

/** What a TLS client proved about itself once the handshake is over. */
export type ClientCertificate =
  | { readonly kind: 'none' }
  | { readonly kind: 'valid'; readonly cn: string | undefined }
  | { readonly kind: 'refused'; readonly reason: string };

/**
 * Judges the client certificate of a finished handshake. With `requestCert` and
 * `rejectUnauthorized: false` (devices without certificates still log in with a
 * password), a certificate that was presented but failed — expired, another CA,
 * revoked — must be refused here.
 */
export function clientCertificate(socket: TLSSocket): ClientCertificate {
  const cert = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return { kind: 'none' };
  if (!socket.authorized) {
    return { kind: 'refused', reason: String(socket.authorizationError ?? 'not authorized') };
  }
  const cn = (cert.subject as Record<string, unknown> | undefined)?.CN;
  return { kind: 'valid', cn: typeof cn === 'string' ? cn : undefined };
}
