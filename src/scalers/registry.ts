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

/** What KEDA's HTTP authentication reads (http.ts): modes, credentials and TLS material. */
const HTTP_AUTH_PARAMS = [
  'authModes',
  'authMode',
  'method',
  'keyParamName',
  'bearerToken',
  'token',
  'username',
  'password',
  'apiKey',
  'customAuthHeader',
  'customAuthValue',
  'ca',
  'cert',
  'key',
  'unsafeSsl',
] as const;

/**
 * Per trigger type, the metadata parameters that pick where sluice connects (a host, a URL, an endpoint, a region, a
 * vhost) or what it authenticates with (credentials, TLS material, identities, headers). A MetricSource's `{{label}}`
 * placeholder may not fill them: a label selector, which any HPA author writes, must never choose a host or a
 * credential. Every `<param>FromEnv` is refused as well (a MetricSource has no scale target to read it from).
 */
export const PLACEHOLDER_REFUSED_PARAMS = {
  'aws-sqs-queue': [
    'queueURL',
    'awsEndpoint',
    'awsRegion',
    'awsRoleArn',
    'awsExternalID',
    'roleArn',
    'identityOwner',
    'awsAccessKeyID',
    'awsAccessKeyId',
    'awsSecretAccessKey',
    'awsSessionToken',
  ],
  'http-rate': ['url', 'service', 'port', 'path'],
  'metrics-api': ['url', 'aggregateFromKubeServiceEndpoints', ...HTTP_AUTH_PARAMS],
  prometheus: ['serverAddress', 'namespace', 'customHeaders', 'queryParameters', ...HTTP_AUTH_PARAMS],
  rabbitmq: [
    'host',
    'protocol',
    'vhostName',
    'username',
    'password',
    'tls',
    'ca',
    'cert',
    'key',
    'keyPassword',
    'unsafeSsl',
    'oauthTokenURI',
    'clientID',
    'clientSecret',
    'scopes',
    'scope',
    'endpointParams',
  ],
} as const satisfies Record<TriggerType, readonly string[]>;

/**
 * Per trigger type, the parameters of a trigger's own target and activation. A MetricSource serves the raw value: the
 * HPA's target applies (and its AverageValue division), and nothing scales from or to 0 there, so these are refused in
 * a MetricSource rather than ignored.
 */
export const TARGET_PARAMS = {
  'aws-sqs-queue': ['queueLength', 'activationQueueLength'],
  'http-rate': ['targetRate', 'activationRate'],
  'metrics-api': ['targetValue', 'activationTargetValue'],
  prometheus: ['threshold', 'activationThreshold'],
  rabbitmq: ['value', 'queueLength', 'activationValue'],
} as const satisfies Record<TriggerType, readonly string[]>;
