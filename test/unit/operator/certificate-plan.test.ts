// Proves the decisions of self-managed certificates (certificate-plan.ts) as a table, each row with why: when the
// leader makes a CA, rotates it, renews the serving certificate, retires the previous CA; and which CAs the
// APIService's caBundle trusts around a write (the new CA is trusted before any certificate from it exists, the old
// one until the Secret no longer holds it).
import { describe, expect, test } from 'vitest';
import {
  bundleAroundWrite,
  planCertificates,
  renewalTime,
  sameBundle,
  trustedCas,
  type CertificatePolicy,
  type SecretFacts,
} from '../../../src/operator/certificate-plan.ts';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const DAY = 86_400_000;
const at = (days: number) => new Date(T0 + days * DAY);
const NAMES = ['sluice-metrics.sluice-system.svc', 'sluice-metrics.sluice-system.svc.cluster.local'];
const POLICY: CertificatePolicy = { names: NAMES, renewFraction: 2 / 3, propagationMs: 90_000 };

const ca = (from: number, to: number, fingerprint = 'CA1') => ({ notBefore: at(from), notAfter: at(to), fingerprint });
const serving = (from: number, to: number, extra: { names?: string[]; signedByCa?: boolean } = {}) => ({
  notBefore: at(from),
  notAfter: at(to),
  fingerprint: 'LEAF',
  names: extra.names ?? NAMES,
  signedByCa: extra.signedByCa ?? true,
});
const facts = (f: Partial<SecretFacts>): SecretFacts => ({
  ca: undefined,
  serving: undefined,
  previousCa: undefined,
  dropPreviousAfter: undefined,
  ...f,
});

describe('planCertificates', () => {
  const rows: { comment: string; facts: SecretFacts; now: Date; kind: string }[] = [
    { comment: 'an empty (or missing) Secret', facts: facts({}), now: at(0), kind: 'create' },
    {
      comment: 'a serving pair without a usable CA is replaced whole',
      facts: facts({ serving: serving(0, 365) }),
      now: at(1),
      kind: 'create',
    },
    {
      comment: 'an expired CA',
      facts: facts({ ca: ca(0, 3650), serving: serving(0, 365) }),
      now: at(3650),
      kind: 'create',
    },
    {
      comment: 'fresh CA and serving certificate: nothing to do',
      facts: facts({ ca: ca(0, 3650), serving: serving(0, 365) }),
      now: at(100),
      kind: 'none',
    },
    {
      comment: 'the serving certificate just before 2/3 of its life',
      facts: facts({ ca: ca(0, 3650), serving: serving(0, 360) }),
      now: at(239),
      kind: 'none',
    },
    {
      comment: 'the serving certificate at 2/3 of its life',
      facts: facts({ ca: ca(0, 3650), serving: serving(0, 360) }),
      now: at(240),
      kind: 'renew-serving',
    },
    {
      comment: 'an expired serving certificate',
      facts: facts({ ca: ca(0, 3650), serving: serving(0, 360) }),
      now: at(400),
      kind: 'renew-serving',
    },
    {
      comment: 'no usable serving pair (a key that does not match)',
      facts: facts({ ca: ca(0, 3650) }),
      now: at(1),
      kind: 'renew-serving',
    },
    {
      comment: 'a serving certificate from another CA',
      facts: facts({ ca: ca(0, 3650), serving: serving(0, 365, { signedByCa: false }) }),
      now: at(1),
      kind: 'renew-serving',
    },
    {
      comment: 'a serving certificate for other names (the Service or cluster domain changed)',
      facts: facts({ ca: ca(0, 3650), serving: serving(0, 365, { names: ['old.sluice-system.svc'] }) }),
      now: at(1),
      kind: 'renew-serving',
    },
    {
      comment: 'the CA at 2/3 of its life, with no rotation under way',
      facts: facts({ ca: ca(0, 3600), serving: serving(2300, 2665) }),
      now: at(2400),
      kind: 'rotate-ca',
    },
    {
      comment: 'the CA rotation comes before a due serving renewal (the rotation issues a serving pair anyway)',
      facts: facts({ ca: ca(0, 3600), serving: serving(0, 360) }),
      now: at(2400),
      kind: 'rotate-ca',
    },
    {
      comment: 'during the overlap: the previous CA stays until dropPreviousAfter',
      facts: facts({
        ca: ca(2400, 6000, 'CA2'),
        serving: serving(2400, 2765),
        previousCa: ca(0, 3600),
        dropPreviousAfter: new Date(at(2400).getTime() + 90_000),
      }),
      now: new Date(at(2400).getTime() + 89_000),
      kind: 'none',
    },
    {
      comment: 'after the overlap: the previous CA is dropped',
      facts: facts({
        ca: ca(2400, 6000, 'CA2'),
        serving: serving(2400, 2765),
        previousCa: ca(0, 3600),
        dropPreviousAfter: new Date(at(2400).getTime() + 90_000),
      }),
      now: new Date(at(2400).getTime() + 90_000),
      kind: 'drop-previous-ca',
    },
    {
      comment: 'no annotation: the overlap counts from the serving certificate from the new CA',
      facts: facts({ ca: ca(2400, 6000, 'CA2'), serving: serving(2400, 2765), previousCa: ca(0, 3600) }),
      now: new Date(at(2400).getTime() + 60_000),
      kind: 'none',
    },
    {
      comment: 'an expired previous CA goes whatever the annotation says',
      facts: facts({
        ca: ca(2400, 6000, 'CA2'),
        serving: serving(3500, 3865),
        previousCa: ca(0, 3600),
        dropPreviousAfter: at(9999),
      }),
      now: at(3601),
      kind: 'drop-previous-ca',
    },
    {
      comment: 'a second CA rotation waits until the previous CA is retired (never three CAs)',
      facts: facts({
        ca: ca(0, 30, 'CA2'),
        serving: serving(20, 29),
        previousCa: ca(-30, 29),
        dropPreviousAfter: at(29),
      }),
      now: at(25),
      kind: 'none',
    },
    {
      comment: 'a due serving renewal during the overlap keeps the overlap',
      facts: facts({
        ca: ca(2400, 6000, 'CA2'),
        serving: serving(2400, 2760),
        previousCa: ca(0, 3600),
        dropPreviousAfter: at(9999),
      }),
      now: at(2640),
      kind: 'renew-serving',
    },
  ];
  test.each(rows)('$comment → $kind', ({ facts: f, now, kind }) => {
    expect(planCertificates(f, now, POLICY).kind).toBe(kind);
  });
});

describe('renewalTime', () => {
  test('the given fraction of the life, from notBefore', () => {
    expect(renewalTime({ notBefore: at(0), notAfter: at(300) }, 2 / 3)).toEqual(at(200));
  });
});

describe('the caBundle around a write', () => {
  const old = { fingerprint: 'OLD' };
  const next = { fingerprint: 'NEW' };
  const rows = [
    {
      comment: 'first Secret: just its CA',
      before: { ca: undefined, previousCa: undefined },
      after: { ca: next, previousCa: undefined },
      around: ['NEW'],
      then: ['NEW'],
    },
    {
      comment: 'serving renewal: the same CA throughout',
      before: { ca: old, previousCa: undefined },
      after: { ca: old, previousCa: undefined },
      around: ['OLD'],
      then: ['OLD'],
    },
    {
      comment: 'CA rotation: both before the write, and both after (the old one is the previous)',
      before: { ca: old, previousCa: undefined },
      after: { ca: next, previousCa: old },
      around: ['NEW', 'OLD'],
      then: ['NEW', 'OLD'],
    },
    {
      comment: 'drop: both until the Secret is written, then the new one alone',
      before: { ca: next, previousCa: old },
      after: { ca: next, previousCa: undefined },
      around: ['NEW', 'OLD'],
      then: ['NEW'],
    },
    {
      comment: 'a broken Secret replaced whole: the old CA stays trusted until the write',
      before: { ca: old, previousCa: undefined },
      after: { ca: next, previousCa: undefined },
      around: ['NEW', 'OLD'],
      then: ['NEW'],
    },
  ];
  test.each(rows)('$comment', ({ before, after, around, then }) => {
    expect(bundleAroundWrite(before, after).map((c) => c.fingerprint)).toEqual(around);
    expect(trustedCas(after).map((c) => c.fingerprint)).toEqual(then);
  });

  test('sameBundle ignores order and sees a missing or extra CA', () => {
    expect(sameBundle(['A', 'B'], ['B', 'A'])).toBe(true);
    expect(sameBundle(['A'], ['A', 'B'])).toBe(false);
    expect(sameBundle(['A', 'B'], ['A'])).toBe(false);
    expect(sameBundle([], [])).toBe(true);
  });
});
