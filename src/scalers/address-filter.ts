/**
 * Where a trigger may make sluice connect: every outbound connection a ScaledObject causes (an HTTP scaler's GET, an
 * OAuth2 token request, an AMQP socket, the SQS and STS clients, an http-rate scrape of an endpoint) is checked
 * against an address policy **at connect time, on the resolved address**, never on the name: a name that resolves to a
 * refused address is refused, and a name whose answer changes between lookups is checked on each lookup that leads to
 * a connection (the checked answer is the one connected to; nothing is cached in between).
 *
 * Refused by default (DEFAULT_DENY): IPv4 and IPv6 link-local ranges, where the cloud instance metadata services
 * answer (and hand out the node's credentials), and the metadata addresses outside them. IPv4-mapped IPv6 addresses
 * (`::ffff:169.254.169.254`, RFC 4291 §2.5.5.2) and the NAT64 well-known prefix (`64:ff9b::/96`, RFC 6052 §2.1) are
 * checked as the IPv4 address they carry. A name with several answers is refused whole when any answer is refused, so
 * a round-robin answer cannot slip one in.
 *
 * Operator flags (config.ts): `--deny-cidrs` adds ranges to refuse, `--allow-cidrs` lets ranges through whatever else
 * says (it wins over the defaults and over --deny-cidrs), `--resolve host=ip` pins a name to addresses like curl's
 * --resolve (a debugging aid; the pinned addresses are checked like any answer).
 *
 * A refusal is an AddressRefusedError: a ScalerError (not a BackendError: nothing was asked of the backend, so its
 * circuit breaker does not count it) naming the host, the address and the rule, never anything the server said.
 *
 * The policy is process-wide (`setOutboundGuard`, once at startup) so that every connection pool a trigger leases is
 * filtered alike; code that builds a client may pass its own guard (tests inject a resolver).
 *
 * Not filtered: sluice's own connections (the Kubernetes API, and the AWS SDK's default credential chain, which reads
 * the instance metadata service for the node's own role). Neither goes where a ScaledObject points.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { Agent as HttpAgent, type AgentOptions, type ClientRequestArgs } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import type { Duplex } from 'node:stream';
import { ScalerError } from '../errors.ts';

// ---------------------------------------------------------------------------------------------------------------
// Addresses and ranges

export interface CidrRange {
  /** As written, normalized (`169.254.0.0/16`, `fe80::/10`). */
  readonly text: string;
  readonly family: 4 | 6;
  readonly base: bigint;
  readonly prefix: number;
}

/** A parsed address: its family and value (a zone such as `%eth0` is dropped). */
interface Address {
  readonly family: 4 | 6;
  readonly value: bigint;
}

function parseIPv4(text: string): bigint | undefined {
  if (isIP(text) !== 4) return undefined;
  return text.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function parseIPv6(text: string): bigint | undefined {
  const bare = text.replace(/%.*$/, '');
  if (isIP(bare) !== 6) return undefined;
  const halves = bare.split('::');
  const groups = (part: string): bigint[] => {
    if (part === '') return [];
    const out: bigint[] = [];
    for (const group of part.split(':')) {
      const v4 = parseIPv4(group);
      if (v4 !== undefined) out.push(v4 >> 16n, v4 & 0xffffn);
      else out.push(BigInt(Number.parseInt(group, 16)));
    }
    return out;
  };
  const head = groups(halves[0] ?? '');
  const tail = halves.length > 1 ? groups(halves[1] ?? '') : [];
  const all = [...head, ...new Array<bigint>(8 - head.length - tail.length).fill(0n), ...tail];
  return all.reduce((acc, group) => (acc << 16n) | group, 0n);
}

function parseAddress(text: string): Address | undefined {
  const host = text.replace(/^\[|\]$/g, '');
  const v4 = parseIPv4(host);
  if (v4 !== undefined) return { family: 4, value: v4 };
  const v6 = parseIPv6(host);
  return v6 === undefined ? undefined : { family: 6, value: v6 };
}

const MAPPED = { base: 0xffffn << 32n, bits: 96 }; // ::ffff:0:0/96, RFC 4291 §2.5.5.2
const NAT64 = { base: 0x64ff9bn << 96n, bits: 96 }; // 64:ff9b::/96, RFC 6052 §2.1

/** The address, plus the IPv4 address an IPv4-mapped or NAT64 IPv6 address carries. */
function views(address: Address): Address[] {
  if (address.family === 4) return [address];
  const out: Address[] = [address];
  for (const prefix of [MAPPED, NAT64]) {
    if (address.value >> BigInt(128 - prefix.bits) === prefix.base >> BigInt(128 - prefix.bits)) {
      out.push({ family: 4, value: address.value & 0xffffffffn });
    }
  }
  return out;
}

function contains(range: CidrRange, address: Address): boolean {
  if (range.family !== address.family) return false;
  const width = range.family === 4 ? 32 : 128;
  const shift = BigInt(width - range.prefix);
  return address.value >> shift === range.base >> shift;
}

function formatRange(family: 4 | 6, base: bigint, prefix: number): string {
  if (family === 4) {
    const octets = [24n, 16n, 8n, 0n].map((s) => String((base >> s) & 0xffn));
    return `${octets.join('.')}/${prefix}`;
  }
  const groups = Array.from({ length: 8 }, (_, i) => ((base >> BigInt(112 - 16 * i)) & 0xffffn).toString(16));
  // The longest run of zero groups becomes "::" (RFC 5952 §4.2).
  let bestStart = -1;
  let bestLength = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLength && j - i > 1) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const text =
    bestStart < 0
      ? groups.join(':')
      : `${groups.slice(0, bestStart).join(':')}::${groups.slice(bestStart + bestLength).join(':')}`;
  return `${text}/${prefix}`;
}

/** Thrown by parseCidr; config.ts turns it into a ConfigError naming the flag. */
export class CidrSyntaxError extends Error {
  override name = 'CidrSyntaxError';
}

/**
 * `a.b.c.d/n`, `x:y::/n`, or a bare address (a /32 or /128). Host bits must be zero (`10.0.0.1/8` is refused, with
 * the network it probably means), as Kubernetes' NetworkPolicy ipBlock requires too.
 */
export function parseCidr(raw: string): CidrRange {
  const text = raw.trim();
  const slash = text.indexOf('/');
  const addressText = slash < 0 ? text : text.slice(0, slash);
  if (addressText.includes('%')) throw new CidrSyntaxError(`"${text}" has a zone (%…), which a range cannot have`);
  const address = parseAddress(addressText);
  if (address === undefined || addressText.startsWith('[')) {
    throw new CidrSyntaxError(`"${text}" is not an IPv4 or IPv6 address or range (e.g. 10.0.0.0/8, fd00::/8)`);
  }
  const width = address.family === 4 ? 32 : 128;
  let prefix = width;
  if (slash >= 0) {
    const bits = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(bits) || Number(bits) > width) {
      throw new CidrSyntaxError(`"${text}" has a prefix length that is not a number from 0 to ${width}`);
    }
    prefix = Number(bits);
  }
  const shift = BigInt(width - prefix);
  const base = (address.value >> shift) << shift;
  if (base !== address.value) {
    throw new CidrSyntaxError(
      `"${text}" has bits set past its prefix length; the range is ${formatRange(address.family, base, prefix)}`,
    );
  }
  return { text: formatRange(address.family, base, prefix), family: address.family, base, prefix };
}

/** A comma list of ranges (empty entries are ignored). Throws CidrSyntaxError. */
export function parseCidrList(raw: string): CidrRange[] {
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map(parseCidr);
}

// ---------------------------------------------------------------------------------------------------------------
// The policy

export interface DenyRule {
  readonly range: CidrRange;
  /** What the range is, for messages: "a link-local address (…)". */
  readonly what: string;
}

const rule = (cidr: string, what: string): DenyRule => ({ range: parseCidr(cidr), what });

/**
 * Refused unless --allow-cidrs lets them through. Sources:
 * - RFC 3927 (IPv4 link-local) and RFC 4291 §2.5.6 (IPv6 link-local);
 * - AWS: the EC2 User Guide, "Access instance metadata" (IMDS at 169.254.169.254 and [fd00:ec2::254]), the Amazon
 *   ECS task metadata and credentials endpoints (169.254.170.2), the Amazon EKS Pod Identity Agent (169.254.170.23 and
 *   [fd00:ec2::23]), the Route 53 Resolver ([fd00:ec2::253]) and Time Sync ([fd00:ec2::123]): AWS's IPv6 instance
 *   services live in fd00:ec2::/32;
 * - Google Cloud: "About VM metadata" (metadata.google.internal, 169.254.169.254, and fd20:ce::254 for IPv6);
 * - Azure: "Azure Instance Metadata Service" (169.254.169.254) and "What is IP address 168.63.129.16?" (the WireServer,
 *   which serves the VM agent's goal state and extension settings);
 * - Alibaba Cloud: "Instance metadata" (100.100.100.200); Oracle Cloud: 169.254.169.254 (OCI) and 192.0.0.192
 *   (Oracle Cloud Infrastructure Classic); Tencent Cloud (169.254.0.23), DigitalOcean, OpenStack (169.254.169.254).
 */
export const DEFAULT_DENY: readonly DenyRule[] = [
  rule('169.254.0.0/16', 'a link-local address (169.254.0.0/16, where cloud metadata services answer)'),
  rule('fe80::/10', 'a link-local address (fe80::/10)'),
  rule('fd00:ec2::/32', 'a cloud metadata address (fd00:ec2::/32, AWS instance metadata and credentials)'),
  rule('fd20:ce::254/128', 'a cloud metadata address (fd20:ce::254, the Google Cloud metadata server)'),
  rule('100.100.100.200/32', 'a cloud metadata address (100.100.100.200, the Alibaba Cloud metadata service)'),
  rule('192.0.0.192/32', 'a cloud metadata address (192.0.0.192, the Oracle Cloud Classic metadata service)'),
  rule('168.63.129.16/32', 'a cloud platform address (168.63.129.16, the Azure WireServer)'),
];

export interface AddressPolicyOptions {
  /** Extra ranges to refuse (--deny-cidrs). */
  readonly deny?: readonly CidrRange[];
  /** Ranges let through whatever the other rules say (--allow-cidrs). */
  readonly allow?: readonly CidrRange[];
}

export class AddressPolicy {
  readonly deny: readonly DenyRule[];
  readonly allow: readonly CidrRange[];

  constructor(options: AddressPolicyOptions = {}) {
    this.deny = [
      ...DEFAULT_DENY,
      ...(options.deny ?? []).map((range) => ({ range, what: `an address in --deny-cidrs (${range.text})` })),
    ];
    this.allow = options.allow ?? [];
  }

  /**
   * Why `address` (an IP address) is refused, as "a link-local address (…)", or undefined when it is not. Text that
   * is not an IP address is refused (a connection goes to addresses only).
   */
  refusal(address: string): string | undefined {
    const parsed = parseAddress(address);
    if (parsed === undefined) return 'not an IP address';
    let refused: DenyRule | undefined;
    for (const view of views(parsed)) {
      if (this.allow.some((range) => contains(range, view))) continue;
      for (const candidate of this.deny) {
        // The most specific rule names the refusal.
        if (
          contains(candidate.range, view) &&
          (refused === undefined || candidate.range.prefix > refused.range.prefix)
        ) {
          refused = candidate;
        }
      }
    }
    return refused?.what;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The refusal

/** A connection sluice refused to make: see the top of this file. Never counted by a circuit breaker. */
export class AddressRefusedError extends ScalerError {
  override name = 'AddressRefusedError';
  /** The host as the trigger named it (a name or an address). */
  readonly host: string;
  /** The refused address. */
  readonly address: string;
  /** What the address is ("a link-local address (…)"). */
  readonly what: string;

  constructor(host: string, address: string, what: string, where?: string) {
    const subject = host === address ? `${address} is` : `${host} resolves to ${address},`;
    super(
      `${where === undefined ? '' : `${where}: `}${subject} ${what} that sluice refuses to connect to (see --allow-cidrs)`,
      { code: 'ADDRESS_REFUSED' },
    );
    this.host = host;
    this.address = address;
    this.what = what;
  }

  /** The same refusal, its message prefixed with what was being read (`http://x/metrics: …`). */
  at(where: string): AddressRefusedError {
    return new AddressRefusedError(this.host, this.address, this.what, where);
  }
}

/** The AddressRefusedError somewhere in `err`'s cause chain (or an AggregateError's errors), if any. */
export function findAddressRefusal(err: unknown): AddressRefusedError | undefined {
  const queue: unknown[] = [err];
  for (let seen = 0; queue.length > 0 && seen < 16; seen++) {
    const current = queue.shift();
    if (current instanceof AddressRefusedError) return current;
    if (current instanceof Error) {
      if (current.cause !== undefined) queue.push(current.cause);
      if (current instanceof AggregateError) queue.push(...(current.errors as unknown[]));
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// The guard: lookups and connections through the policy

/** Resolves a name to every address it has (what getaddrinfo answers). */
export type Resolver = (hostname: string, family: 0 | 4 | 6) => Promise<readonly LookupAddress[]>;

const systemResolver: Resolver = (hostname, family) =>
  new Promise((resolve, reject) => {
    dnsLookup(hostname, { all: true, family }, (err, addresses) => {
      if (err) reject(err);
      else resolve(addresses);
    });
  });

export interface OutboundGuardOptions {
  readonly policy?: AddressPolicy;
  /** Names pinned to addresses (--resolve), looked up before the resolver. Keys are lower case. */
  readonly hosts?: ReadonlyMap<string, readonly string[]>;
  /** Default: the system's resolver (dns.lookup, as Node's own connections use). */
  readonly resolve?: Resolver;
}

function normalizeHost(host: string): string {
  return host
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '')
    .toLowerCase();
}

function familyOf(option: unknown): 0 | 4 | 6 {
  if (option === 4 || option === 'IPv4') return 4;
  if (option === 6 || option === 'IPv6') return 6;
  return 0;
}

export class OutboundGuard {
  readonly policy: AddressPolicy;
  readonly #hosts: ReadonlyMap<string, readonly string[]>;
  readonly #resolve: Resolver;

  constructor(options: OutboundGuardOptions = {}) {
    this.policy = options.policy ?? new AddressPolicy();
    this.#hosts = options.hosts ?? new Map();
    this.#resolve = options.resolve ?? systemResolver;
  }

  /**
   * Every address `host` resolves to (an address resolves to itself; a --resolve entry to its addresses), checked:
   * throws AddressRefusedError when any of them is refused, and an ENOTFOUND error when there is none.
   */
  async resolveChecked(host: string, family: 0 | 4 | 6 = 0): Promise<LookupAddress[]> {
    const name = normalizeHost(host);
    let answers: readonly LookupAddress[];
    const literal = isIP(name);
    if (literal !== 0) {
      answers = [{ address: name, family: literal }];
    } else {
      const pinned = this.#hosts.get(name);
      answers =
        pinned === undefined
          ? await this.#resolve(name, family)
          : pinned.map((address) => ({ address, family: isIP(address) }));
    }
    const wanted = answers.filter((a) => family === 0 || a.family === family);
    if (wanted.length === 0) {
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND', hostname: name });
    }
    for (const { address } of wanted) this.checkAddress(name, address);
    return [...wanted];
  }

  /** Throws AddressRefusedError when `address` (what `host` resolved to) is refused. */
  checkAddress(host: string, address: string): void {
    const what = this.policy.refusal(address);
    if (what !== undefined) throw new AddressRefusedError(normalizeHost(host), address, what);
  }

  /** Throws AddressRefusedError when `host` is an IP address that is refused (a name is checked by `lookup`). */
  checkHost(host: string): void {
    const name = normalizeHost(host);
    if (isIP(name) !== 0) this.checkAddress(name, name);
  }

  /** A `lookup` for net.connect / tls.connect (and so for undici, amqplib and http.Agent): resolveChecked. */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    this.resolveChecked(hostname, familyOf(options.family)).then(
      (answers) => {
        if (options.all === true) {
          callback(null, answers);
        } else {
          const first = answers[0] as LookupAddress;
          callback(null, first.address, first.family);
        }
      },
      (err: unknown) => {
        callback(err as NodeJS.ErrnoException, '', 0);
      },
    );
  };

  /**
   * Node http / https Agents whose every connection goes through this guard (for the AWS SDK's request handler):
   * names through `lookup`, IP addresses checked before any socket exists.
   */
  nodeAgents(options: AgentOptions = { keepAlive: true, maxSockets: 50 }): {
    httpAgent: HttpAgent;
    httpsAgent: HttpsAgent;
  } {
    return { httpAgent: new GuardedHttpAgent(this, options), httpsAgent: new GuardedHttpsAgent(this, options) };
  }
}

type CreateCallback = (err: Error | null, stream: Duplex) => void;

/** The guard's checks before a Node Agent's own createConnection; a refusal goes to the callback (no socket). */
function guardedCreate(
  guard: OutboundGuard,
  options: ClientRequestArgs,
  callback: CreateCallback | undefined,
  create: (options: ClientRequestArgs, callback?: CreateCallback) => Duplex | null | undefined,
): Duplex | null | undefined {
  try {
    guard.checkHost(options.host ?? options.hostname ?? '');
  } catch (err) {
    if (callback === undefined) throw err;
    process.nextTick(() => {
      (callback as (err: Error) => void)(err as Error);
    });
    return undefined;
  }
  return create({ ...options, lookup: guard.lookup }, callback);
}

class GuardedHttpAgent extends HttpAgent {
  readonly #guard: OutboundGuard;
  constructor(guard: OutboundGuard, options: AgentOptions) {
    super(options);
    this.#guard = guard;
  }
  override createConnection(options: ClientRequestArgs, callback?: CreateCallback): Duplex | null | undefined {
    return guardedCreate(this.#guard, options, callback, (o, c) => super.createConnection(o, c));
  }
}

class GuardedHttpsAgent extends HttpsAgent {
  readonly #guard: OutboundGuard;
  constructor(guard: OutboundGuard, options: AgentOptions) {
    super(options);
    this.#guard = guard;
  }
  override createConnection(options: ClientRequestArgs, callback?: CreateCallback): Duplex | null | undefined {
    return guardedCreate(this.#guard, options, callback, (o, c) => super.createConnection(o, c));
  }
}

let current = new OutboundGuard();

/** The process-wide guard (the default policy until main.ts sets the configured one). */
export function outboundGuard(): OutboundGuard {
  return current;
}

/** Sets the process-wide guard: once, at startup, before any trigger connects. */
export function setOutboundGuard(guard: OutboundGuard): void {
  current = guard;
}
