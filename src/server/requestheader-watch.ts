/**
 * Keeps the front-proxy ("requestheader") configuration current: a watch on the one ConfigMap
 * `kube-system/extension-apiserver-authentication` (list + watch with a field selector on its name, which the
 * built-in Role `extension-apiserver-authentication-reader` allows: kubernetes/kubernetes
 * `plugin/pkg/auth/authorizer/rbac/bootstrappolicy/namespace_policy.go`; a field selector on `metadata.name` makes a
 * list or watch a request for that name, kubernetes/apiserver `pkg/endpoints/request/requestinfo.go`).
 *
 * kube-apiserver rewrites that ConfigMap when its `--requestheader-client-ca-file` changes (it reloads the file
 * itself; kubernetes/apiserver `pkg/server/dynamiccertificates/dynamic_cafile_content.go`). It only ever *adds* CAs:
 * the bundle it writes is the union of what the ConfigMap held and what it trusts now, minus expired certificates
 * (kubernetes/kubernetes `pkg/controlplane/controller/clusterauthenticationtrust/cluster_authentication_trust_controller.go`,
 * `combinedClusterAuthenticationInfo`). So during a front-proxy CA rotation sluice sees old + new, and it accepts
 * client certificates from either (front-proxy.ts), as kube-apiserver does; an old CA leaves when it expires or when
 * an administrator removes it from the ConfigMap.
 *
 * Generic apiservers do the same with an informer (kubernetes/apiserver
 * `pkg/server/dynamiccertificates/configmap_cafile_content.go`, `.../headerrequest/requestheader_controller.go`).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { X509Certificate } from 'node:crypto';

import { CoreV1Api, Watch, type KubeConfig } from '@kubernetes/client-node';

import { describeError, SluiceError } from '../errors.ts';
import { apiClient } from '../kube-client.ts';
import type { Logger } from '../log.ts';
import { pemCertificates, summarize } from './certificates.ts';
import {
  AUTHENTICATION_CONFIGMAP,
  parseRequestHeaderConfig,
  type ConfigMapData,
  type RequestHeaderConfig,
} from './front-proxy.ts';

/** A ConfigMap as listed or watched (`V1ConfigMap` is assignable to it). */
export interface ConfigMapObject extends ConfigMapData {
  readonly metadata?: { readonly name?: string; readonly resourceVersion?: string };
}

export interface WatchEvent {
  /** ADDED, MODIFIED, DELETED, BOOKMARK or ERROR (then `object` is a Status). */
  readonly type: string;
  readonly object: unknown;
}

/** Where the ConfigMap comes from: the API server (`createKubeAuthenticationSource`), or a stub in tests. */
export interface AuthenticationConfigMapSource {
  /** The ConfigMap, if it exists, and the list's resourceVersion to watch from. */
  list(): Promise<{ configMap: ConfigMapObject | undefined; resourceVersion: string }>;
  /**
   * Watches from `resourceVersion`, passing every event to `onEvent`. Resolves when the server ends the watch (or
   * `signal` aborts), rejects when it fails.
   */
  watch(resourceVersion: string, onEvent: (event: WatchEvent) => void, signal: AbortSignal): Promise<void>;
}

const FIELD_SELECTOR = `metadata.name=${AUTHENTICATION_CONFIGMAP.name}`;
/**
 * Below @kubernetes/client-node's fixed 30 s inactivity timeout of a watch, so a quiet ConfigMap's watch is ended by
 * the server (and resumed) rather than aborted by the client.
 */
const WATCH_TIMEOUT_SECONDS = 25;

/** The ConfigMap, read and watched with the credentials of `kc`. */
export function createKubeAuthenticationSource(kc: KubeConfig): AuthenticationConfigMapSource {
  const core = apiClient(kc, CoreV1Api);
  const watcher = new Watch(kc);
  const { namespace, name } = AUTHENTICATION_CONFIGMAP;
  return {
    async list() {
      const list = await core.listNamespacedConfigMap({ namespace, fieldSelector: FIELD_SELECTOR });
      return {
        configMap: list.items.find((item) => item.metadata?.name === name),
        resourceVersion: list.metadata?.resourceVersion ?? '',
      };
    },
    watch(resourceVersion, onEvent, signal) {
      return new Promise<void>((resolve, reject) => {
        let controller: AbortController | undefined;
        const abort = (): void => {
          controller?.abort();
          resolve();
        };
        signal.addEventListener('abort', abort, { once: true });
        const finish = (err: unknown): void => {
          signal.removeEventListener('abort', abort);
          // A client-side inactivity timeout is a quiet watch, not a failure: resume like any other end.
          if (
            err === null ||
            err === undefined ||
            signal.aborted ||
            (err as { name?: unknown }).name === 'TimeoutError'
          )
            resolve();
          else reject(err instanceof Error ? err : new Error(describeError(err)));
        };
        watcher
          .watch(
            `/api/v1/namespaces/${namespace}/configmaps`,
            {
              fieldSelector: FIELD_SELECTOR,
              resourceVersion,
              allowWatchBookmarks: true,
              timeoutSeconds: WATCH_TIMEOUT_SECONDS,
            },
            (type: string, object: unknown) => {
              onEvent({ type, object });
            },
            finish,
          )
          .then(
            (started) => {
              controller = started;
              if (signal.aborted) started.abort();
            },
            (err: unknown) => {
              finish(err ?? new Error('watch failed'));
            },
          );
      });
    },
  };
}

/** Whether two configurations trust the same CAs (in any order) and read the same names and headers. */
export function sameRequestHeaderConfig(a: RequestHeaderConfig, b: RequestHeaderConfig): boolean {
  const key = (c: RequestHeaderConfig): string =>
    JSON.stringify([
      pemCertificates(c.clientCA)
        .map((pem) => new X509Certificate(pem).fingerprint256)
        .sort(),
      c.allowedNames,
      c.usernameHeaders,
      c.groupHeaders,
      c.extraHeaderPrefixes,
      c.uidHeaders,
    ]);
  return key(a) === key(b);
}

/** What the log says about a configuration: the CAs' public facts and the allowed names. */
export function describeRequestHeaderConfig(config: RequestHeaderConfig): Record<string, unknown> {
  return {
    clientCAs: pemCertificates(config.clientCA).map((pem) => {
      const { subject, serialNumber, notAfter, sha256 } = summarize(new X509Certificate(pem));
      return { subject, serialNumber, notAfter, sha256 };
    }),
    allowedNames: config.allowedNames,
  };
}

export interface RequestHeaderWatchOptions {
  readonly source: AuthenticationConfigMapSource;
  /** The configuration in force (read at start with loadRequestHeaderConfig). */
  readonly initial: RequestHeaderConfig;
  /**
   * Puts a new, valid configuration that differs from the one in force into effect. If it throws, the error is logged
   * and the configuration in force stays (the next change is tried again).
   */
  readonly onChange: (config: RequestHeaderConfig) => void;
  readonly log: Logger;
  /**
   * Delays between failed attempts (default 250 ms doubling up to 2 s). Short on purpose: one small object, and
   * while sluice trusts a stale CA every aggregated request fails.
   */
  readonly retry?: { readonly initialMs?: number; readonly maxMs?: number };
}

export interface RequestHeaderWatch {
  /** The configuration in force. */
  readonly current: RequestHeaderConfig;
  stop(): Promise<void>;
}

class WatchEndedError extends SluiceError {
  override name = 'WatchEndedError';

  constructor(message: string) {
    super('WATCH_ENDED', message);
  }
}

const isPowerOfTwo = (n: number): boolean => (n & (n - 1)) === 0;

/**
 * Lists and watches the ConfigMap, restarting with backoff on errors and relisting when the watch's resourceVersion
 * is too old (410 Gone). Every version that parses and differs from the configuration in force goes to `onChange`;
 * one that does not parse is logged and ignored, as is the ConfigMap's deletion (kube-apiserver recreates it).
 */
export function watchRequestHeaderConfig(options: RequestHeaderWatchOptions): RequestHeaderWatch {
  const { source, log, onChange } = options;
  const initialMs = options.retry?.initialMs ?? 250;
  const maxMs = options.retry?.maxMs ?? 2000;
  const where = `${AUTHENTICATION_CONFIGMAP.namespace}/${AUTHENTICATION_CONFIGMAP.name}`;
  let current = options.initial;
  const stopping = new AbortController();
  const { signal } = stopping;
  const stopped = (): boolean => signal.aborted;
  /** The last unusable content, so the same bad version is not logged on every relist. */
  let refused: string | undefined;

  const consider = (configMap: ConfigMapObject | undefined): void => {
    if (configMap === undefined) {
      log('warn', `ConfigMap ${where} does not exist; keeping the requestheader configuration in force`);
      return;
    }
    const data = configMap.data ?? {};
    let next: RequestHeaderConfig;
    try {
      next = parseRequestHeaderConfig(data);
      if (sameRequestHeaderConfig(next, current)) return;
      onChange(next);
    } catch (err) {
      const content = JSON.stringify(data);
      if (refused !== content) {
        log('error', `the new requestheader configuration in ${where} is unusable; keeping the one in force`, {
          error: describeError(err),
        });
      }
      refused = content;
      return;
    }
    refused = undefined;
    current = next;
    log('info', `requestheader configuration reloaded from ${where}`, describeRequestHeaderConfig(next));
  };

  /** One list, then watches from it until one fails or the resourceVersion expires; `onHealthy` after each good watch. */
  const session = async (onHealthy: () => void): Promise<void> => {
    const listed = await source.list();
    consider(listed.configMap);
    let resourceVersion = listed.resourceVersion;
    for (;;) {
      if (signal.aborted) return;
      const started = Date.now();
      // Written by the event callback (an object, so the checks below are not narrowed away).
      const outcome: { events: number; gone: boolean; failure?: string } = { events: 0, gone: false };
      await source.watch(
        resourceVersion,
        (event) => {
          outcome.events++;
          if (event.type === 'ERROR') {
            const status = event.object as { code?: unknown; message?: unknown } | null;
            if (status?.code === 410) outcome.gone = true;
            else outcome.failure = `the watch failed: ${describeError(status?.message ?? status)}`;
            return;
          }
          const object = event.object as ConfigMapObject | null;
          const version = object?.metadata?.resourceVersion;
          if (version !== undefined && version !== '') resourceVersion = version;
          if (event.type === 'ADDED' || event.type === 'MODIFIED') consider(object ?? undefined);
          else if (event.type === 'DELETED') {
            log('warn', `ConfigMap ${where} was deleted; keeping the requestheader configuration in force`);
          }
        },
        signal,
      );
      if (outcome.failure !== undefined) throw new WatchEndedError(outcome.failure);
      if (outcome.gone) return; // relist at once
      // A watch the server ends right away, without a word, is a failure in disguise (e.g. a server shutting down).
      if (outcome.events === 0 && Date.now() - started < 1000) throw new WatchEndedError('the watch ended at once');
      onHealthy();
    }
  };

  const loop = (async () => {
    let failures = 0;
    while (!signal.aborted) {
      try {
        await session(() => {
          failures = 0;
        });
      } catch (err) {
        if (stopped()) return;
        failures++;
        const delayMs = Math.min(initialMs * 2 ** (failures - 1), maxMs);
        // Every failure retries; the log gets the 1st, 2nd, 4th, 8th, ... so an outage does not flood it.
        if (isPowerOfTwo(failures)) {
          log('warn', `watching ConfigMap ${where} failed; retrying`, {
            error: describeError(err),
            failures,
            retryInMs: delayMs,
          });
        }
        await sleep(delayMs, undefined, { signal }).catch(() => undefined);
      }
    }
  })();

  return {
    get current() {
      return current;
    },
    async stop() {
      stopping.abort();
      await loop;
    },
  };
}
