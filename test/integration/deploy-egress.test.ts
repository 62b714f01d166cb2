// deploy/network-policy.yaml, as `kubectl kustomize` renders it with the rest (deploy.test.ts dry-runs every rendered
// object on the real kube-apiserver, these included): sluice's pod may reach DNS, every pod, and every address but
// the ones sluice itself refuses by default (src/scalers/address-filter.ts DEFAULT_DENY). The two lists are compared
// here, so they cannot drift apart. And who may reach it: the metrics API from anywhere, its own /metrics only from the
// namespace `monitoring`.
import { spawnSync } from 'node:child_process';
import type { V1Deployment, V1NetworkPolicy } from '@kubernetes/client-node';
import { parseAllDocuments } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_DENY } from '../../src/scalers/address-filter.ts';
import { REPO_ROOT } from '../support/env.ts';

interface Rendered {
  kind: string;
  metadata: { name: string; namespace?: string };
}

describe('deploy/network-policy.yaml: sluice egress', () => {
  let policy: V1NetworkPolicy;
  let ingress: V1NetworkPolicy;
  let deployment: V1Deployment;

  beforeAll(() => {
    const rendered = spawnSync('kubectl', ['kustomize', REPO_ROOT], { encoding: 'utf8', timeout: 120_000 });
    if (rendered.status !== 0) throw new Error(`kubectl kustomize failed: ${rendered.stderr}`);
    const objects = parseAllDocuments(rendered.stdout).map((d) => d.toJS() as Rendered);
    const policies = objects.filter((o) => o.kind === 'NetworkPolicy');
    expect(policies.map((o) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`)).toEqual([
      'sluice-system/sluice-egress',
      'sluice-system/sluice-ingress',
    ]);
    policy = policies[0] as V1NetworkPolicy;
    ingress = policies[1] as V1NetworkPolicy;
    deployment = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'sluice') as V1Deployment;
  });

  it("selects sluice's pod, and restricts egress only", () => {
    const labels = deployment.spec?.template.metadata?.labels ?? {};
    expect(Object.keys(policy.spec?.podSelector?.matchLabels ?? {}).length).toBeGreaterThan(0);
    expect(labels).toMatchObject(policy.spec?.podSelector?.matchLabels ?? { '<none>': '' });
    expect(policy.spec?.policyTypes).toEqual(['Egress']);
  });

  it('allows DNS to any address (NodeLocal DNSCache listens on a link-local one) and every pod', () => {
    const egress = policy.spec?.egress ?? [];
    const dns = egress.find((rule) => rule.to === undefined);
    expect(dns?.ports).toEqual([
      { protocol: 'UDP', port: 53 },
      { protocol: 'TCP', port: 53 },
    ]);
    expect(
      egress.some((rule) => rule.ports === undefined && rule.to?.some((p) => p.namespaceSelector !== undefined)),
    ).toBe(true);
  });

  it("allows every other address except exactly sluice's default refusals", () => {
    const blocks = (policy.spec?.egress ?? [])
      .filter((rule) => rule.ports === undefined)
      .flatMap((rule) => rule.to ?? [])
      .flatMap((peer) => (peer.ipBlock === undefined ? [] : [peer.ipBlock]));
    expect(blocks.map((b) => b.cidr).sort()).toEqual(['0.0.0.0/0', '::/0']);
    const excepted = blocks.flatMap((b) => b.except ?? []).sort();
    expect(excepted).toEqual(DEFAULT_DENY.map((rule) => rule.range.text).sort());
  });

  it('sluice-ingress: the metrics API from anywhere, /metrics only from the namespace monitoring', () => {
    const container = deployment.spec?.template.spec?.containers[0];
    const portOf = (name: string) => container?.ports?.find((p) => p.name === name)?.containerPort;
    expect([portOf('https'), portOf('metrics')]).toEqual([6443, 8080]);
    expect(container?.args).toContain('--metrics-port=8080');
    expect(ingress.spec?.podSelector).toEqual(policy.spec?.podSelector);
    expect(ingress.spec?.policyTypes).toEqual(['Ingress']);
    expect(ingress.spec?.ingress).toEqual([
      { ports: [{ protocol: 'TCP', port: 6443 }] },
      {
        from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }],
        ports: [{ protocol: 'TCP', port: 8080 }],
      },
    ]);
  });
});
