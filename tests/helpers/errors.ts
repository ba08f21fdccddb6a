import { TaihuError } from '../../src/errors.js';

/** The TaihuError `p` rejects with; fails the test when it resolves or rejects otherwise. */
export async function rejection(p: Promise<unknown>): Promise<TaihuError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof TaihuError)) throw new Error(`expected a TaihuError, got ${String(err)}`);
  return err;
}
