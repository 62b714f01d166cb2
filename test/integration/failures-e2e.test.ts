// Every failure reaches the status, end to end on the real control plane: what reconcile cannot do ends as
// Ready=False with a reason naming the cause, an Event, no HPA and nothing running, and heals once the cause is gone:
// - a target that rounds to a zero Quantity (prometheus threshold 0.0004) → names the trigger; fixed by editing it;
// - an HPA the API server refuses (a ValidatingAdmissionPolicy) → quotes the server's answer; fixed by renaming the
//   HPA (advanced.horizontalPodAutoscalerConfig.name);
// - a scale target that does not exist → names spec.scaleTargetRef; fixed by creating the Deployment.
// Plus: a queue name of 120 characters (a metric name over fastify's default limit of 100) scales through the real
// HPA controller.
import {
  AdmissionregistrationV1Api,
  ApiException,
  type V1ValidatingAdmissionPolicy,
  type V1ValidatingAdmissionPolicyBinding,
} from '@kubernetes/client-node';
import amqp from 'amqplib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNamespace, deleteNamespace, kubeConfig, loadTestEnv, uniqueName, waitFor } from '../support/env.ts';
import { ScalingTestKit } from '../support/scaling.ts';
import { startSluice, type SluiceProcess } from '../support/sluice.ts';

describe('failures reach the status, and heal', () => {
  let kit: ScalingTestKit;
  let sluice: SluiceProcess;
  let admission: AdmissionregistrationV1Api;
  const policy = uniqueName('sluice-test-deny-hpa');

  beforeAll(async () => {
    const kc = kubeConfig();
    sluice = await startSluice({ logName: 'sluice-failures-e2e.log' });
    kit = new ScalingTestKit(kc, await createNamespace(kc, 'failures'));
    admission = kc.makeApiClient(AdmissionregistrationV1Api);
  });

  afterAll(async () => {
    const gone = (err: unknown) => {
      if (!(err instanceof ApiException && err.code === 404)) throw err;
    };
    await admission.deleteValidatingAdmissionPolicyBinding({ name: policy }).catch(gone);
    await admission.deleteValidatingAdmissionPolicy({ name: policy }).catch(gone);
    // Namespaces go before the metrics server: an unavailable APIService blocks namespace deletion.
    await deleteNamespace(kit.kc, kit.namespace);
    await sluice.stop();
  });

  const rabbit = (queue: string) => ({
    type: 'rabbitmq',
    metadata: { host: loadTestEnv().rabbitmq.managementUrl, queueName: queue, mode: 'QueueLength', value: '10' },
  });

  async function expectRefused(name: string, hpaName: string, ...parts: string[]): Promise<void> {
    const ready = await kit.waitForCondition(name, 'Ready', 'ScaledObjectCheckFailed');
    expect(ready.status).toBe('False');
    for (const part of parts) expect(ready.message).toContain(part);
    const event = await kit.waitForEvent(name, 'ScaledObjectCheckFailed');
    expect(event.type).toBe('Warning');
    for (const part of parts) expect(event.message).toContain(part);
    await kit.waitForHpaGone(hpaName, 10_000);
    // Nothing runs for it: no metric is served.
    expect((await kit.scaledObject(name)).status?.externalMetricNames).toBeUndefined();
  }

  it('a threshold that rounds to a zero Quantity: Ready=False naming the trigger; editing it heals', async () => {
    await kit.createDeployment('tiny', 1);
    await kit.createScaledObject('tiny', {
      scaleTargetRef: { name: 'tiny' },
      triggers: [
        {
          type: 'prometheus',
          metadata: { serverAddress: loadTestEnv().prometheus.url, query: 'vector(1)', threshold: '0.0004' },
        },
      ],
    });
    await expectRefused('tiny', 'sluice-hpa-tiny', 'spec.triggers[0]', 'greater than 0');
    await kit.patchScaledObject('tiny', {
      spec: {
        triggers: [
          {
            type: 'prometheus',
            metadata: { serverAddress: loadTestEnv().prometheus.url, query: 'vector(1)', threshold: '0.5' },
          },
        ],
      },
    });
    const hpa = await kit.waitForHpa('sluice-hpa-tiny');
    expect(hpa.spec.metrics?.[0]?.external?.target.averageValue).toBe('500m');
    expect((await kit.waitForCondition('tiny', 'Ready', 'ScaledObjectReady')).status).toBe('True');
  });

  it('an HPA the API server refuses: Ready=False quoting its answer; a new HPA name heals', async () => {
    const body: V1ValidatingAdmissionPolicy = {
      metadata: { name: policy },
      spec: {
        failurePolicy: 'Fail',
        matchConstraints: {
          resourceRules: [
            {
              apiGroups: ['autoscaling'],
              apiVersions: ['*'],
              operations: ['CREATE', 'UPDATE'],
              resources: ['horizontalpodautoscalers'],
            },
          ],
        },
        validations: [
          { expression: "!object.metadata.name.startsWith('forbidden-')", message: 'no forbidden HPAs here' },
        ],
      },
    };
    const binding: V1ValidatingAdmissionPolicyBinding = {
      metadata: { name: policy },
      spec: {
        policyName: policy,
        validationActions: ['Deny'],
        matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': kit.namespace } } },
      },
    };
    await admission.createValidatingAdmissionPolicy({ body });
    await admission.createValidatingAdmissionPolicyBinding({ body: binding });
    // The policy takes effect once the API server has loaded it: probe with an HPA of our own.
    await waitFor(
      async () => {
        try {
          await kit.autoscaling.createNamespacedHorizontalPodAutoscaler({
            namespace: kit.namespace,
            body: {
              metadata: { name: 'forbidden-probe' },
              spec: { maxReplicas: 1, scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'x' } },
            },
          });
          await kit.autoscaling.deleteNamespacedHorizontalPodAutoscaler({
            namespace: kit.namespace,
            name: 'forbidden-probe',
          });
          return false;
        } catch (err) {
          return err instanceof ApiException && err.code === 422;
        }
      },
      { timeoutMs: 20_000, intervalMs: 500, message: 'the admission policy to refuse HPAs' },
    );

    await kit.createDeployment('policed', 1);
    const spec = (hpaName: string) => ({
      scaleTargetRef: { name: 'policed' },
      advanced: { horizontalPodAutoscalerConfig: { name: hpaName } },
      triggers: [rabbit(uniqueName('q'))],
    });
    await kit.createScaledObject('policed', spec('forbidden-hpa'));
    await expectRefused('policed', 'forbidden-hpa', 'failed to ensure HPA', 'no forbidden HPAs here');
    await kit.patchScaledObject('policed', { spec: spec('allowed-hpa') });
    await kit.waitForHpa('allowed-hpa');
    await kit.waitForCondition('policed', 'Ready', 'TriggerError'); // the queue does not exist: a runtime error
  });

  it('a scale target that does not exist: Ready=False naming it; creating the target heals', async () => {
    await kit.createScaledObject('orphan', {
      scaleTargetRef: { name: 'not-yet' },
      triggers: [rabbit(uniqueName('q'))],
    });
    await expectRefused('orphan', 'sluice-hpa-orphan', 'spec.scaleTargetRef', 'not-yet');
    await kit.createDeployment('not-yet', 1);
    await kit.waitForHpa('sluice-hpa-orphan', 30_000);
    expect((await kit.condition('orphan', 'Ready'))?.reason).not.toBe('ScaledObjectCheckFailed');
  });

  it('a queue name of 120 characters scales through the real HPA', async () => {
    const suffix = uniqueName('x').slice(-12);
    const queue = `long-${'q'.repeat(120 - 'long-'.length - suffix.length - 1)}-${suffix}`;
    expect(queue).toHaveLength(120);
    const connection = await amqp.connect(loadTestEnv().rabbitmq.amqpUrl);
    try {
      const channel = await connection.createChannel();
      await channel.assertQueue(queue, { durable: false });
      for (let i = 0; i < 25; i++) channel.sendToQueue(queue, Buffer.from(`m${i}`));
      await kit.createDeployment('long', 0);
      await kit.createScaledObject('long', {
        scaleTargetRef: { name: 'long' },
        minReplicaCount: 0,
        maxReplicaCount: 5,
        pollingInterval: 1,
        triggers: [rabbit(queue)],
      });
      const metric = `s0-rabbitmq-${queue}`;
      expect(metric.length).toBeGreaterThan(100);
      // Through kube-apiserver's aggregator, as the HPA controller asks.
      await waitFor(
        async () => (await kit.externalMetric(metric, ScalingTestKit.selectorFor('long'))).values[0] === '25',
        {
          timeoutMs: 20_000,
          message: 'the metric with a 132-character name to be served',
        },
      );
      // 25 messages, target 10: the real HPA controller takes it to 3.
      await kit.waitForReplicas('long', 3, 30_000);
      await channel.deleteQueue(queue);
    } finally {
      await connection.close();
    }
  });
});
