import { describe, expect, test } from 'vitest';
import { decideScale, type ScaleInput, type ScaleRule } from '../../../src/operator/scale-decision.ts';

const NOW = new Date('2026-06-01T12:00:00Z');
const ago = (ms: number): Date => new Date(NOW.getTime() - ms);
const s = (seconds: number): number => seconds * 1000;

/** An SO created an hour ago, min 0 / max 10, cooldown 300 s, initial cooldown 0, last active 10 minutes ago. */
const base: ScaleInput = {
  currentReplicas: 3,
  minReplicaCount: 0,
  maxReplicaCount: 10,
  active: false,
  anyError: false,
  lastActiveTime: ago(s(600)),
  createdAt: ago(s(3600)),
  cooldownPeriodS: 300,
  initialCooldownPeriodS: 0,
  now: NOW,
};

interface Row {
  comment: string;
  input: Partial<ScaleInput>;
  rule: ScaleRule;
  /** Replica count to scale to, or undefined for no action. */
  to: number | undefined;
  active: 'ScalerActive' | 'ScalerNotActive' | 'ScalerCooldown';
  ready: 'ScaledObjectReady' | 'PartialTriggerError' | 'TriggerError';
  refresh: boolean;
  /** The whole reason sentence, or a part of it. */
  reason?: string;
  /** The Active condition's message, when the row is about it. */
  activeMessage?: string;
}

const TRIGGERS_ACTIVE = 'Scaling is performed because triggers are active';
const FORCED = 'Scaling is performed because activation is being forced by annotation';

const rows: Row[] = [
  // 3. active
  {
    comment: '3a active at 0, min 0: scale to 1 and let the HPA take over',
    input: { active: true, currentReplicas: 0 },
    rule: 'scale-from-zero',
    to: 1,
    active: 'ScalerActive',
    ready: 'ScaledObjectReady',
    refresh: true,
    reason: 'triggers active at 0 replicas; scaling to 1, then the HPA scales between 1 and 10 replicas',
  },
  {
    comment: '3a active at 0, min 3: scale straight to min',
    input: { active: true, currentReplicas: 0, minReplicaCount: 3 },
    rule: 'scale-from-zero',
    to: 3,
    active: 'ScalerActive',
    ready: 'ScaledObjectReady',
    refresh: true,
  },
  {
    comment: '3a active at 0 with idle 0 and min 0: to 1',
    input: { active: true, currentReplicas: 0, idleReplicaCount: 0 },
    rule: 'scale-from-zero',
    to: 1,
    active: 'ScalerActive',
    ready: 'ScaledObjectReady',
    refresh: true,
  },
  {
    comment: '3a active at idle 1 with min 3: to min',
    input: { active: true, currentReplicas: 1, idleReplicaCount: 1, minReplicaCount: 3 },
    rule: 'scale-from-zero',
    to: 3,
    active: 'ScalerActive',
    ready: 'ScaledObjectReady',
    refresh: true,
    reason: 'triggers active at 1 replica; scaling to 3',
  },
  {
    comment: '3a idle set and manually scaled below min while active: to min',
    input: { active: true, currentReplicas: 1, idleReplicaCount: 0, minReplicaCount: 2 },
    rule: 'scale-from-zero',
    to: 2,
    active: 'ScalerActive',
    ready: 'ScaledObjectReady',
    refresh: true,
  },
  {
    comment: '3a with a failing trigger: still scales from zero; Ready shows the partial error',
    input: { active: true, anyError: true, currentReplicas: 0 },
    rule: 'scale-from-zero',
    to: 1,
    active: 'ScalerActive',
    ready: 'PartialTriggerError',
    refresh: true,
    reason: 'triggers active at 0 replicas (some triggers are failing); scaling to 1',
  },
  // 3a with a fallback serving (the poller's fallbackReplicas)
  {
    comment: '3a fallback serving 4 at 0: straight to the fallback count',
    input: { active: true, currentReplicas: 0, fallback: { replicas: 4 }, fallbackReplicas: 4 },
    rule: 'scale-from-zero',
    to: 4,
    active: 'ScalerActive',
    ready: 'ScaledObjectReady',
    refresh: true,
    reason: 'fallback serves 4 replicas at 0 replicas; scaling to 4',
  },
  {
    comment: '3a fallback serving 20 at 0 with max 10: clamped to max',
    input: { active: true, currentReplicas: 0, fallback: { replicas: 20 }, fallbackReplicas: 20 },
    rule: 'scale-from-zero',
    to: 10,
    active: 'ScalerActive',
    ready: 'ScaledObjectReady',
    refresh: true,
    reason: 'fallback serves 20 replicas at 0 replicas; scaling to 10',
  },
  {
    comment: '3a fallback serving 2 at 0 with min 3: at least min',
    input: { active: true, currentReplicas: 0, minReplicaCount: 3, fallback: { replicas: 2 }, fallbackReplicas: 2 },
    rule: 'scale-from-zero',
    to: 3,
    active: 'ScalerActive',
    ready: 'ScaledObjectReady',
    refresh: true,
  },
  {
    comment: '3a fallback serving 0 while another trigger is active: at least 1',
    input: { active: true, currentReplicas: 0, fallback: { replicas: 0 }, fallbackReplicas: 0 },
    rule: 'scale-from-zero',
    to: 1,
    active: 'ScalerActive',
    ready: 'ScaledObjectReady',
    refresh: true,
  },
  {
    comment: '3a fallback serving 5 at idle 1 with min 3: to the fallback count',
    input: {
      active: true,
      currentReplicas: 1,
      idleReplicaCount: 1,
      minReplicaCount: 3,
      fallback: { replicas: 5 },
      fallbackReplicas: 5,
    },
    rule: 'scale-from-zero',
    to: 5,
    active: 'ScalerActive',
    ready: 'ScaledObjectReady',
    refresh: true,
  },
  {
    comment: '3c fallback serving 6 above zero: the HPA gets there (the executor does not write)',
    input: { active: true, currentReplicas: 2, fallback: { replicas: 6 }, fallbackReplicas: 6 },
    rule: 'active',
    to: undefined,
    active: 'ScalerActive',
    ready: 'ScaledObjectReady',
    refresh: true,
  },
  {
    comment: '3c active above zero: the HPA scales, lastActiveTime refreshed',
    input: { active: true, currentReplicas: 3 },
    rule: 'active',
    to: undefined,
    active: 'ScalerActive',
    ready: 'ScaledObjectReady',
    refresh: true,
    reason: 'triggers active; the HPA scales between 1 and 10 replicas (now 3)',
  },
  {
    comment: '3c active with idle set and at min: the HPA scales',
    input: { active: true, currentReplicas: 2, idleReplicaCount: 0, minReplicaCount: 2 },
    rule: 'active',
    to: undefined,
    active: 'ScalerActive',
    ready: 'ScaledObjectReady',
    refresh: true,
    reason: 'the HPA scales between 2 and 10 replicas (now 2)',
  },
  {
    comment: '3c active below min without idle: not the executor’s job (the HPA enforces min from 1 up)',
    input: { active: true, currentReplicas: 1, minReplicaCount: 3 },
    rule: 'active',
    to: undefined,
    active: 'ScalerActive',
    ready: 'ScaledObjectReady',
    refresh: true,
  },
  {
    comment: '3c active above max: the HPA brings it down',
    input: { active: true, currentReplicas: 12 },
    rule: 'active',
    to: undefined,
    active: 'ScalerActive',
    ready: 'ScaledObjectReady',
    refresh: true,
  },
  {
    comment: '3b active with a failing trigger: PartialTriggerError, lastActiveTime still refreshed (KEDA skips it)',
    input: { active: true, anyError: true, currentReplicas: 3 },
    rule: 'active',
    to: undefined,
    active: 'ScalerActive',
    ready: 'PartialTriggerError',
    refresh: true,
    reason: 'triggers active (some triggers are failing); the HPA scales between 1 and 10 replicas (now 3)',
  },

  // 4a/4b. not active, errors: never scale in
  {
    comment: '4b error, no fallback, long cooled down, min 0: errors never scale to zero',
    input: { anyError: true, allError: true, lastActiveTime: ago(s(86_400)) },
    rule: 'error-hold',
    to: undefined,
    active: 'ScalerNotActive',
    ready: 'TriggerError',
    refresh: false,
    reason: 'all triggers failing; holding 3 replicas (errors never scale in)',
  },
  {
    comment: '4b error on one of several triggers, the others inactive: still no scale to zero',
    input: { anyError: true, allError: false, lastActiveTime: ago(s(86_400)) },
    rule: 'error-hold',
    to: undefined,
    active: 'ScalerNotActive',
    ready: 'TriggerError',
    refresh: false,
    reason: 'no trigger active and some triggers failing; holding 3 replicas',
  },
  {
    comment: '4b error, never active, initial cooldown long over: no scale to zero',
    input: { anyError: true, lastActiveTime: undefined },
    rule: 'error-hold',
    to: undefined,
    active: 'ScalerNotActive',
    ready: 'TriggerError',
    refresh: false,
  },
  {
    comment: '4b error with idle 0 set: no scale to idle either',
    input: { anyError: true, idleReplicaCount: 0, minReplicaCount: 2 },
    rule: 'error-hold',
    to: undefined,
    active: 'ScalerNotActive',
    ready: 'TriggerError',
    refresh: false,
  },
  {
    comment: '4b error at 0 replicas: stays at 0 (no activation on errors)',
    input: { anyError: true, currentReplicas: 0 },
    rule: 'error-hold',
    to: undefined,
    active: 'ScalerNotActive',
    ready: 'TriggerError',
    refresh: false,
    reason: 'holding 0 replicas',
  },
  {
    comment: '4a error with fallback replicas 2: hold, Ready stays True (the HPA applies the fallback)',
    input: { anyError: true, fallback: { replicas: 2 } },
    rule: 'error-hold',
    to: undefined,
    active: 'ScalerNotActive',
    ready: 'ScaledObjectReady',
    refresh: false,
    reason: '(errors never scale in, fallback configured)',
  },
  {
    comment: 'error with fallback replicas 0: still hold (KEDA falls through to scale-in here)',
    input: { anyError: true, fallback: { replicas: 0 }, lastActiveTime: ago(s(86_400)) },
    rule: 'error-hold',
    to: undefined,
    active: 'ScalerNotActive',
    ready: 'ScaledObjectReady',
    refresh: false,
  },
  {
    comment: 'error below min without idle: scaling up to min is not a scale-in, so it happens',
    input: { anyError: true, currentReplicas: 1, minReplicaCount: 3 },
    rule: 'below-min',
    to: 3,
    active: 'ScalerNotActive',
    ready: 'TriggerError',
    refresh: false,
    reason: 'no trigger active and some triggers failing; 1 replica is below minReplicaCount 3, scaling to 3',
  },
  {
    comment: 'error at idle below min: hold at idle',
    input: { anyError: true, currentReplicas: 0, idleReplicaCount: 0, minReplicaCount: 2 },
    rule: 'error-hold',
    to: undefined,
    active: 'ScalerNotActive',
    ready: 'TriggerError',
    refresh: false,
  },

  // 4c. not active, above zero/idle: cooldown
  {
    comment: '4c cooled down (301 s of 300 s): scale to 0',
    input: { lastActiveTime: ago(s(301)) },
    rule: 'scale-in',
    to: 0,
    active: 'ScalerNotActive',
    ready: 'ScaledObjectReady',
    refresh: false,
    reason: 'triggers idle for 301s, past the 300s cooldown; scaling from 3 to 0',
  },
  {
    comment: '4c cooldown boundary: exactly 300 s of 300 s is still cooling down (strict <)',
    input: { lastActiveTime: ago(s(300)) },
    rule: 'cooldown',
    to: undefined,
    active: 'ScalerCooldown',
    ready: 'ScaledObjectReady',
    refresh: false,
    reason: 'triggers idle for 300s of the 300s cooldown; holding 3 replicas',
  },
  {
    comment: '4c cooldown boundary: 1 ms past the cooldown scales',
    input: { lastActiveTime: ago(s(300) + 1) },
    rule: 'scale-in',
    to: 0,
    active: 'ScalerNotActive',
    ready: 'ScaledObjectReady',
    refresh: false,
  },
  {
    comment: '4c inside the cooldown: hold with ScalerCooldown',
    input: { lastActiveTime: ago(12_400) },
    rule: 'cooldown',
    to: undefined,
    active: 'ScalerCooldown',
    ready: 'ScaledObjectReady',
    refresh: false,
    reason: 'triggers idle for 12s of the 300s cooldown; holding 3 replicas',
  },
  {
    comment: '4c cooldown 0, last active this very instant: not yet (strict <)',
    input: { cooldownPeriodS: 0, lastActiveTime: NOW },
    rule: 'cooldown',
    to: undefined,
    active: 'ScalerCooldown',
    ready: 'ScaledObjectReady',
    refresh: false,
  },
  {
    comment: '4c cooldown 0, last active 1 ms ago: scale',
    input: { cooldownPeriodS: 0, lastActiveTime: ago(1) },
    rule: 'scale-in',
    to: 0,
    active: 'ScalerNotActive',
    ready: 'ScaledObjectReady',
    refresh: false,
  },
  {
    comment: '4c never active: the initial cooldown runs from creation (61 s of 60 s: scale)',
    input: { lastActiveTime: undefined, initialCooldownPeriodS: 60, createdAt: ago(s(61)) },
    rule: 'scale-in',
    to: 0,
    active: 'ScalerNotActive',
    ready: 'ScaledObjectReady',
    refresh: false,
    reason: 'triggers never active since creation 61s ago, past the 60s initial cooldown; scaling from 3 to 0',
  },
  {
    comment: '4c never active: initial cooldown boundary, exactly 60 s of 60 s holds',
    input: { lastActiveTime: undefined, initialCooldownPeriodS: 60, createdAt: ago(s(60)) },
    rule: 'cooldown',
    to: undefined,
    active: 'ScalerCooldown',
    ready: 'ScaledObjectReady',
    refresh: false,
    reason: 'triggers never active since creation 60s ago, within the 60s initial cooldown; holding 3 replicas',
  },
  {
    comment: '4c never active, initial cooldown 0 (KEDA default): scales as soon as created + 0 < now',
    input: { lastActiveTime: undefined, initialCooldownPeriodS: 0, createdAt: ago(1) },
    rule: 'scale-in',
    to: 0,
    active: 'ScalerNotActive',
    ready: 'ScaledObjectReady',
    refresh: false,
  },
  {
    comment: '4c the initial cooldown does not apply once lastActiveTime is set (cooldown does)',
    input: { lastActiveTime: ago(s(301)), initialCooldownPeriodS: 3600, createdAt: ago(s(400)) },
    rule: 'scale-in',
    to: 0,
    active: 'ScalerNotActive',
    ready: 'ScaledObjectReady',
    refresh: false,
  },
  {
    comment: '4c the cooldown (not the initial one) applies once lastActiveTime is set',
    input: { lastActiveTime: ago(s(10)), initialCooldownPeriodS: 0, createdAt: ago(s(86_400)) },
    rule: 'cooldown',
    to: undefined,
    active: 'ScalerCooldown',
    ready: 'ScaledObjectReady',
    refresh: false,
  },
  {
    comment: '4c idle 1 below min 3, cooled down: scale to idle, not min',
    input: { idleReplicaCount: 1, minReplicaCount: 3, currentReplicas: 5 },
    rule: 'scale-in',
    to: 1,
    active: 'ScalerNotActive',
    ready: 'ScaledObjectReady',
    refresh: false,
    reason: 'scaling from 5 to 1 (idleReplicaCount)',
  },
  {
    comment: '4c idle 0 with min 2, at min, cooled down: scale to idle 0',
    input: { idleReplicaCount: 0, minReplicaCount: 2, currentReplicas: 2 },
    rule: 'scale-in',
    to: 0,
    active: 'ScalerNotActive',
    ready: 'ScaledObjectReady',
    refresh: false,
  },
  {
    comment: '4c idle set, inside the cooldown: hold',
    input: { idleReplicaCount: 1, minReplicaCount: 3, currentReplicas: 5, lastActiveTime: ago(s(30)) },
    rule: 'cooldown',
    to: undefined,
    active: 'ScalerCooldown',
    ready: 'ScaledObjectReady',
    refresh: false,
  },

  // 4d. below min without idle
  {
    comment: '4d manually scaled below min: back to min',
    input: { minReplicaCount: 3, currentReplicas: 1 },
    rule: 'below-min',
    to: 3,
    active: 'ScalerNotActive',
    ready: 'ScaledObjectReady',
    refresh: false,
    reason: '1 replica is below minReplicaCount 3; scaling to 3',
  },
  {
    comment: '4d at 0 with min 2 and no idle: to min even though inactive',
    input: { minReplicaCount: 2, currentReplicas: 0 },
    rule: 'below-min',
    to: 2,
    active: 'ScalerNotActive',
    ready: 'ScaledObjectReady',
    refresh: false,
  },

  // 4e. nothing to do
  {
    comment: '4e at 0 with min 0: nothing to do',
    input: { currentReplicas: 0 },
    rule: 'steady',
    to: undefined,
    active: 'ScalerNotActive',
    ready: 'ScaledObjectReady',
    refresh: false,
    reason: 'triggers not active; already at 0 replicas',
  },
  {
    comment: '4e at idle: nothing to do',
    input: { idleReplicaCount: 1, minReplicaCount: 3, currentReplicas: 1 },
    rule: 'steady',
    to: undefined,
    active: 'ScalerNotActive',
    ready: 'ScaledObjectReady',
    refresh: false,
    reason: 'already at 1 replica',
  },
  {
    comment: '4e below idle (KEDA leaves it): nothing to do',
    input: { idleReplicaCount: 1, minReplicaCount: 3, currentReplicas: 0 },
    rule: 'steady',
    to: undefined,
    active: 'ScalerNotActive',
    ready: 'ScaledObjectReady',
    refresh: false,
  },
  {
    comment: '4e min 2 without idle, above min: the HPA keeps it between min and max',
    input: { minReplicaCount: 2, currentReplicas: 4 },
    rule: 'steady',
    to: undefined,
    active: 'ScalerNotActive',
    ready: 'ScaledObjectReady',
    refresh: false,
    reason: 'triggers not active; the HPA scales between 2 and 10 replicas (now 4)',
  },

  // annotations: paused-scale-out (never activate from zero or idle)
  {
    comment: 'paused-scale-out, active at 0: not activating (Active stays True, lastActiveTime refreshed)',
    input: { active: true, currentReplicas: 0, pausedScaleOut: true },
    rule: 'paused-scale-out',
    to: undefined,
    active: 'ScalerActive',
    ready: 'ScaledObjectReady',
    refresh: true,
    reason: 'triggers active at 0 replicas, but paused-scale-out: not activating',
    activeMessage: TRIGGERS_ACTIVE,
  },
  {
    comment: 'paused-scale-out, active at idle 1 below min 3: not activating to min',
    input: { active: true, currentReplicas: 1, idleReplicaCount: 1, minReplicaCount: 3, pausedScaleOut: true },
    rule: 'paused-scale-out',
    to: undefined,
    active: 'ScalerActive',
    ready: 'ScaledObjectReady',
    refresh: true,
  },
  {
    comment: 'paused-scale-out, active at 0 with a fallback serving 4: not activating either',
    input: { active: true, currentReplicas: 0, fallback: { replicas: 4 }, fallbackReplicas: 4, pausedScaleOut: true },
    rule: 'paused-scale-out',
    to: undefined,
    active: 'ScalerActive',
    ready: 'ScaledObjectReady',
    refresh: true,
  },
  {
    comment: 'paused-scale-out, active at 0 with a failing trigger: PartialTriggerError, no write',
    input: { active: true, anyError: true, currentReplicas: 0, pausedScaleOut: true },
    rule: 'paused-scale-out',
    to: undefined,
    active: 'ScalerActive',
    ready: 'PartialTriggerError',
    refresh: true,
  },
  {
    comment: 'paused-scale-out, active above zero: the HPA (scaleUp Disabled) holds it; the executor has nothing to do',
    input: { active: true, currentReplicas: 3, pausedScaleOut: true },
    rule: 'active',
    to: undefined,
    active: 'ScalerActive',
    ready: 'ScaledObjectReady',
    refresh: true,
  },
  {
    comment: 'paused-scale-out does not stop a scale-in (cooled down, to 0)',
    input: { lastActiveTime: ago(s(301)), pausedScaleOut: true },
    rule: 'scale-in',
    to: 0,
    active: 'ScalerNotActive',
    ready: 'ScaledObjectReady',
    refresh: false,
  },
  {
    comment: 'paused-scale-out, inactive at 0: steady',
    input: { currentReplicas: 0, pausedScaleOut: true },
    rule: 'steady',
    to: undefined,
    active: 'ScalerNotActive',
    ready: 'ScaledObjectReady',
    refresh: false,
  },

  // annotations: paused-scale-in (never scale in to zero or idle)
  {
    comment: 'paused-scale-in, cooled down (301 s of 300 s): holds instead of scaling to 0',
    input: { lastActiveTime: ago(s(301)), pausedScaleIn: true },
    rule: 'paused-scale-in',
    to: undefined,
    active: 'ScalerNotActive',
    ready: 'ScaledObjectReady',
    refresh: false,
    reason: 'triggers idle for 301s, past the 300s cooldown, but paused-scale-in: holding 3 replicas',
  },
  {
    comment: 'paused-scale-in, never active past the initial cooldown: holds',
    input: { lastActiveTime: undefined, initialCooldownPeriodS: 60, createdAt: ago(s(61)), pausedScaleIn: true },
    rule: 'paused-scale-in',
    to: undefined,
    active: 'ScalerNotActive',
    ready: 'ScaledObjectReady',
    refresh: false,
    reason: 'past the 60s initial cooldown, but paused-scale-in',
  },
  {
    comment: 'paused-scale-in, idle 1 below min 3, cooled down: no scale to idle',
    input: { idleReplicaCount: 1, minReplicaCount: 3, currentReplicas: 5, pausedScaleIn: true },
    rule: 'paused-scale-in',
    to: undefined,
    active: 'ScalerNotActive',
    ready: 'ScaledObjectReady',
    refresh: false,
  },
  {
    comment: 'paused-scale-in, inside the cooldown: ScalerCooldown as without it',
    input: { lastActiveTime: ago(s(30)), pausedScaleIn: true },
    rule: 'cooldown',
    to: undefined,
    active: 'ScalerCooldown',
    ready: 'ScaledObjectReady',
    refresh: false,
  },
  {
    comment: 'paused-scale-in does not stop activation from 0',
    input: { active: true, currentReplicas: 0, pausedScaleIn: true },
    rule: 'scale-from-zero',
    to: 1,
    active: 'ScalerActive',
    ready: 'ScaledObjectReady',
    refresh: true,
  },
  {
    comment: 'paused-scale-in, below min without idle: scaling up to min is not a scale-in',
    input: { minReplicaCount: 3, currentReplicas: 1, pausedScaleIn: true },
    rule: 'below-min',
    to: 3,
    active: 'ScalerNotActive',
    ready: 'ScaledObjectReady',
    refresh: false,
  },
  {
    comment: 'paused-scale-in and paused-scale-out together, inactive and cooled down: hold',
    input: { lastActiveTime: ago(s(301)), pausedScaleIn: true, pausedScaleOut: true },
    rule: 'paused-scale-in',
    to: undefined,
    active: 'ScalerNotActive',
    ready: 'ScaledObjectReady',
    refresh: false,
  },

  // annotations: force-activation (active whatever the triggers say)
  {
    comment: 'force-activation, inactive at 0: scales to 1, Active says it is forced',
    input: { currentReplicas: 0, forceActivation: true },
    rule: 'scale-from-zero',
    to: 1,
    active: 'ScalerActive',
    ready: 'ScaledObjectReady',
    refresh: true,
    reason:
      'activation forced by annotation at 0 replicas; scaling to 1, then the HPA scales between 1 and 10 replicas',
    activeMessage: FORCED,
  },
  {
    comment: 'force-activation, inactive at idle 1 below min 3: to min',
    input: { currentReplicas: 1, idleReplicaCount: 1, minReplicaCount: 3, forceActivation: true },
    rule: 'scale-from-zero',
    to: 3,
    active: 'ScalerActive',
    ready: 'ScaledObjectReady',
    refresh: true,
  },
  {
    comment: 'force-activation, inactive at 3 and long cooled down: never scales in',
    input: { lastActiveTime: ago(s(86_400)), forceActivation: true },
    rule: 'active',
    to: undefined,
    active: 'ScalerActive',
    ready: 'ScaledObjectReady',
    refresh: true,
    reason: 'activation forced by annotation; the HPA scales between 1 and 10 replicas (now 3)',
    activeMessage: FORCED,
  },
  {
    comment: 'force-activation with every trigger failing: active, PartialTriggerError (not the error hold)',
    input: { anyError: true, allError: true, forceActivation: true },
    rule: 'active',
    to: undefined,
    active: 'ScalerActive',
    ready: 'PartialTriggerError',
    refresh: true,
    reason: 'activation forced by annotation (some triggers are failing)',
  },
  {
    comment: 'force-activation while the triggers are active too: the forced message',
    input: { active: true, forceActivation: true },
    rule: 'active',
    to: undefined,
    active: 'ScalerActive',
    ready: 'ScaledObjectReady',
    refresh: true,
    activeMessage: FORCED,
  },
  {
    comment: 'force-activation and paused-scale-out at 0: paused-scale-out wins (no write)',
    input: { currentReplicas: 0, forceActivation: true, pausedScaleOut: true },
    rule: 'paused-scale-out',
    to: undefined,
    active: 'ScalerActive',
    ready: 'ScaledObjectReady',
    refresh: true,
    reason: 'activation forced by annotation at 0 replicas, but paused-scale-out: not activating',
    activeMessage: FORCED,
  },
  {
    comment: 'force-activation with paused-scale-in: the hold is the forced activity (rule active)',
    input: { lastActiveTime: ago(s(301)), forceActivation: true, pausedScaleIn: true },
    rule: 'active',
    to: undefined,
    active: 'ScalerActive',
    ready: 'ScaledObjectReady',
    refresh: true,
  },
  {
    comment: 'the annotations explicitly false change nothing (3c as without them)',
    input: { active: true, pausedScaleIn: false, pausedScaleOut: false, forceActivation: false },
    rule: 'active',
    to: undefined,
    active: 'ScalerActive',
    ready: 'ScaledObjectReady',
    refresh: true,
    activeMessage: TRIGGERS_ACTIVE,
  },
];

describe('decideScale (KEDA executor table, docs/keda-compatibility.md#executor-decision-table)', () => {
  test.each(rows)('$comment', (row) => {
    const decision = decideScale({ ...base, ...row.input });
    expect(decision.rule).toBe(row.rule);
    expect(decision.action).toBe(row.to === undefined ? 'none' : 'scale');
    if (decision.action === 'scale') expect(decision.to).toBe(row.to);
    expect(decision.condition.type).toBe('Active');
    expect(decision.condition.reason).toBe(row.active);
    expect(decision.readyCondition.type).toBe('Ready');
    expect(decision.readyCondition.reason).toBe(row.ready);
    expect(decision.refreshLastActiveTime).toBe(row.refresh);
    if (row.reason !== undefined) expect(decision.reason).toContain(row.reason);
    if (row.activeMessage !== undefined) expect(decision.condition.message).toBe(row.activeMessage);
  });

  test('errors never scale in, whatever the replica counts and times', () => {
    let checked = 0;
    for (const currentReplicas of [0, 1, 2, 3, 5]) {
      for (const minReplicaCount of [0, 1, 3]) {
        for (const idleReplicaCount of [undefined, 0]) {
          if (idleReplicaCount !== undefined && idleReplicaCount >= minReplicaCount) continue;
          for (const lastActiveTime of [undefined, ago(1), ago(s(86_400))]) {
            for (const fallback of [undefined, { replicas: 0 }, { replicas: 2 }]) {
              const decision = decideScale({
                ...base,
                anyError: true,
                currentReplicas,
                minReplicaCount,
                idleReplicaCount,
                lastActiveTime,
                fallback,
              });
              if (decision.action === 'scale') expect(decision.to).toBeGreaterThan(currentReplicas);
              checked++;
            }
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(100);
  });

  test('every scale action changes the replica count', () => {
    for (const row of rows) {
      const input = { ...base, ...row.input };
      const decision = decideScale(input);
      if (decision.action === 'scale') expect(decision.to, row.comment).not.toBe(input.currentReplicas);
    }
  });
});
