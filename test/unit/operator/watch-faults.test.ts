// Watch faults against a local HTTP server that speaks the list and watch of Deployments: a watch dropped mid-stream
// is resumed from its resourceVersion without a list, after which the Deployment cache serves replicas again (it once
// stayed bypassed until the next list, so every scaling loop tick read /scale from the API server for good); a watch
// answered 410 Gone lists again. Each is one info line naming the resource.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { once } from 'node:events';
import { KubeConfig } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { createWorkloadCache, type WorkloadCache } from '../../../src/operator/workloads.ts';

const TARGET = { apiVersion: 'apps/v1', kind: 'Deployment', name: 'orders', namespace: 'shop' };

/** The fake API server: lists answer one Deployment; watches do what `next` says. */
async function fakeApiServer() {
  const state = {
    lists: 0,
    watches: [] as string[],
    /** What the next Deployment watch does: hold (stream, no events), drop (reset after 100 ms), expire (410 event). */
    next: 'hold' as 'hold' | 'drop' | 'expire',
    open: new Set<ServerResponse>(),
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const json = (body: unknown) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (url.pathname === '/apis/apps/v1/statefulsets') {
      if (url.searchParams.get('watch') === 'true') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.flushHeaders();
        state.open.add(res);
        return;
      }
      json({ kind: 'StatefulSetList', metadata: { resourceVersion: '10' }, items: [] });
      return;
    }
    if (url.pathname !== '/apis/apps/v1/deployments') {
      res.writeHead(404).end();
      return;
    }
    if (url.searchParams.get('watch') !== 'true') {
      state.lists++;
      json({
        kind: 'DeploymentList',
        metadata: { resourceVersion: '10' },
        items: [{ metadata: { ...TARGET, uid: 'u1', resourceVersion: '9' }, spec: { replicas: 3 }, status: {} }],
      });
      return;
    }
    state.watches.push(url.searchParams.get('resourceVersion') ?? '');
    res.writeHead(200, { 'content-type': 'application/json' });
    res.flushHeaders();
    state.open.add(res);
    const mode = state.next;
    state.next = 'hold';
    if (mode === 'drop') setTimeout(() => req.socket.resetAndDestroy(), 100);
    if (mode === 'expire') {
      res.end(
        `${JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired', message: 'too old resource version: 10 (20)' } })}\n`,
      );
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server: `http://127.0.0.1:${String(port)}`, skipTLSVerify: true }],
    users: [{ name: 'nobody' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'nobody' }],
    currentContext: 'fake',
  });
  return {
    kc,
    state,
    async close() {
      for (const res of state.open) res.destroy();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const waitUntil = async (probe: () => boolean, ms = 5000): Promise<void> => {
  const deadline = Date.now() + ms;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

describe('the Deployment cache across watch faults', () => {
  let cache: WorkloadCache | undefined;
  let api: Awaited<ReturnType<typeof fakeApiServer>> | undefined;
  afterEach(async () => {
    await cache?.stop();
    await api?.close();
  });

  it(
    'serves replicas again once a dropped watch is resumed, without a list; logs the resume',
    { timeout: 20_000 },
    async () => {
      api = await fakeApiServer();
      const lines: string[] = [];
      cache = createWorkloadCache(api.kc, (_level, message) => lines.push(message));
      await cache.start();
      await waitUntil(() => cache?.get(TARGET) !== undefined);
      expect(cache.get(TARGET)?.replicas).toBe(3);

      // The next watch is dropped as soon as it is made: make the current one end so that it is.
      api.state.next = 'drop';
      for (const res of api.state.open) res.socket?.resetAndDestroy();
      await waitUntil(() => cache?.get(TARGET) === undefined);
      // Restarted with backoff (informers.ts supervise), resumed from resourceVersion 10 each time, never listed again.
      await waitUntil(() => cache?.get(TARGET) !== undefined, 10_000);
      expect(api.state.lists).toBe(1);
      expect(api.state.watches.every((rv) => rv === '10')).toBe(true);
      expect(lines).toContainEqual(
        expect.stringMatching(/^watch of Deployments resumed from resourceVersion 10 after \d+ ms away$/),
      );
    },
  );

  it('lists again after 410 Gone and says so', async () => {
    api = await fakeApiServer();
    const lines: string[] = [];
    cache = createWorkloadCache(api.kc, (_level, message) => lines.push(message));
    await cache.start();
    await waitUntil(() => cache?.get(TARGET) !== undefined);

    api.state.next = 'expire';
    for (const res of api.state.open) res.end();
    await waitUntil(() => api?.state.lists === 2);
    await waitUntil(() => cache?.get(TARGET) !== undefined);
    expect(lines).toContain('watch of Deployments expired: resourceVersion 10 is too old (410 Gone); listing again');
    expect(lines).toContain('Deployments listed again (its resourceVersion expired (410 Gone)): 1 objects');
  });
});
