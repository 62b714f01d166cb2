/**
 * The operator's one Event recorder: `kubectl describe scaledobject x` shows what sluice did to it and why (scaled up,
 * a trigger failing). Writes `events.k8s.io/v1` Events, which the API server stores with core/v1 Events (`regarding`
 * is `involvedObject`, `note` is `message`), with the semantics of client-go's recorder (k8s.io/client-go/tools/events):
 * - isomorphic occurrences are one Event: same regarding object, action, reason, reporting controller and type. The
 *   note is not part of the key, and the Event keeps the note of its first occurrence (the API server refuses to
 *   change `note` later);
 * - a repeat within 6 minutes of the previous occurrence makes the Event a series (`series: {count, lastObservedTime}`,
 *   count ≥ 2) and is a merge PATCH of the existing Event, not a new one. After 6 quiet minutes the series is over:
 *   the next occurrence is a new Event;
 * - series PATCHes coalesce: at most one write in flight and at most one PATCH per second per Event; whatever
 *   happened meanwhile goes in the next one, so the last count is always written;
 * - a token bucket per object (regarding uid), like client-go's spam filter (k8s.io/client-go/tools/record: burst 25,
 *   one token back every 5 minutes), bounds what one flapping object costs the API server. Repeats cost a token too.
 *   Dropped events are counted (`dropped`) and logged at most once a minute per object.
 *
 * Events are best effort: `emit()` returns at once, writes run in the background, and a failed write is logged and
 * forgotten (a failed create ends the series; a failed PATCH is retried with the next occurrence; a PATCH of an
 * Event that expired meanwhile creates it again). `flush()` waits for every pending write, and skips the per-second
 * wait: for shutdown and tests.
 *
 * Notes are readable by anyone who may `get events` in the namespace: callers must never put credentials (or
 * anything read from a Secret) in a note.
 */
import { apiClient } from '../kube-client.ts';
import {
  ApiException,
  EventsV1Api,
  PatchStrategy,
  V1MicroTime,
  setHeaderOptions,
  type EventsV1Event,
  type KubeConfig,
} from '@kubernetes/client-node';
import { randomInt } from 'node:crypto';
import { ConfigError, SluiceError, describeError } from '../errors.ts';

export type EventType = 'Normal' | 'Warning';

export interface ObjectReference {
  readonly apiVersion: string;
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
  readonly uid: string;
}

export interface EventRecorder {
  /**
   * Records that `reason` (CamelCase, ≤ 128 characters) happened to `regarding`. `note` is a human sentence, at most
   * 1 KiB of UTF-8 (longer ones are truncated) and never contains credentials. `action` (≤ 128 characters) defaults to
   * `reason`. Never throws.
   */
  emit(regarding: ObjectReference, type: EventType, reason: string, note: string, action?: string): void;
}

export interface EventsPort {
  create(namespace: string, event: EventsV1Event): Promise<EventsV1Event>;
  /** A JSON merge patch. Throws EventNotFoundError when the Event does not exist (any more). */
  patch(namespace: string, name: string, patch: Record<string, unknown>): Promise<void>;
}

export interface RecorderOptions {
  readonly port: EventsPort;
  /** A qualified name, e.g. `sluice.dev/operator`. */
  readonly reportingController: string;
  /** Which replica wrote the Event, e.g. the hostname; at most 128 characters. */
  readonly reportingInstance: string;
  readonly log: (level: 'debug' | 'info' | 'warn' | 'error', message: string, fields?: Record<string, unknown>) => void;
  readonly now?: () => Date;
}

export type Recorder = EventRecorder & {
  /** Waits until every pending write is done (writing throttled series PATCHes now). */
  flush(): Promise<void>;
  /** Stops recording (later emits are ignored) and flushes. */
  stop(): Promise<void>;
  /** Events dropped by the per-object rate limit since the recorder was created. */
  readonly dropped: number;
};

/** Thrown by EventsPort.patch when the Event is gone (expired, deleted): the recorder creates it again. */
export class EventNotFoundError extends SluiceError {
  override name = 'EventNotFoundError';

  constructor(namespace: string, name: string, options?: ErrorOptions) {
    super('EVENT_NOT_FOUND', `Event ${namespace}/${name} not found`, options);
  }
}

/** A repeat later than this after the previous occurrence starts a new Event (client-go's finishTime). */
export const SERIES_GAP_MS = 6 * 60_000;
/** At most one series PATCH per Event this often. */
export const PATCH_INTERVAL_MS = 1_000;
/** The per-object token bucket: this many events at once... */
export const RATE_BURST = 25;
/** ...then one more per this many ms. */
export const RATE_REFILL_MS = 5 * 60_000;
/** Dropped events of one object are logged at most this often. */
export const DROP_LOG_INTERVAL_MS = 60_000;
/** events.k8s.io validation: `note` is at most 1024 bytes; `reason`, `action` and `reportingInstance` 128. */
export const NOTE_MAX_BYTES = 1024;
/**
 * Event writes in flight at once, whatever the number of objects: when a backend fails under ten thousand objects at
 * once, their Events queue here (one per series) instead of as ten thousand concurrent requests to the API server.
 */
export const MAX_WRITES_IN_FLIGHT = 16;
/**
 * Event writes per second for the whole process, and the burst above that: Events are best effort and the API server
 * has to write them too. Creating 10,000 ScaledObjects asks for three Events each (scalers started, ready, target
 * deactivated); written as fast as 16 at a time allow, they came at 80–95 per second, more than the HPA applies they
 * were competing with on the same API server (28–32 per second). KEDA's manager allows its whole client 20 per second,
 * burst 30 (`--kube-api-qps`, `--kube-api-burst`). Waiting writes are not lost: they go out in order at this rate.
 */
export const EVENT_WRITES_PER_SECOND = 20;
export const EVENT_WRITES_BURST = 50;
const FIELD_MAX = 128;
/** How often idle series and full buckets are forgotten (checked on emit). */
const SWEEP_INTERVAL_MS = 60_000;

// validation.IsQualifiedName: an optional DNS-subdomain prefix and `/`, then a name of ≤ 63 characters.
const QUALIFIED_NAME =
  /^(?:[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

/** A metav1.MicroTime: RFC 3339 with exactly six fractional digits; the API server refuses any other precision. */
export function microTime(date: Date): string {
  return `${date.toISOString().slice(0, -1)}000Z`;
}

const ELLIPSIS = '…';
const encoder = new TextEncoder();

/** `note` cut to at most NOTE_MAX_BYTES of UTF-8, on a character boundary, ending in an ellipsis when cut. */
export function truncateNote(note: string): string {
  if (Buffer.byteLength(note, 'utf8') <= NOTE_MAX_BYTES) return note;
  // encodeInto never writes part of a character; `read` counts UTF-16 units, so a surrogate pair stays whole.
  const { read } = encoder.encodeInto(note, new Uint8Array(NOTE_MAX_BYTES - Buffer.byteLength(ELLIPSIS)));
  return note.slice(0, read) + ELLIPSIS;
}

/** The `<name>.` prefix of an Event's name: the regarding object's name made a valid DNS-subdomain prefix. */
function namePrefix(name: string): string {
  const cleaned = name
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, '-')
    .slice(0, 253 - 17)
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '');
  return cleaned === '' ? 'event' : cleaned;
}

function describeFailure(err: unknown): string {
  if (err instanceof ApiException) {
    let message: unknown;
    try {
      message = (JSON.parse(String(err.body)) as { message?: unknown }).message;
    } catch {
      // not a Status object
    }
    return `HTTP ${err.code}${typeof message === 'string' ? `: ${message}` : ''}`;
  }
  return describeError(err);
}

type EventFields = Required<
  Pick<
    EventsV1Event,
    | 'apiVersion'
    | 'kind'
    | 'metadata'
    | 'eventTime'
    | 'regarding'
    | 'type'
    | 'reason'
    | 'action'
    | 'note'
    | 'reportingController'
    | 'reportingInstance'
  >
>;

/** One Event on the server and the occurrences it stands for. */
interface Series {
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  /** For logs: `Kind namespace/name`. */
  readonly regarding: string;
  /** As created for the first occurrence (without series). */
  readonly event: EventFields;
  /** Occurrences so far. */
  count: number;
  lastObserved: Date;
  /** The count the server has; 0 while the Event is not created. */
  written: number;
  writing: boolean;
  timer: NodeJS.Timeout | undefined;
  /** Clock time (ms) the last write started. */
  lastWriteAt: number;
  /** A PATCH failed: try again on the next occurrence, not in a loop. */
  stalled: boolean;
  /** Its create failed: nothing more is written for it. */
  abandoned: boolean;
}

interface Bucket {
  tokens: number;
  at: number;
  /** Dropped since the last log line. */
  unlogged: number;
  loggedAt: number | undefined;
  readonly regarding: string;
}

export function createEventRecorder(options: RecorderOptions): Recorder {
  const { port, reportingController, reportingInstance } = options;
  const now = options.now ?? (() => new Date());
  if (!QUALIFIED_NAME.test(reportingController)) {
    throw new ConfigError(`event reportingController "${reportingController}" is not a qualified name`);
  }
  if (reportingInstance === '' || reportingInstance.length > FIELD_MAX) {
    throw new ConfigError(`event reportingInstance must have 1 to ${FIELD_MAX} characters`);
  }

  const series = new Map<string, Series>();
  const buckets = new Map<string, Bucket>();
  const pending = new Set<Promise<void>>();
  const throttled = new Set<Series>();
  /** Series with a write due, waiting for one of the MAX_WRITES_IN_FLIGHT (in the order they came). */
  const waiting = new Set<Series>();
  let writes = 0;
  /** The process-wide write budget (EVENT_WRITES_PER_SECOND), as a token bucket. */
  let tokens = EVENT_WRITES_BURST;
  let tokensAt = now().getTime();
  let budgetTimer: NodeJS.Timeout | undefined;
  let dropped = 0;
  let stopped = false;
  let lastSweep = now().getTime();
  // Event names: <object>.<16 hex digits> = time in ms and a counter that starts at random (two replicas, a restart).
  let counter = randomInt(0x100000);

  const log: RecorderOptions['log'] = (level, message, fields) => {
    try {
      options.log(level, message, fields);
    } catch {
      // a broken logger must not break the caller either
    }
  };

  const describeRef = (r: ObjectReference) => `${r.kind} ${r.namespace === '' ? '' : `${r.namespace}/`}${r.name}`;

  function eventName(regarding: ObjectReference, at: number): string {
    counter = (counter + 1) & 0xfffff;
    const suffix = ((BigInt(at) << 20n) | BigInt(counter)) & 0xffff_ffff_ffff_ffffn;
    return `${namePrefix(regarding.name)}.${suffix.toString(16).padStart(16, '0')}`;
  }

  /** Takes a token from the object's bucket; false (and counted, maybe logged) when there is none. */
  function admit(regarding: ObjectReference, reason: string, at: number): boolean {
    const id = regarding.uid === '' ? describeRef(regarding) : regarding.uid;
    let bucket = buckets.get(id);
    if (!bucket) {
      bucket = { tokens: RATE_BURST, at, unlogged: 0, loggedAt: undefined, regarding: describeRef(regarding) };
      buckets.set(id, bucket);
    }
    refill(bucket, at);
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return true;
    }
    dropped++;
    bucket.unlogged++;
    if (bucket.loggedAt === undefined || at - bucket.loggedAt >= DROP_LOG_INTERVAL_MS) logDrops(bucket, at, reason);
    return false;
  }

  function refill(bucket: Bucket, at: number): void {
    if (at > bucket.at) {
      bucket.tokens = Math.min(RATE_BURST, bucket.tokens + (at - bucket.at) / RATE_REFILL_MS);
      bucket.at = at;
    }
  }

  function logDrops(bucket: Bucket, at: number, reason?: string): void {
    log('warn', 'events dropped: too many for one object', {
      regarding: bucket.regarding,
      dropped: bucket.unlogged,
      ...(reason === undefined ? {} : { reason }),
    });
    bucket.unlogged = 0;
    bucket.loggedAt = at;
  }

  /** Forgets series that are over and idle, and buckets that are full again. */
  function sweep(at: number): void {
    lastSweep = at;
    for (const [key, s] of series) {
      if (at - s.lastObserved.getTime() > SERIES_GAP_MS && !busy(s)) series.delete(key);
    }
    for (const [id, bucket] of buckets) {
      if (bucket.unlogged > 0 && (bucket.loggedAt === undefined || at - bucket.loggedAt >= DROP_LOG_INTERVAL_MS)) {
        logDrops(bucket, at);
      }
      refill(bucket, at);
      if (bucket.tokens >= RATE_BURST && bucket.unlogged === 0) buckets.delete(id);
    }
  }

  const busy = (s: Series) => s.writing || s.timer !== undefined || waiting.has(s);

  /** Starts the next write of `s` if one is due and allowed; `force` skips the per-second wait and the write budget. */
  function pump(s: Series, force = false): void {
    if (s.writing) return;
    if (s.abandoned || s.stalled || s.written >= s.count) {
      waiting.delete(s);
      return;
    }
    if (s.timer !== undefined) {
      if (!force) return;
      clearTimeout(s.timer);
      s.timer = undefined;
      throttled.delete(s);
    }
    const at = now().getTime();
    const wait = s.lastWriteAt + PATCH_INTERVAL_MS - at;
    if (s.written > 0 && wait > 0 && !force) {
      s.timer = setTimeout(() => {
        s.timer = undefined;
        throttled.delete(s);
        pump(s);
      }, wait);
      s.timer.unref();
      throttled.add(s);
      return;
    }
    if (writes >= MAX_WRITES_IN_FLIGHT) {
      waiting.add(s);
      return;
    }
    // `force` (flush) skips the rate too, as it skips the per-second wait.
    if (!force && !budgeted(at)) {
      waiting.add(s);
      waitForBudget();
      return;
    }
    tokens -= 1;
    waiting.delete(s);
    writes++;
    s.writing = true;
    s.lastWriteAt = at;
    const write = s.written === 0 ? create(s) : patch(s);
    const done: Promise<void> = write.finally(() => {
      writes--;
      s.writing = false;
      pending.delete(done);
      pump(s);
      drain();
    });
    pending.add(done);
  }

  /** Whether the write budget has a token now (refilled up to `at`). */
  function budgeted(at: number): boolean {
    tokens = Math.min(EVENT_WRITES_BURST, tokens + ((at - tokensAt) * EVENT_WRITES_PER_SECOND) / 1000);
    tokensAt = at;
    return tokens >= 1;
  }

  /** Starts the waiting writes, in order, while connections and the budget allow. */
  function drain(): void {
    for (const next of waiting) {
      if (writes >= MAX_WRITES_IN_FLIGHT) return;
      if (!budgeted(now().getTime())) {
        waitForBudget();
        return;
      }
      waiting.delete(next);
      pump(next);
    }
  }

  /** Drains the waiting writes again once the budget has a token. */
  function waitForBudget(): void {
    if (budgetTimer !== undefined) return;
    const ms = Math.max(1, Math.ceil(((1 - tokens) * 1000) / EVENT_WRITES_PER_SECOND));
    budgetTimer = setTimeout(() => {
      budgetTimer = undefined;
      drain();
    }, ms);
    budgetTimer.unref();
  }

  async function create(s: Series): Promise<void> {
    const count = s.count;
    const body: EventsV1Event =
      count >= 2
        ? { ...s.event, series: { count, lastObservedTime: new V1MicroTime(s.lastObserved.getTime()) } }
        : s.event;
    try {
      await port.create(s.namespace, body);
      s.written = count;
    } catch (err) {
      s.abandoned = true;
      if (series.get(s.key) === s) series.delete(s.key);
      log('warn', 'cannot create Event', fieldsOf(s, err));
    }
  }

  async function patch(s: Series): Promise<void> {
    const count = s.count;
    try {
      await port.patch(s.namespace, s.name, { series: { count, lastObservedTime: microTime(s.lastObserved) } });
      s.written = count;
    } catch (err) {
      if (err instanceof EventNotFoundError) {
        // Expired (the API server keeps Events for an hour by default) or deleted: create it again, with the series.
        log('debug', 'Event gone, creating it again', fieldsOf(s, err));
        s.written = 0;
        return;
      }
      s.stalled = true;
      log('warn', 'cannot update Event', fieldsOf(s, err));
    }
  }

  function fieldsOf(s: Series, err: unknown): Record<string, unknown> {
    return {
      event: `${s.namespace}/${s.name}`,
      reason: s.event.reason,
      regarding: s.regarding,
      error: describeFailure(err),
    };
  }

  async function flush(): Promise<void> {
    for (;;) {
      for (const s of [...throttled, ...waiting]) pump(s, true);
      if (pending.size === 0 && waiting.size === 0) return;
      await Promise.all(pending);
    }
  }

  function record(regarding: ObjectReference, type: EventType, reason: string, note: string, action: string): void {
    if (reason === '' || reason.length > FIELD_MAX || action === '' || action.length > FIELD_MAX) {
      log('error', `Event not recorded: reason and action must have 1 to ${FIELD_MAX} characters`, {
        regarding: describeRef(regarding),
        reason: reason.slice(0, FIELD_MAX),
      });
      return;
    }
    const date = now();
    const at = date.getTime();
    if (at - lastSweep >= SWEEP_INTERVAL_MS) sweep(at);
    if (!admit(regarding, reason, at)) return;

    const key = JSON.stringify([
      regarding.apiVersion,
      regarding.kind,
      regarding.namespace,
      regarding.name,
      regarding.uid,
      action,
      reason,
      reportingController,
      type,
    ]);
    const existing = series.get(key);
    if (existing && !existing.abandoned && at - existing.lastObserved.getTime() <= SERIES_GAP_MS) {
      existing.count++;
      if (at > existing.lastObserved.getTime()) existing.lastObserved = date;
      existing.stalled = false;
      pump(existing);
      return;
    }

    const namespace = regarding.namespace === '' ? 'default' : regarding.namespace;
    const name = eventName(regarding, at);
    const s: Series = {
      key,
      namespace,
      name,
      regarding: describeRef(regarding),
      event: {
        apiVersion: 'events.k8s.io/v1',
        kind: 'Event',
        metadata: { name, namespace },
        eventTime: new V1MicroTime(at),
        regarding: {
          apiVersion: regarding.apiVersion,
          kind: regarding.kind,
          namespace: regarding.namespace,
          name: regarding.name,
          uid: regarding.uid,
        },
        type,
        reason,
        action,
        note: truncateNote(note),
        reportingController,
        reportingInstance,
      },
      count: 1,
      lastObserved: date,
      written: 0,
      writing: false,
      timer: undefined,
      lastWriteAt: 0,
      stalled: false,
      abandoned: false,
    };
    series.set(key, s);
    pump(s);
  }

  return {
    emit(regarding, type, reason, note, action) {
      try {
        if (stopped) {
          log('debug', 'Event not recorded: the recorder is stopped', { reason });
          return;
        }
        record(regarding, type, reason, note, action ?? reason);
      } catch (err) {
        log('error', 'Event not recorded', { reason, error: describeError(err) });
      }
    },

    flush,

    async stop() {
      stopped = true;
      await flush();
      clearTimeout(budgetTimer);
      series.clear();
      buckets.clear();
    },

    get dropped() {
      return dropped;
    },
  };
}

/** EventsPort over EventsV1Api. PATCHes are JSON merge patches: the recorder only ever sends `series`. */
export function createKubeEventsPort(kc: KubeConfig): EventsPort {
  // Its own few connections: a burst of Events never holds those HPA creation and status writes need (kube-client.ts).
  const api = apiClient(kc, EventsV1Api, undefined, 'events');
  const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
  return {
    create(namespace, event) {
      return api.createNamespacedEvent({ namespace, body: event });
    },

    async patch(namespace, name, body) {
      try {
        await api.patchNamespacedEvent({ namespace, name, body }, mergePatch);
      } catch (err) {
        if (err instanceof ApiException && err.code === 404)
          throw new EventNotFoundError(namespace, name, { cause: err });
        throw err;
      }
    },
  };
}
