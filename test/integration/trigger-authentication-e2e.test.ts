// TriggerAuthentication end to end: a trigger's credentials come from a Secret (through a TriggerAuthentication, or
// through the scale target's environment with `hostFromEnv`), the object heals when a missing Secret appears, and
// the secret never shows in status or in sluice's log.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import amqp from 'amqplib';
import { CoreV1Api } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNamespace, deleteNamespace, kubeConfig, loadTestEnv, rabbitmqApi, uniqueName } from '../support/env.ts';
import { ScalingTestKit } from '../support/scaling.ts';
import { startSluice, type SluiceProcess } from '../support/sluice.ts';

describe('TriggerAuthentication end to end', () => {
  let kit: ScalingTestKit;
  let core: CoreV1Api;
  let sluice: SluiceProcess;
  let connection: amqp.ChannelModel;
  let channel: amqp.Channel;
  const user = uniqueName('sluice-e2e');
  const password = `pw-${randomBytes(12).toString('hex')}`;
  let hostWithSecret = '';

  beforeAll(async () => {
    const kc = kubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    sluice = await startSluice({ logName: 'sluice-trigger-auth.log' });
    kit = new ScalingTestKit(kc, await createNamespace(kc, 'triggerauth'));
    // A broker user that only this test knows.
    const put = (path: string, body: unknown) =>
      rabbitmqApi(path, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    expect((await put(`/api/users/${user}`, { password, tags: 'monitoring' })).status).toBeLessThan(300);
    expect(
      (await put(`/api/permissions/%2F/${user}`, { configure: '.*', write: '.*', read: '.*' })).status,
    ).toBeLessThan(300);
    const url = new URL(loadTestEnv().rabbitmq.managementUrl);
    url.username = user;
    url.password = password;
    hostWithSecret = url.href;
    connection = await amqp.connect(loadTestEnv().rabbitmq.amqpUrl);
    channel = await connection.createChannel();
  });

  afterAll(async () => {
    await channel.close().catch(() => undefined);
    await connection.close().catch(() => undefined);
    await rabbitmqApi(`/api/users/${user}`, { method: 'DELETE' });
    await deleteNamespace(kit.kc, kit.namespace);
    await sluice.stop();
    // Nothing sluice logged during the whole file contains the password.
    expect(readFileSync(sluice.logFile, 'utf8')).not.toContain(password);
  });

  const createSecret = (name: string, data: Record<string, string>) =>
    core.createNamespacedSecret({ namespace: kit.namespace, body: { metadata: { name }, stringData: data } });

  const createTriggerAuthentication = (name: string, secret: string) =>
    kit.createTriggerAuthentication(name, { secretTargetRef: [{ parameter: 'host', name: secret, key: 'host' }] });

  it('scales with credentials from a Secret, and heals when a missing Secret appears', async () => {
    const queue = uniqueName('ta');
    await channel.assertQueue(queue, { durable: false });
    await kit.createDeployment('consumer', 0);
    // The Secret does not exist yet.
    await createTriggerAuthentication('rabbit-auth', 'rabbit-secret');
    await kit.createScaledObject('with-auth', {
      scaleTargetRef: { name: 'consumer' },
      maxReplicaCount: 5,
      pollingInterval: 1,
      cooldownPeriod: 5,
      triggers: [
        {
          type: 'rabbitmq',
          authenticationRef: { name: 'rabbit-auth' },
          metadata: { queueName: queue, mode: 'QueueLength', value: '5' },
        },
      ],
    });
    const failed = await kit.waitForCondition('with-auth', 'Ready', 'ScaledObjectCheckFailed');
    expect(failed.status).toBe('False');
    expect(failed.message).toContain('Secret "rabbit-secret" not found');

    await createSecret('rabbit-secret', { host: hostWithSecret });
    await kit.waitForCondition('with-auth', 'Ready', 'ScaledObjectReady', 90_000);
    for (let i = 0; i < 12; i++) channel.sendToQueue(queue, Buffer.from(`m${i}`));
    await kit.waitForReplicas('consumer', 3); // ceil(12 / 5)

    const status = JSON.stringify(await kit.scaledObject('with-auth'));
    expect(status).not.toContain(password);
    await channel.purgeQueue(queue);
    await kit.waitForReplicas('consumer', 0, 90_000);
  });

  it('reads the host from the scale target container with hostFromEnv', async () => {
    const queue = uniqueName('env');
    await channel.assertQueue(queue, { durable: false });
    await createSecret('env-secret', { url: hostWithSecret });
    await kit.apps.createNamespacedDeployment({
      namespace: kit.namespace,
      body: {
        metadata: { name: 'env-consumer' },
        spec: {
          replicas: 0,
          selector: { matchLabels: { app: 'env-consumer' } },
          template: {
            metadata: { labels: { app: 'env-consumer' } },
            spec: {
              containers: [
                {
                  name: 'worker',
                  image: 'registry.invalid/worker:1',
                  env: [{ name: 'RABBIT_URL', valueFrom: { secretKeyRef: { name: 'env-secret', key: 'url' } } }],
                },
              ],
            },
          },
        },
      },
    });
    await kit.createScaledObject('from-env', {
      scaleTargetRef: { name: 'env-consumer' },
      pollingInterval: 1,
      cooldownPeriod: 5,
      triggers: [
        {
          type: 'rabbitmq',
          metadata: { hostFromEnv: 'RABBIT_URL', queueName: queue, mode: 'QueueLength', value: '5' },
        },
      ],
    });
    for (let i = 0; i < 7; i++) channel.sendToQueue(queue, Buffer.from(`m${i}`));
    await kit.waitForReplicas('env-consumer', 2); // ceil(7 / 5)
    expect(JSON.stringify(await kit.scaledObject('from-env'))).not.toContain(password);
  });

  it('names a missing TriggerAuthentication in Ready=False, and creates no HPA', async () => {
    await kit.createDeployment('nobody', 0);
    await kit.createScaledObject('no-auth', {
      scaleTargetRef: { name: 'nobody' },
      triggers: [{ type: 'rabbitmq', authenticationRef: { name: 'does-not-exist' }, metadata: { queueName: 'q' } }],
    });
    const ready = await kit.waitForCondition('no-auth', 'Ready', 'ScaledObjectCheckFailed');
    expect(ready.message).toContain('spec.triggers[0].authenticationRef');
    expect(ready.message).toContain('"does-not-exist" not found');
    await expect(
      kit.autoscaling.readNamespacedHorizontalPodAutoscaler({ name: 'sluice-hpa-no-auth', namespace: kit.namespace }),
    ).rejects.toMatchObject({ code: 404 });
  });
});
