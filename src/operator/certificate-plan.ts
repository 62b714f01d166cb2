/**
 * The decisions of self-managed certificates (docs/deploy.md#certificates), as pure functions of what the Secret holds
 * and the time: when to make a CA or a serving certificate, when to retire the previous CA, and which CAs the
 * APIService's `caBundle` must trust around each write. certificate-manager.ts does the I/O; this file none.
 *
 * The rule that keeps the aggregator trusting whatever a replica may serve: every serving certificate any replica can
 * hold was signed by a CA of the bundle published *before* the Secret that holds it was written. So a new CA is
 * added to the bundle (old + new) before any serving certificate from it exists, and the old CA is dropped only once
 * every replica has had time to read the Secret and swap its serving pair (`propagationMs`, a few of the replicas'
 * re-read periods).
 */

/** What is known of one certificate of the Secret. */
export interface CertificateFacts {
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** SHA-256 fingerprint (what the bundle is compared by). */
  readonly fingerprint: string;
}

export interface ServingFacts extends CertificateFacts {
  /** Its SAN names. */
  readonly names: readonly string[];
  /** Signed by the Secret's current CA (verified signature, not only the issuer's name). */
  readonly signedByCa: boolean;
}

/** The Secret, read: undefined parts are missing or unusable (unparsable, a key that does not match). */
export interface SecretFacts {
  readonly ca: CertificateFacts | undefined;
  readonly serving: ServingFacts | undefined;
  readonly previousCa: CertificateFacts | undefined;
  /** When the previous CA may be dropped (annotation written with it), if known. */
  readonly dropPreviousAfter: Date | undefined;
}

export interface CertificatePolicy {
  /** The names the serving certificate must carry. */
  readonly names: readonly string[];
  /** Renew when this fraction of a certificate's life has passed (2/3, as cert-manager's default renewBefore). */
  readonly renewFraction: number;
  /** How long every replica may take to serve the serving pair of a written Secret. */
  readonly propagationMs: number;
}

export type CertificateAction =
  /** No usable CA: a new CA and a serving pair; a previous CA is forgotten. */
  | { readonly kind: 'create'; readonly reason: string }
  /** A new CA; the current one becomes the previous one (still trusted); a serving pair from the new CA. */
  | { readonly kind: 'rotate-ca'; readonly reason: string }
  /** A new serving pair from the current CA. */
  | { readonly kind: 'renew-serving'; readonly reason: string }
  /** The previous CA leaves the Secret (and so the bundle). */
  | { readonly kind: 'drop-previous-ca'; readonly reason: string }
  | { readonly kind: 'none' };

/** The moment `fraction` of the certificate's life has passed. */
export function renewalTime(facts: Pick<CertificateFacts, 'notBefore' | 'notAfter'>, fraction: number): Date {
  const life = facts.notAfter.getTime() - facts.notBefore.getTime();
  return new Date(facts.notBefore.getTime() + life * fraction);
}

const sameNames = (a: readonly string[], b: readonly string[]): boolean =>
  a.length === b.length && [...a].sort().every((name, i) => name === [...b].sort()[i]);

/** What the leader does with the Secret now. One step at a time: the next read decides the next step. */
export function planCertificates(facts: SecretFacts, now: Date, policy: CertificatePolicy): CertificateAction {
  const { ca, serving, previousCa } = facts;
  const t = now.getTime();
  if (ca === undefined) return { kind: 'create', reason: 'no usable CA in the Secret' };
  if (ca.notAfter.getTime() <= t) return { kind: 'create', reason: 'the CA has expired' };
  // A CA rotation waits for the previous one to be retired: the bundle holds at most two CAs.
  if (previousCa === undefined && renewalTime(ca, policy.renewFraction).getTime() <= t) {
    return { kind: 'rotate-ca', reason: 'the CA is past its renewal time' };
  }
  if (serving === undefined) return { kind: 'renew-serving', reason: 'no usable serving certificate in the Secret' };
  if (!serving.signedByCa) return { kind: 'renew-serving', reason: 'the serving certificate is not signed by the CA' };
  if (serving.notAfter.getTime() <= t) return { kind: 'renew-serving', reason: 'the serving certificate has expired' };
  if (!sameNames(serving.names, policy.names)) {
    return { kind: 'renew-serving', reason: 'the serving certificate names other hosts' };
  }
  if (renewalTime(serving, policy.renewFraction).getTime() <= t) {
    return { kind: 'renew-serving', reason: 'the serving certificate is past its renewal time' };
  }
  if (previousCa !== undefined) {
    if (previousCa.notAfter.getTime() <= t) return { kind: 'drop-previous-ca', reason: 'the previous CA has expired' };
    // Without the annotation (written by a version that did not know it, or edited away), count from the serving
    // certificate's start: it is from the current CA, and no replica got it before it was written.
    const after = facts.dropPreviousAfter?.getTime() ?? serving.notBefore.getTime() + policy.propagationMs;
    if (after <= t) return { kind: 'drop-previous-ca', reason: 'every replica has had time to serve from the new CA' };
  }
  return { kind: 'none' };
}

/** The CAs a Secret makes the APIService trust: the current one, and the previous one during a rotation. */
export function trustedCas<T extends { readonly fingerprint: string }>(secret: {
  readonly ca: T | undefined;
  readonly previousCa: T | undefined;
}): T[] {
  return [secret.ca, secret.previousCa].filter((c): c is T => c !== undefined);
}

/**
 * The bundle to publish before replacing the Secret `before` by `after`: every CA of either, once each (by
 * fingerprint), the new CA first. After the write, `trustedCas(after)` is published alone.
 */
export function bundleAroundWrite<T extends { readonly fingerprint: string }>(
  before: { readonly ca: T | undefined; readonly previousCa: T | undefined },
  after: { readonly ca: T | undefined; readonly previousCa: T | undefined },
): T[] {
  const seen = new Set<string>();
  return [...trustedCas(after), ...trustedCas(before)].filter((c) => {
    if (seen.has(c.fingerprint)) return false;
    seen.add(c.fingerprint);
    return true;
  });
}

/** Whether the published bundle already trusts exactly `wanted` (order aside). */
export function sameBundle(published: readonly string[], wanted: readonly string[]): boolean {
  return published.length === wanted.length && wanted.every((f) => published.includes(f));
}
