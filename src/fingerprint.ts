/**
 * Fingerprints of secret material: a keyed digest (HMAC-SHA256 under a key random to this process), so that two
 * equal sets of credentials give equal fingerprints within one process, while a fingerprint that reaches a log or a
 * map key cannot be tested against guessed passwords offline.
 */
import { createHmac, randomBytes } from 'node:crypto';

const KEY = randomBytes(32);

/** A fingerprint of `parts` (JSON-serialisable), 64 hex characters. Object keys are sorted, so order does not matter. */
export function fingerprint(...parts: readonly unknown[]): string {
  return createHmac('sha256', KEY).update(canonicalJson(parts)).digest('hex');
}

/** JSON with object keys sorted at every level. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
        )
      : v,
  );
}
