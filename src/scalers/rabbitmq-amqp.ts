/**
 * The rabbitmq scaler's AMQP reader: a passive queue declare (`checkQueue`) over one long-lived connection, which
 * counts ready messages only (unacknowledged ones are not included, as in KEDA). Connects lazily on the first read
 * and starts afresh after any failure; a missing queue closes only the channel.
 */
import amqp from 'amqplib';
import type { ConnectionOptions } from 'node:tls';
import { ScalerError } from '../errors.ts';

export interface AmqpReaderOptions {
  /** `amqp[s]://host:port/<vhost>` without credentials (the vhost percent-encoded, as amqplib expects). */
  readonly url: URL;
  readonly queueName: string;
  /** PLAIN credentials, or `external` for SASL EXTERNAL (the client certificate names the user). */
  readonly auth: { readonly username: string; readonly password: string } | 'external';
  /** For amqps: CA, client certificate, verification. */
  readonly tls: ConnectionOptions | undefined;
  readonly connectionName: string;
  readonly connectTimeoutMs: number;
}

export interface AmqpReader {
  /** Ready messages in the queue. */
  read(signal: AbortSignal): Promise<number>;
  close(): Promise<void>;
}

export function amqpReader(options: AmqpReaderOptions): AmqpReader {
  const { url, queueName } = options;
  const where = `queue "${queueName}" at ${url.protocol}//${url.host}`;
  const socketOptions = {
    ...options.tls,
    timeout: options.connectTimeoutMs,
    clientProperties: { connection_name: options.connectionName },
    credentials:
      options.auth === 'external'
        ? amqp.credentials.external()
        : amqp.credentials.plain(options.auth.username, options.auth.password),
  };
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
    connecting ??= amqp.connect(url.href, socketOptions).then((c) => {
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
        const ok = await channel.checkQueue(queueName);
        return ok.messageCount;
      } catch (cause) {
        // A passive declare of a missing queue closes the channel (404 NOT_FOUND); anything else (network, TLS,
        // authentication) fails the connection: start afresh next time.
        const message = cause instanceof Error ? cause.message : '';
        if (/NOT_FOUND|\b404\b/.test(message)) throw new ScalerError(`${where} does not exist`);
        reset();
        if (/ACCESS[-_]REFUSED|\b403\b/.test(message)) {
          throw new ScalerError(`the broker refused the credentials for ${where}`, { cause });
        }
        throw new ScalerError(`cannot read ${where} over AMQP`, { cause });
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
