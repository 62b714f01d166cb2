/**
 * The rabbitmq scaler over AMQP: one connection per broker, vhost, credentials and TLS settings, shared by every
 * reader of every queue there (readers lease it, shared.ts), and a passive queue declare (`checkQueue`) per read,
 * which counts ready messages only (unacknowledged ones are not included, as in KEDA).
 *
 * The checks are multiplexed over at most MAX_CHANNELS channels (amqplib runs one RPC at a time per channel, queueing
 * the rest). A passive declare of a missing queue makes the broker close that channel (404 NOT_FOUND), which also
 * fails the checks queued behind it on that channel: those are retried once on another channel, so a missing queue
 * never fails its neighbours. The connection is made on the first check and again after it fails or the broker
 * closes it; concurrent checks share one connection attempt.
 */
import type amqp from 'amqplib';
import type { ConnectionOptions } from 'node:tls';
import { BackendError, ScalerError } from '../errors.ts';
import { abortable } from './abortable.ts';
import { findAddressRefusal, outboundGuard, type OutboundGuard } from './address-filter.ts';

/**
 * amqplib, loaded by the first AMQP connection instead of at start (about 0.5 MiB of heap on top of what sluice loads
 * anyway, which a process reading RabbitMQ only over the management API does without); the type import above costs
 * nothing at run time.
 */
let amqplibLoading: Promise<typeof amqp> | undefined;
function loadAmqplib(): Promise<typeof amqp> {
  amqplibLoading ??= import('amqplib').then((module) => module.default);
  return amqplibLoading;
}

export interface AmqpBrokerOptions {
  /** `amqp[s]://host:port/<vhost>` without credentials (the vhost percent-encoded, as amqplib expects). */
  readonly url: URL;
  /** PLAIN credentials, or `external` for SASL EXTERNAL (the client certificate names the user). */
  readonly auth: { readonly username: string; readonly password: string } | 'external';
  /** For amqps: CA, client certificate, verification. */
  readonly tls: ConnectionOptions | undefined;
  readonly connectTimeoutMs: number;
  /** Where the socket may connect (default: the process-wide guard, address-filter.ts). Tests inject their own. */
  readonly guard?: OutboundGuard;
}

export const MAX_CHANNELS = 4;
/** The connection name the broker shows (`/api/connections`, the management UI). */
export const CONNECTION_NAME = 'sluice';

interface PooledChannel {
  /** The channel once the broker opened it (a BackendError when it could not). */
  readonly ready: Promise<amqp.Channel>;
  /** Checks given this channel and not finished, counted from the moment it is chosen. */
  busy: number;
  open: boolean;
}

/** The broker closed the channel under a check (another queue's 404): the check itself is worth one retry. */
class ChannelLost extends Error {}

export class AmqpBroker {
  readonly #options: AmqpBrokerOptions;
  readonly #where: string;
  #connecting: Promise<amqp.ChannelModel> | undefined;
  #channels: PooledChannel[] = [];
  #closed = false;
  /** Connection attempts so far (tests, benchmarks). */
  connects = 0;

  constructor(options: AmqpBrokerOptions) {
    this.#options = options;
    this.#where = `${options.url.protocol}//${options.url.host}${options.url.pathname}`;
  }

  /** Ready messages in `queue`. Throws BackendError for connection failures, ScalerError for a missing queue. */
  async checkQueue(queue: string, signal: AbortSignal): Promise<number> {
    const what = `queue "${queue}" at ${this.#where}`;
    const check = async (): Promise<number> => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await this.#checkOnce(queue, what);
        } catch (err) {
          if (err instanceof ChannelLost && attempt === 1) continue;
          if (err instanceof ChannelLost) throw new BackendError(`the broker at ${this.#where} kept closing channels`);
          throw err;
        }
      }
    };
    return abortable(check(), signal, () => {
      const reason: unknown = signal.reason;
      const timedOut = reason instanceof Error && reason.name === 'TimeoutError';
      return new BackendError(`a read from ${this.#where} over AMQP ${timedOut ? 'timed out' : 'was cancelled'}`, {
        cause: reason,
      });
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    const pending = this.#connecting;
    this.#connecting = undefined;
    this.#channels = [];
    if (pending) await pending.then((c) => c.close()).catch(() => undefined);
  }

  async #checkOnce(queue: string, what: string): Promise<number> {
    const pooled = await this.#channel();
    try {
      const channel = await pooled.ready;
      return (await channel.checkQueue(queue)).messageCount;
    } catch (cause) {
      if (cause instanceof BackendError) throw cause; // the channel could not be opened
      const message = cause instanceof Error ? cause.message : '';
      // The broker names the missing queue (`NOT_FOUND - no queue 'x' in vhost '/'`); a 404 naming another queue
      // closed this channel under us.
      if (/NOT_FOUND|\b404\b/.test(message) && message.includes(`'${queue}'`)) {
        throw new ScalerError(`${what} does not exist`);
      }
      if (/ACCESS[-_]REFUSED|\b403\b/.test(message)) {
        throw new ScalerError(`the broker refused access to ${what}`, { cause });
      }
      // The channel closed under this check (another queue's 404 on the same channel) while the connection lives.
      if (!pooled.open && this.#connecting !== undefined) throw new ChannelLost();
      this.#reset();
      throw new BackendError(`the AMQP connection to ${this.#where} failed`, { cause });
    } finally {
      pooled.busy--;
    }
  }

  /**
   * The least busy open channel, opening one while there are fewer than MAX_CHANNELS, and counts the caller as busy
   * on it. Choosing is synchronous once connected, and a channel being opened is already in the pool, so concurrent
   * checks never open more than MAX_CHANNELS between them.
   */
  async #channel(): Promise<PooledChannel> {
    const connection = await this.#connection();
    this.#channels = this.#channels.filter((c) => c.open);
    let chosen = this.#channels.find((c) => c.busy === 0);
    if (!chosen && this.#channels.length < MAX_CHANNELS) {
      const pooled: PooledChannel = {
        ready: connection.createChannel().then(
          (channel) => {
            channel.on('error', () => undefined);
            channel.on('close', () => {
              pooled.open = false;
            });
            return channel;
          },
          (cause: unknown) => {
            pooled.open = false;
            this.#reset();
            throw new BackendError(`cannot open an AMQP channel to ${this.#where}`, { cause });
          },
        ),
        busy: 0,
        open: true,
      };
      // Marked handled here: every check given this channel awaits it and sees the failure.
      pooled.ready.catch(() => undefined);
      this.#channels.push(pooled);
      chosen = pooled;
    }
    chosen ??= this.#channels.reduce((a, b) => (b.busy < a.busy ? b : a));
    chosen.busy++;
    return chosen;
  }

  async #connection(): Promise<amqp.ChannelModel> {
    if (this.#closed) throw new ScalerError(`the AMQP connection to ${this.#where} is closed`);
    if (!this.#connecting) {
      const { auth, tls, connectTimeoutMs } = this.#options;
      const guard = this.#options.guard ?? outboundGuard();
      this.connects++;
      // The address filter (address-filter.ts): an IP address is checked here, before any socket; a name by the
      // socket's `lookup`, on every address it resolves to. amqplib hands the socket options to net/tls.connect.
      const checked = new Promise<void>((resolve) => {
        guard.checkHost(this.#options.url.hostname);
        resolve();
      });
      const attempt = checked
        .then(loadAmqplib)
        .then((amqplib) =>
          amqplib.connect(this.#options.url.href, {
            ...tls,
            lookup: guard.lookup,
            timeout: connectTimeoutMs,
            clientProperties: { connection_name: CONNECTION_NAME },
            credentials:
              auth === 'external'
                ? amqplib.credentials.external()
                : amqplib.credentials.plain(auth.username, auth.password),
          }),
        )
        .then((connection) => {
          // Without an 'error' listener a broker-side close would crash the process.
          connection.on('error', () => undefined);
          connection.on('close', () => {
            if (this.#connecting === attempt) this.#reset();
          });
          return connection;
        });
      this.#connecting = attempt;
      attempt.catch(() => {
        if (this.#connecting === attempt) this.#reset();
      });
    }
    try {
      return await this.#connecting;
    } catch (cause) {
      // sluice refused the broker's address: a ScalerError of its own, which the circuit breaker does not count.
      const refused = findAddressRefusal(cause);
      if (refused !== undefined) throw refused.at(this.#where);
      const message = cause instanceof Error ? cause.message : '';
      if (/ACCESS[-_]REFUSED|\b403\b|authenticat/i.test(message)) {
        throw new BackendError(`the broker at ${this.#where} refused the credentials`, { cause });
      }
      throw new BackendError(`cannot connect to ${this.#where} over AMQP`, { cause });
    }
  }

  #reset(): void {
    const pending = this.#connecting;
    this.#connecting = undefined;
    this.#channels = [];
    if (pending) {
      void pending.then(
        (c) => c.close().catch(() => undefined),
        () => undefined,
      );
    }
  }
}
