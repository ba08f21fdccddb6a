/**
 * Device credentials (DESIGN §5). Enrollment-derived secrets let a fleet or the
 * simulator connect without a per-device provisioning step, as in the group
 * enrollment of cloud IoT hubs.
 */
import { createHash, createHmac, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/** secret = base64url (unpadded) of HMAC-SHA256(key = enrollment key, message = deviceId). */
export function deriveDeviceSecret(enrollmentKey: string, deviceId: string): string {
  return createHmac('sha256', enrollmentKey).update(deviceId).digest('base64url');
}

/** Constant-time comparison of a presented secret with the expected one. */
export function secretsEqual(presented: Buffer | string, expected: string): boolean {
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** Reads a key file, or creates it (mode 0600) with a new random key. */
export function readOrCreateKeyFile(path: string): { key: string; created: boolean } {
  const fresh = randomBytes(32).toString('base64url');
  if (existsSync(path)) return { key: readFileSync(path, 'utf8').trim(), created: false };
  writeKeyFile(path, fresh);
  return { key: fresh, created: true };
}

/** Writes a secret to a file only its owner can read. */
export function writeKeyFile(path: string, key: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${key}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
}

/** scrypt cost: N=2^14, r=8, p=1 (OWASP's minimum), ~50 ms per check here, off the event loop. */
const SCRYPT = { N: 16384, r: 8, p: 1, keylen: 32 } as const;

function scryptAsync(
  secret: string | Buffer,
  salt: Buffer,
  N: number,
  r: number,
  p: number,
): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(secret, salt, SCRYPT.keylen, { N, r, p, maxmem: 64 * 1024 * 1024 }, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  );
}

/** A fresh individual device secret: 256 random bits, base64url. */
export function newDeviceSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** `scrypt$N$r$p$salt$hash`, salt and hash base64url. */
export async function hashSecret(secret: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await scryptAsync(secret, salt, SCRYPT.N, SCRYPT.r, SCRYPT.p);
  return [
    'scrypt',
    SCRYPT.N,
    SCRYPT.r,
    SCRYPT.p,
    salt.toString('base64url'),
    key.toString('base64url'),
  ].join('$');
}

export async function verifySecret(presented: string | Buffer, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64url');
  const key = await scryptAsync(
    presented,
    Buffer.from(salt, 'base64url'),
    Number(n),
    Number(r),
    Number(p),
  );
  return key.length === expected.length && timingSafeEqual(key, expected);
}
