/**
 * The plain-HTTP server of sluice's own metrics (`--metrics-port`): `GET /metrics` in Prometheus text format, nothing
 * else (404). Separate from the metrics API's HTTPS server: Prometheus scrapes it without the front-proxy certificate,
 * and nothing it serves is a credential (own-metrics.ts).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describeError } from '../errors.ts';

export interface Exposition {
  metrics(): Promise<string>;
  readonly contentType: string;
}

export interface MetricsServer {
  /** The port it listens on (the one asked for, or the one the system chose for 0). */
  readonly port: number;
  close(): Promise<void>;
}

export interface MetricsServerOptions {
  readonly exposition: Exposition;
  readonly host: string;
  readonly port: number;
  readonly onError?: (message: string) => void;
}

export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const { exposition } = options;
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('not found: try /metrics\n');
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end();
      return;
    }
    exposition.metrics().then(
      (body) => {
        response.writeHead(200, { 'content-type': exposition.contentType });
        response.end(request.method === 'HEAD' ? undefined : body);
      },
      (err: unknown) => {
        options.onError?.(`collecting /metrics failed: ${describeError(err)}`);
        response.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end('collecting metrics failed\n');
      },
    );
  });
  // Scrapes are small and periodic: no slow client holds a socket for long.
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: options.host, port: options.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}
