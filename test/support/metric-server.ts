// A small HTTP(S) server for the metrics-api and prometheus scaler tests: what it answers is set by the test,
// per request, and every request is recorded. Listens on 127.0.0.1 (a random port).
import {
  createServer as createHttpServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';

export interface Answer {
  readonly status?: number;
  readonly body?: string;
  readonly contentType?: string;
}

/** What the server answers: an Answer, or `hang` (accept the request and never answer). */
export type Responder = (request: RecordedRequest) => Answer | 'hang';

export interface RecordedRequest {
  readonly method: string;
  /** Path and query as sent. */
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  /** Whether the TLS client presented a certificate the server verified. */
  readonly authorizedClient: boolean;
}

export interface MetricServerOptions {
  /** Serve HTTPS with this certificate; `ca` + `requestCert` ask for (and verify) a client certificate. */
  readonly tls?: { cert: string; key: string; ca?: string; requestCert?: boolean };
}

export interface MetricServer {
  readonly url: string;
  readonly port: number;
  /** Replaced by the test at will. */
  respond: Responder;
  readonly requests: RecordedRequest[];
  close(): Promise<void>;
}

export async function startMetricServer(options: MetricServerOptions = {}): Promise<MetricServer> {
  const requests: RecordedRequest[] = [];
  const hanging = new Set<ServerResponse>();
  const state: { respond: Responder } = { respond: () => ({ status: 404, body: 'not set' }) };
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const socket = req.socket as { authorized?: boolean };
    const recorded: RecordedRequest = {
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      headers: req.headers,
      authorizedClient: socket.authorized === true,
    };
    requests.push(recorded);
    const answer = state.respond(recorded);
    if (answer === 'hang') {
      hanging.add(res);
      return;
    }
    res.statusCode = answer.status ?? 200;
    if (answer.contentType !== undefined) res.setHeader('content-type', answer.contentType);
    res.end(answer.body ?? '');
  };
  const server = options.tls
    ? createHttpsServer(
        {
          cert: options.tls.cert,
          key: options.tls.key,
          ...(options.tls.ca === undefined ? {} : { ca: options.tls.ca }),
          requestCert: options.tls.requestCert === true,
          rejectUnauthorized: options.tls.requestCert === true,
        },
        handle,
      )
    : createHttpServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${options.tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    get respond() {
      return state.respond;
    },
    set respond(responder: Responder) {
      state.respond = responder;
    },
    requests,
    close: async () => {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A port on 127.0.0.1 nothing listens on (it was free a moment ago). */
export async function closedPort(): Promise<number> {
  const server = createHttpServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Prometheus text exposition of gauges: `{ 'name{a="b"}': 3 }` → `name{a="b"} 3`, with TYPE lines. */
export function exposition(series: Readonly<Record<string, number>>): string {
  const lines: string[] = [];
  const typed = new Set<string>();
  for (const [selector, value] of Object.entries(series)) {
    const name = selector.replace(/\{.*$/, '');
    if (!typed.has(name)) {
      typed.add(name);
      lines.push(`# TYPE ${name} ${name.endsWith('_total') ? 'counter' : 'gauge'}`);
    }
    lines.push(`${selector} ${Number.isNaN(value) ? 'NaN' : value === Infinity ? '+Inf' : String(value)}`);
  }
  return `${lines.join('\n')}\n`;
}

export const EXPOSITION_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
