// A TriggerInput for scaler tests: defaults for everything a test does not care about.
import { expect } from 'vitest';
import { ScalerError, ValidationError, describeError } from '../../src/errors.ts';
import type { ClusterPort, Sample, Scaler, SharedResources, TriggerInput } from '../../src/scalers/scaler.ts';
import { SharedPool } from '../../src/scalers/shared.ts';

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
    ...overrides,
  };
}

/** A scaler with a private reader of its own, read by calling sample() (what the hub does about once a second). */
export interface StandaloneScaler extends Scaler {
  sample(signal: AbortSignal): Promise<Sample>;
  close(): Promise<void>;
}

/** `scaler` with a private reader, opened lazily on the first sample() (building a scaler never connects). */
export function standalone(scaler: Scaler, shared: SharedResources = new SharedPool()): StandaloneScaler {
  let reader: ReturnType<Scaler['open']> | undefined;
  return {
    ...scaler,
    sample(signal) {
      reader ??= scaler.open(shared);
      return reader.sample(signal);
    },
    async close() {
      await reader?.close();
      reader = undefined;
    },
  };
}

/**
 * Samples `scaler` once and expects a ScalerError (a value would be the "error read as zero" bug). Returns the full
 * message with its causes, after checking that none of `secrets` appears in it.
 */
export async function expectSampleError(scaler: StandaloneScaler, secrets: readonly string[] = []): Promise<string> {
  let sample: Sample;
  try {
    sample = await scaler.sample(AbortSignal.timeout(5000));
  } catch (err) {
    expect(err).toBeInstanceOf(ScalerError);
    const message = describeError(err);
    for (const secret of secrets) expect(message).not.toContain(secret);
    return message;
  }
  throw new Error(`expected an error, got the value ${sample.value}`);
}

/**
 * Runs `act` and expects a ValidationError naming `field`. Returns its full message, after checking that none of
 * `secrets` appears in it.
 */
export function expectValidationError(act: () => unknown, field: string, secrets: readonly string[] = []): string {
  let caught: unknown;
  try {
    act();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(ValidationError);
  expect((caught as ValidationError).field).toBe(field);
  const message = describeError(caught);
  for (const secret of secrets) expect(message).not.toContain(secret);
  return message;
}
