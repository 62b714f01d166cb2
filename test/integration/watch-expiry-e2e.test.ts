// Expired watches (410 Gone), end to end: sluice talks to kube-apiserver through a TCP proxy (test/support/tcp-proxy.ts)
// that is held closed while the cluster changes and kube-apiserver restarts; when the proxy lets sluice through again,
// the resourceVersion its watches resume from is no longer served ("410 Gone responses",
// https://kubernetes.io/docs/reference/using-api/api-concepts/#410-gone-responses), so every informer must list again
// and see what changed while it was away: a ScaledObject created, one's maxReplicaCount edited, one deleted (its
// finalizer held it until sluice let it go), an HPA deleted, a queue filled under an idle object. No HPA may be lost
// and nothing scaled to zero by the fault.
//
// Why a restart: kube-apiserver serves watches from its watch cache, which keeps the recent events of each resource
// in memory (growing while they are younger than 75 s), not from etcd. Compacting etcd (even physically, after 150
// writes) does not make an old resourceVersion expire: a watch from it is still answered from the cache (tried by
// hand on the test environment's kube-apiserver 1.37). A restarted kube-apiserver starts its watch cache at etcd's
// current revision, so a watch from any older resourceVersion is answered "too old resource version" (410): the test
// checks that by hand before letting sluice through, so it proves it exercised the 410 path, not just a reconnect.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createNamespace,
  deleteNamespace,
  killApiserver,
  kubeConfig,
  runEnvUp,
  uniqueName,
  waitFor,
} from '../support/env.ts';
import { GROUP, ScalingTestKit, VERSION, openTestQueues, type TestQueues } from '../support/scaling.ts';
import { kubeRequestCount, scrapeOwnMetrics, type SluiceProcess } from '../support/sluice.ts';
import { startSluiceBehindProxy, type TcpProxy } from '../support/tcp-proxy.ts';

/**
 * How soon after the proxy lets sluice through again each change is seen: the informers' longest restart backoff
 * (8 s, src/operator/informers.ts MAX_BACKOFF_MS) plus a list, a reconcile and an HPA controller sync (1 s here).
 */
const BOUND_MS = 20_000;

describe('expired watches e2e: sluice away while kube-apiserver restarts resumes with 410 Gone and lists again', () => {
  let proxy: TcpProxy | undefined;
  let sluice: SluiceProcess | undefined;
  let kit: ScalingTestKit | undefined;
  let broker: TestQueues | undefined;
  const queues = Object.fromEntries(['a', 'b', 'c', 'n', 'idle'].map((name) => [name, uniqueName(`wx-${name}`)]));
  const queueOf = (name: string): string => queues[name] ?? name;

  const create = async (name: string, messages: number): Promise<void> => {
    for (let m = 0; m < messages; m++) broker?.channel.sendToQueue(queueOf(name), Buffer.from('work'));
    await kit?.createQueueScaledObject(name, queueOf(name));
  };

  beforeAll(async () => {
    ({ proxy, sluice } = await startSluiceBehindProxy('watch-expiry-e2e'));
    const kc = kubeConfig();
    kit = new ScalingTestKit(kc, await createNamespace(kc, 'watch-expiry'));
    broker = await openTestQueues(Object.values(queues));
    for (const name of ['a', 'b', 'c']) await create(name, 3);
    await create('idle', 0);
  });

  afterAll(async () => {
    // kube-apiserver must run again whatever happened (other tests share it).
    await runEnvUp();
    proxy?.release();
    await broker?.close();
    // Namespaces go before the metrics server: an unavailable APIService blocks namespace deletion.
    if (kit) await deleteNamespace(kit.kc, kit.namespace);
    await sluice?.stop();
    await proxy?.close();
  }, 300_000);

  const hpa = (name: string) => kit?.sluiceHpa(name);
  const running = async (names: readonly string[]): Promise<boolean> => {
    for (const name of names) {
      if (((await kit?.replicas(name)) ?? 0) < 1 || (await hpa(name)) === undefined) return false;
    }
    return true;
  };
  const listsOf = async (resource: string) =>
    kubeRequestCount(await scrapeOwnMetrics(sluice?.metricsPort), 'list', resource);

  it('lists again after 410 Gone, sees five changes made while away within 20 s, loses no HPA', async () => {
    if (!kit || !proxy || !sluice) throw new Error('setup failed');
    await waitFor(async () => (await running(['a', 'b', 'c'])) && (await hpa('idle')) !== undefined, {
      timeoutMs: 60_000,
      intervalMs: 500,
      message: 'a, b, c running and every HPA made',
    });
    const lists = {
      scaledObjects: await listsOf('sluice.dev/scaledobjects'),
      hpas: await listsOf('autoscaling/horizontalpodautoscalers'),
      deployments: await listsOf('apps/deployments'),
    };
    const logStart = readFileSync(sluice.logFile, 'utf8').length;

    proxy.hold();
    // Not older than any resourceVersion sluice's ScaledObject watch holds now.
    const soPath = `/apis/${GROUP}/${VERSION}/scaledobjects`;
    const before = JSON.parse((await kit.kubeGet(soPath)).text) as { metadata: { resourceVersion: string } };
    const heldRv = before.metadata.resourceVersion;

    await create('n', 3);
    await kit.patchScaledObject('a', { spec: { maxReplicaCount: 7 } });
    await kit.deleteScaledObject('b');
    await kit.autoscaling.deleteNamespacedHorizontalPodAutoscaler({ name: 'sluice-hpa-c', namespace: kit.namespace });
    for (let m = 0; m < 5; m++) broker?.channel.sendToQueue(queueOf('idle'), Buffer.from('work'));

    await killApiserver();
    const up = await runEnvUp();
    expect(up.code, up.output).toBe(0);

    // The restarted kube-apiserver no longer serves a watch from where sluice's watches stand.
    const answer = await waitFor(
      async () => {
        const reply = await kit?.kubeGet(`${soPath}?watch=true&timeoutSeconds=5&resourceVersion=${heldRv}`);
        return reply?.status === 200 && reply.text.includes('"type"') ? reply.text : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 500, message: `a watch from resourceVersion ${heldRv} to be answered` },
    );
    expect(answer).toMatch(/"type":"ERROR".*"code":410/);
    expect(answer).toContain('too old resource version');

    proxy.release();
    const since = performance.now();
    const took: Record<string, string> = {};
    await Promise.all(
      Object.entries({
        'HPA of the new n': async () => (await hpa('n')) !== undefined,
        'n running': async () => (await kit?.replicas('n')) === 1,
        'a maxReplicas 7': async () => (await hpa('a'))?.spec.maxReplicas === 7,
        'b finalized and gone': async () => (await kit?.scaledObjectGone('b')) === true,
        'HPA of c made again': async () => (await hpa('c')) !== undefined,
        'idle scaled from zero': async () => ((await kit?.replicas('idle')) ?? 0) >= 1,
      }).map(async ([what, probe]) => {
        await waitFor(probe, { timeoutMs: BOUND_MS - (performance.now() - since), intervalMs: 250, message: what });
        took[what] = ((performance.now() - since) / 1000).toFixed(1);
      }),
    );
    console.log(`[measure] after the release, seen after (s) ${JSON.stringify(took)}`);

    expect(await running(['a', 'c', 'n', 'idle'])).toBe(true);
    const log = readFileSync(sluice.logFile, 'utf8').slice(logStart);
    expect(log).not.toMatch(/"msg":"scaled [^"]* to 0"/);
    // sluice's informers took the 410 path: each says so, and listed again.
    for (const name of ['ScaledObjects', 'HPAs', 'Deployments']) {
      expect(log).toMatch(
        new RegExp(`"msg":"watch of ${name} expired: resourceVersion \\d+ is too old \\(410 Gone\\)`),
      );
      expect(log).toMatch(new RegExp(`"msg":"${name} listed again \\(its resourceVersion expired \\(410 Gone\\)\\)`));
    }
    for (const line of log.split('\n').filter((l) => l.includes('listed again'))) {
      const { msg, awayMs } = JSON.parse(line) as { msg: string; awayMs?: number };
      console.log(`[measure] ${msg}: away ${String(awayMs)} ms`);
    }
    expect(await listsOf('sluice.dev/scaledobjects')).toBeGreaterThan(lists.scaledObjects);
    expect(await listsOf('autoscaling/horizontalpodautoscalers')).toBeGreaterThan(lists.hpas);
    expect(await listsOf('apps/deployments')).toBeGreaterThan(lists.deployments);
    // Nothing scaled to zero since: a and c keep their replicas for a few seconds more.
    await sleep(3000);
    expect(await running(['a', 'c'])).toBe(true);
  });
});
