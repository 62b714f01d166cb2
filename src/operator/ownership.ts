/**
 * One autoscaler per workload, as a pure decision: two ScaledObjects, or a ScaledObject and an HPA someone else made,
 * acting on one Deployment would fight (two HPAs, and executors flapping it 0 ↔ 1). KEDA refuses these in its
 * admission webhook (kedacore/keda `apis/keda/v1alpha1/scaledobject_webhook.go`: verifyScaledObjects, verifyHpas),
 * which is best effort (failurePolicy Ignore); sluice decides it in reconcile, every time, with the same messages:
 *
 * - another ScaledObject in the namespace targets the same workload (group, kind, name): the older one keeps it (by
 *   creationTimestamp, then name); the newer gets Ready=False naming it, no HPA and no executor;
 * - an HPA under the name this ScaledObject's HPA would have, controlled by another ScaledObject: refused;
 * - an HPA this ScaledObject does not control, under that name or targeting the same workload: refused, unless the
 *   ScaledObject asks to take it over (`scaledobject.keda.sh/transfer-hpa-ownership: "true"` and the HPA's name in
 *   `advanced.horizontalPodAutoscalerConfig.name`), or the HPA opts out with `validations.keda.sh/hpa-ownership:
 *   "false"` (KEDA's code checks that value; its docs say "true").
 *
 * Why not an admission webhook as well (deploy/ ships none): a ValidatingAdmissionPolicy can see only the object
 * itself, so the check needs a webhook, and a webhook is a second failure domain on every apply (KEDA runs its with
 * failurePolicy Ignore, so it refuses nothing while it is down) and still lets two objects created at the same moment
 * both through. Reconcile sees every object and decides the same way every time; the refused object says why in its
 * status and an Event within a second of the apply.
 */
import type { KubernetesObject, V2HorizontalPodAutoscaler } from '@kubernetes/client-node';
import { API_VERSION, KIND } from './scaled-object.ts';

export interface Workload {
  readonly group: string;
  readonly kind: string;
  readonly name: string;
}

/** The workload a scaleTargetRef names (the version does not matter: one object under several versions). */
export function workloadOf(ref: {
  apiVersion?: string | undefined;
  kind?: string | undefined;
  name?: string | undefined;
}): Workload {
  const apiVersion = ref.apiVersion ?? 'apps/v1';
  const slash = apiVersion.indexOf('/');
  return {
    group: slash === -1 ? '' : apiVersion.slice(0, slash),
    kind: ref.kind ?? 'Deployment',
    name: ref.name ?? '',
  };
}

function sameWorkload(a: Workload, b: Workload): boolean {
  return a.group === b.group && a.kind === b.kind && a.name === b.name;
}

export interface OwnershipInput {
  readonly name: string;
  readonly uid: string;
  readonly creationTimestamp: string | undefined;
  readonly target: Workload;
  /** `group/version.Kind` of the target, for messages (KEDA's scaleTargetKind). */
  readonly targetKind: string;
  readonly hpaName: string;
  /** transfer-hpa-ownership and a custom HPA name. */
  readonly transfer: boolean;
  /**
   * The ScaledObjects of the namespace that target the same workload, as the informer holds them (a superset is
   * fine: others are skipped).
   */
  readonly scaledObjects: readonly KubernetesObject[];
  /** The HPAs of the namespace under `hpaName` or targeting the same workload (a superset is fine). */
  readonly hpas: readonly V2HorizontalPodAutoscaler[];
  /** Whether a ScaledObject with this name and uid exists in the namespace (an HPA's controller is alive). */
  readonly scaledObjectExists: (owner: { readonly name: string; readonly uid: string }) => boolean;
}

export type Ownership =
  | { readonly kind: 'ok' }
  /** Take over the HPA of this name (replace it), then manage it. */
  | { readonly kind: 'adopt'; readonly hpa: string }
  | { readonly kind: 'conflict'; readonly message: string };

const OPT_OUT = 'validations.keda.sh/hpa-ownership';

interface ScaledObjectView {
  metadata?: { name?: string; uid?: string; creationTimestamp?: string | Date; deletionTimestamp?: unknown };
  spec?: { scaleTargetRef?: { apiVersion?: string; kind?: string; name?: string } };
}

function created(value: string | Date | undefined): string {
  if (value === undefined) return '';
  return value instanceof Date ? value.toISOString() : value;
}

/** The controller ScaledObject of an HPA (any sluice ScaledObject that controls it), if any. */
function controller(hpa: V2HorizontalPodAutoscaler): { name: string; uid: string } | undefined {
  const ref = hpa.metadata?.ownerReferences?.find((o) => o.controller === true);
  return ref !== undefined && ref.apiVersion === API_VERSION && ref.kind === KIND
    ? { name: ref.name, uid: ref.uid }
    : undefined;
}

export function decideOwnership(input: OwnershipInput): Ownership {
  const mine = { created: input.creationTimestamp ?? '', name: input.name };
  for (const raw of input.scaledObjects) {
    const other = raw as ScaledObjectView;
    const uid = other.metadata?.uid;
    const name = other.metadata?.name;
    if (uid === undefined || name === undefined || uid === input.uid) continue;
    if (other.metadata?.deletionTimestamp !== undefined) continue;
    if (!sameWorkload(workloadOf(other.spec?.scaleTargetRef ?? {}), input.target)) continue;
    const theirs = { created: created(other.metadata?.creationTimestamp), name };
    const older = theirs.created < mine.created || (theirs.created === mine.created && theirs.name < mine.name);
    if (older) {
      return {
        kind: 'conflict',
        message: `the workload '${input.target.name}' of type '${input.targetKind}' is already managed by the ScaledObject '${name}'`,
      };
    }
  }

  let adopt: string | undefined;
  for (const hpa of input.hpas) {
    const name = hpa.metadata?.name ?? '';
    const owner = controller(hpa);
    if (owner?.uid === input.uid) continue;
    const named = name === input.hpaName;
    const targets = sameWorkload(workloadOf(hpa.spec.scaleTargetRef), input.target);
    if (!named && !targets) continue;
    if (owner !== undefined && input.scaledObjectExists(owner)) {
      // Another ScaledObject's HPA: under our HPA's name it is a conflict; on our workload the rule above decides.
      if (named) {
        return {
          kind: 'conflict',
          message: `the HPA '${name}' is already managed by the ScaledObject '${owner.name}'`,
        };
      }
      continue;
    }
    if (hpa.metadata?.annotations?.[OPT_OUT] === 'false' && !named) continue;
    if (named && input.transfer) {
      adopt = name;
      continue;
    }
    return {
      kind: 'conflict',
      message: named
        ? `the HPA '${name}' already exists and is not managed by this ScaledObject: to take it over, annotate the ScaledObject with scaledobject.keda.sh/transfer-hpa-ownership: "true"`
        : `the workload '${input.target.name}' of type '${input.targetKind}' is already managed by the hpa '${name}'` +
          (input.transfer
            ? ` (transfer-hpa-ownership takes over only the HPA named in spec.advanced.horizontalPodAutoscalerConfig.name, '${input.hpaName}')`
            : ' (to take it over, name it in spec.advanced.horizontalPodAutoscalerConfig.name and annotate the ScaledObject with scaledobject.keda.sh/transfer-hpa-ownership: "true")'),
    };
  }
  return adopt === undefined ? { kind: 'ok' } : { kind: 'adopt', hpa: adopt };
}
