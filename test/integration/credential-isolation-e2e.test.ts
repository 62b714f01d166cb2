// Credential isolation end to end (docs/security.md#credentials), with `sluice operator --local` and two local HTTP
// servers: the one a TriggerAuthentication's credentials are meant for, and one a ScaledObject author would like them
// sent to. Whoever may write a ScaledObject may use a (Cluster)TriggerAuthentication that allows it, but:
// - a ClusterTriggerAuthentication not allowed for the ScaledObject's namespace gives Ready=False naming the field
//   and the rule, and no request carries its credential at all; once the namespace is labelled to match its
//   allowedNamespaceSelector, the same ScaledObject scales with it;
// - trigger metadata that points a TriggerAuthentication's credentials at another host (metrics-api `url`, rabbitmq
//   `host`) gives Ready=False naming that field, and the other host sees nothing.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createNamespace, deleteNamespace, kubeConfig, uniqueName, waitFor } from '../support/env.ts';
import { startMetricServer, type MetricServer } from '../support/metric-server.ts';
import { GROUP, ScalingTestKit, VERSION } from '../support/scaling.ts';
import { startSluice, type SluiceProcess } from '../support/sluice.ts';

/** How long a refused ScaledObject is watched for requests (several polling intervals of 1 s). */
const QUIET_MS = 5000;

describe('credential isolation end to end', () => {
  let kit: ScalingTestKit;
  let core: CoreV1Api;
  let sluice: SluiceProcess;
  let clusterNs = '';
  let intended: MetricServer;
  let elsewhere: MetricServer;
  const ctaName = uniqueName('isolation');
  const team = uniqueName('team');
  const LABEL = 'sluice-e2e/credentials';
  // Credentials only this file knows; none may reach a server they are not meant for, or sluice's log.
  const clusterToken = `cta-${randomBytes(16).toString('hex')}`;
  const namespacedToken = `ta-${randomBytes(16).toString('hex')}`;
  const rabbitPassword = `pw-${randomBytes(16).toString('hex')}`;
  const secrets = [
    clusterToken,
    namespacedToken,
    rabbitPassword,
    Buffer.from(`sluice:${rabbitPassword}`).toString('base64'),
  ];

  /** The requests `server` received that carry any of the credentials, in a header or in the URL. */
  const carrying = (server: MetricServer) =>
    server.requests.filter((r) => secrets.some((s) => JSON.stringify([r.url, r.headers]).includes(s)));

  /** Undone in reverse order in afterAll: only what beforeAll got to create. */
  const cleanups: (() => Promise<unknown>)[] = [];

  // startSluice first: it waits (up to 10 minutes) while another test run's sluice owns the metrics APIService.
  beforeAll(async () => {
    const kc = kubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    clusterNs = uniqueName('isolation-cluster');
    sluice = await startSluice({
      logName: 'sluice-credential-isolation-e2e.log',
      extraArgs: [`--cluster-object-namespace=${clusterNs}`],
    });
    cleanups.push(async () => {
      await sluice.stop();
      const log = readFileSync(sluice.logFile, 'utf8');
      for (const secret of secrets) expect(log).not.toContain(secret);
    });
    intended = await startMetricServer();
    elsewhere = await startMetricServer();
    cleanups.push(
      () => intended.close(),
      () => elsewhere.close(),
    );
    for (const server of [intended, elsewhere]) {
      server.respond = () => ({ status: 200, body: JSON.stringify({ value: 3 }), contentType: 'application/json' });
    }
    // The ClusterTriggerAuthentication's Secrets live in a namespace of this file (sluice's cluster-object namespace).
    await core.createNamespace({ body: { metadata: { name: clusterNs } } });
    // Namespaces go before the metrics server: an unavailable APIService blocks namespace deletion.
    cleanups.push(() => deleteNamespace(kc, clusterNs));
    await core.createNamespacedSecret({
      namespace: clusterNs,
      body: {
        metadata: { name: 'metrics-credentials' },
        stringData: { token: clusterToken, url: `${intended.url}/metrics` },
      },
    });
    kit = new ScalingTestKit(kc, await createNamespace(kc, 'isolation'));
    cleanups.push(() => deleteNamespace(kc, kit.namespace));
    await kit.custom.createClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: 'clustertriggerauthentications',
      body: {
        apiVersion: `${GROUP}/${VERSION}`,
        kind: 'ClusterTriggerAuthentication',
        metadata: { name: ctaName },
        spec: {
          secretTargetRef: [
            { parameter: 'bearerToken', name: 'metrics-credentials', key: 'token' },
            { parameter: 'url', name: 'metrics-credentials', key: 'url' },
          ],
          allowedNamespaceSelector: { matchLabels: { [LABEL]: team } },
        },
      },
    });
    cleanups.push(() =>
      kit.custom.deleteClusterCustomObject({
        group: GROUP,
        version: VERSION,
        plural: 'clustertriggerauthentications',
        name: ctaName,
      }),
    );
  }, 900_000);

  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('a ClusterTriggerAuthentication not allowed for the namespace: Ready=False, no request with its credential; allowed by label: scales', async () => {
    await kit.createDeployment('worker', 0);
    await kit.createScaledObject('via-cluster-auth', {
      scaleTargetRef: { name: 'worker' },
      minReplicaCount: 0,
      maxReplicaCount: 5,
      pollingInterval: 1,
      cooldownPeriod: 5,
      triggers: [
        {
          type: 'metrics-api',
          authenticationRef: { name: ctaName, kind: 'ClusterTriggerAuthentication' },
          metadata: { authModes: 'bearer', valueLocation: 'value', targetValue: '1' },
        },
      ],
    });
    const refused = await kit.waitForCondition('via-cluster-auth', 'Ready', 'ScaledObjectCheckFailed');
    expect(refused.status).toBe('False');
    expect(refused.message).toBe(
      `spec.triggers[0].authenticationRef: ClusterTriggerAuthentication "${ctaName}" may not be used from namespace ` +
        `"${kit.namespace}": its labels do not match the ClusterTriggerAuthentication's spec.allowedNamespaceSelector; ` +
        `label the namespace to match it, or add "${kit.namespace}" to spec.allowedNamespaces`,
    );
    await sleep(QUIET_MS);
    expect(carrying(intended)).toEqual([]);
    expect(carrying(elsewhere)).toEqual([]);
    expect(intended.requests).toEqual([]);
    await expect(
      kit.autoscaling.readNamespacedHorizontalPodAutoscaler({
        name: 'sluice-hpa-via-cluster-auth',
        namespace: kit.namespace,
      }),
    ).rejects.toMatchObject({ code: 404 });

    // The namespace gets the label the selector asks for. sluice does not watch Namespaces (it may only get them):
    // the change is seen at the next reconcile, which an edit of the ScaledObject asks for at once.
    await core.patchNamespace(
      { name: kit.namespace, body: { metadata: { labels: { [LABEL]: team } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    await kit.patchScaledObject('via-cluster-auth', { metadata: { annotations: { 'sluice-e2e/recheck': '1' } } });
    await kit.waitForCondition('via-cluster-auth', 'Ready', 'ScaledObjectReady', 60_000);
    await waitFor(() => intended.requests.some((r) => r.headers.authorization === `Bearer ${clusterToken}`), {
      timeoutMs: 20_000,
      message: 'a request with the ClusterTriggerAuthentication bearer token at its own url',
    });
    await kit.waitForReplicas('worker', 3); // value 3, target 1
    expect(carrying(elsewhere)).toEqual([]);
  });

  it("trigger metadata that moves a TriggerAuthentication's address elsewhere is refused, and the other host sees nothing", async () => {
    await core.createNamespacedSecret({
      namespace: kit.namespace,
      body: {
        metadata: { name: 'local-credentials' },
        stringData: {
          token: namespacedToken,
          url: `${intended.url}/metrics`,
          username: 'sluice',
          password: rabbitPassword,
          host: `http://127.0.0.1:${intended.port}/`,
        },
      },
    });
    const createTa = (name: string, secretTargetRef: { parameter: string; key: string }[]) =>
      kit.createTriggerAuthentication(name, {
        secretTargetRef: secretTargetRef.map((r) => ({ ...r, name: 'local-credentials' })),
      });
    await createTa('metrics-auth', [
      { parameter: 'bearerToken', key: 'token' },
      { parameter: 'url', key: 'url' },
    ]);
    await createTa('rabbit-auth', [
      { parameter: 'host', key: 'host' },
      { parameter: 'username', key: 'username' },
      { parameter: 'password', key: 'password' },
    ]);
    const before = { intended: intended.requests.length, elsewhere: elsewhere.requests.length };
    await kit.createDeployment('redirected', 0);
    await kit.createScaledObject('redirected-url', {
      scaleTargetRef: { name: 'redirected' },
      pollingInterval: 1,
      triggers: [
        {
          type: 'metrics-api',
          authenticationRef: { name: 'metrics-auth' },
          metadata: { authModes: 'bearer', url: `${elsewhere.url}/metrics`, valueLocation: 'value', targetValue: '1' },
        },
      ],
    });
    await kit.createDeployment('redirected-broker', 0);
    await kit.createScaledObject('redirected-host', {
      scaleTargetRef: { name: 'redirected-broker' },
      pollingInterval: 1,
      triggers: [
        {
          type: 'rabbitmq',
          authenticationRef: { name: 'rabbit-auth' },
          metadata: {
            host: `http://127.0.0.1:${elsewhere.port}/`,
            queueName: 'orders',
            mode: 'QueueLength',
            value: '1',
          },
        },
      ],
    });

    const url = await kit.waitForCondition('redirected-url', 'Ready', 'ScaledObjectCheckFailed');
    expect(url.status).toBe('False');
    expect(url.message).toMatch(
      /^spec\.triggers\[0\]\.metadata\.url: must be at or under the TriggerAuthentication's url \(same scheme, host and port.*the TriggerAuthentication supplies credentials \(bearerToken\), and sluice sends a TriggerAuthentication's credentials only to the url it gives too$/,
    );
    const host = await kit.waitForCondition('redirected-host', 'Ready', 'ScaledObjectCheckFailed');
    expect(host.status).toBe('False');
    expect(host.message).toMatch(
      /^spec\.triggers\[0\]\.metadata\.host: must not be set in trigger metadata: the TriggerAuthentication supplies credentials \(username, password\), and sluice sends a TriggerAuthentication's credentials only to the host it gives too; put host in the TriggerAuthentication/,
    );

    await sleep(QUIET_MS);
    expect(elsewhere.requests.length).toBe(before.elsewhere);
    expect(carrying(elsewhere)).toEqual([]);
    // Nor was anything read from the intended server for these two (they were refused before any reader existed).
    expect(intended.requests.slice(before.intended).filter((r) => JSON.stringify(r).includes(namespacedToken))).toEqual(
      [],
    );
    for (const name of ['redirected-url', 'redirected-host']) {
      expect(JSON.stringify(await kit.scaledObject(name))).not.toContain(namespacedToken);
    }
  });
});
