/**
 * Self-managed certificates (`--certificates=self-managed`, docs/deploy.md#certificates): sluice keeps its own CA and
 * serving certificate in a Secret (`sluice-system/sluice-certificates`: `ca.crt`, `ca.key`, `tls.crt`, `tls.key`, and
 * `previous-ca.crt` while a CA is being retired), so an install needs no cert-manager. KEDA's operator does the same
 * (kedacore/keda `pkg/certificates/`, `--enable-cert-rotation`; https://keda.sh/docs/latest/operate/security/).
 *
 * Who does what:
 * - every replica re-reads the Secret every `resyncMs` and hands a new serving pair to `onServingPair` (main.ts puts
 *   it into the running server: `ServerTls.swapServingPair`);
 * - the leader renews: the serving certificate when 2/3 of its life has passed, the CA likewise, with an overlap
 *   (certificate-plan.ts), and keeps the APIService's `caBundle` equal to the CAs the Secret trusts;
 * - at start, a replica that finds no usable Secret makes one (before it can serve at all, and before any leader is
 *   elected). Every write is guarded: a create that finds the Secret (409 AlreadyExists) or an update whose
 *   resourceVersion is stale (409 Conflict) lost to another replica, which reads the winner's Secret instead, so two
 *   replicas never end up with different CAs.
 *
 * Logs name certificates by subject, serial number, notAfter and SHA-256 fingerprint; keys are never logged.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';

import { describeError, SluiceError } from '../errors.ts';
import type { Logger } from '../log.ts';
import {
  createCertificateAuthority,
  issueServingCertificate,
  pemCertificates,
  subjectAltNames,
  summarize,
  type CertificatePair,
} from '../pki.ts';
import {
  bundleAroundWrite,
  planCertificates,
  sameBundle,
  trustedCas,
  type CertificateAction,
  type CertificateFacts,
  type SecretFacts,
  type ServingFacts,
} from './certificate-plan.ts';

/** The Secret's keys. */
export const SECRET_KEYS = {
  caCert: 'ca.crt',
  caKey: 'ca.key',
  cert: 'tls.crt',
  key: 'tls.key',
  previousCa: 'previous-ca.crt',
} as const;
/** When the previous CA may leave the bundle (RFC 3339), set with it. */
export const DROP_PREVIOUS_ANNOTATION = 'sluice.dev/drop-previous-ca-after';

/** The Secret as text (the port decodes base64). */
export interface StoredSecret {
  readonly data: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  readonly resourceVersion: string | undefined;
}

/** What the manager needs of the Secret (kube.ts implements it over CoreV1Api). */
export interface CertificateSecretPort {
  read(): Promise<StoredSecret | undefined>;
  /** 'exists' when someone else created it first (409). */
  create(secret: Omit<StoredSecret, 'resourceVersion'>): Promise<'created' | 'exists'>;
  /** Replaces it if it still has `resourceVersion`; 'conflict' when it changed since (409). */
  update(secret: StoredSecret): Promise<'updated' | 'conflict'>;
}

/** The APIService's caBundle (kube.ts: ApiregistrationV1Api). */
export interface CaBundlePort {
  /** The PEM bundle it trusts ('' when none); undefined when the APIService does not exist. */
  read(): Promise<string | undefined>;
  write(bundle: string): Promise<void>;
}

/** A Secret that cannot be read or written. */
export class CertificateSecretError extends SluiceError {
  override name = 'CertificateSecretError';

  constructor(message: string, options?: ErrorOptions) {
    super('CERTIFICATE_SECRET', message, options);
  }
}

export interface CertificateManagerOptions {
  readonly secret: CertificateSecretPort;
  readonly caBundle: CaBundlePort;
  readonly log: Logger;
  /** The serving certificate's names (pki.ts servingNames). */
  readonly names: readonly string[];
  readonly caLifetimeMs: number;
  readonly servingLifetimeMs: number;
  /** How often every replica re-reads the Secret. */
  readonly resyncMs: number;
  /** How long the previous CA stays trusted after the first serving certificate from the new one is written. */
  readonly propagationMs: number;
  /** Whether this replica leads (only the leader renews and writes the caBundle). */
  readonly leading: () => boolean;
  readonly now?: () => Date;
}

export interface CertificateManager {
  /**
   * Reads the Secret, making it when it is missing or unusable; returns the serving pair to start with and the CA
   * bundle the APIService should trust. Throws CertificateSecretError when the Secret can be neither read nor made.
   */
  initial(): Promise<{ readonly serving: CertificatePair; readonly caBundle: string }>;
  /** Re-reads every `resyncMs` from now on, handing each new serving pair to `onServingPair`. */
  start(onServingPair: (pair: CertificatePair) => void): void;
  /** The CAs (PEM bundle) the Secret trusted when last read. */
  trustedBundle(): string;
  /** One read (and, on the leader, renewal) now; resolves when done. Errors are logged, not thrown. */
  resync(): Promise<void>;
  stop(): Promise<void>;
}

interface ParsedCa {
  readonly pem: string;
  readonly fingerprint: string;
  readonly x509: X509Certificate;
  readonly facts: CertificateFacts;
}

interface State {
  readonly ca: (ParsedCa & { readonly key: string }) | undefined;
  readonly serving: (CertificatePair & { readonly facts: ServingFacts }) | undefined;
  readonly previousCa: ParsedCa | undefined;
  readonly dropPreviousAfter: Date | undefined;
}

function factsOf(certificate: X509Certificate): CertificateFacts {
  return {
    notBefore: certificate.validFromDate,
    notAfter: certificate.validToDate,
    fingerprint: certificate.fingerprint256,
  };
}

function parseCertificate(pem: string | undefined): X509Certificate | undefined {
  if (pem === undefined || pem === '') return undefined;
  try {
    return new X509Certificate(pem);
  } catch {
    return undefined;
  }
}

function keyMatches(certificate: X509Certificate, keyPem: string | undefined): boolean {
  if (keyPem === undefined) return false;
  try {
    return certificate.checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    return false;
  }
}

/** The Secret, read; whatever cannot be used is left out (planCertificates then replaces it). */
export function parseSecret(secret: StoredSecret | undefined): State {
  const data = secret?.data ?? {};
  const caCert = parseCertificate(data[SECRET_KEYS.caCert]);
  const caKey = data[SECRET_KEYS.caKey];
  const ca =
    caCert !== undefined && caCert.ca && caKey !== undefined && keyMatches(caCert, caKey)
      ? {
          pem: data[SECRET_KEYS.caCert] ?? '',
          fingerprint: caCert.fingerprint256,
          x509: caCert,
          facts: factsOf(caCert),
          key: caKey,
        }
      : undefined;
  const leaf = parseCertificate(data[SECRET_KEYS.cert]);
  const leafKey = data[SECRET_KEYS.key];
  const serving =
    leaf !== undefined && leafKey !== undefined && keyMatches(leaf, leafKey)
      ? {
          cert: data[SECRET_KEYS.cert] ?? '',
          key: leafKey,
          facts: {
            ...factsOf(leaf),
            names: subjectAltNames(leaf),
            signedByCa: ca !== undefined && leaf.checkIssued(ca.x509) && leaf.verify(ca.x509.publicKey),
          },
        }
      : undefined;
  const previous = parseCertificate(data[SECRET_KEYS.previousCa]);
  const dropAfter = Date.parse(secret?.annotations[DROP_PREVIOUS_ANNOTATION] ?? '');
  return {
    ca,
    serving,
    previousCa:
      previous === undefined
        ? undefined
        : {
            pem: data[SECRET_KEYS.previousCa] ?? '',
            fingerprint: previous.fingerprint256,
            x509: previous,
            facts: factsOf(previous),
          },
    dropPreviousAfter: Number.isNaN(dropAfter) ? undefined : new Date(dropAfter),
  };
}

function secretFacts(state: State): SecretFacts {
  return {
    ca: state.ca?.facts,
    serving: state.serving?.facts,
    previousCa: state.previousCa?.facts,
    dropPreviousAfter: state.dropPreviousAfter,
  };
}

function toStored(state: State): Omit<StoredSecret, 'resourceVersion'> {
  const data: Record<string, string> = {};
  if (state.ca) {
    data[SECRET_KEYS.caCert] = state.ca.pem;
    data[SECRET_KEYS.caKey] = state.ca.key;
  }
  if (state.serving) {
    data[SECRET_KEYS.cert] = state.serving.cert;
    data[SECRET_KEYS.key] = state.serving.key;
  }
  if (state.previousCa) data[SECRET_KEYS.previousCa] = state.previousCa.pem;
  const annotations: Record<string, string> = {};
  if (state.previousCa && state.dropPreviousAfter) {
    annotations[DROP_PREVIOUS_ANNOTATION] = state.dropPreviousAfter.toISOString();
  }
  return { data, annotations };
}

const bundleOf = (cas: readonly { readonly pem: string }[]): string => cas.map((c) => c.pem.trimEnd() + '\n').join('');

/** The certificates of a PEM bundle (unparsable blocks left out). */
function pemBlocks(bundle: string): { pem: string; fingerprint: string }[] {
  return pemCertificates(bundle).flatMap((pem) => {
    const fingerprint = parseCertificate(pem)?.fingerprint256;
    return fingerprint === undefined ? [] : [{ pem, fingerprint }];
  });
}

export function createCertificateManager(options: CertificateManagerOptions): CertificateManager {
  const { secret, caBundle, log } = options;
  const now = options.now ?? (() => new Date());
  const policy = { names: options.names, renewFraction: 2 / 3, propagationMs: options.propagationMs };
  let onServing: ((pair: CertificatePair) => void) | undefined;
  /** The serving certificate handed out last (PEM), and the last one refused (so it is logged once). */
  let delivered: string | undefined;
  let refused: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;
  let trusted = '';

  async function newCa(): Promise<ParsedCa & { key: string }> {
    const pair = await createCertificateAuthority({
      commonName: `sluice-ca@${String(Math.floor(now().getTime() / 1000))}`,
      lifetimeMs: options.caLifetimeMs,
      now: now(),
    });
    const x509 = new X509Certificate(pair.cert);
    return { pem: pair.cert, key: pair.key, fingerprint: x509.fingerprint256, x509, facts: factsOf(x509) };
  }

  async function serving(ca: ParsedCa & { key: string }): Promise<State['serving']> {
    const pair = await issueServingCertificate({
      ca: { cert: ca.pem, key: ca.key },
      names: options.names,
      lifetimeMs: options.servingLifetimeMs,
      now: now(),
    });
    const leaf = new X509Certificate(pair.cert);
    return { ...pair, facts: { ...factsOf(leaf), names: subjectAltNames(leaf), signedByCa: true } };
  }

  /** The Secret after `action`. */
  async function apply(action: Exclude<CertificateAction, { kind: 'none' }>, state: State): Promise<State> {
    switch (action.kind) {
      case 'create': {
        const ca = await newCa();
        return { ca, serving: await serving(ca), previousCa: undefined, dropPreviousAfter: undefined };
      }
      case 'rotate-ca': {
        const ca = await newCa();
        return {
          ca,
          serving: await serving(ca),
          previousCa: state.ca,
          dropPreviousAfter: new Date(now().getTime() + options.propagationMs),
        };
      }
      case 'renew-serving': {
        if (state.ca === undefined) throw new Error('unreachable: renew-serving without a CA');
        return { ...state, serving: await serving(state.ca) };
      }
      case 'drop-previous-ca':
        return { ...state, previousCa: undefined, dropPreviousAfter: undefined };
    }
  }

  /**
   * Makes the APIService trust exactly `cas`, or, when `keep`, at least `cas` and whatever it trusts already (before a
   * write: another replica's CA, published for a Secret it is writing right now, is not taken away). A no-op when it
   * already does, or when the APIService does not exist yet.
   */
  async function publish(cas: readonly ParsedCa[], keep = false): Promise<void> {
    const current = await caBundle.read();
    if (current === undefined) {
      log('debug', 'certificates: the APIService does not exist yet; its caBundle is written once it does');
      return;
    }
    const published = pemBlocks(current);
    const wanted = [...cas.map((c) => ({ pem: c.pem, fingerprint: c.fingerprint }))];
    if (keep) {
      for (const block of published) if (!wanted.some((w) => w.fingerprint === block.fingerprint)) wanted.push(block);
    }
    if (
      sameBundle(
        published.map((b) => b.fingerprint),
        wanted.map((w) => w.fingerprint),
      )
    )
      return;
    await caBundle.write(bundleOf(wanted));
    log('info', 'certificates: APIService caBundle updated', {
      cas: wanted.map((w) => parseCertificate(w.pem)).flatMap((c) => (c === undefined ? [] : [summarize(c)])),
    });
  }

  /**
   * Reads the Secret; when `write`, also renews what is due (and makes a missing Secret). Returns the state in force
   * afterwards. A lost race (409) returns the winner's Secret.
   */
  async function step(write: boolean): Promise<State> {
    let stored: StoredSecret | undefined;
    try {
      stored = await secret.read();
    } catch (cause) {
      throw new CertificateSecretError('cannot read the certificates Secret', { cause });
    }
    const state = parseSecret(stored);
    if (!write) return state;
    const action = planCertificates(secretFacts(state), now(), policy);
    if (action.kind === 'none') {
      await publish(trustedCas(state));
      return state;
    }
    const next = await apply(action, state);
    // The new CA is trusted before any serving certificate from it can be read (certificate-plan.ts).
    await publish(bundleAroundWrite(state, next), true);
    let outcome: 'created' | 'exists' | 'updated' | 'conflict';
    try {
      outcome =
        stored === undefined
          ? await secret.create(toStored(next))
          : await secret.update({ ...toStored(next), resourceVersion: stored.resourceVersion });
    } catch (cause) {
      throw new CertificateSecretError('cannot write the certificates Secret', { cause });
    }
    if (outcome === 'exists' || outcome === 'conflict') {
      log('info', 'certificates: another replica wrote the Secret first; using theirs', { action: action.kind });
      const theirs = parseSecret(await secret.read());
      await publish(trustedCas(theirs));
      return theirs;
    }
    log('info', `certificates: ${action.kind} (${action.reason})`, {
      ...(next.ca ? { ca: summarize(next.ca.x509) } : {}),
      ...(next.serving ? { serving: summarize(new X509Certificate(next.serving.cert)) } : {}),
      previousCa: next.previousCa ? summarize(next.previousCa.x509) : 'none',
    });
    await publish(trustedCas(next));
    return next;
  }

  function deliver(state: State): void {
    trusted = bundleOf(trustedCas(state));
    const pair = state.serving;
    if (pair === undefined || onServing === undefined || pair.cert === delivered) return;
    try {
      onServing({ cert: pair.cert, key: pair.key });
      delivered = pair.cert;
      refused = undefined;
    } catch (err) {
      if (refused !== pair.cert) {
        log('error', 'certificates: the serving pair from the Secret was refused; keeping the current one', {
          error: describeError(err),
        });
      }
      refused = pair.cert;
    }
  }

  const resync = (): Promise<void> => {
    running ??= (async () => {
      try {
        deliver(await step(options.leading()));
      } catch (err) {
        log('warn', 'certificates: resync failed; trying again', { error: describeError(err) });
      }
    })().finally(() => {
      running = undefined;
    });
    return running;
  };

  return {
    async initial() {
      let state = await step(false);
      if (state.ca === undefined || state.serving === undefined || !state.serving.facts.signedByCa) {
        state = await step(true);
      }
      const pair = state.serving;
      if (pair === undefined) throw new CertificateSecretError('the certificates Secret holds no usable serving pair');
      delivered = pair.cert;
      trusted = bundleOf(trustedCas(state));
      return { serving: { cert: pair.cert, key: pair.key }, caBundle: bundleOf(trustedCas(state)) };
    },
    start(onServingPair) {
      onServing = onServingPair;
      const tick = () => {
        if (stopped) return;
        void resync().finally(() => {
          if (!stopped) timer = setTimeout(tick, options.resyncMs);
        });
      };
      timer = setTimeout(tick, options.resyncMs);
    },
    resync,
    trustedBundle: () => trusted,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
