/**
 * The rabbitmq scaler's client for the RabbitMQ management HTTP API, shared by every reader of one API (origin and
 * path prefix, credentials, TLS): it reads queue statistics and leaves their meaning to the scaler (rabbitmq.ts).
 *
 * ## Batching
 *
 * The ReaderHub reads all sources of one backend in the same turn, so the client sees the queues it is asked for in
 * one event-loop turn together. For each vhost with at least LIST_MIN of them it sends **one** request,
 * `GET <prefix>/api/queues/<vhost>?columns=…`, and answers every asker from it (a queue missing from the list does
 * not exist); with fewer it asks for each queue (`GET <prefix>/api/queues/<vhost>/<queue>?columns=…`). A vhost whose
 * list turns out to hold more than SPARSE_RATIO times the queues asked for is read queue by queue for five minutes,
 * so a few watched queues in a vhost of thousands never cost a list of thousands each second; as soon as a turn asks
 * for enough of its queues again (a tenth of that list), it is listed again (objects created one by one after start
 * would otherwise be read queue by queue, a request per queue per second, for five minutes).
 *
 * ## Missing numbers (what the scaler does with them)
 *
 * - A queue without `messages` / `messages_ready`: the broker has no statistics for it (right after it was created,
 *   or statistics are disabled, kedacore/keda#7180): unknown, an error.
 * - A queue with its count but no `message_stats`, or with `message_stats` that lack the counter in question (e.g.
 *   no `deliver_get` because nothing was ever consumed): the broker omits the counters of events that never happened,
 *   so the rate is a *fact*, 0, not a guess, and an idle queue can activate and scale to zero. But only while the
 *   broker collects message rates at all: with `management.rates_mode = none` it omits `message_stats` for every
 *   queue, busy or not (measured on RabbitMQ 3.10: 30 publishes and 30 deliveries, no `message_stats`). So before a
 *   rate is read as 0 from an absence, `GET /api/overview` must report `rates_mode` basic or detailed and
 *   `disable_stats` false (cached for five minutes; only asked when an absence is being read). Otherwise: an error.
 * - A counter present without its `*_details.rate`, a rate that is not a finite number ≥ 0: an error.
 *
 * ## useRegex
 *
 * KEDA asks for one page and fails when there are more (kedacore/keda#7143). sluice follows every page
 * (`page=1..page_count`, sorted by name) and checks that the pages agree (same `filtered_count`, no name twice, as
 * many items as `filtered_count`); when queues are created or deleted while paging, the whole read is repeated
 * once at once and then fails, so a reading is never a partial sum. No matching queue at all is an error, not 0 (KEDA: 0): it cannot be
 * told apart from a typo in the expression or the vhost. The broker checks the expression (it is PCRE, which
 * JavaScript cannot validate faithfully); its 400 answer becomes the error (without the broker's `reason` text: no
 * part of an answer is quoted in a message).
 */
import { BackendError, ScalerError } from '../errors.ts';
import { AddressRefusedError } from './address-filter.ts';
import { TokenEndpointError } from './oauth2.ts';

export type CountField = 'messages' | 'messages_ready';
export type RateField = 'publish' | 'deliver_get';
export type Operation = 'sum' | 'avg' | 'max';

/** A rate as the broker reported it: a number, absent (no such counter), or malformed (a reason). */
export type RateFact = { readonly rate: number } | { readonly absent: true } | { readonly malformed: string };

/** One queue's statistics as read; a count is undefined while the broker has no statistics for the queue. */
export interface QueueStats {
  readonly name: string;
  readonly messages: number | undefined;
  readonly messagesReady: number | undefined;
  readonly publish: RateFact;
  readonly deliverGet: RateFact;
}

export interface HttpAnswer {
  readonly status: number;
  readonly body: string;
}
/**
 * One GET; throws (any error) when there is no HTTP answer at all: refused, reset, TLS failure, timeout, abort; or a
 * TokenEndpointError when no OAuth2 token could be had to ask with.
 */
export type HttpGet = (url: URL, signal: AbortSignal, timeoutMs?: number) => Promise<HttpAnswer>;

export interface ManagementClientOptions {
  /** The API's origin and path prefix (e.g. `https://b:15671/rabbit`), without credentials, query or vhost. */
  readonly base: URL;
  readonly get: HttpGet;
  /**
   * Bounds one request for one queue; a list request gets more, by the size of the list (listTimeoutMs). Each asker's
   * own signal bounds its wait.
   */
  readonly timeoutMs: number;
  readonly now?: () => number;
}

/** How long a confirmed "the broker collects message rates" is trusted. */
const RATES_MODE_TTL_MS = 5 * 60_000;
const COLUMNS = 'name,messages,messages_ready,message_stats';
/** A vhost with at least this many queues asked for in one turn is read with one list request. */
export const LIST_MIN = 3;
/** A list holding more than this many times the queues asked for marks the vhost as sparse. */
const SPARSE_RATIO = 10;
const SPARSE_FOR_MS = 5 * 60_000;
/** What a list request may take beyond the trigger's timeout, per queue listed. */
export const LIST_MS_PER_QUEUE = 1;
/** The allowance grows in steps of this many queues, so its limit (and the message of a timeout) stays put. */
export const LIST_STEP_QUEUES = 1000;
/** The longest a list request may take, however many queues the vhost holds. */
export const LIST_TIMEOUT_MAX_MS = 60_000;

/**
 * The time limit of a list request expected to hold `queues` queues: the trigger's `timeout` (which KEDA applies to
 * one request for one queue) plus LIST_MS_PER_QUEUE per queue, counted in whole steps of LIST_STEP_QUEUES, at most
 * LIST_TIMEOUT_MAX_MS. The broker's cost grows with the list: 10,000 queues took 2–3 s to list on the test ground, so
 * a flat 3 s timed out every trigger of the broker at once, again and again
 * (docs/scaling-core.md#readers-one-per-source-about-once-a-second). Pure.
 */
export function listTimeoutMs(timeoutMs: number, queues: number): number {
  const allowance = Math.ceil(queues / LIST_STEP_QUEUES) * LIST_STEP_QUEUES * LIST_MS_PER_QUEUE;
  return Math.max(timeoutMs, Math.min(LIST_TIMEOUT_MAX_MS, timeoutMs + allowance));
}

/**
 * How many queues to expect from a vhost whose list just timed out: twice what the failed list allowed for (at least
 * two steps), so the next list's limit doubles its allowance until the list fits or the limit is at its largest. A
 * vhost listed for the first time has no size yet, and a limit sized by the few queues asked for may be too short for
 * the thousands it holds. Pure.
 */
export function grownEstimate(allowedFor: number): number {
  return 2 * Math.max(LIST_STEP_QUEUES, allowedFor);
}

class PagesDisagree extends Error {}

/**
 * A non-200 answer that is not the backend failing (404, 400, …), with its status (the client words most statuses
 * itself). The backend's own failures (401/403, 429, 5xx) are BackendErrors, which its circuit breaker counts.
 */
class StatusError extends ScalerError {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

interface Asker {
  readonly name: string;
  readonly resolve: (stats: QueueStats) => void;
  readonly reject: (err: unknown) => void;
}

export class ManagementClient {
  readonly #base: URL;
  readonly #get: HttpGet;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  readonly #origin: string;
  readonly #prefix: string;
  #pending = new Map<string, Asker[]>();
  readonly #waiting = new WeakMap<AbortSignal, Set<Asker>>();
  #flushScheduled = false;
  /** Vhosts read queue by queue: until when, and how many queues their last list held. */
  readonly #sparse = new Map<string, { readonly until: number; readonly listed: number }>();
  /** How many queues each vhost's last list held (its next list's time limit grows with it). */
  readonly #listed = new Map<string, number>();
  /**
   * Each vhost's last list: its body, the queues in it, and the QueueStats made from them. A list whose body is the
   * same as the last (idle queues, at rest) is not parsed again, and each queue's reading is the same object as last
   * time, which the hub compares by identity first: at 1,000 idle queues parsing and comparing them every second
   * was a tenth of sluice's CPU at rest (bench/scale.ts --profile).
   */
  readonly #lastList = new Map<string, ParsedList>();
  #ratesConfirmedUntil = 0;
  /** Requests sent (tests, benchmarks). */
  requests = 0;

  constructor(options: ManagementClientOptions) {
    this.#base = options.base;
    this.#get = options.get;
    this.#timeoutMs = options.timeoutMs;
    this.#now = options.now ?? Date.now;
    this.#prefix = options.base.pathname.replace(/\/+$/, '');
    this.#origin = `${options.base.protocol}//${options.base.host}${this.#prefix}`;
  }

  /** The statistics of one queue; askers in the same event-loop turn are answered from one request per vhost. */
  queue(vhost: string, name: string, signal: AbortSignal): Promise<QueueStats> {
    return new Promise<QueueStats>((resolve, reject) => {
      if (signal.aborted) {
        reject(abortError(signal, `the RabbitMQ management API at ${this.#origin}`));
        return;
      }
      const waiting = this.#waitingOn(signal);
      const asker: Asker = {
        name,
        resolve: (stats) => {
          waiting.delete(asker);
          resolve(stats);
        },
        reject: (err) => {
          waiting.delete(asker);
          reject(err instanceof Error ? err : new Error(String(err)));
        },
      };
      waiting.add(asker);
      let askers = this.#pending.get(vhost);
      if (!askers) {
        askers = [];
        this.#pending.set(vhost, askers);
      }
      askers.push(asker);
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        setImmediate(() => {
          this.#flush();
        });
      }
    });
  }

  /**
   * The time limit the hub gives a read of one of `batch` queues of `vhost` asked for in one turn. Any read may be
   * answered from a list (the askers of one event-loop turn are gathered here, whatever the hub's batch), so it is a
   * list's limit: by the larger of the batch and the vhost's last list, or the longest a list may take while the vhost
   * has never been listed (its size unknown). The requests themselves are bounded more tightly (one queue by the
   * trigger's timeout, a list by its size): this only keeps the hub from giving up on an asker before its request.
   */
  timeoutFor(vhost: string, batch: number): number {
    const listed = this.#listed.get(vhost);
    return listed === undefined ? LIST_TIMEOUT_MAX_MS : listTimeoutMs(this.#timeoutMs, Math.max(batch, listed));
  }

  /** Every queue whose name matches `regex` (the broker's PCRE), following every page. */
  async matching(vhost: string, regex: string, pageSize: number, signal: AbortSignal): Promise<QueueStats[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.#readAllPages(vhost, regex, pageSize, signal);
      } catch (err) {
        if (!(err instanceof PagesDisagree)) throw err;
        if (attempt === 2) {
          throw new ScalerError(`the queues matching "${regex}" changed while sluice was paging through them`);
        }
      }
    }
  }

  /**
   * Whether the broker collects message rates (`rates_mode` basic or detailed, statistics enabled), so that an absent
   * counter means "never happened". A yes is cached for five minutes.
   */
  async ratesCollected(signal: AbortSignal): Promise<{ collected: boolean; why: string }> {
    if (this.#now() < this.#ratesConfirmedUntil) return { collected: true, why: '' };
    const body = await this.#getJson(
      this.#api('overview', { columns: 'rates_mode,disable_stats' }),
      signal,
      `the RabbitMQ management API at ${this.#origin}`,
      `the RabbitMQ management API at ${this.#origin} has no /api/overview (404)`,
    );
    const overview = isRecord(body) ? body : {};
    const mode = overview['rates_mode'];
    const disabled = overview['disable_stats'] === true;
    if (disabled || (mode !== 'basic' && mode !== 'detailed')) {
      // `rates_mode` is named only when it is one of RabbitMQ's own values (management.rates_mode: none, basic,
      // detailed): anything else is the server's text.
      return {
        collected: false,
        why: `rates_mode ${mode === 'none' ? mode : 'unknown'}${disabled ? ', statistics disabled' : ''}`,
      };
    }
    this.#ratesConfirmedUntil = this.#now() + RATES_MODE_TTL_MS;
    return { collected: true, why: '' };
  }

  #api(path: string, query: Record<string, string> = {}): URL {
    const url = new URL(`${this.#prefix}/api/${path}`, this.#base);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    return url;
  }

  /**
   * The askers waiting under `signal`, with one abort listener for all of them. The hub gives every read of a turn the
   * same signal, and an EventTarget checks each new listener against all it holds: a listener per asker made a turn of
   * 1,000 queues cost a million comparisons (the largest item of a CPU profile at rest).
   */
  #waitingOn(signal: AbortSignal): Set<Asker> {
    let waiting = this.#waiting.get(signal);
    if (waiting === undefined) {
      const askers = new Set<Asker>();
      waiting = askers;
      this.#waiting.set(signal, askers);
      signal.addEventListener(
        'abort',
        () => {
          for (const asker of [...askers])
            asker.reject(abortError(signal, `the RabbitMQ management API at ${this.#origin}`));
        },
        { once: true },
      );
    }
    return waiting;
  }

  #flush(): void {
    this.#flushScheduled = false;
    const pending = this.#pending;
    this.#pending = new Map();
    for (const [vhost, askers] of pending) {
      const names = new Set(askers.map((a) => a.name));
      const sparseFor = this.#sparse.get(vhost);
      const sparse =
        sparseFor !== undefined && sparseFor.until > this.#now() && sparseFor.listed > SPARSE_RATIO * names.size;
      if (names.size >= LIST_MIN && !sparse) void this.#answerFromList(vhost, askers, names.size);
      else for (const asker of askers) void this.#answerOne(vhost, asker);
    }
  }

  async #answerOne(vhost: string, asker: Asker): Promise<void> {
    const what = `queue "${asker.name}" in vhost "${vhost}" at ${this.#origin}`;
    try {
      const url = this.#api(`queues/${encodeURIComponent(vhost)}/${encodeURIComponent(asker.name)}`, {
        columns: COLUMNS,
      });
      const body = await this.#getJson(
        url,
        AbortSignal.timeout(this.#timeoutMs),
        what,
        `${what} does not exist (management API answered 404)`,
      );
      asker.resolve(queueStats(body, what));
    } catch (err) {
      asker.reject(err);
    }
  }

  async #answerFromList(vhost: string, askers: readonly Asker[], wanted: number): Promise<void> {
    const where = `vhost "${vhost}" at ${this.#origin}`;
    const expected = Math.max(wanted, this.#listed.get(vhost) ?? 0);
    const timeoutMs = listTimeoutMs(this.#timeoutMs, expected);
    const started = this.#now();
    let list: ParsedList;
    try {
      const what = `the queues of ${where}`;
      const text = await this.#getText(
        this.#api(`queues/${encodeURIComponent(vhost)}`, { columns: COLUMNS }),
        AbortSignal.timeout(timeoutMs),
        what,
        `${where} does not exist (management API answered 404)`,
        timeoutMs,
      );
      const last = this.#lastList.get(vhost);
      if (last?.text === text) {
        list = last;
      } else {
        this.#lastList.delete(vhost);
        const body = parseJson(text, what);
        if (!Array.isArray(body)) {
          throw new ScalerError(`the RabbitMQ management API sent a queue list that is not an array for ${where}`);
        }
        list = { text, byName: new Map(), stats: new Map() };
        for (const item of body) {
          if (isRecord(item) && typeof item['name'] === 'string') list.byName.set(item['name'], item);
        }
        this.#lastList.set(vhost, list);
      }
      this.#listed.set(vhost, list.byName.size);
      if (list.byName.size > SPARSE_RATIO * wanted) {
        this.#sparse.set(vhost, { until: this.#now() + SPARSE_FOR_MS, listed: list.byName.size });
      }
    } catch (err) {
      // It ran out of time (not refused, not an answer): expect a longer list next time.
      if (this.#now() - started >= 0.9 * timeoutMs) {
        this.#listed.set(vhost, Math.max(this.#listed.get(vhost) ?? 0, grownEstimate(expected)));
      }
      for (const asker of askers) asker.reject(err);
      return;
    }
    for (const asker of askers) {
      const what = `queue "${asker.name}" in vhost "${vhost}" at ${this.#origin}`;
      const item = list.byName.get(asker.name);
      try {
        if (item === undefined) throw new ScalerError(`${what} does not exist (not in the vhost's queue list)`);
        let stats = list.stats.get(asker.name);
        if (stats === undefined) {
          stats = queueStats(item, what);
          list.stats.set(asker.name, stats);
        }
        asker.resolve(stats);
      } catch (err) {
        asker.reject(err);
      }
    }
  }

  async #readAllPages(vhost: string, regex: string, pageSize: number, signal: AbortSignal): Promise<QueueStats[]> {
    const what = `the queues matching "${regex}" in vhost "${vhost}" at ${this.#origin}`;
    const page = async (n: number) => {
      const url = this.#api(`queues/${encodeURIComponent(vhost)}`, {
        use_regex: 'true',
        name: regex,
        page: String(n),
        page_size: String(pageSize),
        sort: 'name',
        columns: COLUMNS,
      });
      const notFound =
        n === 1
          ? `vhost "${vhost}" does not exist at ${this.#origin} (management API answered 404)`
          : `the management API lost vhost "${vhost}" while paging`;
      return listPage(await this.#getJson(url, signal, what, notFound), what);
    };
    const first = await page(1);
    if (first.filteredCount === 0) throw new ScalerError(`no queue matches "${regex}" in vhost "${vhost}"`);
    const items = [...first.items];
    for (let n = 2; n <= first.pageCount; n++) {
      let next: Page;
      try {
        next = await page(n);
      } catch (err) {
        // Queues deleted while paging make the last page out of range (400).
        if (err instanceof StatusError && err.status === 400) throw new PagesDisagree();
        throw err;
      }
      if (next.filteredCount !== first.filteredCount || next.pageCount !== first.pageCount) throw new PagesDisagree();
      items.push(...next.items);
    }
    if (items.length !== first.filteredCount || new Set(items.map((q) => q.name)).size !== items.length) {
      throw new PagesDisagree();
    }
    return items;
  }

  /**
   * GET and decode JSON; every answer but 200 is an error. `notFound` words a 404. A failure of the API itself
   * (unreachable, credentials refused, 5xx) is a BackendError naming only the API, so every reader of it reports the
   * same message; an answer about one queue or vhost names it.
   */
  async #getJson(url: URL, signal: AbortSignal, what: string, notFound: string, timeoutMs?: number): Promise<unknown> {
    return parseJson(await this.#getText(url, signal, what, notFound, timeoutMs), what);
  }

  /** GET, with #getJson's errors; the body as text (a 200). */
  async #getText(url: URL, signal: AbortSignal, what: string, notFound: string, timeoutMs?: number): Promise<string> {
    let answer: HttpAnswer;
    this.requests++;
    const api = `the RabbitMQ management API at ${this.#origin}`;
    try {
      answer = await this.#get(url, signal, timeoutMs);
    } catch (cause) {
      // No OAuth2 token to ask with: the token endpoint's failure, worded by it (the API was not asked).
      if (cause instanceof TokenEndpointError) throw cause;
      // sluice refused the address (of the API or of its token endpoint): worded by the refusal, nothing was asked.
      if (cause instanceof AddressRefusedError) throw cause;
      // The API answered without a usable value (a redirect, an oversized body): not the API failing.
      if (cause instanceof ScalerError && !(cause instanceof BackendError)) {
        throw new ScalerError(`${api} gave no usable answer for ${what}`, { cause });
      }
      throw new BackendError(`cannot reach ${api}`, { cause });
    }
    const { status } = answer;
    if (status === 404) throw new StatusError(status, notFound);
    if (status === 401 || status === 403) {
      throw new BackendError(`${api} refused the credentials (${status})`);
    }
    if (status >= 500 || status === 429) throw new BackendError(`${api} answered ${status}`);
    if (status !== 200) {
      throw new StatusError(
        status,
        `the RabbitMQ management API answered ${status} for ${what}${statusMeaning(status)}`,
      );
    }
    return answer.body;
  }
}

/** A vhost's queue list as read: the body, its queues by name, and the QueueStats made of them so far. */
interface ParsedList {
  readonly text: string;
  readonly byName: Map<string, unknown>;
  readonly stats: Map<string, QueueStats>;
}

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    // Not the cause: JSON.parse's message quotes the start of the body.
    throw new ScalerError(`the RabbitMQ management API sent a body that is not JSON for ${what}`);
  }
}

interface Page {
  readonly items: QueueStats[];
  readonly filteredCount: number;
  readonly pageCount: number;
}

function listPage(body: unknown, what: string): Page {
  const page = isRecord(body) ? body : undefined;
  const items = page?.['items'];
  const filteredCount = page?.['filtered_count'];
  const pageCount = page?.['page_count'];
  if (!Array.isArray(items) || !isCount(filteredCount) || !isCount(pageCount)) {
    throw new ScalerError(`the RabbitMQ management API sent a queue list without pagination fields for ${what}`);
  }
  return { items: items.map((item) => queueStats(item, what)), filteredCount, pageCount };
}

/** One queue object of the management API as QueueStats; throws only for something that is not a queue at all. */
export function queueStats(item: unknown, what: string): QueueStats {
  if (!isRecord(item)) {
    throw new ScalerError(`the RabbitMQ management API sent something that is not a queue for ${what}`);
  }
  const count = (value: unknown): number | undefined => (isCount(value) ? value : undefined);
  const stats = item['message_stats'];
  const rate = (field: RateField): RateFact => {
    if (stats === undefined) return { absent: true };
    if (!isRecord(stats)) return { malformed: 'malformed message_stats' };
    const details = stats[`${field}_details`];
    if (stats[field] === undefined && details === undefined) return { absent: true };
    const value = isRecord(details) ? details['rate'] : undefined;
    return isCount(value) ? { rate: value } : { malformed: `no ${field} rate` };
  };
  return {
    name: typeof item['name'] === 'string' ? item['name'] : '',
    messages: count(item['messages']),
    messagesReady: count(item['messages_ready']),
    publish: rate('publish'),
    deliverGet: rate('deliver_get'),
  };
}

export function aggregate(operation: Operation, values: readonly number[]): number {
  switch (operation) {
    case 'sum':
      return values.reduce((a, b) => a + b, 0);
    case 'avg':
      return values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length;
    case 'max':
      return values.reduce((a, b) => Math.max(a, b), 0);
  }
}

function abortError(signal: AbortSignal, what: string): BackendError {
  const reason: unknown = signal.reason;
  const timedOut = reason instanceof Error && reason.name === 'TimeoutError';
  return new BackendError(`reading ${what} ${timedOut ? 'timed out' : 'was cancelled'}`, { cause: reason });
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

/**
 * What a status outside 200 (and not handled before) means here, in sluice's words. The broker's JSON error body has a
 * `reason` (e.g. why a regular expression does not compile), but it is never quoted: it is the server's text, and the
 * message reaches the ScaledObject's status (docs/security.md#read-back-and-reach).
 */
function statusMeaning(status: number): string {
  if (status === 400) {
    return " (the broker refused the request: with useRegex, check that queueName is a valid PCRE expression; the broker's reason is not shown)";
  }
  return '';
}
