/**
 * Device credentials (DESIGN §5). Enrollment-derived secrets let a fleet or the
 * simulator connect without a per-device provisioning step, as in the group
 * enrollment of cloud IoT hubs.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
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
