// A TriggerInput for scaler tests: defaults for everything a test does not care about.
import type { ClusterPort, TriggerInput } from '../../src/scalers/scaler.ts';

/** For scalers that must not touch the cluster: any call fails the test. */
export const noCluster: ClusterPort = {
  readyEndpoints: () => Promise.reject(new Error('this scaler should not ask the cluster for endpoints')),
};

export function triggerInput(overrides: Partial<TriggerInput> & Pick<TriggerInput, 'type' | 'metadata'>): TriggerInput {
  return {
    namespace: 'test',
    index: 0,
    name: undefined,
    metricType: 'AverageValue',
    authParams: {},
    resolvedEnv: {},
    cluster: noCluster,
    owner: 'test/scaledobject',
    ...overrides,
  };
}
