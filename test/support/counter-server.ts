// A request-counter exporter for http-rate tests: serves Prometheus text exposition on GET /metrics with a counter
// that grows at a rate the test sets, and can be told to misbehave. Runs in-process (startCounterServer) or as a
// child process (`node counter-server.ts <host> <port>`, e.g. inside a network namespace), controlled over HTTP
// either way: `PUT /control` with a JSON body {rate?, mode?, reset?}.
//
// Exposed series: http_requests_total{code="2xx",route="/a"} (¾ of the count), {code="2xx",route="/b"} (¼), and
// {code="5xx",route="/a"} (a constant 1000, which selectors for code="2xx" must leave out). So the selector
// `http_requests_total{code="2xx"}` sums to the count, which grows at `rate` per second.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type CounterMode =
  | 'ok'
  /** Answer with this status code. */
  | 500
  | 404
  | 302
  | 401
  | 503
  /** Accept the connection and never answer. */
  | 'hang'
  | 'malformed'
  | 'empty'
  /** Only series the selectors do not match. */
  | 'missing'
  | 'nan'
  | 'protobuf';

export interface CounterControl {
  /** Requests per second the counter grows by (default 0). */
  rate?: number;
  mode?: CounterMode;
  /** Restart the counter from 0 (as a restarted exporter would). */
  reset?: boolean;
}

export interface CounterServer {
  readonly url: string;
  readonly port: number;
  /** Scrapes of /metrics served so far. */
  scrapes(): number;
  control(change: CounterControl): Promise<void>;
  close(): Promise<void>;
}

interface State {
  rate: number;
  mode: CounterMode;
  count: number;
  at: number;
  scrapes: number;
}

function advance(state: State): void {
  const now = performance.now();
  state.count += (state.rate * (now - state.at)) / 1000;
  state.at = now;
}

function apply(state: State, change: CounterControl): void {
  advance(state);
  if (change.reset === true) state.count = 0;
  if (change.rate !== undefined) state.rate = change.rate;
  if (change.mode !== undefined) state.mode = change.mode;
}

function exposition(state: State): string {
  // Each series is floored on its own so each is monotonic, as real counters are (their sum may lag by 2).
  const a = Math.floor(state.count * 0.75);
  const b = Math.floor(state.count * 0.25);
  return [
    '# HELP http_requests_total Requests served.',
    '# TYPE http_requests_total counter',
    `http_requests_total{code="2xx",route="/a"} ${a}`,
    `http_requests_total{code="2xx",route="/b"} ${b}`,
    'http_requests_total{code="5xx",route="/a"} 1000',
    '# HELP process_start_time_seconds Start time.',
    '# TYPE process_start_time_seconds gauge',
    'process_start_time_seconds 1.7e9',
    '',
  ].join('\n');
}

function handler(state: State, hung: Set<ServerResponse>) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    if (req.method === 'PUT' && req.url === '/control') {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        apply(state, JSON.parse(body) as CounterControl);
        res.writeHead(204).end();
      });
      return;
    }
    if (new URL(req.url ?? '/', 'http://counter').pathname !== '/metrics') {
      res.writeHead(404).end('not found\n');
      return;
    }
    state.scrapes++;
    advance(state);
    const bodies: Partial<Record<CounterMode, string>> = {
      ok: exposition(state),
      malformed: 'http_requests_total{code="2xx" 12\n',
      empty: '',
      missing: 'http_requests_total{code="5xx",route="/a"} 1000\nother_total 5\n',
      nan: 'http_requests_total{code="2xx",route="/a"} NaN\n',
      protobuf: '\x08\x01',
    };
    const mode = state.mode;
    if (mode === 'hang') {
      hung.add(res);
    } else if (typeof mode === 'number') {
      res.writeHead(mode, { 'content-type': 'text/plain' }).end(`status ${mode}\n`);
    } else {
      const type =
        mode === 'protobuf'
          ? 'application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited'
          : 'text/plain; version=0.0.4; charset=utf-8';
      res.writeHead(200, { 'content-type': type }).end(bodies[mode]);
    }
  };
}

/** Starts the exporter on host:port (port 0: any free port). */
export async function startCounterServer(host = '127.0.0.1', port = 0): Promise<CounterServer> {
  const state: State = { rate: 0, mode: 'ok', count: 0, at: performance.now(), scrapes: 0 };
  const hung = new Set<ServerResponse>();
  const server: Server = createServer(handler(state, hung));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  const bound = (server.address() as AddressInfo).port;
  const hostPart = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${hostPart}:${bound}/metrics`,
    port: bound,
    scrapes: () => state.scrapes,
    control: (change) => {
      apply(state, change);
      return Promise.resolve();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of hung) res.destroy();
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}

/** A client for a counter server running elsewhere (e.g. in a child process). */
export function remoteCounterControl(base: string): (change: CounterControl) => Promise<void> {
  return async (change) => {
    const response = await fetch(new URL('/control', base), { method: 'PUT', body: JSON.stringify(change) });
    if (response.status !== 204) throw new Error(`counter server control answered ${response.status}`);
  };
}

if (import.meta.main) {
  const [host = '127.0.0.1', port = '0'] = process.argv.slice(2);
  const server = await startCounterServer(host, Number(port));
  console.log(`listening ${server.url}`);
  const stop = (): void => {
    void server.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
