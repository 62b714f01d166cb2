/**
 * The `cpu` and `memory` triggers (KEDA's cpu and memory scalers, keda.sh/docs/scalers/cpu and …/memory): no reader
 * and no metric of sluice's; the HPA itself reads them from the resource metrics API (metrics-server) as a Resource
 * metric, or a ContainerResource metric for one container (`containerName`).
 *
 * Parameters: `metricType` (required for these two: there is no default), `value` (required) — for `Utilization` a
 * whole percentage of the pods' requests, for `AverageValue` a Kubernetes Quantity per pod (`500m`, `256Mi`);
 * `containerName` (optional); KEDA's deprecated `type` in metadata stands for `metricType` and must agree with it.
 *
 * As in KEDA: a ScaledObject with only cpu and memory triggers never scales to zero (validation refuses
 * minReplicaCount 0 for it, and its executor counts it as always active); with other triggers, activity comes from
 * those. cpu and memory triggers take no part in a scalingModifiers formula, and have no fallback.
 * sluice's differences: `metricType: Value` is refused (the HPA has no Value target for Resource metrics), and so is
 * an `authenticationRef` (there is nothing to authenticate).
 */
import { ValidationError } from '../errors.ts';
import { QuantityError, parseQuantity } from '../quantity.ts';
import { parseParams, triggerSources, type ParamSpec } from './metadata.ts';

export const RESOURCE_TRIGGERS = ['cpu', 'memory'] as const;
export type ResourceName = (typeof RESOURCE_TRIGGERS)[number];

export function isResourceTrigger(type: string): type is ResourceName {
  return (RESOURCE_TRIGGERS as readonly string[]).includes(type);
}

export interface ResourceMetric {
  readonly name: ResourceName;
  /** For a ContainerResource metric. */
  readonly container: string | undefined;
  readonly target:
    | { readonly type: 'Utilization'; readonly averageUtilization: number }
    | { readonly type: 'AverageValue'; readonly averageValue: string };
}

const params = {
  value: { type: 'string' },
  type: { type: 'enum', values: ['Utilization', 'AverageValue'], optional: true },
  containerName: { type: 'string', optional: true },
} as const satisfies ParamSpec;

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export interface ResourceTriggerInput {
  readonly index: number;
  readonly type: ResourceName;
  readonly metadata: Readonly<Record<string, string>>;
  /** `spec.triggers[i].metricType` as written, if it was. */
  readonly metricType: 'AverageValue' | 'Value' | 'Utilization' | undefined;
  /** Whether the trigger has an authenticationRef (refused: nothing to authenticate). */
  readonly hasAuthenticationRef: boolean;
}

/** Parses a cpu or memory trigger into the HPA metric it stands for. Throws ValidationError naming the field. */
export function parseResourceTrigger(trigger: ResourceTriggerInput): ResourceMetric {
  const path = `spec.triggers[${trigger.index}]`;
  if (trigger.hasAuthenticationRef) {
    throw new ValidationError(
      `${path}.authenticationRef`,
      `a ${trigger.type} trigger reads nothing that needs credentials`,
    );
  }
  const p = parseParams(
    params,
    triggerSources({ index: trigger.index, metadata: trigger.metadata, authParams: {}, resolvedEnv: {} }),
  );
  if (trigger.metricType === 'Value') {
    throw new ValidationError(
      `${path}.metricType`,
      `a ${trigger.type} trigger takes Utilization or AverageValue (the HPA has no Value target for Resource metrics)`,
    );
  }
  // KEDA's deprecated metadata `type`, or metricType; both must agree when both are given.
  if (p.type !== undefined && trigger.metricType !== undefined && p.type !== trigger.metricType) {
    throw new ValidationError(`${path}.metadata.type`, `"${p.type}" disagrees with metricType "${trigger.metricType}"`);
  }
  const metricType = trigger.metricType ?? p.type;
  if (metricType === undefined) {
    throw new ValidationError(
      `${path}.metricType`,
      `a ${trigger.type} trigger needs metricType Utilization (a percentage of requests) or AverageValue (a Quantity)`,
    );
  }
  let target: ResourceMetric['target'];
  if (metricType === 'Utilization') {
    if (!/^\d+$/.test(p.value) || Number(p.value) < 1 || Number(p.value) > 2_147_483_647) {
      throw new ValidationError(
        `${path}.metadata.value`,
        `must be a whole percentage of the pods' ${trigger.type} requests (e.g. "60"), got ${JSON.stringify(p.value.slice(0, 40))}`,
      );
    }
    target = { type: 'Utilization', averageUtilization: Number(p.value) };
  } else {
    let quantity: number | undefined;
    try {
      quantity = parseQuantity(p.value);
    } catch (err) {
      // parseQuantity throws on text that is not a Quantity: a ValidationError naming the field, not a crash.
      if (!(err instanceof QuantityError)) throw err;
    }
    if (quantity === undefined || !(quantity > 0)) {
      throw new ValidationError(
        `${path}.metadata.value`,
        `must be a Kubernetes Quantity greater than 0 (e.g. "${trigger.type === 'cpu' ? '500m' : '256Mi'}"), got ${JSON.stringify(p.value.slice(0, 40))}`,
      );
    }
    target = { type: 'AverageValue', averageValue: p.value };
  }
  if (p.containerName !== undefined && (p.containerName.length > 63 || !DNS1123_LABEL.test(p.containerName))) {
    throw new ValidationError(`${path}.metadata.containerName`, `"${p.containerName}" is not a container name`);
  }
  return { name: trigger.type, container: p.containerName, target };
}
