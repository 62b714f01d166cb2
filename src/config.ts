/**
 * Command line → typed configuration. The only place that reads argv and the environment (besides client-node's
 * own kubeconfig discovery: `KUBECONFIG`, ~/.kube/config, or the in-cluster service account).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { ConfigError } from './errors.ts';
import type { Level } from './log.ts';
import { formatDurationMs, parseDurationMs } from './scalers/metadata.ts';

export const USAGE = `sluice: an event-driven autoscaler for Kubernetes (KEDA-compatible ScaledObjects, scale to zero)

Usage:
  sluice operator [options]   run the operator and the external-metrics API server (one process)
  sluice version              print the version
  sluice help                 print this text

Options for "operator":
  --local                     running outside a cluster: create a self-signed serving certificate, install the CRDs,
                              and register this process as the external-metrics APIService (via an ExternalName
                              Service pointing at localhost); the APIService is removed again on exit
  --kubeconfig <path>         kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, or in-cluster)
  --port <n>                  HTTPS port of the metrics API (default 6443)
  --bind-address <ip>         address to listen on (default 0.0.0.0; 127.0.0.1 with --local)
  --tls-cert-file <path>      serving certificate (PEM), required without --local
  --tls-private-key-file <p>  its key (PEM)
  --concurrency <n>           ScaledObjects reconciled at once (default 4)
  --read-interval <duration>  how often every backend source (a queue, a query, a URL) is read, whatever the number
                              of ScaledObjects and HPA requests: the freshness of every value (default 1s; 250ms to
                              1m; see docs/scaling-core.md for what each backend costs per source)
  --cluster-object-namespace <ns>
                              where ClusterTriggerAuthentications read Secrets and ConfigMaps
                              (default sluice-system)
  --log-level <level>         debug, info, warn or error (default info)
`;

export interface OperatorConfig {
  readonly command: 'operator';
  readonly local: boolean;
  readonly kubeconfig: string | undefined;
  readonly port: number;
  readonly bindAddress: string;
  readonly tls: { readonly cert: string; readonly key: string } | undefined;
  readonly concurrency: number;
  /** How often each shared reader reads its source, in ms. */
  readonly readIntervalMs: number;
  readonly clusterObjectNamespace: string;
  readonly logLevel: Level;
}

export type Config = OperatorConfig | { readonly command: 'version' } | { readonly command: 'help' };

function integer(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`--${name} must be a whole number from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

function duration(name: string, raw: string, min: number, max: number): number {
  const ms = parseDurationMs(raw);
  if (ms === undefined || ms < min || ms > max) {
    throw new ConfigError(
      `--${name} must be a duration from ${formatDurationMs(min)} to ${formatDurationMs(max)} (e.g. "1s", "500ms"), got "${raw}"`,
    );
  }
  return ms;
}

function readPem(flag: string, path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (cause) {
    throw new ConfigError(`--${flag}: cannot read ${path}`, { cause });
  }
}

export function parseConfig(argv: readonly string[]): Config {
  const [command, ...rest] = argv;
  if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
    return { command: 'help' };
  }
  if (command === 'version' || command === '--version') return { command: 'version' };
  if (command !== 'operator') throw new ConfigError(`unknown command "${command}"; run "sluice help"`);

  let values;
  try {
    ({ values } = parseArgs({
      args: [...rest],
      strict: true,
      allowPositionals: false,
      options: {
        local: { type: 'boolean', default: false },
        kubeconfig: { type: 'string' },
        port: { type: 'string' },
        'bind-address': { type: 'string' },
        'tls-cert-file': { type: 'string' },
        'tls-private-key-file': { type: 'string' },
        concurrency: { type: 'string' },
        'read-interval': { type: 'string', default: '1s' },
        'cluster-object-namespace': { type: 'string', default: 'sluice-system' },
        'log-level': { type: 'string', default: 'info' },
      },
    }));
  } catch (cause) {
    throw new ConfigError(`${cause instanceof Error ? cause.message : String(cause)}; run "sluice help"`, { cause });
  }
  const logLevel = values['log-level'];
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel)) {
    throw new ConfigError(`--log-level must be debug, info, warn or error, got "${logLevel}"`);
  }
  const certFile = values['tls-cert-file'];
  const keyFile = values['tls-private-key-file'];
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new ConfigError('--tls-cert-file and --tls-private-key-file go together');
  }
  if (!values.local && certFile === undefined) {
    throw new ConfigError(
      'the metrics API needs a serving certificate: pass --tls-cert-file and --tls-private-key-file (deploy/ mounts one), or --local outside a cluster',
    );
  }
  return {
    command: 'operator',
    local: values.local,
    kubeconfig: values.kubeconfig,
    port: integer('port', values.port, 6443, 1, 65535),
    bindAddress: values['bind-address'] ?? (values.local ? '127.0.0.1' : '0.0.0.0'),
    tls:
      certFile !== undefined && keyFile !== undefined
        ? { cert: readPem('tls-cert-file', certFile), key: readPem('tls-private-key-file', keyFile) }
        : undefined,
    concurrency: integer('concurrency', values.concurrency, 4, 1, 64),
    readIntervalMs: duration('read-interval', values['read-interval'], 250, 60_000),
    clusterObjectNamespace: values['cluster-object-namespace'],
    logLevel: logLevel as Level,
  };
}
