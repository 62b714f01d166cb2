// Dropped watches, end to end: sluice talks to kube-apiserver through a TCP proxy (test/support/tcp-proxy.ts) that cuts
// every connection through it (its watches included) once, then repeatedly and for seconds on end, while kube-apiserver
// itself runs on. Changes made while sluice is cut off (a ScaledObject created, one's maxReplicaCount edited, one
// deleted, a queue filled under an idle object) must be picked up within BOUND_MS of the connections being let through
// again; no HPA may be lost and nothing scaled to zero by the fault (every queue keeps its messages, so a scale to zero
// could only come from the fault).
//
// A dropped watch is resumed from the last resourceVersion sluice saw, without listing again: kube-apiserver sends
// the events since then ("Efficient detection of changes",
// https://kubernetes.io/docs/reference/using-api/api-concepts/#efficient-detection-of-changes). So the test also
// checks that sluice listed nothing again and that its Deployment cache serves replicas again afterwards (at rest no
// scaling loop tick reads /scale).
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNamespace, deleteNamespace, kubeConfig, uniqueName, waitFor } from '../support/env.ts';
import { ScalingTestKit, openTestQueues, type TestQueues } from '../support/scaling.ts';
import { kubeRequestCount, scrapeOwnMetrics, type SluiceProcess } from '../support/sluice.ts';
import { startSluiceBehindProxy, type TcpProxy } from '../support/tcp-proxy.ts';

/**
 * How soon after the connections pass again each change is seen: the informers' longest restart backoff (8 s,
 * src/operator/informers.ts MAX_BACKOFF_MS) plus a reconcile and an HPA controller sync (1 s in the test environment).
 */
const BOUND_MS = 20_000;

describe('dropped watches e2e: every connection between sluice and kube-apiserver cut, once and repeatedly', () => {
  let proxy: TcpProxy | undefined;
  let sluice: SluiceProcess | undefined;
  let kit: ScalingTestKit | undefined;
  let broker: TestQueues | undefined;
  const queues = Object.fromEntries(
    ['a', 'b', 'c', 'd', 'e', 'idle1', 'idle2'].map((name) => [name, uniqueName(`dw-${name}`)]),
  );
  const queueOf = (name: string): string => queues[name] ?? name;

  /** A Deployment at 0 and its ScaledObject; `messages` in its queue make it active (1 replica at a target of 10). */
  const create = async (name: string, messages: number): Promise<void> => {
    for (let m = 0; m < messages; m++) broker?.channel.sendToQueue(queueOf(name), Buffer.from('work'));
    await kit?.createQueueScaledObject(name, queueOf(name));
  };

  beforeAll(async () => {
    ({ proxy, sluice } = await startSluiceBehindProxy('dropped-watch-e2e'));
    const kc = kubeConfig();
    kit = new ScalingTestKit(kc, await createNamespace(kc, 'dropped-watch'));
    broker = await openTestQueues(Object.values(queues));
    for (const name of ['a', 'b', 'c']) await create(name, 3);
    for (const name of ['idle1', 'idle2']) await create(name, 0);
  });

  afterAll(async () => {
    proxy?.release();
    await broker?.close();
    // Namespaces go before the metrics server: an unavailable APIService blocks namespace deletion.
    if (kit) await deleteNamespace(kit.kc, kit.namespace);
    await sluice?.stop();
    await proxy?.close();
  });

  const hpa = (name: string) => kit?.sluiceHpa(name);
  const gone = async (name: string) => (await kit?.scaledObjectGone(name)) === true;
  /** Every object of `active` at ≥ 1 replica with its HPA; every one of `idle` with its HPA. */
  const settled = async (active: readonly string[], idle: readonly string[]): Promise<boolean> => {
    for (const name of active) if (((await kit?.replicas(name)) ?? 0) < 1) return false;
    for (const name of [...active, ...idle]) if ((await hpa(name)) === undefined) return false;
    return true;
  };
  /** Waits for each probe within `boundMs` of `since` and returns how long each took (s), for the log. */
  const converge = async (since: number, boundMs: number, probes: Record<string, () => Promise<boolean>>) => {
    const took: Record<string, string> = {};
    await Promise.all(
      Object.entries(probes).map(async ([what, probe]) => {
        await waitFor(probe, { timeoutMs: boundMs - (performance.now() - since), intervalMs: 250, message: what });
        took[what] = ((performance.now() - since) / 1000).toFixed(1);
      }),
    );
    return took;
  };
  const listsOfScaledObjects = async () =>
    kubeRequestCount(await scrapeOwnMetrics(sluice?.metricsPort), 'list', 'sluice.dev/scaledobjects');
  const logSince = (offset: number): string => readFileSync(sluice?.logFile ?? '', 'utf8').slice(offset);
  /** A scaling loop tick at rest reads replicas from the Deployment cache: no GET of /scale in 5 s. */
  const expectScaleReadsFromCache = async (): Promise<void> => {
    const scaleGets = async () =>
      kubeRequestCount(await scrapeOwnMetrics(sluice?.metricsPort), 'get', 'apps/deployments/scale');
    await waitFor(
      async () => {
        const before = await scaleGets();
        await sleep(5000);
        return (await scaleGets()) === before;
      },
      {
        timeoutMs: 30_000,
        intervalMs: 0,
        message: 'no GET of /scale during 5 s at rest (the Deployment cache serves)',
      },
    );
  };

  it('one cut: resumes every watch from where it was, picks up four changes, loses nothing', async () => {
    if (!kit || !proxy || !sluice) throw new Error('setup failed');
    await waitFor(() => settled(['a', 'b', 'c'], ['idle1', 'idle2']), {
      timeoutMs: 60_000,
      intervalMs: 500,
      message: 'a, b, c running and every HPA made',
    });
    expect(await kit.replicas('idle1')).toBe(0);
    await expectScaleReadsFromCache();
    const lists = await listsOfScaledObjects();
    const logStart = readFileSync(sluice.logFile, 'utf8').length;

    const cut = proxy.cut();
    const since = performance.now();
    // Its watches (ScaledObjects, HPAs, TriggerAuthentications ×2, Deployments, StatefulSets) at least.
    expect(cut).toBeGreaterThanOrEqual(6);
    await create('d', 3);
    await kit.patchScaledObject('a', { spec: { maxReplicaCount: 7 } });
    await kit.deleteScaledObject('b');
    for (let m = 0; m < 5; m++) broker?.channel.sendToQueue(queueOf('idle1'), Buffer.from('work'));

    const took = await converge(since, BOUND_MS, {
      'HPA of the new d': async () => (await hpa('d')) !== undefined,
      'd running': async () => (await kit?.replicas('d')) === 1,
      'a maxReplicas 7': async () => (await hpa('a'))?.spec.maxReplicas === 7,
      'b finalized and gone': () => gone('b'),
      'idle1 scaled from zero': async () => ((await kit?.replicas('idle1')) ?? 0) >= 1,
    });
    console.log(`[measure] one cut of ${String(cut)} connections: seen after (s) ${JSON.stringify(took)}`);

    expect(await settled(['a', 'c', 'd', 'idle1'], ['idle2'])).toBe(true);
    const log = logSince(logStart);
    expect(log).not.toMatch(/"msg":"scaled [^"]* to 0"/);
    // The watches broke and were resumed from their resourceVersion; nothing was listed again.
    expect(log).toMatch(/watch of ScaledObjects ended/);
    expect(log).toMatch(/"msg":"watch of ScaledObjects resumed from resourceVersion \d+ after \d+ ms away"/);
    expect(log).toMatch(/"msg":"watch of Deployments resumed from resourceVersion \d+ after \d+ ms away"/);
    expect(await listsOfScaledObjects()).toBe(lists);
    await expectScaleReadsFromCache();
  });

  it('held closed for 6 s, then cut again three times while reconnecting: converges within the bound', async () => {
    if (!kit || !proxy || !sluice) throw new Error('setup failed');
    const logStart = readFileSync(sluice.logFile, 'utf8').length;
    const lists = await listsOfScaledObjects();

    proxy.hold();
    await create('e', 3);
    await kit.patchScaledObject('c', { spec: { maxReplicaCount: 8 } });
    await kit.deleteScaledObject('d');
    for (let m = 0; m < 5; m++) broker?.channel.sendToQueue(queueOf('idle2'), Buffer.from('work'));
    await sleep(6000);
    proxy.release();
    const since = performance.now();
    const cuts = (async () => {
      for (let i = 0; i < 3; i++) {
        await sleep(1000);
        proxy.cut();
      }
    })();

    // Measured from the release; the bound runs from the last cut.
    const converged = converge(since, BOUND_MS + 3000, {
      'HPA of the new e': async () => (await hpa('e')) !== undefined,
      'e running': async () => (await kit?.replicas('e')) === 1,
      'c maxReplicas 8': async () => (await hpa('c'))?.spec.maxReplicas === 8,
      'd finalized and gone': () => gone('d'),
      'idle2 scaled from zero': async () => ((await kit?.replicas('idle2')) ?? 0) >= 1,
    });
    await cuts;
    const took = await converged;
    console.log(`[measure] held 6 s, then 3 cuts 1 s apart: seen after the release (s) ${JSON.stringify(took)}`);

    expect(await settled(['a', 'c', 'e', 'idle1', 'idle2'], [])).toBe(true);
    const log = logSince(logStart);
    expect(log).not.toMatch(/"msg":"scaled [^"]* to 0"/);
    expect(log).toMatch(/"msg":"watch of ScaledObjects resumed from resourceVersion \d+ after \d+ ms away"/);
    expect(await listsOfScaledObjects()).toBe(lists);
    await expectScaleReadsFromCache();
  });
});
