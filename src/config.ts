/**
 * Command line → typed configuration. The only place that reads argv and the environment (besides client-node's
 * own kubeconfig discovery: `KUBECONFIG`, ~/.kube/config, or the in-cluster service account).
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import { ConfigError } from './errors.ts';
import type { Level } from './log.ts';
import { CidrSyntaxError, parseCidrList, type CidrRange } from './scalers/address-filter.ts';
import { formatDurationMs, parseDurationMs } from './scalers/metadata.ts';

export const USAGE = `sluice: an event-driven autoscaler for Kubernetes (KEDA-compatible ScaledObjects, scale to zero)

Usage:
  sluice operator [options]   run the operator and the external-metrics API server (one process)
  sluice explain NAME [-n NAMESPACE] [-o text|json] [--kubeconfig PATH]
                              why a ScaledObject is (or is not) scaling: each trigger's value or error against
                              its activation threshold and target, the HPA's computation, the cooldown clock,
                              fallback, breaker and pause state, the last 0↔N decision, and what would change it
  sluice validate FILE... | - check ScaledObjects, (Cluster)TriggerAuthentications and MetricSources offline, with
                              the operator's messages (exit 1 on any error); - reads standard input
  sluice simulate -f SCALEDOBJECT.yaml --trace TRACE.csv [-o table|json] [--out chart.svg|chart.png]
                              [--hpa-sync <seconds>] [--hpa-tolerance <ratio>]
                              [--hpa-downscale-stabilization <seconds>] [--replicas <n>]
                              replay a metric trace through the operator's decisions and the HPA controller's
                              algorithm, offline (docs/simulate.md)
  sluice serve --config <file> [options]
                              serve the external-metrics API from a file of MetricSources, without the operator
                              (no CRD watch, no HPA or status writes); takes the operator's options below except
                              --certificates=self-managed, --metrics-port, --concurrency and the --leader-elect*
                              ones (docs/metric-sources.md#sluice-serve)
  sluice version              print the version
  sluice help                 print this text

Options for "operator":
  --local                     running outside a cluster: create a self-signed serving certificate, install the CRDs,
                              and register this process as the external-metrics APIService (via an ExternalName
                              Service pointing at localhost); the APIService is removed again on exit
  --kubeconfig <path>         kubeconfig to use (default: $KUBECONFIG, ~/.kube/config, or in-cluster)
  --port <n>                  HTTPS port of the metrics API (default 6443)
  --bind-address <ip>         address to listen on, both ports (default 0.0.0.0; 127.0.0.1 with --local)
  --metrics-port <n>          plain-HTTP port of sluice's own Prometheus metrics, GET /metrics (default 8080; 0
                              turns it off)
  --certificates <mode>       where the metrics API's serving certificate comes from:
                                files         --tls-cert-file and --tls-private-key-file (e.g. from cert-manager),
                                              reloaded when the files change (the default when they are given)
                                self-managed  sluice makes a CA and a serving certificate, keeps them in the Secret
                                              --certificates-secret, renews both before they expire and keeps the
                                              APIService's caBundle in step (deploy/'s default; docs/deploy.md)
                              without either outside a cluster (--local): a throwaway certificate held in memory
  --tls-cert-file <path>      serving certificate (PEM) of the files mode; reloaded when the file changes
  --tls-private-key-file <p>  its key (PEM)
  --certificates-secret <namespace/name>
                              the self-managed mode's Secret (default sluice-system/sluice-certificates)
  --metrics-service <namespace/name>
                              the Service the APIService points at, named in the self-managed serving certificate
                              (default sluice-system/sluice-metrics)
  --cluster-domain <domain>   the cluster's DNS domain, also named in that certificate (default cluster.local)
  --serving-certificate-lifetime <duration>
                              lifetime of a self-managed serving certificate, renewed when 2/3 of it has passed
                              (default 8760h, a year; at least 10s)
  --ca-certificate-lifetime <duration>
                              lifetime of the self-managed CA, renewed likewise with an overlap (default 87600h, ten
                              years; at least three serving lifetimes)
  --concurrency <n>           ScaledObjects reconciled at once (default 4)
  --read-interval <duration>  how often every backend source (a queue, a query, a URL) is read, whatever the number
                              of ScaledObjects and HPA requests: the freshness of every value (default 1s; 250ms to
                              1m; see docs/scaling-core.md for what each backend costs per source)
  --cluster-object-namespace <ns>
                              where ClusterTriggerAuthentications read Secrets and ConfigMaps
                              (default sluice-system)
  --cluster-trigger-authentication-any-namespace
                              a ClusterTriggerAuthentication without spec.allowedNamespaces or
                              spec.allowedNamespaceSelector may be used from every namespace (KEDA's behaviour; by
                              default from none)
  --restrict-secret-access    read Secrets only for ClusterTriggerAuthentications, in the cluster-object namespace:
                              no TriggerAuthentication secretTargetRef, no Secret in a scale target's environment
                              (KEDA's KEDA_RESTRICT_SECRET_ACCESS)
  --allow-operator-cloud-identity
                              triggers with identityOwner: operator may use sluice's own cloud identity (for
                              aws-sqs-queue the AWS SDK's default credential chain); by default none may
  --deny-cidrs <list>         comma list of address ranges triggers may not make sluice connect to, on top of the
                              link-local and cloud metadata addresses refused by default (e.g. 10.0.0.0/8,fd00::/8)
  --allow-cidrs <list>        comma list of address ranges triggers may reach whatever else says, the defaults
                              included (e.g. 169.254.20.10/32); see docs/security.md#read-back-and-reach
  --resolve <host=ip[,…]>     resolve host to ip for trigger connections, like curl --resolve (a debugging aid;
                              the address is still checked); repeatable
  --leader-elect[=true|false] elect a leader on the Lease sluice-operator (default true): every replica polls and
                              serves the metrics API, only the leader writes HPAs, status, Events and /scale
  --leader-election-namespace <ns>
                              the Lease's namespace (default sluice-system; --local creates it)
  --log-level <level>         debug, info, warn or error (default info)

Proxy mode (docs/deploy.md#proxy-mode): keep another external-metrics adapter (prometheus-adapter, KEDA) behind
sluice, which then holds the cluster's one external-metrics APIService for both:
  --proxy-to <url>            https://host[:port] of the other adapter: every external metric name sluice has no
                              series of in the namespace is forwarded there (after sluice's own authentication and
                              authorization), and discovery lists both adapters' metrics
  --proxy-client-cert-file <path>
                              client certificate (PEM) sluice presents to it: signed by the CA the adapter trusts
                              for front-proxy requests (the cluster's front-proxy CA) with a CN the adapter allows
                              (e.g. front-proxy-client); required with --proxy-to
  --proxy-client-key-file <path>
                              its key (PEM); required with --proxy-to. Both files are reloaded when they change
  --proxy-ca-file <path>      CA bundle (PEM) of the adapter's serving certificate, e.g. the caBundle of the
                              APIService it had (default: Node's built-in CAs)
  --proxy-timeout <duration>  the longest a forwarded request may take (default 5s; 100ms to 60s); discovery waits
                              at most 2s for the adapter before answering sluice's part alone
`;

export interface OperatorConfig {
  readonly command: 'operator';
  readonly local: boolean;
  readonly kubeconfig: string | undefined;
  readonly port: number;
  /** Port of the plain-HTTP /metrics server (sluice's own metrics); undefined when turned off (`0`). */
  readonly metricsPort: number | undefined;
  readonly bindAddress: string;
  /** Files mode: the serving pair as read at start, and its files (watched for renewals: src/server/certificates.ts). */
  readonly tls:
    { readonly cert: string; readonly key: string; readonly certFile: string; readonly keyFile: string } | undefined;
  /** Self-managed mode (src/operator/certificate-manager.ts); undefined in the other modes. */
  readonly selfManaged: SelfManagedCertificates | undefined;
  readonly concurrency: number;
  /** How often each shared reader reads its source, in ms. */
  readonly readIntervalMs: number;
  readonly clusterObjectNamespace: string;
  /** docs/security.md#credentials: who may use which credentials. All false by default. */
  readonly clusterTriggerAuthenticationAnyNamespace: boolean;
  readonly restrictSecretAccess: boolean;
  readonly allowOperatorCloudIdentity: boolean;
  /** Where triggers may make sluice connect (address-filter.ts, docs/security.md#read-back-and-reach). */
  readonly outbound: {
    readonly deny: readonly CidrRange[];
    readonly allow: readonly CidrRange[];
    /** --resolve: lower-case host → addresses. */
    readonly hosts: ReadonlyMap<string, readonly string[]>;
  };
  /** leader.ts: undefined with --leader-elect=false (this process always leads). */
  readonly leaderElection: { readonly namespace: string } | undefined;
  readonly logLevel: Level;
  /** Proxy mode (src/server/proxy.ts): undefined without --proxy-to. */
  readonly proxy: ProxyConfig | undefined;
}

/**
 * --proxy-*: the upstream adapter and how sluice speaks to it. PEM as read at start; the client pair's files are
 * watched for renewals (src/server/proxy.ts `watchClientCertificate`).
 */
export interface ProxyConfig {
  readonly url: URL;
  readonly ca: string | undefined;
  readonly clientCert: string;
  readonly clientKey: string;
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
  readonly timeoutMs: number;
}

export interface NamespacedName {
  readonly namespace: string;
  readonly name: string;
}

export interface SelfManagedCertificates {
  readonly secret: NamespacedName;
  readonly service: NamespacedName;
  readonly clusterDomain: string;
  readonly servingLifetimeMs: number;
  readonly caLifetimeMs: number;
}

export interface ExplainConfig {
  readonly command: 'explain';
  readonly name: string;
  readonly namespace: string | undefined;
  readonly output: 'text' | 'json';
  readonly kubeconfig: string | undefined;
}

function parseExplain(args: readonly string[]): ExplainConfig {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: true,
      options: {
        namespace: { type: 'string', short: 'n' },
        output: { type: 'string', short: 'o', default: 'text' },
        kubeconfig: { type: 'string' },
      },
    });
  } catch (cause) {
    throw new ConfigError(`explain: ${(cause as Error).message}; run "sluice help"`, { cause });
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1 || positionals[0] === undefined) {
    throw new ConfigError('explain takes one ScaledObject name: sluice explain NAME -n NAMESPACE');
  }
  if (values.output !== 'text' && values.output !== 'json') {
    throw new ConfigError(`explain: -o must be text or json, got "${values.output}"`);
  }
  return {
    command: 'explain',
    name: positionals[0],
    namespace: values.namespace,
    output: values.output,
    kubeconfig: values.kubeconfig,
  };
}

/** The offline subcommands parse their own arguments (src/cli/<name>.ts). */
export interface OfflineCommand {
  readonly command: 'validate' | 'simulate';
  readonly args: readonly string[];
}

/** `sluice serve` (src/cli/serve.ts): the operator's settings that apply, and the file of MetricSources. */
export interface ServeConfig extends Omit<OperatorConfig, 'command'> {
  readonly command: 'serve';
  readonly configFile: string;
}

export type Config =
  | OperatorConfig
  | ServeConfig
  | ExplainConfig
  | OfflineCommand
  | { readonly command: 'version' }
  | { readonly command: 'help' };

/** Flags of `operator` that `serve` refuses (it has no leader, reconciles nothing and keeps no certificate Secret). */
const NOT_FOR_SERVE = [
  'metrics-port',
  'concurrency',
  'leader-elect',
  'leader-election-namespace',
  'certificates-secret',
];

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
  if (command === 'explain') return parseExplain(rest);
  if (command === 'validate' || command === 'simulate') return { command, args: rest };
  if (command !== 'operator' && command !== 'serve') {
    throw new ConfigError(`unknown command "${command}"; run "sluice help"`);
  }
  if (command === 'serve') {
    const refused = NOT_FOR_SERVE.find((flag) => rest.some((a) => a === `--${flag}` || a.startsWith(`--${flag}=`)));
    if (refused !== undefined) throw new ConfigError(`sluice serve does not take --${refused}; run "sluice help"`);
  }

  let values;
  try {
    ({ values } = parseArgs({
      // `--leader-elect` alone means true (client-go's flag is a Go bool: `--leader-elect=false` turns it off).
      args: rest.map((arg) => (arg === '--leader-elect' ? '--leader-elect=true' : arg)),
      strict: true,
      allowPositionals: false,
      options: {
        local: { type: 'boolean', default: false },
        kubeconfig: { type: 'string' },
        port: { type: 'string' },
        'metrics-port': { type: 'string' },
        'bind-address': { type: 'string' },
        'tls-cert-file': { type: 'string' },
        'tls-private-key-file': { type: 'string' },
        certificates: { type: 'string' },
        'certificates-secret': { type: 'string', default: 'sluice-system/sluice-certificates' },
        'metrics-service': { type: 'string', default: 'sluice-system/sluice-metrics' },
        'cluster-domain': { type: 'string', default: 'cluster.local' },
        'serving-certificate-lifetime': { type: 'string', default: '8760h' },
        'ca-certificate-lifetime': { type: 'string', default: '87600h' },
        concurrency: { type: 'string' },
        'read-interval': { type: 'string', default: '1s' },
        'cluster-object-namespace': { type: 'string', default: 'sluice-system' },
        'cluster-trigger-authentication-any-namespace': { type: 'boolean', default: false },
        'restrict-secret-access': { type: 'boolean', default: false },
        'allow-operator-cloud-identity': { type: 'boolean', default: false },
        'deny-cidrs': { type: 'string', multiple: true, default: [] },
        'allow-cidrs': { type: 'string', multiple: true, default: [] },
        resolve: { type: 'string', multiple: true, default: [] },
        'leader-elect': { type: 'string', default: 'true' },
        'leader-election-namespace': { type: 'string', default: 'sluice-system' },
        'log-level': { type: 'string', default: 'info' },
        config: { type: 'string' },
        'proxy-to': { type: 'string' },
        'proxy-ca-file': { type: 'string' },
        'proxy-client-cert-file': { type: 'string' },
        'proxy-client-key-file': { type: 'string' },
        'proxy-timeout': { type: 'string' },
      },
    }));
  } catch (cause) {
    throw new ConfigError(`${cause instanceof Error ? cause.message : String(cause)}; run "sluice help"`, { cause });
  }
  const logLevel = values['log-level'];
  if (!['debug', 'info', 'warn', 'error'].includes(logLevel)) {
    throw new ConfigError(`--log-level must be debug, info, warn or error, got "${logLevel}"`);
  }
  const leaderElect = values['leader-elect'];
  if (leaderElect !== 'true' && leaderElect !== 'false') {
    throw new ConfigError(`--leader-elect must be true or false, got "${leaderElect}"`);
  }
  const certFile = values['tls-cert-file'];
  const keyFile = values['tls-private-key-file'];
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new ConfigError('--tls-cert-file and --tls-private-key-file go together');
  }
  const mode = values.certificates ?? (certFile !== undefined ? 'files' : undefined);
  if (mode !== undefined && mode !== 'files' && mode !== 'self-managed') {
    throw new ConfigError(`--certificates must be files or self-managed, got "${mode}"`);
  }
  if (mode === 'files' && certFile === undefined) {
    throw new ConfigError('--certificates=files needs --tls-cert-file and --tls-private-key-file');
  }
  if (command === 'serve' && mode === 'self-managed') {
    throw new ConfigError('sluice serve takes --tls-cert-file and --tls-private-key-file, or --local');
  }
  if ((command === 'serve') !== (values.config !== undefined)) {
    throw new ConfigError(
      command === 'serve' ? 'sluice serve needs --config <file of MetricSources>' : '--config is for sluice serve',
    );
  }
  if (mode === 'self-managed' && certFile !== undefined) {
    throw new ConfigError('--certificates=self-managed makes its own certificate: drop --tls-cert-file');
  }
  if (!values.local && mode === undefined) {
    throw new ConfigError(
      'the metrics API needs a serving certificate: --certificates=self-managed (deploy/ passes it), or --tls-cert-file and --tls-private-key-file, or --local outside a cluster',
    );
  }
  const port = integer('port', values.port, 6443, 1, 65535);
  const metricsPort = integer('metrics-port', values['metrics-port'], 8080, 0, 65535);
  if (metricsPort === port) {
    throw new ConfigError(`--metrics-port and --port must differ (both are ${port}); --metrics-port 0 turns it off`);
  }
  const settings = {
    local: values.local,
    kubeconfig: values.kubeconfig,
    port,
    metricsPort: metricsPort === 0 ? undefined : metricsPort,
    bindAddress: values['bind-address'] ?? (values.local ? '127.0.0.1' : '0.0.0.0'),
    tls:
      certFile !== undefined && keyFile !== undefined
        ? {
            cert: readPem('tls-cert-file', certFile),
            key: readPem('tls-private-key-file', keyFile),
            certFile,
            keyFile,
          }
        : undefined,
    selfManaged: mode === 'self-managed' ? selfManaged(values) : undefined,
    concurrency: integer('concurrency', values.concurrency, 4, 1, 64),
    readIntervalMs: duration('read-interval', values['read-interval'], 250, 60_000),
    clusterObjectNamespace: values['cluster-object-namespace'],
    clusterTriggerAuthenticationAnyNamespace: values['cluster-trigger-authentication-any-namespace'],
    restrictSecretAccess: values['restrict-secret-access'],
    allowOperatorCloudIdentity: values['allow-operator-cloud-identity'],
    outbound: {
      deny: cidrs('deny-cidrs', values['deny-cidrs']),
      allow: cidrs('allow-cidrs', values['allow-cidrs']),
      hosts: resolveEntries(values.resolve),
    },
    leaderElection: leaderElect === 'true' ? { namespace: values['leader-election-namespace'] } : undefined,
    logLevel: logLevel as Level,
    proxy: proxyConfig(values),
  };
  return command === 'serve'
    ? { ...settings, command, configFile: values.config ?? '', metricsPort: undefined, leaderElection: undefined }
    : { ...settings, command };
}

function proxyConfig(values: {
  readonly 'proxy-to'?: string | undefined;
  readonly 'proxy-ca-file'?: string | undefined;
  readonly 'proxy-client-cert-file'?: string | undefined;
  readonly 'proxy-client-key-file'?: string | undefined;
  readonly 'proxy-timeout'?: string | undefined;
}): ProxyConfig | undefined {
  const raw = values['proxy-to'];
  if (raw === undefined) {
    const stray = (['proxy-ca-file', 'proxy-client-cert-file', 'proxy-client-key-file', 'proxy-timeout'] as const).find(
      (flag) => values[flag] !== undefined,
    );
    if (stray !== undefined) throw new ConfigError(`--${stray} needs --proxy-to`);
    return undefined;
  }
  let url: URL;
  try {
    url = new URL(raw);
  } catch (cause) {
    throw new ConfigError(`--proxy-to must be an https URL (https://host[:port]), got "${raw}"`, { cause });
  }
  // The upstream authenticates sluice by its client certificate and trusts the identity headers only over TLS.
  if (url.protocol !== 'https:') throw new ConfigError(`--proxy-to must be an https URL, got "${raw}"`);
  if (url.username !== '' || url.password !== '') {
    throw new ConfigError('--proxy-to must not hold credentials: sluice authenticates with --proxy-client-cert-file');
  }
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') {
    throw new ConfigError(
      `--proxy-to must be https://host[:port] without a path or query (the adapter serves /apis/… at its root), got "${raw}"`,
    );
  }
  const certFile = values['proxy-client-cert-file'];
  const keyFile = values['proxy-client-key-file'];
  if (certFile === undefined || keyFile === undefined) {
    throw new ConfigError(
      '--proxy-to needs --proxy-client-cert-file and --proxy-client-key-file: the adapter trusts the caller named by ' +
        'sluice only from a client certificate its requestheader CA signed (docs/deploy.md#proxy-mode)',
    );
  }
  const caFile = values['proxy-ca-file'];
  return {
    url,
    ca: caFile === undefined ? undefined : readPem('proxy-ca-file', caFile),
    clientCert: readPem('proxy-client-cert-file', certFile),
    clientKey: readPem('proxy-client-key-file', keyFile),
    clientCertFile: certFile,
    clientKeyFile: keyFile,
    timeoutMs: duration('proxy-timeout', values['proxy-timeout'] ?? '5s', 100, 60_000),
  };
}

const DNS_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;

function namespacedName(flag: string, raw: string): NamespacedName {
  const [namespace = '', name = '', ...rest] = raw.split('/');
  const label = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
  if (rest.length > 0 || !label.test(namespace) || !DNS_NAME.test(name) || name.length > 253) {
    throw new ConfigError(`--${flag} must be <namespace>/<name>, got "${raw}"`);
  }
  return { namespace, name };
}

function selfManaged(values: {
  readonly 'certificates-secret': string;
  readonly 'metrics-service': string;
  readonly 'cluster-domain': string;
  readonly 'serving-certificate-lifetime': string;
  readonly 'ca-certificate-lifetime': string;
}): SelfManagedCertificates {
  const clusterDomain = values['cluster-domain'].replace(/\.$/, '');
  if (!DNS_NAME.test(clusterDomain)) {
    throw new ConfigError(`--cluster-domain must be a DNS name, got "${values['cluster-domain']}"`);
  }
  const hundredYears = 100 * 365 * 24 * 3_600_000;
  const servingLifetimeMs = duration(
    'serving-certificate-lifetime',
    values['serving-certificate-lifetime'],
    10_000,
    hundredYears,
  );
  const caLifetimeMs = duration('ca-certificate-lifetime', values['ca-certificate-lifetime'], 30_000, hundredYears);
  // The CA is renewed at 2/3 of its life and the previous one trusted for a while: a CA shorter than three serving
  // lifetimes would clip every serving certificate to the CA's end.
  if (caLifetimeMs < 3 * servingLifetimeMs) {
    throw new ConfigError('--ca-certificate-lifetime must be at least three times --serving-certificate-lifetime');
  }
  return {
    secret: namespacedName('certificates-secret', values['certificates-secret']),
    service: namespacedName('metrics-service', values['metrics-service']),
    clusterDomain,
    servingLifetimeMs,
    caLifetimeMs,
  };
}

function cidrs(flag: string, raw: readonly string[]): CidrRange[] {
  try {
    return raw.flatMap((list) => parseCidrList(list));
  } catch (cause) {
    if (!(cause instanceof CidrSyntaxError)) throw cause;
    throw new ConfigError(`--${flag}: ${cause.message}`, { cause });
  }
}

/** `host=ip` entries (comma lists, repeatable): a host may get several addresses. */
function resolveEntries(raw: readonly string[]): Map<string, string[]> {
  const hosts = new Map<string, string[]>();
  for (const entry of raw.flatMap((list) => list.split(',')).map((e) => e.trim())) {
    if (entry === '') continue;
    const eq = entry.indexOf('=');
    const host = entry.slice(0, Math.max(eq, 0)).replace(/\.$/, '').toLowerCase();
    const address = entry.slice(eq + 1).replace(/^\[|\]$/g, '');
    if (eq <= 0 || !/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/.test(host)) {
      throw new ConfigError(`--resolve: "${entry}" is not host=ip (e.g. metadata.test=127.0.0.1)`);
    }
    if (isIP(address) === 0) throw new ConfigError(`--resolve: "${entry}": "${address}" is not an IP address`);
    hosts.set(host, [...(hosts.get(host) ?? []), address]);
  }
  return hosts;
}
