/**
 * Probe endpoints. They need no authentication at all: kubelet probes come without a client certificate.
 * Plain-text `ok` like kube-apiserver's; /readyz answers 503 until `ready()` says so.
 */
import type { FastifyPluginCallback } from 'fastify';

export interface HealthOptions {
  readonly ready: () => boolean;
}

export const healthRoutes: FastifyPluginCallback<HealthOptions> = (app, { ready }, done) => {
  app.get('/healthz', (_request, reply) => reply.type('text/plain').send('ok'));
  app.get('/livez', (_request, reply) => reply.type('text/plain').send('ok'));
  app.get('/readyz', (_request, reply) =>
    ready() ? reply.type('text/plain').send('ok') : reply.code(503).type('text/plain').send('not ready'),
  );
  done();
};
