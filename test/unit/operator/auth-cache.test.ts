// Secret and ConfigMap reads shared between reconciles (src/operator/auth-cache.ts): what is shared, for
// how long, and what is always asked again.
import { describe, expect, test } from 'vitest';
import { sharedReads } from '../../../src/operator/auth-cache.ts';
import type { AuthPort } from '../../../src/operator/auth-resolver.ts';

function countingPort(answers: { secret?: Record<string, string> | undefined; fail?: boolean } = {}) {
  const calls: string[] = [];
  const port: AuthPort = {
    readSecret: (namespace, name) => {
      calls.push(`secret ${namespace}/${name}`);
      if (answers.fail === true) return Promise.reject(new Error('HTTP 500'));
      return Promise.resolve(answers.secret);
    },
    readConfigMap: (namespace, name) => {
      calls.push(`configmap ${namespace}/${name}`);
      return Promise.resolve({ k: 'v' });
    },
    readNamespaceLabels: (name) => {
      calls.push(`namespace ${name}`);
      return Promise.resolve({ team: 'a' });
    },
    readTriggerAuthentication: (namespace, name) => {
      calls.push(`ta ${namespace}/${name}`);
      return Promise.resolve({});
    },
    readClusterTriggerAuthentication: (name) => {
      calls.push(`cta ${name}`);
      return Promise.resolve({});
    },
    readScaleTarget: (namespace, _apiVersion, _kind, name) => {
      calls.push(`target ${namespace}/${name}`);
      return Promise.resolve([]);
    },
  };
  return { port, calls };
}

describe('sharedReads', () => {
  test('a thousand reads of one Secret within the TTL are one GET; after it, one more', async () => {
    let clock = 0;
    const { port, calls } = countingPort({ secret: { password: 'p' } });
    const reads = sharedReads(port, { ttlMs: 10_000, now: () => clock });
    const all = await Promise.all(Array.from({ length: 1000 }, () => reads.readSecret('shop', 'rabbit')));
    expect(all.every((s) => s?.['password'] === 'p')).toBe(true);
    clock = 9_999;
    await reads.readSecret('shop', 'rabbit');
    expect(calls).toStrictEqual(['secret shop/rabbit']);
    clock = 10_000;
    await reads.readSecret('shop', 'rabbit');
    expect(calls).toStrictEqual(['secret shop/rabbit', 'secret shop/rabbit']);
  });

  test('a missing Secret and a failed read are asked again at once', async () => {
    const missing = countingPort({ secret: undefined });
    const reads = sharedReads(missing.port, { ttlMs: 10_000, now: () => 0 });
    expect(await reads.readSecret('shop', 'rabbit')).toBeUndefined();
    expect(await reads.readSecret('shop', 'rabbit')).toBeUndefined();
    expect(missing.calls).toHaveLength(2);

    const failing = countingPort({ fail: true });
    const again = sharedReads(failing.port, { ttlMs: 10_000, now: () => 0 });
    await expect(again.readSecret('shop', 'rabbit')).rejects.toThrow('HTTP 500');
    await expect(again.readSecret('shop', 'rabbit')).rejects.toThrow('HTTP 500');
    expect(failing.calls).toHaveLength(2);
  });

  test('ConfigMaps are shared; Namespaces, TriggerAuthentications and scale targets are always read', async () => {
    const { port, calls } = countingPort();
    const reads = sharedReads(port, { ttlMs: 10_000, now: () => 0 });
    for (let i = 0; i < 3; i++) {
      await reads.readConfigMap('shop', 'settings');
      await reads.readNamespaceLabels('shop');
      await reads.readTriggerAuthentication('shop', 'rabbit');
      await reads.readClusterTriggerAuthentication('shared');
      await reads.readScaleTarget('shop', 'apps/v1', 'Deployment', 'worker');
    }
    expect(calls.filter((c) => c.startsWith('configmap'))).toHaveLength(1);
    expect(calls.filter((c) => c.startsWith('namespace'))).toHaveLength(3);
    expect(calls.filter((c) => c.startsWith('ta '))).toHaveLength(3);
    expect(calls.filter((c) => c.startsWith('cta '))).toHaveLength(3);
    expect(calls.filter((c) => c.startsWith('target '))).toHaveLength(3);
  });

  test('distinct objects are distinct entries, and the oldest go past maxEntries', async () => {
    const { port, calls } = countingPort({ secret: { a: 'b' } });
    const reads = sharedReads(port, { ttlMs: 10_000, now: () => 0, maxEntries: 2 });
    await reads.readSecret('a', 's');
    await reads.readSecret('b', 's');
    await reads.readSecret('c', 's'); // evicts a/s
    await reads.readSecret('b', 's');
    await reads.readSecret('a', 's');
    expect(calls).toStrictEqual(['secret a/s', 'secret b/s', 'secret c/s', 'secret a/s']);
  });
});
