/**
 * The one explicit registry of scalers, sorted by trigger type. Adding a scaler means adding its file and one line
 * here; nothing registers itself.
 */
import { ValidationError } from '../errors.ts';
import { createAwsSqsQueueScaler } from './aws-sqs-queue.ts';
import { createHttpRateScaler } from './http-rate.ts';
import { createMetricsApiScaler } from './metrics-api.ts';
import { createPrometheusScaler } from './prometheus.ts';
import { createRabbitMqScaler } from './rabbitmq.ts';
import type { Scaler, ScalerFactory, TriggerInput } from './scaler.ts';

export const scalerFactories = {
  'aws-sqs-queue': createAwsSqsQueueScaler,
  'http-rate': createHttpRateScaler,
  'metrics-api': createMetricsApiScaler,
  prometheus: createPrometheusScaler,
  rabbitmq: createRabbitMqScaler,
} as const satisfies Record<string, ScalerFactory>;

export type TriggerType = keyof typeof scalerFactories;

export function isKnownTriggerType(type: string): type is TriggerType {
  return Object.hasOwn(scalerFactories, type);
}

/** Builds (validates) the scaler for a trigger. Throws ValidationError; never touches the network. */
export function createScaler(trigger: TriggerInput): Scaler {
  if (!isKnownTriggerType(trigger.type)) {
    throw new ValidationError(
      `spec.triggers[${trigger.index}].type`,
      `unknown trigger type "${trigger.type}" (supported: ${Object.keys(scalerFactories).join(', ')})`,
    );
  }
  return scalerFactories[trigger.type](trigger);
}
