/**
 * The AWS SDK's SQS and STS clients, loaded on the first SQS read instead of at start: on top of everything else sluice
 * loads they cost about 2.3 MiB of heap and 1.5 MiB of RSS after a full GC, which a sluice without an SQS trigger does
 * without. Types come from static `import type`, which costs nothing at run time.
 */
import type * as SqsSdk from '@aws-sdk/client-sqs';
import type * as StsSdk from '@aws-sdk/client-sts';

export interface AwsSdk {
  readonly sqs: typeof SqsSdk;
  readonly sts: typeof StsSdk;
}

let loading: Promise<AwsSdk> | undefined;
let loaded: AwsSdk | undefined;

/** Loads the SDK once; every later call gets the same promise. */
export function loadAwsSdk(): Promise<AwsSdk> {
  loading ??= Promise.all([import('@aws-sdk/client-sqs'), import('@aws-sdk/client-sts')]).then(([sqs, sts]) => {
    loaded = { sqs, sts };
    return loaded;
  });
  return loading;
}

/** The SDK once `loadAwsSdk()` has resolved, else undefined (nothing made with it can exist yet). */
export function loadedAwsSdk(): AwsSdk | undefined {
  return loaded;
}

/** The SDK where a read has already awaited `loadAwsSdk()`: a programming error otherwise, named as such. */
export function awsSdk(): AwsSdk {
  if (loaded === undefined) throw new Error('the AWS SDK was used before loadAwsSdk() resolved');
  return loaded;
}
