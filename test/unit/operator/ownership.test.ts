// Proves decideOwnership, one autoscaler per workload, against the informer caches as plain objects: twins (another
// ScaledObject on the same workload: the older keeps it), an HPA under our HPA's name, a foreign HPA on our workload,
// the transfer-hpa-ownership take-over and the hpa-ownership opt-out, with KEDA's webhook messages
// (kedacore/keda apis/keda/v1alpha1/scaledobject_webhook.go: verifyScaledObjects, verifyHpas).
import type { KubernetesObject, V2HorizontalPodAutoscaler } from '@kubernetes/client-node';
import { describe, expect, test } from 'vitest';
import { decideOwnership, workloadOf, type Ownership, type OwnershipInput } from '../../../src/operator/ownership.ts';

const T_MINE = '2026-06-01T12:00:00Z';
const T_OLDER = '2026-06-01T11:00:00Z';
const T_NEWER = '2026-06-01T13:00:00Z';
const MINE = { name: 'orders', uid: 'uid-mine' };

interface Ref {
  apiVersion?: string;
  kind?: string;
  name?: string;
}

/** Another ScaledObject as the informer holds it. */
function so(
  name: string,
  uid: string,
  created: string | Date | undefined,
  ref: Ref = { name: 'orders' },
  more: { deletionTimestamp?: string } = {},
): KubernetesObject {
  return {
    apiVersion: 'sluice.dev/v1alpha1',
    kind: 'ScaledObject',
    metadata: {
      name,
      namespace: 'shop',
      uid,
      ...(created === undefined ? {} : { creationTimestamp: created }),
      ...more,
    },
    spec: { scaleTargetRef: ref },
  } as unknown as KubernetesObject;
}

/** An HPA; `owner` adds a controller reference to a ScaledObject (or to anything else with `apiVersion`/`kind`). */
function hpa(
  name: string,
  ref: Ref,
  options: {
    owner?: { name: string; uid: string; apiVersion?: string; kind?: string; controller?: boolean };
    annotations?: Record<string, string>;
  } = {},
): V2HorizontalPodAutoscaler {
  const owner = options.owner;
  return {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: {
      name,
      namespace: 'shop',
      ...(options.annotations === undefined ? {} : { annotations: options.annotations }),
      ...(owner === undefined
        ? {}
        : {
            ownerReferences: [
              {
                apiVersion: owner.apiVersion ?? 'sluice.dev/v1alpha1',
                kind: owner.kind ?? 'ScaledObject',
                name: owner.name,
                uid: owner.uid,
                controller: owner.controller ?? true,
              },
            ],
          }),
    },
    spec: {
      scaleTargetRef: { apiVersion: ref.apiVersion ?? 'apps/v1', kind: ref.kind ?? 'Deployment', name: ref.name ?? '' },
      maxReplicas: 10,
    },
  };
}

/** The input, the namespace's ScaledObjects being `scaledObjects` (reconcile passes only those on the workload). */
function input(fields: Partial<OwnershipInput> = {}): OwnershipInput {
  const scaledObjects = fields.scaledObjects ?? [so(MINE.name, MINE.uid, T_MINE)];
  return {
    name: MINE.name,
    uid: MINE.uid,
    creationTimestamp: T_MINE,
    target: { group: 'apps', kind: 'Deployment', name: 'orders' },
    targetKind: 'apps/v1.Deployment',
    hpaName: 'sluice-hpa-orders',
    transfer: false,
    hpas: [],
    scaledObjectExists: (owner) =>
      scaledObjects.some((o) => o.metadata?.uid === owner.uid && o.metadata.name === owner.name),
    ...fields,
    scaledObjects,
  };
}

const OK: Ownership = { kind: 'ok' };
const conflict = (message: string): Ownership => ({ kind: 'conflict', message });
const twinOf = (name: string) =>
  conflict(`the workload 'orders' of type 'apps/v1.Deployment' is already managed by the ScaledObject '${name}'`);
const HINT =
  ' (to take it over, name it in spec.advanced.horizontalPodAutoscalerConfig.name and annotate the ScaledObject with scaledobject.keda.sh/transfer-hpa-ownership: "true")';

describe('workloadOf', () => {
  const rows: { comment: string; ref: Ref; want: ReturnType<typeof workloadOf> }[] = [
    {
      comment: 'apps/v1 Deployment',
      ref: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'a' },
      want: { group: 'apps', kind: 'Deployment', name: 'a' },
    },
    {
      comment: 'the version does not matter',
      ref: { apiVersion: 'example.com/v2beta1', kind: 'Thing', name: 'a' },
      want: { group: 'example.com', kind: 'Thing', name: 'a' },
    },
    {
      comment: 'the core group (apiVersion without a slash)',
      ref: { apiVersion: 'v1', kind: 'ReplicationController', name: 'a' },
      want: { group: '', kind: 'ReplicationController', name: 'a' },
    },
    {
      comment: "KEDA's defaults: apps/v1 Deployment",
      ref: { name: 'a' },
      want: { group: 'apps', kind: 'Deployment', name: 'a' },
    },
    { comment: 'nothing at all', ref: {}, want: { group: 'apps', kind: 'Deployment', name: '' } },
  ];
  test.each(rows)('$comment', ({ ref, want }) => {
    expect(workloadOf(ref)).toStrictEqual(want);
  });
});

describe('decideOwnership', () => {
  const rows: { comment: string; input: OwnershipInput; want: Ownership }[] = [
    { comment: 'alone, no HPA: ok', input: input(), want: OK },
    {
      comment: 'the ScaledObject itself in the list (same uid) is not a twin, even if "older"',
      input: input({ scaledObjects: [so('orders', MINE.uid, T_OLDER)] }),
      want: OK,
    },
    // twins
    {
      comment: 'an older twin keeps the workload: refused naming it (KEDA message)',
      input: input({ scaledObjects: [so('orders', MINE.uid, T_MINE), so('legacy', 'uid-2', T_OLDER)] }),
      want: twinOf('legacy'),
    },
    {
      comment: 'a newer twin: we keep the workload',
      input: input({ scaledObjects: [so('zzz', 'uid-2', T_NEWER)] }),
      want: OK,
    },
    {
      comment: 'a twin created the same second with a smaller name wins',
      input: input({ scaledObjects: [so('alpha', 'uid-2', T_MINE)] }),
      want: twinOf('alpha'),
    },
    {
      comment: 'a twin created the same second with a greater name loses',
      input: input({ scaledObjects: [so('zeta', 'uid-2', T_MINE)] }),
      want: OK,
    },
    {
      comment: 'an older twin as a Date (client-node typed models)',
      input: input({ scaledObjects: [so('legacy', 'uid-2', new Date(T_OLDER))] }),
      want: twinOf('legacy'),
    },
    {
      comment: 'a newer twin as a Date',
      input: input({ scaledObjects: [so('legacy', 'uid-2', new Date(T_NEWER))] }),
      want: OK,
    },
    {
      comment: 'an older twin being deleted is ignored',
      input: input({
        scaledObjects: [so('legacy', 'uid-2', T_OLDER, { name: 'orders' }, { deletionTimestamp: T_MINE })],
      }),
      want: OK,
    },
    {
      comment: 'same group, another version: a twin (one object under several versions)',
      input: input({
        scaledObjects: [
          so('legacy', 'uid-2', T_OLDER, { apiVersion: 'apps/v1beta2', kind: 'Deployment', name: 'orders' }),
        ],
      }),
      want: twinOf('legacy'),
    },
    {
      comment: "KEDA's defaults on the other side (no apiVersion/kind): a twin",
      input: input({ scaledObjects: [so('legacy', 'uid-2', T_OLDER, { name: 'orders' })] }),
      want: twinOf('legacy'),
    },
    {
      comment: 'another group: not a twin',
      input: input({
        scaledObjects: [
          so('legacy', 'uid-2', T_OLDER, { apiVersion: 'example.com/v1', kind: 'Deployment', name: 'orders' }),
        ],
      }),
      want: OK,
    },
    {
      comment: 'another kind: not a twin',
      input: input({
        scaledObjects: [so('legacy', 'uid-2', T_OLDER, { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'orders' })],
      }),
      want: OK,
    },
    {
      comment: 'another name: not a twin',
      input: input({ scaledObjects: [so('legacy', 'uid-2', T_OLDER, { name: 'invoices' })] }),
      want: OK,
    },
    {
      comment: 'the target kind in the message is ours, as KEDA formats it (group/version.Kind)',
      input: input({
        target: { group: 'example.com', kind: 'Thing', name: 'orders' },
        targetKind: 'example.com/v2.Thing',
        scaledObjects: [
          so('legacy', 'uid-2', T_OLDER, { apiVersion: 'example.com/v1', kind: 'Thing', name: 'orders' }),
        ],
      }),
      want: conflict(
        "the workload 'orders' of type 'example.com/v2.Thing' is already managed by the ScaledObject 'legacy'",
      ),
    },
    // an HPA under our HPA's name
    {
      comment: 'our own HPA (controlled by our uid): ok',
      input: input({ hpas: [hpa('sluice-hpa-orders', { name: 'orders' }, { owner: MINE })] }),
      want: OK,
    },
    {
      comment: 'our own HPA under an old name (renamed), still on the workload: ignored',
      input: input({ hpaName: 'orders-hpa', hpas: [hpa('sluice-hpa-orders', { name: 'orders' }, { owner: MINE })] }),
      want: OK,
    },
    {
      comment: 'an HPA under our name controlled by another living ScaledObject: refused (KEDA message)',
      input: input({
        hpaName: 'shared-hpa',
        scaledObjects: [so('orders', MINE.uid, T_MINE), so('invoices', 'uid-2', T_NEWER, { name: 'invoices' })],
        hpas: [hpa('shared-hpa', { name: 'invoices' }, { owner: { name: 'invoices', uid: 'uid-2' } })],
      }),
      want: conflict("the HPA 'shared-hpa' is already managed by the ScaledObject 'invoices'"),
    },
    {
      comment: 'an HPA under our name controlled by another ScaledObject that is being deleted: still refused',
      input: input({
        hpaName: 'shared-hpa',
        scaledObjects: [so('invoices', 'uid-2', T_NEWER, { name: 'invoices' }, { deletionTimestamp: T_NEWER })],
        hpas: [hpa('shared-hpa', { name: 'invoices' }, { owner: { name: 'invoices', uid: 'uid-2' } })],
      }),
      want: conflict("the HPA 'shared-hpa' is already managed by the ScaledObject 'invoices'"),
    },
    {
      comment: 'an HPA under our name controlled by a deleted ScaledObject (not in the cache): foreign, refused',
      input: input({
        hpas: [hpa('sluice-hpa-orders', { name: 'orders' }, { owner: { name: 'orders', uid: 'uid-old' } })],
      }),
      want: conflict(
        `the HPA 'sluice-hpa-orders' already exists and is not managed by this ScaledObject: to take it over, annotate the ScaledObject with scaledobject.keda.sh/transfer-hpa-ownership: "true"`,
      ),
    },
    {
      comment:
        "another living ScaledObject's HPA on our workload, not under our name: the twin rule decides (we are older)",
      input: input({
        scaledObjects: [so('zzz', 'uid-2', T_NEWER)],
        hpas: [hpa('sluice-hpa-zzz', { name: 'orders' }, { owner: { name: 'zzz', uid: 'uid-2' } })],
      }),
      want: OK,
    },
    {
      comment: 'an HPA of a deleted ScaledObject on our workload (not under our name): foreign, refused',
      input: input({
        hpas: [hpa('sluice-hpa-gone', { name: 'orders' }, { owner: { name: 'gone', uid: 'uid-gone' } })],
      }),
      want: conflict(
        `the workload 'orders' of type 'apps/v1.Deployment' is already managed by the hpa 'sluice-hpa-gone'${HINT}`,
      ),
    },
    // foreign HPAs
    {
      comment: 'a foreign HPA on our workload: refused (KEDA message) with how to take it over',
      input: input({ hpas: [hpa('orders', { name: 'orders' })] }),
      want: conflict(
        `the workload 'orders' of type 'apps/v1.Deployment' is already managed by the hpa 'orders'${HINT}`,
      ),
    },
    {
      comment: 'a foreign HPA on our workload controlled by something else (a Helm-made owner): refused',
      input: input({
        hpas: [
          hpa(
            'orders',
            { name: 'orders' },
            { owner: { name: 'x', uid: 'u', apiVersion: 'example.com/v1', kind: 'App' } },
          ),
        ],
      }),
      want: conflict(
        `the workload 'orders' of type 'apps/v1.Deployment' is already managed by the hpa 'orders'${HINT}`,
      ),
    },
    {
      comment: 'a ScaledObject owner reference that is not the controller does not make it ours',
      input: input({
        hpas: [hpa('orders', { name: 'orders' }, { owner: { ...MINE, controller: false } })],
      }),
      want: conflict(
        `the workload 'orders' of type 'apps/v1.Deployment' is already managed by the hpa 'orders'${HINT}`,
      ),
    },
    {
      comment: 'a foreign HPA on our workload with validations.keda.sh/hpa-ownership "false": ignored',
      input: input({
        hpas: [hpa('orders', { name: 'orders' }, { annotations: { 'validations.keda.sh/hpa-ownership': 'false' } })],
      }),
      want: OK,
    },
    {
      comment: 'hpa-ownership "true" opts nothing out (only "false" does, as KEDA reads it)',
      input: input({
        hpas: [hpa('orders', { name: 'orders' }, { annotations: { 'validations.keda.sh/hpa-ownership': 'true' } })],
      }),
      want: conflict(
        `the workload 'orders' of type 'apps/v1.Deployment' is already managed by the hpa 'orders'${HINT}`,
      ),
    },
    {
      comment: 'the opt-out does not free our HPA name: a foreign HPA under it is still refused',
      input: input({
        hpas: [
          hpa(
            'sluice-hpa-orders',
            { name: 'orders' },
            { annotations: { 'validations.keda.sh/hpa-ownership': 'false' } },
          ),
        ],
      }),
      want: conflict(
        `the HPA 'sluice-hpa-orders' already exists and is not managed by this ScaledObject: to take it over, annotate the ScaledObject with scaledobject.keda.sh/transfer-hpa-ownership: "true"`,
      ),
    },
    {
      comment: 'a foreign HPA under our name on another workload: refused (the name is taken)',
      input: input({ hpas: [hpa('sluice-hpa-orders', { name: 'invoices' })] }),
      want: conflict(
        `the HPA 'sluice-hpa-orders' already exists and is not managed by this ScaledObject: to take it over, annotate the ScaledObject with scaledobject.keda.sh/transfer-hpa-ownership: "true"`,
      ),
    },
    {
      comment: 'a foreign HPA on another workload under another name: none of our business',
      input: input({ hpas: [hpa('invoices', { name: 'invoices' })] }),
      want: OK,
    },
    {
      comment: 'a foreign HPA on a workload of another kind with the same name: not ours',
      input: input({ hpas: [hpa('orders', { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'orders' })] }),
      want: OK,
    },
    // transfer-hpa-ownership
    {
      comment: 'transfer: the foreign HPA named in horizontalPodAutoscalerConfig.name is adopted',
      input: input({ hpaName: 'orders', transfer: true, hpas: [hpa('orders', { name: 'orders' })] }),
      want: { kind: 'adopt', hpa: 'orders' },
    },
    {
      comment: 'transfer: the HPA of a deleted ScaledObject under our name is adopted',
      input: input({
        hpaName: 'orders-hpa',
        transfer: true,
        hpas: [hpa('orders-hpa', { name: 'orders' }, { owner: { name: 'gone', uid: 'uid-gone' } })],
      }),
      want: { kind: 'adopt', hpa: 'orders-hpa' },
    },
    {
      comment: "transfer does not take a living ScaledObject's HPA",
      input: input({
        hpaName: 'shared-hpa',
        transfer: true,
        scaledObjects: [so('invoices', 'uid-2', T_NEWER, { name: 'invoices' })],
        hpas: [hpa('shared-hpa', { name: 'orders' }, { owner: { name: 'invoices', uid: 'uid-2' } })],
      }),
      want: conflict("the HPA 'shared-hpa' is already managed by the ScaledObject 'invoices'"),
    },
    {
      comment:
        'transfer, but another foreign HPA also on the workload: refused naming that one, and which HPA transfer takes',
      input: input({
        hpaName: 'orders',
        transfer: true,
        hpas: [hpa('orders', { name: 'orders' }), hpa('orders-legacy', { name: 'orders' })],
      }),
      want: conflict(
        "the workload 'orders' of type 'apps/v1.Deployment' is already managed by the hpa 'orders-legacy' (transfer-hpa-ownership takes over only the HPA named in spec.advanced.horizontalPodAutoscalerConfig.name, 'orders')",
      ),
    },
    {
      comment: 'transfer of an HPA that is already ours: just ok',
      input: input({ hpaName: 'orders', transfer: true, hpas: [hpa('orders', { name: 'orders' }, { owner: MINE })] }),
      want: OK,
    },
    {
      comment: 'transfer asked, nothing to take: ok',
      input: input({ hpaName: 'orders', transfer: true }),
      want: OK,
    },
    {
      comment: 'a twin decides before any transfer',
      input: input({
        hpaName: 'orders',
        transfer: true,
        scaledObjects: [so('legacy', 'uid-2', T_OLDER)],
        hpas: [hpa('orders', { name: 'orders' })],
      }),
      want: twinOf('legacy'),
    },
  ];
  test.each(rows)('$comment', ({ input: given, want }) => {
    expect(decideOwnership(given)).toStrictEqual(want);
  });
});
