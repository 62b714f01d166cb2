/**
 * The TLS material of the metrics API server, replaceable while it runs (docs/security.md#certificates):
 *
 * - the **serving pair** (`--tls-cert-file`/`--tls-private-key-file`): `watchServingCertificate` watches the files'
 *   directories and swaps a new pair in when they change; a pair that does not parse or whose key does not match is
 *   logged and the current one kept;
 * - the **client-certificate trust store**: the requestheader CA bundle of the front proxy (front-proxy.ts), swapped
 *   when kube-apiserver publishes a new one (requestheader-watch.ts).
 *
 * Both end in `tls.Server#setSecureContext`, which builds one context from *all* its options (an option left out is
 * dropped), so `ServerTls` always passes the current serving pair and the current CA bundle together. Existing
 * connections keep the context of their handshake; every new connection gets the new one
 * (https://nodejs.org/api/tls.html#serversetsecurecontextoptions).
 *
 * Nothing here logs or throws key material: errors name the file or the check that failed, logs carry the
 * certificate's subject, serial number, validity and fingerprint.
 */
import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createSecureContext, type SecureContextOptions } from 'node:tls';

import { describeError, SluiceError } from '../errors.ts';
import type { Logger } from '../log.ts';
import { pemCertificates, summarize, type CertificatePair, type CertificateSummary } from '../pki.ts';

export { pemCertificates, summarize, type CertificateSummary };

/** A certificate (PEM, the leaf first, then any intermediates) and its private key (PEM). */
export type ServingPair = CertificatePair;

/** A certificate or key that cannot be used. The message names the check that failed, never the material. */
export class CertificateError extends SluiceError {
  override name = 'CertificateError';

  constructor(message: string, options?: ErrorOptions) {
    super('TLS_CERTIFICATE', message, options);
  }
}

/**
 * Checks a serving pair: the certificate file holds at least one parsable certificate, the key parses and belongs to
 * the first (leaf) certificate, and OpenSSL accepts both as a server context (with `ca` when given). Returns the
 * leaf's summary. Throws CertificateError.
 */
export function checkServingPair(pair: ServingPair, ca?: readonly string[]): CertificateSummary {
  const [leafPem] = pemCertificates(pair.cert);
  if (leafPem === undefined) throw new CertificateError('the certificate file holds no PEM certificate');
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(leafPem);
  } catch (cause) {
    throw new CertificateError('the certificate does not parse', { cause });
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pair.key);
  } catch (cause) {
    // The cause is OpenSSL's decoder error (a code and a routine name), never the key's content.
    throw new CertificateError('the private key does not parse', { cause });
  }
  if (!leaf.checkPrivateKey(key)) {
    throw new CertificateError(`the private key does not belong to the certificate (serial ${leaf.serialNumber})`);
  }
  try {
    createSecureContext({ cert: pair.cert, key: pair.key, ...(ca === undefined ? {} : { ca: [...ca] }) });
  } catch (cause) {
    throw new CertificateError('OpenSSL refuses the certificate and key', { cause });
  }
  return summarize(leaf);
}

/** The part of `tls.Server` (and so `https.Server`) this needs. */
export interface SecureContextTarget {
  setSecureContext(options: SecureContextOptions): void;
  /** `http.Server#closeIdleConnections` (an `https.Server` has it). */
  closeIdleConnections?: () => void;
}

/** The TLS material of a running server. */
export interface ServerTls {
  /** The serving pair in use. */
  readonly serving: ServingPair;
  /** Its leaf certificate. */
  readonly certificate: CertificateSummary;
  /** The client-certificate trust store in use (PEM bundle). */
  readonly clientCA: string;
  /**
   * Serves a new certificate and key from the next connection on, keeping the client-certificate trust store. A pair
   * that does not parse or match throws CertificateError and the current one stays. Returns the new leaf's summary.
   * This is how anything replaces the serving certificate of a running server: the file watcher below, and a future
   * self-managed certificate of `--local`.
   */
  swapServingPair(pair: ServingPair): CertificateSummary;
  /** Replaces the client-certificate trust store (every certificate of the bundle is trusted). Throws CertificateError. */
  setClientCA(bundle: string): void;
}

/**
 * Takes over the TLS material of `server`, which was started with `serving` and `clientCA` (see
 * `frontProxyTlsOptions`); from here on every change goes through the returned object.
 */
export function createServerTls(
  server: SecureContextTarget,
  initial: { readonly serving: ServingPair; readonly clientCA: string },
): ServerTls {
  let serving = initial.serving;
  let clientCA = initial.clientCA;
  let certificate = checkServingPair(serving);

  const caList = (bundle: string): string[] => {
    const certificates = pemCertificates(bundle);
    if (certificates.length === 0) throw new CertificateError('the client CA bundle holds no PEM certificate');
    return certificates;
  };
  // `requestCert`/`rejectUnauthorized` are options of the server, not of the context: they stay as they were.
  const apply = (pair: ServingPair, bundle: string): void => {
    server.setSecureContext({ cert: pair.cert, key: pair.key, ca: caList(bundle) });
  };

  return {
    get serving() {
      return serving;
    },
    get certificate() {
      return certificate;
    },
    get clientCA() {
      return clientCA;
    },
    swapServingPair(pair) {
      const summary = checkServingPair(pair, caList(clientCA));
      apply(pair, clientCA);
      serving = pair;
      certificate = summary;
      return summary;
    },
    setClientCA(bundle) {
      const ca = caList(bundle);
      try {
        createSecureContext({ cert: serving.cert, key: serving.key, ca });
      } catch (cause) {
        throw new CertificateError('OpenSSL refuses the client CA bundle', { cause });
      }
      apply(serving, bundle);
      clientCA = bundle;
      // Idle kept-alive connections were verified against the old trust store at their handshake: close them, so
      // clients reconnect against the new one. Connections busy right now are closed after a 401 (app.ts).
      server.closeIdleConnections?.();
    },
  };
}

export interface ServingFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

export interface WatchServingOptions {
  readonly files: ServingFiles;
  readonly tls: Pick<ServerTls, 'serving' | 'swapServingPair'>;
  readonly log: Logger;
  /** Quiet time after the last file event before the files are read (default 500 ms). */
  readonly debounceMs?: number;
  /** Re-read the files this often even without events, in case a watch misses one (default 60 s). */
  readonly pollMs?: number;
  /** What the pair is, in log lines (default `serving certificate`; proxy mode's client certificate reuses this). */
  readonly what?: string;
}

export type ReloadOutcome = 'unchanged' | 'reloaded' | 'rejected' | 'unreadable';

export interface ServingWatch {
  /** Reads the files now and swaps the pair in if it changed and is usable. */
  reload(): Promise<ReloadOutcome>;
  close(): void;
}

const digest = (pair: ServingPair): string =>
  createHash('sha256').update(pair.cert).update('\0').update(pair.key).digest('hex');

/**
 * Reloads the serving pair when its files change. A Kubernetes Secret volume replaces every file at once by swapping
 * its `..data` symlink (kubernetes/kubernetes `pkg/volume/util/atomic_writer.go`), so this watches the *directories*
 * holding the files (a watch on the file itself follows the old inode), waits for `debounceMs` of quiet, then reads
 * both files and checks them together. A pair that cannot be used (half-written, mismatched) is logged once and the
 * current one kept; the next change is tried again. A periodic re-read covers watches that miss events.
 */
export function watchServingCertificate(options: WatchServingOptions): ServingWatch {
  const { files, tls, log } = options;
  const debounceMs = options.debounceMs ?? 500;
  const what = options.what ?? 'serving certificate';
  let closed = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<ReloadOutcome> | undefined;
  /** Bumped by every request to reload: a request during a read makes the loop read again. */
  let requests = 0;
  /** The pair last refused, so a periodic re-read of the same files does not log it every minute. */
  let refused: string | undefined;

  const readOnce = async (): Promise<ReloadOutcome> => {
    let pair: ServingPair;
    try {
      const [cert, key] = await Promise.all([readFile(files.certFile, 'utf8'), readFile(files.keyFile, 'utf8')]);
      pair = { cert, key };
    } catch (err) {
      log('warn', `cannot read the ${what} files; keeping the current certificate`, {
        certFile: files.certFile,
        keyFile: files.keyFile,
        error: describeError(err),
      });
      return 'unreadable';
    }
    const current = tls.serving;
    if (pair.cert === current.cert && pair.key === current.key) return 'unchanged';
    const id = digest(pair);
    try {
      const summary = tls.swapServingPair(pair);
      refused = undefined;
      log('info', `${what} reloaded`, { certFile: files.certFile, ...summary });
      return 'reloaded';
    } catch (err) {
      if (refused !== id) {
        log('error', `new ${what} rejected; keeping the current one`, {
          certFile: files.certFile,
          keyFile: files.keyFile,
          error: describeError(err),
        });
      }
      refused = id;
      return 'rejected';
    }
  };

  // One read at a time; a change during a read is read again afterwards.
  const reload = (): Promise<ReloadOutcome> => {
    requests++;
    if (running !== undefined) return running;
    running = (async () => {
      let outcome: ReloadOutcome;
      let seen: number;
      do {
        seen = requests;
        outcome = await readOnce();
      } while (seen !== requests && !closed);
      return outcome;
    })().finally(() => {
      running = undefined;
    });
    return running;
  };

  const schedule = (): void => {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(() => {
      void reload();
    }, debounceMs);
  };

  const watchers: FSWatcher[] = [];
  for (const dir of new Set([path.dirname(files.certFile), path.dirname(files.keyFile)])) {
    try {
      const watcher = watch(dir, { persistent: false }, schedule);
      watcher.on('error', (err) => {
        log('warn', `watching the ${what} directory failed; relying on the periodic re-read`, {
          dir,
          error: describeError(err),
        });
        watcher.close();
      });
      watchers.push(watcher);
    } catch (err) {
      log('warn', `cannot watch the ${what} directory; relying on the periodic re-read`, {
        dir,
        error: describeError(err),
      });
    }
  }
  const poll = setInterval(() => {
    void reload();
  }, options.pollMs ?? 60_000);
  poll.unref();

  return {
    reload,
    close() {
      closed = true;
      clearTimeout(timer);
      clearInterval(poll);
      for (const watcher of watchers) watcher.close();
    },
  };
}
