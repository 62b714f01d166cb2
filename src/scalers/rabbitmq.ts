/**
 * The `rabbitmq` scaler (KEDA's parameters): queue depth over the management HTTP API (`messages`) or over AMQP
 * (a passive queue declare, which counts ready messages only, as in KEDA).
 *
 * Strict where KEDA is lax: a queue the management API has no statistics for yet, a 404 or any non-200 answer is an
 * error, never 0 (kedacore/keda#7180, #8036).
 */
import amqp from 'amqplib';
import { ScalerError, ValidationError } from '../errors.ts';
import { parseParams, type ParamSpec } from './metadata.ts';
import { metricNameFor, type Sample, type Scaler, type ScalerFactory, type TriggerInput } from './scaler.ts';

const params = {
  host: { type: 'string', fromAuth: true, fromEnv: true, secret: true },
  protocol: { type: 'enum', values: ['auto', 'amqp', 'http'], default: 'auto', fromAuth: true },
  queueName: { type: 'string' },
  mode: { type: 'enum', values: ['QueueLength'], optional: true },
  value: { type: 'number', optional: true, min: 0, exclusiveMin: true },
  activationValue: { type: 'number', default: 0 },
  vhostName: { type: 'string', optional: true, fromAuth: true },
  timeout: { type: 'number', optional: true, min: 0, exclusiveMin: true, integer: true },
} as const satisfies ParamSpec;

/** KEDA's default target when neither `mode` nor `value` is given. */
const DEFAULT_QUEUE_LENGTH = 20;
const DEFAULT_TIMEOUT_MS = 3000;

export interface RabbitMqConfig {
  readonly protocol: 'amqp' | 'http';
  /** Host URL with credentials; never log it. */
  readonly url: URL;
  readonly queueName: string;
  readonly vhost: string | undefined;
  readonly target: number;
  readonly activationValue: number;
  readonly timeoutMs: number;
}

export function parseRabbitMqConfig(trigger: TriggerInput): RabbitMqConfig {
  const path = `spec.triggers[${trigger.index}].metadata`;
  const p = parseParams(params, {
    metadata: trigger.metadata,
    authParams: trigger.authParams,
    resolvedEnv: trigger.resolvedEnv,
    path,
  });
  if ((p.mode === undefined) !== (p.value === undefined)) {
    throw new ValidationError(
      `${path}.${p.mode === undefined ? 'mode' : 'value'}`,
      '"mode" and "value" must be given together (or neither, for QueueLength with value 20)',
    );
  }
  let url: URL;
  try {
    url = new URL(p.host);
  } catch (cause) {
    // The host may carry credentials: do not echo it.
    throw new ValidationError(`${path}.host`, 'is not a valid URL (expected amqp[s]://… or http[s]://…)', { cause });
  }
  const scheme = url.protocol.replace(/:$/, '');
  const detected =
    scheme === 'amqp' || scheme === 'amqps' ? 'amqp' : scheme === 'http' || scheme === 'https' ? 'http' : undefined;
  if (detected === undefined) {
    throw new ValidationError(
      `${path}.host`,
      `unknown host URL scheme "${scheme}" (expected amqp, amqps, http or https)`,
    );
  }
  if (p.protocol !== 'auto' && p.protocol !== detected) {
    throw new ValidationError(`${path}.protocol`, `"${p.protocol}" does not match the host URL scheme "${scheme}"`);
  }
  if (detected === 'amqp' && p.timeout !== undefined) {
    throw new ValidationError(`${path}.timeout`, 'is only supported with the http protocol');
  }
  return {
    protocol: detected,
    url,
    queueName: p.queueName,
    vhost: p.vhostName,
    target: p.value ?? DEFAULT_QUEUE_LENGTH,
    activationValue: p.activationValue,
    timeoutMs: p.timeout ?? DEFAULT_TIMEOUT_MS,
  };
}

/** The URL without credentials, for messages. */
function safeOrigin(url: URL): string {
  return `${url.protocol}//${url.host}`;
}

export const createRabbitMqScaler: ScalerFactory = (trigger) => {
  const config = parseRabbitMqConfig(trigger);
  const metricName = metricNameFor(trigger.index, `rabbitmq-${encodeURIComponent(config.queueName)}`);
  const reader =
    config.protocol === 'http'
      ? managementReader(config)
      : amqpReader(config, `sluice-${trigger.owner.replace('/', '-')}`);
  return {
    metricName,
    target: config.target,
    metricType: trigger.metricType,
    async sample(signal: AbortSignal): Promise<Sample> {
      const messages = await reader.read(signal);
      return { value: messages, active: messages > config.activationValue };
    },
    close: () => reader.close(),
  } satisfies Scaler;
};

interface QueueReader {
  read(signal: AbortSignal): Promise<number>;
  close(): Promise<void>;
}

/** `GET <host>/api/queues/<vhost>/<queue>` on the management API; reads `messages`. */
function managementReader(config: RabbitMqConfig): QueueReader {
  const base = new URL(config.url.href);
  base.username = '';
  base.password = '';
  // The host URL's last path segment is the vhost (KEDA); anything before it is a path prefix (e.g. behind a proxy).
  const segments = base.pathname.split('/').filter((s) => s.length > 0);
  const vhostFromUrl = segments.length > 0 ? decodeURIComponent(segments.pop() ?? '') : undefined;
  const vhost = config.vhost ?? vhostFromUrl ?? '/';
  const prefix = segments.length > 0 ? `/${segments.join('/')}` : '';
  const endpoint = new URL(
    `${prefix}/api/queues/${encodeURIComponent(vhost)}/${encodeURIComponent(config.queueName)}?columns=name,messages`,
    base,
  );
  const headers: Record<string, string> = { accept: 'application/json' };
  if (config.url.username !== '') {
    const user = decodeURIComponent(config.url.username);
    const pass = decodeURIComponent(config.url.password);
    headers['authorization'] = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
  }
  const where = `queue "${config.queueName}" in vhost "${vhost}" at ${safeOrigin(base)}`;
  return {
    async read(signal) {
      let response: Response;
      try {
        response = await fetch(endpoint, {
          headers,
          signal: AbortSignal.any([signal, AbortSignal.timeout(config.timeoutMs)]),
        });
      } catch (cause) {
        throw new ScalerError(`cannot reach the RabbitMQ management API for ${where}`, { cause });
      }
      if (response.status === 404) {
        await response.body?.cancel();
        throw new ScalerError(`${where} does not exist (management API answered 404)`);
      }
      if (response.status === 401 || response.status === 403) {
        await response.body?.cancel();
        throw new ScalerError(`the RabbitMQ management API refused the credentials for ${where} (${response.status})`);
      }
      if (response.status !== 200) {
        await response.body?.cancel();
        throw new ScalerError(`the RabbitMQ management API answered ${response.status} for ${where}`);
      }
      let body: unknown;
      try {
        body = await response.json();
      } catch (cause) {
        throw new ScalerError(`the RabbitMQ management API sent a body that is not JSON for ${where}`, { cause });
      }
      const messages =
        typeof body === 'object' && body !== null ? (body as Record<string, unknown>)['messages'] : undefined;
      if (typeof messages !== 'number' || !Number.isFinite(messages) || messages < 0) {
        // Right after a queue is created the API has no statistics yet: unknown, not zero.
        throw new ScalerError(`the RabbitMQ management API has no message count for ${where} yet`);
      }
      return messages;
    },
    close: () => Promise.resolve(),
  };
}

/** Passive declare over one long-lived AMQP connection; reconnects after any failure. */
function amqpReader(config: RabbitMqConfig, connectionName: string): QueueReader {
  const url = new URL(config.url.href);
  if (config.vhost !== undefined) url.pathname = `/${encodeURIComponent(config.vhost)}`;
  const where = `queue "${config.queueName}" at ${safeOrigin(url)}`;
  let connecting: Promise<amqp.ChannelModel> | undefined;
  let channel: amqp.Channel | undefined;

  const reset = (): void => {
    const pending = connecting;
    connecting = undefined;
    channel = undefined;
    if (pending) {
      void pending.then(
        (c) => c.close().catch(() => undefined),
        () => undefined,
      );
    }
  };

  const connection = (): Promise<amqp.ChannelModel> => {
    connecting ??= amqp
      .connect(url.href, { timeout: DEFAULT_TIMEOUT_MS, clientProperties: { connection_name: connectionName } })
      .then((c) => {
        // Without an 'error' listener a broker-side close would crash the process.
        c.on('error', () => undefined);
        c.on('close', () => {
          if (connecting !== undefined) reset();
        });
        return c;
      });
    return connecting;
  };

  return {
    async read(signal) {
      signal.throwIfAborted();
      try {
        const conn = await connection();
        if (!channel) {
          const ch = await conn.createChannel();
          ch.on('error', () => undefined);
          ch.on('close', () => {
            if (channel === ch) channel = undefined;
          });
          channel = ch;
        }
        const ok = await channel.checkQueue(config.queueName);
        return ok.messageCount;
      } catch (cause) {
        // A passive declare of a missing queue closes the channel (404 NOT_FOUND); a network error kills the
        // connection. Either way start afresh next time.
        const notFound = cause instanceof Error && /NOT_FOUND|404/.test(cause.message);
        if (!notFound) reset();
        throw new ScalerError(
          notFound ? `${where} does not exist` : `cannot read ${where} over AMQP`,
          notFound ? undefined : { cause },
        );
      }
    },
    close() {
      const pending = connecting;
      connecting = undefined;
      channel = undefined;
      return pending ? pending.then((c) => c.close()).catch(() => undefined) : Promise.resolve();
    },
  };
}
