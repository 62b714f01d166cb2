/**
 * API clients for @kubernetes/client-node with a deadline on every call: client-node sets none, and one hung request
 * (an apiserver that accepted the connection and never answered) would stall whatever awaited it for good, a scaling
 * decision or a reconcile. Every request made through these clients is aborted after `timeoutMs` (default 10 s) and
 * fails like any other API error; the caller's error handling (retry, backoff, a condition) takes it from there.
 *
 * Watches are not made through these clients (the informers' watch connections are long-lived by design).
 */
import {
  ApiException,
  ServerConfiguration,
  createConfiguration,
  type Configuration,
  type KubeConfig,
} from '@kubernetes/client-node';
import { describeError } from './errors.ts';
import packageJson from '../package.json' with { type: 'json' };

export const DEFAULT_API_TIMEOUT_MS = 10_000;

export function apiClient<T>(
  kc: KubeConfig,
  Api: new (configuration: Configuration) => T,
  timeoutMs = DEFAULT_API_TIMEOUT_MS,
): T {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig has no current cluster');
  return new Api(
    createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: kc },
      promiseMiddleware: [
        {
          pre: (context) => {
            context.setSignal(AbortSignal.timeout(timeoutMs));
            context.setHeaderParam('User-Agent', `sluice/${packageJson.version}`);
            return Promise.resolve(context);
          },
          post: (context) => Promise.resolve(context),
        },
      ],
    }),
  );
}

/**
 * An API error in the API server's own words (the `message` of its Status body; client-node's own message holds the
 * whole body and its headers), else the error's description.
 */
export function apiErrorMessage(err: unknown): string {
  if (err instanceof ApiException) {
    let message: string | undefined;
    try {
      const body: unknown = typeof err.body === 'string' ? JSON.parse(err.body) : err.body;
      const text = (body as { message?: unknown } | null)?.message;
      if (typeof text === 'string') message = text;
    } catch {
      message = undefined;
    }
    return `the API server answered ${err.code}${message === undefined ? '' : `: ${message}`}`;
  }
  return describeError(err);
}
