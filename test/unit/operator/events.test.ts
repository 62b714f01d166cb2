import type { EventsV1Event } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../../../src/errors.ts';
import {
  EventNotFoundError,
  NOTE_MAX_BYTES,
  createEventRecorder,
  MAX_WRITES_IN_FLIGHT,
  EVENT_WRITES_BURST,
  EVENT_WRITES_PER_SECOND,
  microTime,
  truncateNote,
  type EventsPort,
  type ObjectReference,
  type RecorderOptions,
} from '../../../src/operator/events.ts';

// ---------------------------------------------------------------------------------------------------------------
// an in-memory events.k8s.io API

interface Write {
  readonly op: 'create' | 'patch';
  readonly name: string;
  /** Date.now() (faked) when the write started. */
  readonly at: number;
  readonly body: unknown;
}

/** The JSON the client would send (V1MicroTime serialises itself with six fractional digits). */
const asJson = (value: unknown): Record<string, unknown> =>
  JSON.parse(JSON.stringify(value)) as Record<string, unknown>;

class MemoryEvents implements EventsPort {
  readonly events = new Map<string, Record<string, unknown>>();
  readonly writes: Write[] = [];
  /** Each write takes this long (fake time). */
  latencyMs = 0;
  inFlight = 0;
  maxInFlightPerEvent = 0;
  readonly #inFlightByName = new Map<string, number>();
  failWith: Error | undefined;

  async create(namespace: string, event: EventsV1Event): Promise<EventsV1Event> {
    const name = event.metadata?.name ?? '';
    await this.#write('create', name, event);
    const body = asJson(event);
    this.events.set(`${namespace}/${name}`, body);
    return event;
  }

  async patch(namespace: string, name: string, patch: Record<string, unknown>): Promise<void> {
    await this.#write('patch', name, patch);
    const existing = this.events.get(`${namespace}/${name}`);
    if (!existing) throw new EventNotFoundError(namespace, name);
    Object.assign(existing, asJson(patch));
  }

  async #write(op: Write['op'], name: string, body: unknown): Promise<void> {
    this.writes.push({ op, name, at: Date.now(), body: asJson(body) });
    const inFlight = (this.#inFlightByName.get(name) ?? 0) + 1;
    this.#inFlightByName.set(name, inFlight);
    this.maxInFlightPerEvent = Math.max(this.maxInFlightPerEvent, inFlight);
    try {
      if (this.latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, this.latencyMs));
      if (this.failWith) throw this.failWith;
    } finally {
      this.#inFlightByName.set(name, inFlight - 1);
    }
  }

  list(): Record<string, unknown>[] {
    return [...this.events.values()];
  }

  creates(): Write[] {
    return this.writes.filter((w) => w.op === 'create');
  }

  patches(name?: string): Write[] {
    return this.writes.filter((w) => w.op === 'patch' && (name === undefined || w.name === name));
  }
}

interface LogLine {
  level: string;
  message: string;
  fields: Record<string, unknown> | undefined;
}

function ref(name: string, uid = `uid-${name}`): ObjectReference {
  return { apiVersion: 'sluice.dev/v1alpha1', kind: 'ScaledObject', namespace: 'apps', name, uid };
}

const web = ref('web');
const MINUTE = 60_000;

let port: MemoryEvents;
let logs: LogLine[];

function recorder(overrides: Partial<RecorderOptions> = {}) {
  return createEventRecorder({
    port,
    reportingController: 'sluice.dev/operator',
    reportingInstance: 'sluice-7d9f-abcde',
    log: (level, message, fields) => logs.push({ level, message, fields }),
    ...overrides,
  });
}

const MICRO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/;

beforeEach(() => {
  vi.useFakeTimers({ now: new Date('2026-12-07T10:11:12.123Z') });
  port = new MemoryEvents();
  logs = [];
});

afterEach(() => {
  vi.useRealTimers();
});

describe('EventRecorder: deduplication into series', () => {
  it('creates an events.k8s.io/v1 Event for the first occurrence', async () => {
    const rec = recorder();
    rec.emit(web, 'Normal', 'ScaledUp', 'Scaled apps/web from 0 to 3 replicas');
    await rec.flush();

    expect(port.creates()).toHaveLength(1);
    const [event] = port.list();
    expect(event).toMatchObject({
      apiVersion: 'events.k8s.io/v1',
      kind: 'Event',
      metadata: { namespace: 'apps' },
      regarding: {
        apiVersion: 'sluice.dev/v1alpha1',
        kind: 'ScaledObject',
        namespace: 'apps',
        name: 'web',
        uid: 'uid-web',
      },
      type: 'Normal',
      reason: 'ScaledUp',
      action: 'ScaledUp',
      note: 'Scaled apps/web from 0 to 3 replicas',
      reportingController: 'sluice.dev/operator',
      reportingInstance: 'sluice-7d9f-abcde',
      eventTime: '2026-12-07T10:11:12.123000Z',
    });
    expect(event).not.toHaveProperty('series');
    expect((event?.['metadata'] as { name: string }).name).toMatch(/^web\.[0-9a-f]{16}$/);
    expect(logs).toEqual([]);
  });

  it('uses the given action', async () => {
    const rec = recorder();
    rec.emit(web, 'Normal', 'ScaledUp', 'up', 'Scale');
    await rec.flush();
    expect(port.list()[0]).toMatchObject({ reason: 'ScaledUp', action: 'Scale' });
  });

  it('makes a repeat within 6 minutes a series: one PATCH with {count: 2, lastObservedTime}', async () => {
    const rec = recorder();
    rec.emit(web, 'Warning', 'TriggerError', 'queue orders: connection refused');
    await rec.flush();
    await vi.advanceTimersByTimeAsync(5 * MINUTE);
    rec.emit(web, 'Warning', 'TriggerError', 'queue orders: connection refused');
    await rec.flush();

    expect(port.creates()).toHaveLength(1);
    const name = port.creates()[0]?.name ?? '';
    expect(port.patches()).toEqual([
      {
        op: 'patch',
        name,
        at: expect.any(Number) as number,
        body: { series: { count: 2, lastObservedTime: '2026-12-07T10:16:12.123000Z' } },
      },
    ]);
    expect(port.list()).toHaveLength(1);
    expect(port.list()[0]).toMatchObject({
      eventTime: '2026-12-07T10:11:12.123000Z',
      series: { count: 2, lastObservedTime: '2026-12-07T10:16:12.123000Z' },
    });
  });

  it('coalesces quick repeats: at most one PATCH in flight and one per second per Event, the last count written', async () => {
    port.latencyMs = 300;
    const rec = recorder();
    rec.emit(web, 'Warning', 'TriggerError', 'timeout');
    // 20 repeats, 100 ms apart (2 s), while writes take 300 ms each.
    for (let i = 0; i < 20; i++) {
      await vi.advanceTimersByTimeAsync(100);
      rec.emit(web, 'Warning', 'TriggerError', 'timeout');
    }
    const patchesBeforeFlush = port.patches().length;
    const flushed = rec.flush();
    await vi.runAllTimersAsync(); // the write in flight takes 300 ms of fake time
    await flushed;

    expect(port.creates()).toHaveLength(1);
    expect(port.list()).toHaveLength(1);
    expect(port.list()[0]).toMatchObject({ series: { count: 21 } });
    const patches = port.patches();
    expect(patches.length).toBeGreaterThanOrEqual(2); // the coalesced ones during the burst, and the last count
    expect(patches.length).toBeLessThanOrEqual(4);
    expect(patchesBeforeFlush).toBeGreaterThanOrEqual(1);
    // One per second: the burst's PATCHes (not the one flush() forces) start ≥ 1 s after the previous write.
    const writes = port.writes.slice(0, 1 + patchesBeforeFlush);
    for (let i = 1; i < writes.length; i++) {
      expect((writes[i]?.at ?? 0) - (writes[i - 1]?.at ?? 0)).toBeGreaterThanOrEqual(1000);
    }
    expect(port.maxInFlightPerEvent).toBe(1);
    // The counts written only ever grow.
    const counts = patches.map((p) => (p.body as { series: { count: number } }).series.count);
    expect(counts).toEqual([...counts].sort((a, b) => a - b));
    expect(counts.at(-1)).toBe(21);
  });

  it('writes the final count without flush(), once the per-second wait is over', async () => {
    const rec = recorder();
    rec.emit(web, 'Normal', 'ScaledUp', 'up');
    await vi.advanceTimersByTimeAsync(0);
    for (let i = 0; i < 5; i++) rec.emit(web, 'Normal', 'ScaledUp', 'up');
    await vi.advanceTimersByTimeAsync(0);
    expect(port.patches()).toHaveLength(0); // the create was < 1 s ago
    await vi.advanceTimersByTimeAsync(1000);
    expect(port.patches()).toHaveLength(1);
    expect(port.list()[0]).toMatchObject({ series: { count: 6 } });
  });

  it('keys on action and reason and type: another of any of them is another Event', async () => {
    const rec = recorder();
    rec.emit(web, 'Normal', 'ScaledUp', 'up');
    rec.emit(web, 'Normal', 'ScaledDown', 'down');
    rec.emit(web, 'Warning', 'ScaledUp', 'up, but');
    rec.emit(web, 'Normal', 'ScaledUp', 'up', 'Other');
    rec.emit(ref('api'), 'Normal', 'ScaledUp', 'up');
    await rec.flush();
    expect(port.creates()).toHaveLength(5);
    expect(port.patches()).toHaveLength(0);
    expect(new Set(port.creates().map((c) => c.name)).size).toBe(5);
  });

  it('does not key on the note: a repeat with another note extends the series (the first note stays)', async () => {
    const rec = recorder();
    rec.emit(web, 'Warning', 'TriggerError', 'queue orders: connection refused');
    rec.emit(web, 'Warning', 'TriggerError', 'queue orders: timeout after 5s');
    await rec.flush();
    expect(port.creates()).toHaveLength(1);
    expect(port.list()).toEqual([
      expect.objectContaining({
        note: 'queue orders: connection refused',
        series: expect.objectContaining({ count: 2 }) as unknown,
      }),
    ]);
    // The API server refuses a change of `note`: the PATCH carries only the series.
    expect(port.patches().map((p) => Object.keys(p.body as object))).toEqual([['series']]);
  });

  it('starts a new Event after the series went quiet for more than 6 minutes', async () => {
    const rec = recorder();
    rec.emit(web, 'Warning', 'TriggerError', 'x');
    rec.emit(web, 'Warning', 'TriggerError', 'x');
    await rec.flush();
    await vi.advanceTimersByTimeAsync(7 * MINUTE);
    rec.emit(web, 'Warning', 'TriggerError', 'x');
    await rec.flush();
    expect(port.creates()).toHaveLength(2);
    const [first, second] = port.creates();
    expect(second?.name).not.toBe(first?.name);
    expect(port.list().map((e) => (e['series'] as { count: number } | undefined)?.count)).toEqual([2, undefined]);
  });

  it('measures the 6 minutes from the last occurrence, not the first', async () => {
    const rec = recorder();
    for (let i = 0; i < 4; i++) {
      rec.emit(web, 'Warning', 'TriggerError', 'x');
      await vi.advanceTimersByTimeAsync(5 * MINUTE);
    }
    await rec.flush();
    expect(port.creates()).toHaveLength(1);
    expect(port.list()[0]).toMatchObject({ series: { count: 4 } });
  });

  it('creates the Event again (with its series) when a PATCH finds it gone', async () => {
    const rec = recorder();
    rec.emit(web, 'Warning', 'TriggerError', 'x');
    await rec.flush();
    port.events.clear(); // expired
    await vi.advanceTimersByTimeAsync(2000);
    rec.emit(web, 'Warning', 'TriggerError', 'x');
    await rec.flush();
    expect(port.writes.map((w) => w.op)).toEqual(['create', 'patch', 'create']);
    expect(port.list()).toEqual([
      expect.objectContaining({ series: expect.objectContaining({ count: 2 }) as unknown }),
    ]);
    expect(port.creates()[1]?.name).toBe(port.creates()[0]?.name);
  });
});

describe('EventRecorder: per-object rate limit', () => {
  it('drops beyond a burst of 25 per object, counts and logs it at most once a minute; other objects unaffected', async () => {
    const rec = recorder();
    // Different reasons: no series, each occurrence would be its own Event.
    for (let i = 0; i < 30; i++) rec.emit(web, 'Normal', `Reason${i}`, 'n');
    rec.emit(ref('api'), 'Normal', 'ScaledUp', 'up');
    await rec.flush();

    expect(port.creates().filter((c) => c.name.startsWith('web.'))).toHaveLength(25);
    expect(port.creates().filter((c) => c.name.startsWith('api.'))).toHaveLength(1);
    expect(rec.dropped).toBe(5);
    const dropLogs = logs.filter((l) => l.message.includes('dropped'));
    expect(dropLogs).toHaveLength(1);
    expect(dropLogs[0]).toMatchObject({ level: 'warn', fields: { regarding: 'ScaledObject apps/web', dropped: 1 } });

    // Within the minute: counted, not logged.
    await vi.advanceTimersByTimeAsync(MINUTE - 1);
    rec.emit(web, 'Normal', 'More', 'n'); // the minute refilled 0.2 token only
    expect(rec.dropped).toBe(6);
    expect(logs.filter((l) => l.message.includes('dropped'))).toHaveLength(1);
    // A minute after the first line: one more, with how many were dropped since.
    await vi.advanceTimersByTimeAsync(1);
    rec.emit(web, 'Normal', 'More', 'n');
    expect(rec.dropped).toBe(7);
    const later = logs.filter((l) => l.message.includes('dropped'));
    expect(later).toHaveLength(2);
    expect(later[1]).toMatchObject({ level: 'warn', fields: { regarding: 'ScaledObject apps/web', dropped: 5 } });
    await rec.flush();
  });

  it('counts repeats of a series against the bucket too', async () => {
    const rec = recorder();
    for (let i = 0; i < 40; i++) rec.emit(web, 'Warning', 'TriggerError', 'x');
    await rec.flush();
    expect(port.list()[0]).toMatchObject({ series: { count: 25 } });
    expect(rec.dropped).toBe(15);
  });

  it('refills one token every 5 minutes', async () => {
    const rec = recorder();
    for (let i = 0; i < 25; i++) rec.emit(web, 'Normal', `Reason${i}`, 'n');
    rec.emit(web, 'Normal', 'Late', 'n');
    expect(rec.dropped).toBe(1);
    await vi.advanceTimersByTimeAsync(4 * MINUTE);
    rec.emit(web, 'Normal', 'Late', 'n');
    expect(rec.dropped).toBe(2);
    await vi.advanceTimersByTimeAsync(MINUTE);
    rec.emit(web, 'Normal', 'Late', 'n'); // 5 minutes: one token
    rec.emit(web, 'Normal', 'Late2', 'n'); // and only one
    expect(rec.dropped).toBe(3);
    await vi.advanceTimersByTimeAsync(3 * 5 * MINUTE);
    for (let i = 0; i < 4; i++) rec.emit(web, 'Normal', `Refilled${i}`, 'n');
    expect(rec.dropped).toBe(4);
    await rec.flush();
    expect(port.creates().filter((c) => c.name.startsWith('web.'))).toHaveLength(25 + 1 + 3);
  });
});

describe('EventRecorder: failures', () => {
  it('logs a port that throws, never throws into the caller, and carries on', async () => {
    port.failWith = new Error('connection refused');
    const rec = recorder();
    expect(() => {
      rec.emit(web, 'Normal', 'ScaledUp', 'up');
    }).not.toThrow();
    await rec.flush();
    expect(logs).toEqual([
      {
        level: 'warn',
        message: 'cannot create Event',
        fields: expect.objectContaining({ reason: 'ScaledUp', error: 'connection refused' }) as unknown,
      },
    ]);

    // The API server is back: the next occurrence is written (a new Event: the failed create ended that one).
    port.failWith = undefined;
    rec.emit(web, 'Normal', 'ScaledUp', 'up');
    await rec.flush();
    expect(port.list()).toEqual([expect.objectContaining({ reason: 'ScaledUp' })]);
  });

  it('logs a failed PATCH and retries with the next occurrence, not in a loop', async () => {
    const rec = recorder();
    rec.emit(web, 'Warning', 'TriggerError', 'x');
    await rec.flush();
    port.failWith = new Error('etcd timeout');
    rec.emit(web, 'Warning', 'TriggerError', 'x');
    await rec.flush();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(port.patches()).toHaveLength(1);
    expect(logs).toEqual([expect.objectContaining({ level: 'warn', message: 'cannot update Event' })]);

    port.failWith = undefined;
    await vi.advanceTimersByTimeAsync(1000);
    rec.emit(web, 'Warning', 'TriggerError', 'x');
    await rec.flush();
    expect(port.list()[0]).toMatchObject({ series: { count: 3 } });
  });

  it('survives a port that throws synchronously and a logger that throws', async () => {
    const rec = recorder({
      port: {
        create: () => {
          throw new Error('sync');
        },
        patch: () => Promise.resolve(),
      },
      log: () => {
        throw new Error('logger broken');
      },
    });
    expect(() => {
      rec.emit(web, 'Normal', 'ScaledUp', 'up');
    }).not.toThrow();
    await rec.flush();
  });

  it('refuses an empty or over-long reason or action with a log line, without throwing', async () => {
    const rec = recorder();
    rec.emit(web, 'Normal', '', 'n');
    rec.emit(web, 'Normal', 'R'.repeat(129), 'n');
    rec.emit(web, 'Normal', 'Ok', 'n', 'A'.repeat(129));
    await rec.flush();
    expect(port.writes).toHaveLength(0);
    expect(logs.map((l) => l.level)).toEqual(['error', 'error', 'error']);
  });

  it('ignores emits after stop(), which writes what is pending first', async () => {
    const rec = recorder();
    rec.emit(web, 'Normal', 'ScaledUp', 'up');
    rec.emit(web, 'Normal', 'ScaledUp', 'up');
    await rec.stop();
    expect(port.list()[0]).toMatchObject({ series: { count: 2 } });
    rec.emit(web, 'Normal', 'ScaledUp', 'up');
    await rec.flush();
    expect(port.writes).toHaveLength(2);
  });

  it('refuses a reportingController that is not a qualified name and a reportingInstance over 128 characters', () => {
    expect(() => recorder({ reportingController: 'sluice operator' })).toThrow(ConfigError);
    expect(() => recorder({ reportingInstance: 'x'.repeat(129) })).toThrow(ConfigError);
    expect(() => recorder({ reportingController: 'sluice-operator' })).not.toThrow();
  });
});

describe('EventRecorder: fields', () => {
  it('truncates a long note to 1024 bytes of UTF-8 without splitting a character', async () => {
    const rec = recorder();
    const note = `${'é'.repeat(300)}${'🚀'.repeat(300)}`; // 600 + 1200 bytes
    rec.emit(web, 'Normal', 'ScaledUp', note);
    await rec.flush();
    const written = port.list()[0]?.['note'] as string;
    expect(Buffer.byteLength(written)).toBeLessThanOrEqual(NOTE_MAX_BYTES);
    expect(Buffer.byteLength(written)).toBeGreaterThan(NOTE_MAX_BYTES - 4);
    expect(written.endsWith('…')).toBe(true);
    expect(note.startsWith(written.slice(0, -1))).toBe(true);
    expect(written).not.toContain('\uFFFD');
    expect(Buffer.from(written, 'utf8').toString('utf8')).toBe(written); // no lone surrogate
  });

  it('keeps a note of exactly 1024 bytes as it is', () => {
    const note = 'a'.repeat(1022) + 'é';
    expect(truncateNote(note)).toBe(note);
    expect(Buffer.byteLength(truncateNote(note + 'x'))).toBeLessThanOrEqual(NOTE_MAX_BYTES);
  });

  it('writes MicroTimes with exactly six fractional digits', () => {
    expect(microTime(new Date('2026-12-07T10:11:12.123Z'))).toBe('2026-12-07T10:11:12.123000Z');
    expect(microTime(new Date(0))).toMatch(MICRO_TIME);
  });

  it('names Events <object>.<16 hex digits>, unique within the same millisecond, valid for any object name', async () => {
    const rec = recorder();
    for (let i = 0; i < 10; i++) rec.emit(web, 'Normal', `R${i}`, 'n');
    rec.emit(ref('Weird:Name_x'), 'Normal', 'R', 'n');
    rec.emit(ref('n'.repeat(253)), 'Normal', 'R', 'n');
    await rec.flush();
    const names = port.creates().map((c) => c.name);
    expect(new Set(names).size).toBe(12);
    for (const name of names) {
      expect(name).toMatch(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\.[0-9a-f]{16}$/);
      expect(name.length).toBeLessThanOrEqual(253);
    }
    expect(names[10]).toMatch(/^weird-name-x\./);
  });

  it('writes an Event for a cluster-scoped object to the default namespace', async () => {
    const rec = recorder();
    rec.emit({ apiVersion: 'v1', kind: 'Node', namespace: '', name: 'node-1', uid: 'n1' }, 'Warning', 'R', 'n');
    await rec.flush();
    expect(port.list()[0]).toMatchObject({ metadata: { namespace: 'default' }, regarding: { namespace: '' } });
  });
});

describe('EventRecorder: writes in flight, whatever the number of objects', () => {
  it(`a thousand objects failing at once: at most ${MAX_WRITES_IN_FLIGHT} writes in flight, every Event written`, async () => {
    port.latencyMs = 50;
    let inFlight = 0;
    let most = 0;
    const create = port.create.bind(port);
    port.create = async (namespace, event) => {
      inFlight++;
      most = Math.max(most, inFlight);
      try {
        return await create(namespace, event);
      } finally {
        inFlight--;
      }
    };
    const r = recorder();
    for (let i = 0; i < 1000; i++) r.emit(ref(`w${i}`), 'Warning', 'KEDAScalerFailed', 'the backend failed');
    const flushed = r.flush();
    await vi.advanceTimersByTimeAsync(1000 * 50);
    await flushed;
    expect(most).toBe(MAX_WRITES_IN_FLIGHT);
    expect(port.creates()).toHaveLength(1000);
  });
});

describe('EventRecorder: the write budget of the process', () => {
  it(`${EVENT_WRITES_BURST} Events at once, then ${EVENT_WRITES_PER_SECOND} a second, in the order emitted; none lost`, async () => {
    const r = recorder();
    for (let i = 0; i < 200; i++) r.emit(ref(`w${i}`), 'Normal', 'KEDAScalersStarted', 'Started scalers watch');
    await vi.advanceTimersByTimeAsync(0);
    expect(port.creates()).toHaveLength(EVENT_WRITES_BURST);
    await vi.advanceTimersByTimeAsync(1000);
    expect(port.creates()).toHaveLength(EVENT_WRITES_BURST + EVENT_WRITES_PER_SECOND);
    await vi.advanceTimersByTimeAsync(1000);
    expect(port.creates()).toHaveLength(EVENT_WRITES_BURST + 2 * EVENT_WRITES_PER_SECOND);
    // In the order they were emitted.
    expect(port.creates().map((c) => c.name.split('.')[0])).toStrictEqual(
      Array.from({ length: EVENT_WRITES_BURST + 2 * EVENT_WRITES_PER_SECOND }, (_, i) => `w${i}`),
    );
    // flush() (shutdown) writes what waits without the budget.
    await r.flush();
    expect(port.creates()).toHaveLength(200);
  });
});
