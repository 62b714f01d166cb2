// The Event recorder (src/operator/events.ts) on the real kube-apiserver: events.k8s.io/v1 Events about a ConfigMap,
// one of them a series, read back through both Event APIs (core/v1 with the field selector `kubectl describe` uses),
// an expired Event created again, and the validation rules of events.k8s.io/v1 the recorder is built around.
import { ApiException, CoreV1Api, EventsV1Api, V1MicroTime, type KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  EventNotFoundError,
  createEventRecorder,
  createKubeEventsPort,
  microTime,
  type EventsPort,
  type ObjectReference,
} from '../../src/operator/events.ts';
import { createNamespace, deleteNamespace, kubeConfig } from '../support/env.ts';

const CONTROLLER = 'sluice.dev/operator';

interface LogLine {
  level: string;
  message: string;
  fields: Record<string, unknown> | undefined;
}

/** The status message of a refused request. */
async function refusal(request: Promise<unknown>): Promise<{ code: number; message: string }> {
  try {
    await request;
  } catch (err) {
    const api = err instanceof ApiException ? err : err instanceof Error ? err.cause : undefined;
    if (!(api instanceof ApiException)) throw err;
    const body = JSON.parse(String(api.body)) as { message: string };
    return { code: api.code, message: body.message };
  }
  throw new Error('the API server accepted it');
}

describe('Event recorder on the real API server', () => {
  let kc: KubeConfig;
  let core: CoreV1Api;
  let events: EventsV1Api;
  let port: EventsPort;
  let ns: string;
  let regarding: ObjectReference;
  const logs: LogLine[] = [];

  const newRecorder = () =>
    createEventRecorder({
      port,
      reportingController: CONTROLLER,
      reportingInstance: 'integration-test',
      log: (level, message, fields) => logs.push({ level, message, fields }),
    });

  beforeAll(async () => {
    kc = kubeConfig();
    core = kc.makeApiClient(CoreV1Api);
    events = kc.makeApiClient(EventsV1Api);
    port = createKubeEventsPort(kc);
    ns = await createNamespace(kc, 'events');
    const cm = await core.createNamespacedConfigMap({
      namespace: ns,
      body: { metadata: { name: 'target' }, data: { k: 'v' } },
    });
    regarding = { apiVersion: 'v1', kind: 'ConfigMap', namespace: ns, name: 'target', uid: cm.metadata?.uid ?? '' };
    expect(regarding.uid).not.toBe('');
  });

  afterAll(async () => {
    if (ns) await deleteNamespace(kc, ns);
  });

  it('writes Normal and Warning Events, a series as one Event, readable through both Event APIs', async () => {
    const recorder = newRecorder();
    recorder.emit(regarding, 'Normal', 'ScaledUp', 'Scaled from 0 to 3 replicas');
    recorder.emit(regarding, 'Warning', 'TriggerError', 'queue orders: connection refused');
    recorder.emit(regarding, 'Warning', 'TriggerError', 'queue orders: connection refused');
    recorder.emit(regarding, 'Warning', 'TriggerError', 'queue orders: timeout after 5s'); // same key, another note
    recorder.emit(regarding, 'Normal', 'LongNote', '🚀'.repeat(500)); // 2000 bytes of UTF-8
    await recorder.flush();
    expect(logs).toEqual([]);

    const list = await events.listNamespacedEvent({ namespace: ns });
    const byReason = new Map(list.items.map((e) => [e.reason, e]));
    expect(list.items).toHaveLength(3);

    const scaled = byReason.get('ScaledUp');
    expect(scaled).toMatchObject({
      type: 'Normal',
      action: 'ScaledUp',
      note: 'Scaled from 0 to 3 replicas',
      reportingController: CONTROLLER,
      reportingInstance: 'integration-test',
      regarding: { apiVersion: 'v1', kind: 'ConfigMap', namespace: ns, name: 'target', uid: regarding.uid },
    });
    expect(scaled?.series).toBeUndefined();
    expect(scaled?.metadata?.name).toMatch(/^target\.[0-9a-f]{16}$/);

    const failing = byReason.get('TriggerError');
    expect(failing).toMatchObject({
      type: 'Warning',
      note: 'queue orders: connection refused', // the first note stays
      reportingController: CONTROLLER,
      regarding: { uid: regarding.uid },
      series: { count: 3 },
    });
    // MicroTimes come back with their six fractional digits (the client leaves them as strings).
    expect(String(failing?.eventTime)).toMatch(/\.\d{6}Z$/);
    expect(String(failing?.series?.lastObservedTime)).toMatch(/\.\d{6}Z$/);

    const long = byReason.get('LongNote')?.note ?? '';
    expect(Buffer.byteLength(long)).toBeLessThanOrEqual(1024);
    expect(long.endsWith('…')).toBe(true);

    // What `kubectl describe configmap target` reads: core/v1 Events selected by involvedObject.uid.
    const described = await core.listNamespacedEvent({
      namespace: ns,
      fieldSelector: `involvedObject.uid=${regarding.uid}`,
    });
    expect(described.items).toHaveLength(3);
    const coreByReason = new Map(described.items.map((e) => [e.reason, e]));
    expect(coreByReason.get('ScaledUp')).toMatchObject({
      type: 'Normal',
      message: 'Scaled from 0 to 3 replicas',
      involvedObject: { kind: 'ConfigMap', name: 'target', uid: regarding.uid },
      reportingComponent: CONTROLLER,
      reportingInstance: 'integration-test',
    });
    const coreFailing = coreByReason.get('TriggerError');
    expect(coreFailing).toMatchObject({
      type: 'Warning',
      message: 'queue orders: connection refused',
      series: { count: 3 },
    });
    // The core view's `count` is events.k8s.io's deprecatedCount, which events.k8s.io/v1 may not set: the count is in
    // `series` (kubectl describe shows it as "(x3 over …)").
    expect(coreFailing?.count ?? 0).toBe(0);
    await recorder.stop();
  });

  it('creates an Event again, with its series, when it expired between two occurrences', async () => {
    const recorder = newRecorder();
    recorder.emit(regarding, 'Warning', 'BackendDown', 'broker unreachable');
    await recorder.flush();
    const [created] = (await events.listNamespacedEvent({ namespace: ns, fieldSelector: 'reason=BackendDown' })).items;
    const name = created?.metadata?.name ?? '';
    await events.deleteNamespacedEvent({ namespace: ns, name });

    recorder.emit(regarding, 'Warning', 'BackendDown', 'broker unreachable');
    await recorder.flush();
    const again = await events.readNamespacedEvent({ namespace: ns, name });
    expect(again).toMatchObject({ reason: 'BackendDown', series: { count: 2 } });
    expect(logs.filter((l) => l.level === 'warn' || l.level === 'error')).toEqual([]);
    await recorder.stop();
  });

  it('logs what the API server refuses and never throws', async () => {
    const recorder = newRecorder();
    const before = logs.length;
    const gone: ObjectReference = { ...regarding, namespace: 'no-such-namespace-for-events' };
    expect(() => {
      recorder.emit(gone, 'Normal', 'ScaledUp', 'x');
    }).not.toThrow();
    await recorder.flush();
    expect(logs.slice(before)).toEqual([
      expect.objectContaining({
        level: 'warn',
        message: 'cannot create Event',
        fields: expect.objectContaining({
          error: expect.stringMatching(/^HTTP 404: namespaces? .*not found/) as unknown,
        }) as unknown,
      }),
    ]);
    await recorder.stop();
  });

  describe('events.k8s.io/v1 validation, as the recorder relies on it', () => {
    let n = 0;
    const valid = () => ({
      metadata: { name: `target.probe${String(n++)}` },
      eventTime: new V1MicroTime(),
      regarding,
      type: 'Normal',
      reason: 'Probe',
      action: 'Probe',
      note: 'probe',
      reportingController: CONTROLLER,
      reportingInstance: 'integration-test',
    });

    it('accepts a note of 1024 bytes, refuses 1025 (bytes, not characters)', async () => {
      await port.create(ns, { ...valid(), note: 'x'.repeat(1024) });
      expect(await refusal(port.create(ns, { ...valid(), note: 'é'.repeat(513) }))).toMatchObject({
        code: 422,
        message: expect.stringContaining('message: Invalid value: "": can have at most 1024 characters') as unknown,
      });
    });

    it('requires eventTime, action, a qualified reportingController; series.count ≥ 2; no deprecatedCount', async () => {
      const refused = async (body: Record<string, unknown>) =>
        (await refusal(port.create(ns, { ...valid(), ...body }))).message;
      expect(await refused({ eventTime: undefined })).toContain('eventTime: Required value');
      expect(await refused({ action: undefined })).toContain('action: Required value');
      expect(await refused({ reportingController: 'sluice operator' })).toContain('reportingController: Invalid value');
      expect(await refused({ reportingInstance: 'x'.repeat(129) })).toContain('reportingInstance');
      expect(await refused({ reason: 'R'.repeat(129) })).toContain('reason');
      expect(await refused({ type: 'Info' })).toContain('type: Invalid value');
      expect(await refused({ series: { count: 1, lastObservedTime: new V1MicroTime() } })).toContain(
        'series.count: Invalid value: "": should be at least 2',
      );
      expect(await refused({ deprecatedCount: 3 })).toContain('count: Invalid value: "": needs to be unset');
      // A plain (unprefixed) qualified name is accepted too.
      await port.create(ns, { ...valid(), reportingController: 'sluice-operator' });
    });

    it('parses MicroTime with exactly six fractional digits only', async () => {
      const event = await port.create(ns, valid());
      const name = event.metadata?.name ?? '';
      await port.patch(ns, name, { series: { count: 2, lastObservedTime: microTime(new Date()) } });
      const refused = await refusal(
        port.patch(ns, name, { series: { count: 3, lastObservedTime: new Date().toISOString() } }),
      );
      expect(refused.message).toMatch(/cannot parse "\.\d{3}Z" as "\.000000"/);
    });

    it('refuses a change of note (immutable) and a series.count below 2 in a PATCH', async () => {
      const event = await port.create(ns, valid());
      const name = event.metadata?.name ?? '';
      expect((await refusal(port.patch(ns, name, { note: 'changed' }))).message).toContain(
        'message: Invalid value: "changed": field is immutable',
      );
      expect(
        (await refusal(port.patch(ns, name, { series: { count: 1, lastObservedTime: microTime(new Date()) } })))
          .message,
      ).toContain('series.count');
    });

    it('answers a PATCH of a missing Event with EventNotFoundError', async () => {
      await expect(
        port.patch(ns, 'target.0000000000000000', { series: { count: 2, lastObservedTime: microTime(new Date()) } }),
      ).rejects.toBeInstanceOf(EventNotFoundError);
    });
  });
});
