// The KEDA knobs a production ScaledObject uses, end to end on the real control plane and broker: pause annotations,
// HPA options (custom name and behavior, rename, transfer of a hand-made HPA, labels), restoreToOriginalReplicaCount,
// one autoscaler per workload, scalingModifiers over two triggers, a cpu trigger as a Resource metric, and the
// ValidatingAdmissionPolicy of deploy/ refusing a pause annotation sluice could not parse.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import {
  AdmissionregistrationV1Api,
  ApiException,
  type V1ValidatingAdmissionPolicyBinding,
} from '@kubernetes/client-node';
import amqp from 'amqplib';
import { parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  REPO_ROOT,
  createNamespace,
  deleteNamespace,
  kubeConfig,
  loadTestEnv,
  uniqueName,
  waitFor,
} from '../support/env.ts';
import { ScalingTestKit } from '../support/scaling.ts';
import { startSluice, type SluiceProcess } from '../support/sluice.ts';

describe('KEDA knobs end to end', () => {
  let kit: ScalingTestKit;
  let sluice: SluiceProcess;
  let connection: amqp.ChannelModel;
  let channel: amqp.Channel;
  const queues: string[] = [];

  beforeAll(async () => {
    const kc = kubeConfig();
    sluice = await startSluice({ logName: 'sluice-keda-knobs-e2e.log' });
    kit = new ScalingTestKit(kc, await createNamespace(kc, 'knobs'));
    connection = await amqp.connect(loadTestEnv().rabbitmq.amqpUrl);
    channel = await connection.createChannel();
  });

  afterAll(async () => {
    for (const q of queues) await channel.deleteQueue(q).catch(() => undefined);
    await connection.close().catch(() => undefined);
    // Namespaces go before the metrics server: an unavailable APIService blocks namespace deletion.
    await deleteNamespace(kit.kc, kit.namespace);
    await sluice.stop();
  });

  async function queue(messages = 0): Promise<string> {
    const name = uniqueName('knob');
    queues.push(name);
    await channel.assertQueue(name, { durable: false });
    await publish(name, messages);
    return name;
  }

  async function publish(name: string, messages: number): Promise<void> {
    for (let i = 0; i < messages; i++) channel.sendToQueue(name, Buffer.from(`m${i}`));
    // Wait until the broker counts them, so the next step starts from a known value.
    await waitFor(async () => (await channel.checkQueue(name)).messageCount >= messages, {
      message: `${messages} messages on ${name}`,
    });
  }

  const rabbit = (queueName: string, name?: string) => ({
    type: 'rabbitmq',
    ...(name === undefined ? {} : { name }),
    metadata: { host: loadTestEnv().rabbitmq.amqpUrl, queueName, mode: 'QueueLength', value: '10' },
  });
  const base = { minReplicaCount: 0, maxReplicaCount: 10, pollingInterval: 1, cooldownPeriod: 1 };

  async function annotate(name: string, annotations: Record<string, string | null>): Promise<void> {
    await kit.patchScaledObject(name, { metadata: { annotations } });
  }

  it('paused-replicas holds the count (even 0) with no HPA; removing it brings the HPA and the scaling back', async () => {
    const q = await queue(25);
    await kit.createDeployment('pr', 0);
    await kit.createScaledObject('pr', { ...base, scaleTargetRef: { name: 'pr' }, triggers: [rabbit(q)] });
    await kit.waitForReplicas('pr', 3, 30_000); // ceil(25 / 10)

    await annotate('pr', { 'autoscaling.keda.sh/paused-replicas': '5' });
    await kit.waitForReplicas('pr', 5);
    await kit.waitForHpaGone('sluice-hpa-pr');
    const paused = await kit.waitForCondition('pr', 'Paused', 'ScaledObjectPaused');
    expect(paused.status).toBe('True');
    expect((await kit.scaledObject('pr')).status?.pausedReplicaCount).toBe(5);
    await kit.waitForEvent('pr', 'ScaledObjectPaused');
    await channel.purgeQueue(q);
    await kit.expectReplicasStay('pr', 5, 4000);

    // 0 is a real 0 (KEDA #7663: an HPA with min 1 brought it back).
    await annotate('pr', { 'autoscaling.keda.sh/paused-replicas': '0' });
    await kit.waitForReplicas('pr', 0);
    await publish(q, 25);
    await kit.expectReplicasStay('pr', 0, 4000);

    await annotate('pr', { 'autoscaling.keda.sh/paused-replicas': null });
    await kit.waitForHpa('sluice-hpa-pr');
    expect((await kit.waitForCondition('pr', 'Paused', 'ScaledObjectUnpaused')).status).toBe('False');
    await kit.waitForEvent('pr', 'ScaledObjectUnpaused');
    await kit.waitForReplicas('pr', 3, 30_000);
  });

  it('paused freezes the current count; sluice.dev keys work the same; a bad value is Ready=False naming it', async () => {
    const q = await queue(15);
    await kit.createDeployment('pz', 0);
    await kit.createScaledObject('pz', { ...base, scaleTargetRef: { name: 'pz' }, triggers: [rabbit(q)] });
    await kit.waitForReplicas('pz', 2, 30_000);
    await annotate('pz', { 'autoscaling.sluice.dev/paused': 'true' });
    await kit.waitForHpaGone('sluice-hpa-pz');
    await publish(q, 40);
    await kit.expectReplicasStay('pz', 2, 4000);

    await annotate('pz', { 'autoscaling.sluice.dev/paused': 'sometimes' });
    const ready = await kit.waitForCondition('pz', 'Ready', 'ScaledObjectCheckFailed');
    expect(ready.message).toContain('metadata.annotations["autoscaling.sluice.dev/paused"]');
    await annotate('pz', { 'autoscaling.sluice.dev/paused': null });
    await kit.waitForHpa('sluice-hpa-pz');
    await kit.waitForReplicas('pz', 6, 30_000); // ceil(55 / 10)
  });

  it('paused-scale-in keeps the replicas when the work is gone; paused-scale-out keeps 0 when work arrives; force-activation activates', async () => {
    const qIn = await queue(25);
    await kit.createDeployment('psi', 0);
    await kit.createScaledObject('psi', { ...base, scaleTargetRef: { name: 'psi' }, triggers: [rabbit(qIn)] });
    await kit.waitForReplicas('psi', 3, 30_000);
    await annotate('psi', { 'autoscaling.keda.sh/paused-scale-in': 'true' });
    await kit.waitForCondition('psi', 'Paused', 'ScaledObjectPaused');
    const hpa = await kit.waitForHpa('sluice-hpa-psi');
    expect(hpa.spec.behavior?.scaleDown?.selectPolicy).toBe('Disabled');
    await channel.purgeQueue(qIn);
    // Inactive and past its 1 s cooldown: without the annotation it would go to 0.
    await kit.waitForCondition('psi', 'Active', 'ScalerNotActive');
    await kit.expectReplicasStay('psi', 3, 5000);

    const qOut = await queue(0);
    await kit.createDeployment('pso', 0);
    await kit.createScaledObject('pso', {
      ...base,
      scaleTargetRef: { name: 'pso' },
      triggers: [rabbit(qOut)],
    });
    await annotate('pso', { 'autoscaling.keda.sh/paused-scale-out': 'true' });
    await kit.waitForCondition('pso', 'Paused', 'ScaledObjectPaused');
    expect((await kit.waitForHpa('sluice-hpa-pso')).spec.behavior?.scaleUp?.selectPolicy).toBe('Disabled');
    await publish(qOut, 30);
    await kit.waitForCondition('pso', 'Active', 'ScalerActive');
    await kit.expectReplicasStay('pso', 0, 4000);

    const qForce = await queue(0);
    await kit.createDeployment('pfa', 0);
    await kit.createScaledObject('pfa', { ...base, scaleTargetRef: { name: 'pfa' }, triggers: [rabbit(qForce)] });
    await kit.waitForCondition('pfa', 'Active', 'ScalerNotActive');
    await annotate('pfa', { 'autoscaling.keda.sh/force-activation': 'true' });
    await kit.waitForReplicas('pfa', 1, 15_000);
    expect((await kit.condition('pfa', 'Active'))?.message).toBe(
      'Scaling is performed because activation is being forced by annotation',
    );
  });

  it('a custom HPA name and behavior, a rename, the ScaledObject labels on the HPA, and the transfer of a hand-made HPA', async () => {
    const q = await queue(0);
    await kit.createDeployment('named', 1);
    const behavior = {
      scaleDown: { stabilizationWindowSeconds: 7, policies: [{ type: 'Pods', value: 1, periodSeconds: 3 }] },
    };
    await kit.custom.createNamespacedCustomObject({
      group: 'sluice.dev',
      version: 'v1alpha1',
      namespace: kit.namespace,
      plural: 'scaledobjects',
      body: {
        apiVersion: 'sluice.dev/v1alpha1',
        kind: 'ScaledObject',
        metadata: {
          name: 'named',
          labels: { team: 'payments', secret: 'x' },
          annotations: { 'scaledobject.keda.sh/hpa-excluded-labels': 'secret' },
        },
        spec: {
          ...base,
          minReplicaCount: 1,
          scaleTargetRef: { name: 'named' },
          advanced: { horizontalPodAutoscalerConfig: { name: 'payments-hpa', behavior } },
          triggers: [rabbit(q)],
        },
      },
    });
    const hpa = await kit.waitForHpa('payments-hpa');
    expect(hpa.spec.behavior?.scaleDown).toMatchObject(behavior.scaleDown);
    expect(hpa.metadata?.labels).toMatchObject({ team: 'payments', 'scaledobject.sluice.dev/name': 'named' });
    expect(hpa.metadata?.labels?.['secret']).toBeUndefined();
    await expect(
      kit.autoscaling.readNamespacedHorizontalPodAutoscaler({ name: 'sluice-hpa-named', namespace: kit.namespace }),
    ).rejects.toMatchObject({ code: 404 });

    // Renamed: the old HPA goes, the new one comes.
    await kit.patchScaledObject('named', {
      spec: { advanced: { horizontalPodAutoscalerConfig: { name: 'payments-hpa-2' } } },
    });
    await kit.waitForHpa('payments-hpa-2');
    await kit.waitForHpaGone('payments-hpa');
    expect((await kit.scaledObject('named')).status?.hpaName).toBe('payments-hpa-2');

    // A hand-made HPA on another Deployment, taken over by name with transfer-hpa-ownership.
    await kit.createDeployment('legacy', 1);
    await kit.autoscaling.createNamespacedHorizontalPodAutoscaler({
      namespace: kit.namespace,
      body: {
        metadata: { name: 'legacy-hpa' },
        spec: {
          minReplicas: 1,
          maxReplicas: 3,
          scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'legacy' },
          behavior: { scaleUp: { stabilizationWindowSeconds: 42 } },
          metrics: [
            { type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 50 } } },
          ],
        },
      },
    });
    await kit.custom.createNamespacedCustomObject({
      group: 'sluice.dev',
      version: 'v1alpha1',
      namespace: kit.namespace,
      plural: 'scaledobjects',
      body: {
        apiVersion: 'sluice.dev/v1alpha1',
        kind: 'ScaledObject',
        metadata: { name: 'adopter', annotations: { 'scaledobject.keda.sh/transfer-hpa-ownership': 'true' } },
        spec: {
          ...base,
          minReplicaCount: 1,
          scaleTargetRef: { name: 'legacy' },
          advanced: { horizontalPodAutoscalerConfig: { name: 'legacy-hpa' } },
          triggers: [rabbit(q)],
        },
      },
    });
    const adopted = await waitFor(
      async () => {
        const h = await kit.autoscaling.readNamespacedHorizontalPodAutoscaler({
          name: 'legacy-hpa',
          namespace: kit.namespace,
        });
        return h.metadata?.ownerReferences?.some((o) => o.kind === 'ScaledObject' && o.name === 'adopter') === true
          ? h
          : undefined;
      },
      { timeoutMs: 20_000, message: 'the hand-made HPA to be taken over' },
    );
    // Nothing of the old owner's survives: sluice's metric only, no behavior it did not ask for.
    expect(adopted.spec.metrics?.map((m) => m.type)).toEqual(['External']);
    expect(adopted.spec.behavior).toBeUndefined();
    expect(adopted.spec.maxReplicas).toBe(10);
    await waitFor(async () => (await kit.scaledObject('adopter')).status?.hpaName === 'legacy-hpa', {
      message: "the adopter's status to name the HPA",
    });
  });

  it('restoreToOriginalReplicaCount: deleting the ScaledObject puts the workload back to its count from before sluice', async () => {
    const q = await queue(0);
    await kit.createDeployment('restore', 2);
    await kit.createScaledObject('restore', {
      ...base,
      scaleTargetRef: { name: 'restore' },
      advanced: { restoreToOriginalReplicaCount: true },
      triggers: [rabbit(q)],
    });
    await kit.waitForReplicas('restore', 0, 30_000);
    // Written once, from the first read of the target, and never again: a later reconcile working from an informer
    // copy that lacks it must not write the 0 it reads now (it did once: the status write is guarded by the
    // resourceVersion it was computed from).
    const original = await waitFor(async () => (await kit.scaledObject('restore')).status?.originalReplicaCount, {
      message: 'status.originalReplicaCount',
    });
    expect(original).toBe(2);
    await kit.deleteScaledObject('restore');
    await kit.waitForReplicas('restore', 2, 20_000);
    await waitFor(
      async () => {
        try {
          await kit.scaledObject('restore');
          return false;
        } catch (err) {
          return err instanceof ApiException && err.code === 404;
        }
      },
      { message: 'the ScaledObject to be gone (finalizer removed)' },
    );
  });

  it('one autoscaler per workload: a twin is refused naming the first, which keeps scaling; so is a ScaledObject on a hand-made HPA', async () => {
    const q = await queue(0);
    await kit.createDeployment('shared', 0);
    await kit.createScaledObject('first', { ...base, scaleTargetRef: { name: 'shared' }, triggers: [rabbit(q)] });
    await kit.waitForHpa('sluice-hpa-first');
    await kit.createScaledObject('twin', { ...base, scaleTargetRef: { name: 'shared' }, triggers: [rabbit(q)] });
    const refused = await kit.waitForCondition('twin', 'Ready', 'ScaledObjectCheckFailed');
    expect(refused.message).toBe(
      "the workload 'shared' of type 'apps/v1.Deployment' is already managed by the ScaledObject 'first'",
    );
    await kit.waitForEvent('twin', 'ScaledObjectCheckFailed');
    const hpas = await kit.autoscaling.listNamespacedHorizontalPodAutoscaler({ namespace: kit.namespace });
    expect(hpas.items.filter((h) => h.spec.scaleTargetRef.name === 'shared').map((h) => h.metadata?.name)).toEqual([
      'sluice-hpa-first',
    ]);
    // The first keeps scaling.
    await publish(q, 25);
    await kit.waitForReplicas('shared', 3, 30_000);
    // With the first gone, the twin takes over.
    await kit.deleteScaledObject('first');
    await kit.waitForHpa('sluice-hpa-twin', 30_000);

    await kit.createDeployment('handmade', 1);
    await kit.autoscaling.createNamespacedHorizontalPodAutoscaler({
      namespace: kit.namespace,
      body: {
        metadata: { name: 'handmade-hpa' },
        spec: { maxReplicas: 2, scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'handmade' } },
      },
    });
    await kit.createScaledObject('late', { ...base, scaleTargetRef: { name: 'handmade' }, triggers: [rabbit(q)] });
    const blocked = await kit.waitForCondition('late', 'Ready', 'ScaledObjectCheckFailed');
    expect(blocked.message).toContain("is already managed by the hpa 'handmade-hpa'");
    await kit.autoscaling.deleteNamespacedHorizontalPodAutoscaler({ name: 'handmade-hpa', namespace: kit.namespace });
    await kit.waitForHpa('sluice-hpa-late', 30_000);
  });

  it('scalingModifiers: one composite metric from a formula over two triggers; a cpu trigger is a Resource metric', async () => {
    const [qa, qb] = [await queue(12), await queue(8)];
    await kit.createDeployment('formula', 0);
    await kit.createScaledObject('formula', {
      ...base,
      scaleTargetRef: { name: 'formula' },
      advanced: {
        scalingModifiers: {
          formula: 'max(a, b) + (a ?? 0) / 2',
          target: '5',
          activationTarget: '3',
          metricType: 'AverageValue',
        },
      },
      triggers: [
        rabbit(qa, 'a'),
        { ...rabbit(qb, 'b'), metadata: { host: loadTestEnv().rabbitmq.amqpUrl, queueName: qb, mode: 'QueueLength' } },
      ],
    });
    const hpa = await kit.waitForHpa('sluice-hpa-formula');
    expect(hpa.spec.metrics).toEqual([
      {
        type: 'External',
        external: {
          metric: {
            name: 'composite-metric',
            selector: { matchLabels: { 'scaledobject.sluice.dev/name': 'formula' } },
          },
          target: { type: 'AverageValue', averageValue: '5' },
        },
      },
    ]);
    // max(12, 8) + 12 / 2 = 18 → ceil(18 / 5) = 4 replicas.
    await waitFor(
      async () =>
        (await kit.externalMetric('composite-metric', ScalingTestKit.selectorFor('formula'))).values[0] === '18',
      { timeoutMs: 20_000, message: 'the composite metric to read 18' },
    );
    await kit.waitForReplicas('formula', 4, 30_000);
    expect((await kit.scaledObject('formula')).status).toMatchObject({ compositeScalerName: 'composite-metric' });

    await kit.createDeployment('cpu', 1);
    await kit.createScaledObject('cpu', {
      minReplicaCount: 1,
      maxReplicaCount: 5,
      scaleTargetRef: { name: 'cpu' },
      triggers: [
        { type: 'cpu', metricType: 'Utilization', metadata: { value: '60' } },
        { type: 'memory', metricType: 'AverageValue', metadata: { value: '512Mi', containerName: 'worker' } },
      ],
    });
    const cpuHpa = await kit.waitForHpa('sluice-hpa-cpu');
    expect(cpuHpa.spec.metrics).toEqual([
      {
        type: 'ContainerResource',
        containerResource: {
          name: 'memory',
          container: 'worker',
          target: { type: 'AverageValue', averageValue: '512Mi' },
        },
      },
      { type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 60 } } },
    ]);
    expect((await kit.scaledObject('cpu')).status).toMatchObject({ resourceMetricNames: ['cpu', 'memory'] });
  });

  it("deploy/'s ValidatingAdmissionPolicy refuses a pause annotation sluice could not parse, naming it", async () => {
    const admission = kit.kc.makeApiClient(AdmissionregistrationV1Api);
    const docs = parseAllDocuments(readFileSync(path.join(REPO_ROOT, 'deploy', 'admission-policy.yaml'), 'utf8')).map(
      (d) => d.toJS() as Record<string, unknown>,
    );
    const policy = docs.find((d) => d['kind'] === 'ValidatingAdmissionPolicy') as { spec: Record<string, unknown> };
    const binding = docs.find((d) => d['kind'] === 'ValidatingAdmissionPolicyBinding') as {
      spec: Record<string, unknown>;
    };
    // Scoped to this test's namespace, so other tests never meet it.
    const name = uniqueName('sluice-annotations');
    await admission.createValidatingAdmissionPolicy({
      body: { metadata: { name }, spec: policy.spec },
    });
    await admission.createValidatingAdmissionPolicyBinding({
      body: {
        metadata: { name },
        spec: {
          ...binding.spec,
          policyName: name,
          matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': kit.namespace } } },
        },
      } as unknown as V1ValidatingAdmissionPolicyBinding,
    });
    try {
      const create = (annotations: Record<string, string>) =>
        kit.custom.createNamespacedCustomObject({
          group: 'sluice.dev',
          version: 'v1alpha1',
          namespace: kit.namespace,
          plural: 'scaledobjects',
          body: {
            apiVersion: 'sluice.dev/v1alpha1',
            kind: 'ScaledObject',
            metadata: { name: uniqueName('vap'), annotations },
            spec: { scaleTargetRef: { name: 'nothing' }, triggers: [rabbit('q')] },
          },
        });
      const refusal = await waitFor(
        async () => {
          try {
            await create({ 'autoscaling.keda.sh/paused-replicas': 'three' });
            return undefined;
          } catch (err) {
            return err instanceof ApiException && err.code === 422 ? String(err.body) : undefined;
          }
        },
        { timeoutMs: 20_000, intervalMs: 500, message: 'the policy to refuse a bad paused-replicas' },
      );
      expect(refusal).toContain('metadata.annotations[\\"autoscaling.keda.sh/paused-replicas\\"]');
      await expect(create({ 'autoscaling.sluice.dev/paused': 'maybe' })).rejects.toMatchObject({ code: 422 });
      await create({ 'autoscaling.keda.sh/paused-replicas': '3', 'autoscaling.keda.sh/paused': 'true' });
    } finally {
      await admission.deleteValidatingAdmissionPolicyBinding({ name });
      await admission.deleteValidatingAdmissionPolicy({ name });
    }
  });
});
