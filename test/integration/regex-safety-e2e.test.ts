// A catastrophic regular expression does not stall the process (src/scalers/exposition.ts), end to end on the real
// control plane. One ScaledObject's metrics-api trigger (`format: prometheus`) selects `queue=~"(a+)+"` from an
// exporter that serves a label value of 4 000 `a`s and a `!` (a JavaScript RegExp would backtrack for longer than
// the universe has existed, on the one event loop that serves every namespace) beside a series that matches. A second
// ScaledObject reads an ordinary metric. While the hostile trigger is read about once a second, the HPA's path to the
// ordinary metric, kube-apiserver → the aggregator → sluice, keeps answering in under 100 ms every time, and both
// objects scale: the hostile one on the right value, so the catastrophic pattern was evaluated, and correctly.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNamespace, deleteNamespace, kubeConfig, waitFor } from '../support/env.ts';
import { EXPOSITION_TYPE, startMetricServer, type MetricServer } from '../support/metric-server.ts';
import { ScalingTestKit, type ExternalMetricReply } from '../support/scaling.ts';
import { startSluice, type SluiceProcess } from '../support/sluice.ts';

/** Under MAX_LABEL_VALUE_LENGTH (4096): the pattern must examine it, not the length limit refuse it. */
const HOSTILE_VALUE = `${'a'.repeat(4000)}!`;
const SAMPLES = 30;
const SAMPLING_MS = 10_000;
const BOUND_MS = 100;
/** A stalled process never answers: fail the request (and so the test) instead of waiting for it. */
const REQUEST_TIMEOUT_MS = 5000;

describe('regex safety e2e: a catastrophic pattern in one trigger does not stall the others', () => {
  let kit: ScalingTestKit | undefined;
  let sluice: SluiceProcess | undefined;
  let api: MetricServer;

  beforeAll(async () => {
    api = await startMetricServer();
    api.respond = (req) => {
      if (req.url === '/hostile') {
        return {
          body: `# TYPE queue_depth gauge\nqueue_depth{queue="${HOSTILE_VALUE}"} 100\nqueue_depth{queue="aaaa"} 7\n`,
          contentType: EXPOSITION_TYPE,
        };
      }
      if (req.url === '/steady') {
        return { body: '# TYPE jobs_waiting gauge\njobs_waiting{queue="orders"} 10\n', contentType: EXPOSITION_TYPE };
      }
      return { status: 404, body: 'not found' };
    };
    sluice = await startSluice({ logName: 'sluice-regex-safety-e2e.log' });
    const kc = kubeConfig();
    kit = new ScalingTestKit(kc, await createNamespace(kc, 'regex-safety-e2e'));
  });

  afterAll(async () => {
    try {
      // Namespaces go before the metrics server: an unavailable APIService blocks namespace deletion.
      if (kit) await deleteNamespace(kit.kc, kit.namespace);
    } finally {
      // Even when that failed (a stalled sluice is this test's failure): a stalled process must not outlive the run.
      await sluice?.stop();
      await api.close();
    }
  });

  const scaledObject = (name: string, valueLocation: string) => ({
    scaleTargetRef: { name },
    minReplicaCount: 0,
    maxReplicaCount: 2,
    pollingInterval: 1,
    cooldownPeriod: 1,
    triggers: [
      {
        type: 'metrics-api',
        metadata: { url: `${api.url}/${name}`, format: 'prometheus', valueLocation, targetValue: '5' },
      },
    ],
  });

  it('the other object’s metric answers in < 100 ms throughout, and both objects scale', async () => {
    if (!kit) throw new Error('setup failed');
    const k = kit;
    await k.createDeployment('hostile', 0);
    await k.createDeployment('steady', 0);
    await k.createScaledObject('hostile', scaledObject('hostile', 'queue_depth{queue=~"(a+)+"}'));
    await k.createScaledObject('steady', scaledObject('steady', 'jobs_waiting{queue="orders"}'));
    const metricOf = async (name: string): Promise<string> => {
      const hpa = await k.waitForHpa(`sluice-hpa-${name}`);
      const metric = hpa.spec.metrics?.[0]?.external?.metric.name;
      if (metric === undefined) throw new Error(`the HPA of ${name} has no external metric`);
      return metric;
    };
    const hostileMetric = await metricOf('hostile');
    const steadyMetric = await metricOf('steady');
    const read = async (metric: string, name: string): Promise<ExternalMetricReply> => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => {
          reject(new Error(`GET ${metric} took more than ${REQUEST_TIMEOUT_MS} ms: the process is stalled`));
        }, REQUEST_TIMEOUT_MS);
      });
      try {
        return await Promise.race([k.externalMetric(metric, ScalingTestKit.selectorFor(name)), timeout]);
      } finally {
        clearTimeout(timer);
      }
    };

    // The catastrophic pattern selects the one series it matches: 7 (RE2, fully anchored, evaluated each read).
    await waitFor(async () => (await read(hostileMetric, 'hostile')).values[0] === '7', {
      timeoutMs: 30_000,
      message: 'the hostile object’s metric to read 7',
    });
    await waitFor(async () => (await read(steadyMetric, 'steady')).values[0] === '10', {
      timeoutMs: 30_000,
      message: 'the steady object’s metric to read 10',
    });
    for (let i = 0; i < 3; i++) await read(steadyMetric, 'steady'); // warm connections, as the HPA controller's are

    // 30 requests spread over 10 s, while the hostile trigger is read about once a second.
    const hostileReads = () => api.requests.filter((r) => r.url === '/hostile').length;
    const readsBefore = hostileReads();
    const latencies: number[] = [];
    const start = performance.now();
    for (let i = 0; i < SAMPLES; i++) {
      const slot = start + (i * SAMPLING_MS) / SAMPLES;
      await sleep(Math.max(0, slot - performance.now()));
      const t0 = performance.now();
      const reply = await read(steadyMetric, 'steady');
      latencies.push(performance.now() - t0);
      expect(reply.status).toBe(200);
      expect(reply.values).toEqual(['10']);
    }
    const readsDuring = hostileReads() - readsBefore;
    const sorted = [...latencies].sort((a, b) => a - b);
    console.log(
      `[measure] regex safety: ${SAMPLES} metric requests over ${SAMPLING_MS / 1000} s during ${readsDuring} hostile ` +
        `reads: median ${sorted[SAMPLES >> 1]?.toFixed(1)} ms, max ${sorted.at(-1)?.toFixed(1)} ms`,
    );
    // The hostile exporter really was read (and matched) throughout the sampling.
    expect(readsDuring).toBeGreaterThanOrEqual(5);
    expect((await read(hostileMetric, 'hostile')).values).toEqual(['7']);
    for (const [i, ms] of latencies.entries()) expect(ms, `request ${i + 1} of ${SAMPLES}`).toBeLessThan(BOUND_MS);

    // Both objects scale: 10 / 5 and 7 / 5 both want 2 replicas.
    await k.waitForReplicas('steady', 2, 90_000);
    await k.waitForReplicas('hostile', 2, 90_000);
  });
});
