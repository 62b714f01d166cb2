/**
 * The rabbitmq scaler's reader for the RabbitMQ management HTTP API: one queue
 * (`GET <prefix>/api/queues/<vhost>/<queue>`) or every queue whose name matches a regular expression
 * (`GET <prefix>/api/queues/<vhost>?use_regex=true&name=<regex>&page=<n>&page_size=<size>`), reduced to one count
 * (`messages` or `messages_ready`) and, when the mode needs it, one rate (`message_stats.<publish|deliver_get>_details
 * .rate`). No I/O happens before `read()`.
 *
 * ## Missing numbers
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
 * JavaScript cannot validate faithfully); its 400 answer becomes the error. `operation` avg is the exact mean (KEDA
 * divides the counts as integers).
 */
import { ScalerError } from '../errors.ts';

export type CountField = 'messages' | 'messages_ready';
export type RateField = 'publish' | 'deliver_get';
export type Operation = 'sum' | 'avg' | 'max';

/** What a mode needs from the API. */
export interface Reading {
  readonly count: number;
  /** Messages per second; undefined when no rate was asked for. */
  readonly rate: number | undefined;
}

export interface HttpAnswer {
  readonly status: number;
  readonly body: string;
}
/** One GET; throws (any error) when there is no HTTP answer at all: refused, reset, TLS failure, timeout, abort. */
export type HttpGet = (url: URL, signal: AbortSignal) => Promise<HttpAnswer>;

export interface ManagementReaderOptions {
  /** The API's origin and path prefix (e.g. `https://b:15671/rabbit`), without credentials, query or vhost. */
  readonly base: URL;
  readonly vhost: string;
  readonly queueName: string;
  readonly useRegex: boolean;
  readonly operation: Operation;
  readonly pageSize: number;
  readonly count: CountField;
  readonly rate: RateField | undefined;
  readonly get: HttpGet;
}

export interface ManagementReader {
  read(signal: AbortSignal): Promise<Reading>;
}

/** How long a confirmed "the broker collects message rates" is trusted. */
const RATES_MODE_TTL_MS = 5 * 60_000;
const COLUMNS = 'name,messages,messages_ready,message_stats';

/** One queue as read: `rate` is undefined when the broker reported no counter for it (see the file comment). */
interface QueueFacts {
  readonly name: string;
  readonly count: number;
  readonly rate: number | undefined;
}

class PagesDisagree extends Error {}

/** A non-200 answer, with its status (the reader words most statuses itself). */
class StatusError extends ScalerError {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export function managementReader(options: ManagementReaderOptions): ManagementReader {
  const { base, vhost, queueName } = options;
  const prefix = base.pathname.replace(/\/+$/, '');
  const origin = `${base.protocol}//${base.host}${prefix}`;
  const api = (path: string, query: Record<string, string> = {}): URL => {
    const url = new URL(`${prefix}/api/${path}`, base);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    return url;
  };
  const what = options.useRegex
    ? `the queues matching "${queueName}" in vhost "${vhost}" at ${origin}`
    : `queue "${queueName}" in vhost "${vhost}" at ${origin}`;
  let ratesConfirmedUntil = 0;

  /** GET and decode JSON; every answer but 200 is an error. `notFound` words a 404. */
  async function getJson(url: URL, signal: AbortSignal, notFound: string): Promise<unknown> {
    let answer: HttpAnswer;
    try {
      answer = await options.get(url, signal);
    } catch (cause) {
      throw new ScalerError(`cannot reach the RabbitMQ management API for ${what}`, { cause });
    }
    const { status } = answer;
    if (status === 404) throw new StatusError(status, notFound);
    if (status === 401 || status === 403) {
      throw new StatusError(status, `the RabbitMQ management API refused the credentials for ${what} (${status})`);
    }
    if (status !== 200) {
      const reason = brokerReason(answer.body);
      throw new StatusError(
        status,
        `the RabbitMQ management API answered ${status} for ${what}${reason ? `: ${reason}` : ''}`,
      );
    }
    try {
      return JSON.parse(answer.body) as unknown;
    } catch (cause) {
      throw new ScalerError(`the RabbitMQ management API sent a body that is not JSON for ${what}`, { cause });
    }
  }

  async function readOne(signal: AbortSignal): Promise<QueueFacts[]> {
    const url = api(`queues/${encodeURIComponent(vhost)}/${encodeURIComponent(queueName)}`, { columns: COLUMNS });
    const body = await getJson(url, signal, `${what} does not exist (management API answered 404)`);
    return [queueFacts(body)];
  }

  async function readAllPages(signal: AbortSignal): Promise<QueueFacts[]> {
    const page = async (n: number) => {
      const url = api(`queues/${encodeURIComponent(vhost)}`, {
        use_regex: 'true',
        name: queueName,
        page: String(n),
        page_size: String(options.pageSize),
        sort: 'name',
        columns: COLUMNS,
      });
      const notFound =
        n === 1
          ? `vhost "${vhost}" does not exist at ${origin} (management API answered 404)`
          : `the management API lost vhost "${vhost}" while paging`;
      return listPage(await getJson(url, signal, notFound));
    };
    const first = await page(1);
    if (first.filteredCount === 0) throw new ScalerError(`no queue matches "${queueName}" in vhost "${vhost}"`);
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

  async function readRegex(signal: AbortSignal): Promise<QueueFacts[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await readAllPages(signal);
      } catch (err) {
        if (!(err instanceof PagesDisagree)) throw err;
        if (attempt === 2) {
          throw new ScalerError(`the queues matching "${queueName}" changed while sluice was paging through them`);
        }
      }
    }
  }

  /** Whether an absent counter may be read as 0: the broker must be collecting message rates. */
  async function confirmRatesCollected(signal: AbortSignal): Promise<void> {
    if (Date.now() < ratesConfirmedUntil) return;
    const body = await getJson(
      api('overview', { columns: 'rates_mode,disable_stats' }),
      signal,
      `the RabbitMQ management API at ${origin} has no /api/overview (404)`,
    );
    const overview = isRecord(body) ? body : {};
    const mode = overview['rates_mode'];
    if (overview['disable_stats'] === true || (mode !== 'basic' && mode !== 'detailed')) {
      throw new ScalerError(
        `${what} reports no ${options.rate ?? ''} rate, and the broker does not collect message rates ` +
          `(rates_mode ${typeof mode === 'string' ? mode : 'unknown'}${overview['disable_stats'] === true ? ', statistics disabled' : ''}): the rate is unknown`,
      );
    }
    ratesConfirmedUntil = Date.now() + RATES_MODE_TTL_MS;
  }

  function queueFacts(item: unknown): QueueFacts {
    if (!isRecord(item))
      throw new ScalerError(`the RabbitMQ management API sent something that is not a queue for ${what}`);
    const name = typeof item['name'] === 'string' ? item['name'] : '';
    const where = options.useRegex ? `queue "${name}" (matching "${queueName}")` : `queue "${queueName}"`;
    const count = item[options.count];
    if (!isCount(count)) {
      // Right after a queue is created the API has no statistics yet; or the broker does not collect them.
      throw new ScalerError(`the RabbitMQ management API has no ${options.count} count for ${where} yet`);
    }
    if (options.rate === undefined) return { name, count, rate: undefined };
    const stats = item['message_stats'];
    if (stats === undefined) return { name, count, rate: undefined };
    if (!isRecord(stats))
      throw new ScalerError(`the RabbitMQ management API sent malformed message_stats for ${where}`);
    const details = stats[`${options.rate}_details`];
    if (stats[options.rate] === undefined && details === undefined) return { name, count, rate: undefined };
    const rate = isRecord(details) ? details['rate'] : undefined;
    if (!isCount(rate)) {
      throw new ScalerError(`the RabbitMQ management API reports no ${options.rate} rate for ${where}`);
    }
    return { name, count, rate };
  }

  function listPage(body: unknown): Page {
    const page = isRecord(body) ? body : undefined;
    const items = page?.['items'];
    const filteredCount = page?.['filtered_count'];
    const pageCount = page?.['page_count'];
    if (!Array.isArray(items) || !isCount(filteredCount) || !isCount(pageCount)) {
      throw new ScalerError(`the RabbitMQ management API sent a queue list without pagination fields for ${what}`);
    }
    return { items: items.map(queueFacts), filteredCount, pageCount };
  }

  return {
    async read(signal) {
      const queues = options.useRegex ? await readRegex(signal) : await readOne(signal);
      if (options.rate !== undefined && queues.some((q) => q.rate === undefined)) await confirmRatesCollected(signal);
      const count = aggregate(
        options.operation,
        queues.map((q) => q.count),
      );
      const rate =
        options.rate === undefined
          ? undefined
          : aggregate(
              options.operation,
              queues.map((q) => q.rate ?? 0),
            );
      return { count, rate };
    },
  };
}

interface Page {
  readonly items: QueueFacts[];
  readonly filteredCount: number;
  readonly pageCount: number;
}

function aggregate(operation: Operation, values: readonly number[]): number {
  switch (operation) {
    case 'sum':
      return values.reduce((a, b) => a + b, 0);
    case 'avg':
      return values.length === 0 ? 0 : values.reduce((a, b) => a + b, 0) / values.length;
    case 'max':
      return values.reduce((a, b) => Math.max(a, b), 0);
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

/** The `reason` of the broker's JSON error body (e.g. a bad regular expression), short, for messages. */
function brokerReason(body: string): string | undefined {
  try {
    const parsed = JSON.parse(body) as unknown;
    const reason = isRecord(parsed) ? parsed['reason'] : undefined;
    return typeof reason === 'string' ? reason.slice(0, 200) : undefined;
  } catch {
    return undefined;
  }
}
