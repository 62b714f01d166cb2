// The address filter (src/scalers/address-filter.ts): the policy as a table, the guard's lookups, and every kind of
// outbound connection a trigger causes (undici for the HTTP scalers and the OAuth2 token endpoint, amqplib, the Node
// Agents of the AWS SDK clients, http-rate's endpoint addresses), each refused before any connection is attempted.
//
// No test here sends a packet anywhere but 127.0.0.1, even if the filter is broken: names resolve through injected
// resolvers, and the tripwire (test/support/tripwire.ts) sends any connection outside loopback to a server on
// 127.0.0.1, which counts what arrives. The control tests let the filter through on purpose (an --allow-cidrs entry)
// to show that a broken filter would be seen there.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { get as httpGet } from 'node:http';
import type { LookupAddress } from 'node:dns';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BackendError, ScalerError, describeError } from '../../../src/errors.ts';
import {
  AddressPolicy,
  AddressRefusedError,
  DEFAULT_DENY,
  OutboundGuard,
  findAddressRefusal,
  outboundGuard,
  parseCidr,
  parseCidrList,
  setOutboundGuard,
  type Resolver,
} from '../../../src/scalers/address-filter.ts';
import { awsSqsQueueScalerFactory } from '../../../src/scalers/aws-sqs-queue.ts';
import { createHttpClient } from '../../../src/scalers/http.ts';
import { createHttpRateScaler } from '../../../src/scalers/http-rate.ts';
import { openTokenSource } from '../../../src/scalers/oauth2.ts';
import { AmqpBroker } from '../../../src/scalers/rabbitmq-amqp.ts';
import { SharedPool } from '../../../src/scalers/shared.ts';
import { SQSClient } from '@aws-sdk/client-sqs';
import { installTripwire, type Tripwire } from '../../support/tripwire.ts';
import { standalone, triggerInput } from '../../support/trigger.ts';

const METADATA = '169.254.169.254';

describe('AddressPolicy: the defaults', () => {
  const policy = new AddressPolicy();
  it.each([
    // IPv4 link-local (RFC 3927) and the metadata addresses in it
    { address: '169.254.169.254', refused: /link-local.*169\.254\.0\.0\/16/ },
    { address: '169.254.170.2', refused: /link-local/ },
    { address: '169.254.170.23', refused: /link-local/ },
    { address: '169.254.0.23', refused: /link-local/ },
    { address: '169.254.0.0', refused: /link-local/ },
    { address: '169.254.255.255', refused: /link-local/ },
    { address: '169.253.255.255', refused: undefined },
    { address: '169.255.0.0', refused: undefined },
    // metadata addresses outside it
    { address: '100.100.100.200', refused: /Alibaba/ },
    { address: '100.100.100.201', refused: undefined },
    { address: '192.0.0.192', refused: /Oracle/ },
    { address: '168.63.129.16', refused: /Azure/ },
    // IPv6 link-local (RFC 4291 §2.5.6): fe80::/10 is fe80:: to febf:ffff:…
    { address: 'fe80::1', refused: /link-local.*fe80::\/10/ },
    { address: 'fe80::1%eth0', refused: /link-local/ },
    { address: '[fe80::1]', refused: /link-local/ },
    { address: 'febf:ffff::1', refused: /link-local/ },
    { address: 'fec0::1', refused: undefined },
    { address: 'FE80::ABCD', refused: /link-local/ },
    // AWS's and Google's IPv6 metadata addresses
    { address: 'fd00:ec2::254', refused: /AWS/ },
    { address: 'fd00:ec2::23', refused: /AWS/ },
    { address: 'fd00:ec2:0:0:0:0:0:254', refused: /AWS/ },
    { address: 'fd00:ec3::254', refused: undefined },
    { address: 'fd20:ce::254', refused: /Google/ },
    { address: 'fd20:ce::253', refused: undefined },
    // IPv4-mapped (RFC 4291 §2.5.5.2) and NAT64 (RFC 6052) forms carry the IPv4 address
    { address: '::ffff:169.254.169.254', refused: /link-local.*169\.254/ },
    { address: '::ffff:a9fe:a9fe', refused: /link-local.*169\.254/ },
    { address: '0:0:0:0:0:ffff:a9fe:a9fe', refused: /link-local/ },
    { address: '::ffff:100.100.100.200', refused: /Alibaba/ },
    { address: '64:ff9b::169.254.169.254', refused: /link-local/ },
    { address: '64:ff9b::a9fe:a9fe', refused: /link-local/ },
    { address: '::ffff:127.0.0.1', refused: undefined },
    { address: '::169.254.169.254', refused: undefined }, // IPv4-compatible (deprecated): not routed as IPv4
    // what stays reachable
    { address: '127.0.0.1', refused: undefined },
    { address: '::1', refused: undefined },
    { address: '10.0.0.1', refused: undefined },
    { address: '192.168.1.1', refused: undefined },
    { address: '8.8.8.8', refused: undefined },
    { address: '2001:db8::1', refused: undefined },
    // not an address at all
    { address: 'metadata.google.internal', refused: /not an IP address/ },
    { address: '0251.0376.0251.0376', refused: /not an IP address/ },
  ])('$address → $refused', ({ address, refused }) => {
    const why = policy.refusal(address);
    if (refused === undefined) expect(why).toBeUndefined();
    else expect(why).toMatch(refused);
  });

  it('every default is a valid, normalized range', () => {
    for (const { range } of DEFAULT_DENY) expect(parseCidr(range.text)).toEqual(range);
    expect(DEFAULT_DENY.map((r) => r.range.text)).toEqual([
      '169.254.0.0/16',
      'fe80::/10',
      'fd00:ec2::/32',
      'fd20:ce::254/128',
      '100.100.100.200/32',
      '192.0.0.192/32',
      '168.63.129.16/32',
    ]);
  });
});

describe('AddressPolicy: --deny-cidrs and --allow-cidrs', () => {
  const policy = new AddressPolicy({
    deny: parseCidrList('10.0.0.0/8, fd00::/8'),
    allow: parseCidrList('10.1.2.0/24,169.254.169.254/32,fd00:ec2::254'),
  });
  it.each([
    { address: '10.0.0.1', refused: /--deny-cidrs \(10\.0\.0\.0\/8\)/ },
    { address: '10.1.2.3', refused: undefined }, // allow wins over --deny-cidrs
    { address: '10.1.3.0', refused: /--deny-cidrs/ },
    { address: 'fd12::1', refused: /--deny-cidrs \(fd00::\/8\)/ },
    { address: 'fd00:ec2::254', refused: undefined }, // allow wins over a default, and over --deny-cidrs
    { address: 'fd00:ec2::253', refused: /AWS/ }, // the most specific rule names the refusal
    { address: '169.254.169.254', refused: undefined },
    { address: '::ffff:169.254.169.254', refused: undefined }, // the IPv4 address it carries is allowed
    { address: '169.254.169.253', refused: /link-local/ },
    { address: '11.0.0.1', refused: undefined },
  ])('$address → $refused', ({ address, refused }) => {
    const why = policy.refusal(address);
    if (refused === undefined) expect(why).toBeUndefined();
    else expect(why).toMatch(refused);
  });
});

describe('parseCidr', () => {
  it.each([
    ['10.0.0.0/8', '10.0.0.0/8'],
    [' 192.168.0.0/16 ', '192.168.0.0/16'],
    ['169.254.169.254', '169.254.169.254/32'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['FD00:EC2::/32', 'fd00:ec2::/32'],
    ['fd00:ec2:0:0:0:0:0:254', 'fd00:ec2::254/128'],
    ['::/0', '::/0'],
    ['::ffff:169.254.0.0/112', '::ffff:a9fe:0/112'],
    ['2001:db8:0:0:1:0:0:0/128', '2001:db8:0:0:1::/128'], // the longest run of zeros (RFC 5952 §4.2.3)
    ['2001:db8:0:0:1:0:0:1/128', '2001:db8::1:0:0:1/128'], // the first of equal runs
  ])('%s → %s', (raw, text) => {
    expect(parseCidr(raw).text).toBe(text);
  });
  it.each([
    ['10.0.0.1/8', /bits set past its prefix length; the range is 10\.0\.0\.0\/8/],
    ['fe80::1/10', /the range is fe80::\/10/],
    ['10.0.0.0/33', /prefix length/],
    ['10.0.0.0/-1', /prefix length/],
    ['10.0.0.0/', /prefix length/],
    ['fe80::/129', /prefix length/],
    ['metadata.google.internal', /not an IPv4 or IPv6 address/],
    ['10.0.0', /not an IPv4 or IPv6 address/],
    ['[fe80::]/10', /not an IPv4 or IPv6 address/],
    ['fe80::%eth0/10', /zone/],
  ])('%s is refused', (raw, message) => {
    expect(() => parseCidr(raw)).toThrow(message);
  });
  it('a list ignores empty entries', () => {
    expect(parseCidrList('10.0.0.0/8,,fd00::/8,').map((r) => r.text)).toEqual(['10.0.0.0/8', 'fd00::/8']);
    expect(parseCidrList('')).toEqual([]);
  });
});

/** A resolver answering from a table; counts its calls per name. */
function tableResolver(table: Record<string, (string | string[])[]>): Resolver & { calls: Map<string, number> } {
  const calls = new Map<string, number>();
  const resolve = (hostname: string): Promise<LookupAddress[]> => {
    const n = calls.get(hostname) ?? 0;
    calls.set(hostname, n + 1);
    const answers = table[hostname];
    if (answers === undefined) {
      return Promise.reject(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }));
    }
    // The answer changes from one lookup to the next when the table says so (the last one sticks).
    const answer = answers[Math.min(n, answers.length - 1)] ?? [];
    return Promise.resolve(
      (Array.isArray(answer) ? answer : [answer]).map((address) => ({
        address,
        family: address.includes(':') ? 6 : 4,
      })),
    );
  };
  return Object.assign(resolve, { calls });
}

describe('OutboundGuard: lookups', () => {
  it('checks every lookup: an answer that changes between lookups is refused when it changes', async () => {
    const guard = new OutboundGuard({ resolve: tableResolver({ 'rebind.test': ['127.0.0.1', METADATA] }) });
    expect(await guard.resolveChecked('rebind.test')).toEqual([{ address: '127.0.0.1', family: 4 }]);
    const second = await guard.resolveChecked('rebind.test').catch((e: unknown) => e);
    expect(second).toBeInstanceOf(AddressRefusedError);
    expect((second as Error).message).toBe(
      'rebind.test resolves to 169.254.169.254, a link-local address (169.254.0.0/16, where cloud metadata services answer) that sluice refuses to connect to (see --allow-cidrs)',
    );
  });

  it('refuses a name whole when any of its answers is refused', async () => {
    const guard = new OutboundGuard({
      resolve: tableResolver({ 'mixed.test': [['127.0.0.1', '::1', 'fd00:ec2::254', '127.0.0.2']] }),
    });
    const err = await guard.resolveChecked('mixed.test').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AddressRefusedError);
    expect(err).toMatchObject({ host: 'mixed.test', address: 'fd00:ec2::254' });
  });

  it('--resolve entries answer first and are checked like any answer', async () => {
    const resolver = tableResolver({});
    const guard = new OutboundGuard({
      resolve: resolver,
      hosts: new Map([
        ['metadata.test', [METADATA]],
        ['two.test', ['127.0.0.1', '::1']],
      ]),
    });
    await expect(guard.resolveChecked('METADATA.test.')).rejects.toThrow(/^metadata\.test resolves to 169\.254/);
    expect(await guard.resolveChecked('two.test')).toHaveLength(2);
    expect(await guard.resolveChecked('two.test', 6)).toEqual([{ address: '::1', family: 6 }]);
    expect(resolver.calls.size).toBe(0);
    await expect(guard.resolveChecked('missing.test')).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });

  it('an address resolves to itself, checked', async () => {
    const guard = new OutboundGuard({ resolve: tableResolver({}) });
    expect(await guard.resolveChecked('[::1]')).toEqual([{ address: '::1', family: 6 }]);
    await expect(guard.resolveChecked('100.100.100.200')).rejects.toThrow(
      /^100\.100\.100\.200 is a cloud metadata address .* that sluice refuses/,
    );
    expect(() => {
      guard.checkHost('[fe80::1]');
    }).toThrow(AddressRefusedError);
    expect(() => {
      guard.checkHost('metadata.test'); // a name: checked by the lookup, not here
    }).not.toThrow();
  });

  it('is a net lookup function (all and single answers)', async () => {
    const guard = new OutboundGuard({ resolve: tableResolver({ 'ok.test': [['127.0.0.1', '::1']] }) });
    const all = await new Promise((resolve, reject) => {
      guard.lookup('ok.test', { all: true }, (err, addresses) => {
        if (err) reject(err);
        else resolve(addresses);
      });
    });
    expect(all).toEqual([
      { address: '127.0.0.1', family: 4 },
      { address: '::1', family: 6 },
    ]);
    const one = await new Promise((resolve, reject) => {
      guard.lookup('ok.test', { family: 6 }, (err, address, family) => {
        if (err) reject(err);
        else resolve([address, family]);
      });
    });
    expect(one).toEqual(['::1', 6]);
  });

  it('findAddressRefusal finds a refusal in a cause chain and in an AggregateError', () => {
    const refusal = new AddressRefusedError('m.test', METADATA, 'x');
    expect(findAddressRefusal(new TypeError('fetch failed', { cause: refusal }))).toBe(refusal);
    expect(findAddressRefusal(new AggregateError([new Error('a'), refusal]))).toBe(refusal);
    expect(findAddressRefusal(new Error('other'))).toBeUndefined();
    expect(refusal).toBeInstanceOf(ScalerError);
    expect(refusal).not.toBeInstanceOf(BackendError);
    expect(refusal.code).toBe('ADDRESS_REFUSED');
  });
});

describe('every outbound connection a trigger causes is refused before it is attempted', () => {
  let tripwire: Tripwire;
  let trap: Server;
  let trapPort = 0;
  let arrived = 0;
  const trapSockets = new Set<Socket>();
  const previousGuard = outboundGuard();
  const resolver = tableResolver({ 'metadata.test': [METADATA], 'aws6.test': ['fd00:ec2::254'] });
  const guard = new OutboundGuard({ resolve: resolver });
  /** The same resolver with the metadata address allowed: what a broken filter would do. */
  const broken = new OutboundGuard({
    resolve: resolver,
    policy: new AddressPolicy({ allow: parseCidrList(`${METADATA}/32`) }),
  });

  beforeAll(async () => {
    trap = createServer((socket) => {
      arrived++;
      trapSockets.add(socket);
      socket.on('close', () => trapSockets.delete(socket));
      socket.on('error', () => undefined);
      socket.end('HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n');
    });
    await new Promise<void>((resolve) => trap.listen(0, '127.0.0.1', resolve));
    trapPort = (trap.address() as AddressInfo).port;
    tripwire = installTripwire({ redirectPort: trapPort });
    setOutboundGuard(guard);
  });

  afterAll(async () => {
    setOutboundGuard(previousGuard);
    tripwire.uninstall();
    for (const s of trapSockets) s.destroy();
    await new Promise((resolve) => trap.close(resolve));
  });

  let before = { arrived: 0, redirected: 0, connects: 0 };
  const mark = () => {
    before = { arrived, redirected: tripwire.redirected.length, connects: tripwire.connects.length };
  };
  /** Nothing went anywhere but loopback, nothing arrived at the trap, and no socket was asked for `hosts`. */
  const expectNothingAttempted = async (...hosts: string[]) => {
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(tripwire.redirected.slice(before.redirected)).toEqual([]);
    expect(arrived - before.arrived).toBe(0);
    for (const host of hosts) expect(tripwire.connects.slice(before.connects)).not.toContain(host);
  };
  afterEach(() => {
    setOutboundGuard(guard);
  });

  const refusedBy = async (promise: Promise<unknown>): Promise<AddressRefusedError> => {
    const err = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(AddressRefusedError);
    expect(err).not.toBeInstanceOf(BackendError);
    return err as AddressRefusedError;
  };

  describe('the HTTP scalers (undici)', () => {
    const get = async (url: string, with_ = guard) => {
      const client = createHttpClient({
        timeoutMs: 2000,
        unsafeSsl: false,
        tls: {},
        headers: {},
        maxBodyBytes: 1024,
        guard: with_,
      });
      try {
        return await client.get(new URL(url), AbortSignal.timeout(3000), { accept: '*/*' });
      } finally {
        await client.close();
      }
    };

    it('a name resolving to the metadata address: refused at lookup, no connection', async () => {
      mark();
      const calls = resolver.calls.get('metadata.test') ?? 0;
      const err = await refusedBy(get(`http://metadata.test:${trapPort}/latest/meta-data/`));
      expect(err.message).toBe(
        `http://metadata.test:${trapPort}/latest/meta-data/: metadata.test resolves to 169.254.169.254, a link-local address (169.254.0.0/16, where cloud metadata services answer) that sluice refuses to connect to (see --allow-cidrs)`,
      );
      expect(resolver.calls.get('metadata.test')).toBe(calls + 1); // the guard's lookup was the path
      await expectNothingAttempted();
    });

    it.each([
      `http://${METADATA}:PORT/`,
      'http://[::ffff:169.254.169.254]:PORT/',
      'https://[fd00:ec2::254]:PORT/',
      'http://100.100.100.200:PORT/',
      'http://2852039166:PORT/', // 169.254.169.254 as one number: the URL parser normalizes it
    ])('an address in the URL (%s): refused before a socket exists', async (url) => {
      mark();
      const target = url.replace('PORT', String(trapPort));
      const host = new URL(target).hostname.replace(/^\[|\]$/g, '');
      await refusedBy(get(target));
      await expectNothingAttempted(host);
    });

    it('control: with the metadata address allowed, the tripwire catches the connection (a broken filter is seen)', async () => {
      mark();
      await get(`http://metadata.test:${trapPort}/`, broken).catch(() => undefined);
      await get(`http://${METADATA}:${trapPort}/`, broken).catch(() => undefined);
      expect(tripwire.redirected.slice(before.redirected)).toEqual([
        { host: 'metadata.test', address: METADATA },
        { host: METADATA, address: METADATA },
      ]);
      expect(arrived - before.arrived).toBe(2);
    });
  });

  it('the OAuth2 token endpoint: refused, an AddressRefusedError (not a TokenEndpointError)', async () => {
    mark();
    const lease = openTokenSource(
      new SharedPool(),
      {
        tokenUrl: new URL(`https://metadata.test:${trapPort}/token`),
        clientId: 'id',
        clientSecret: 'secret',
        scopes: [],
        endpointParams: [],
      },
      { unsafeSsl: false },
    );
    try {
      const err = await refusedBy(lease.source.token(AbortSignal.timeout(3000)));
      expect(err.message).toMatch(
        /^the OAuth2 token endpoint https:\/\/metadata\.test:\d+\/token: metadata\.test resolves/,
      );
    } finally {
      lease.release();
    }
    await expectNothingAttempted();
  });

  describe('AMQP (amqplib)', () => {
    const check = (url: string) => {
      const broker = new AmqpBroker({
        url: new URL(url.replace('PORT', String(trapPort))),
        auth: { username: 'guest', password: 'guest' },
        tls: undefined,
        connectTimeoutMs: 2000,
        guard,
      });
      return { broker, result: broker.checkQueue('q', AbortSignal.timeout(3000)) };
    };
    it.each(['amqp://metadata.test:PORT/', `amqp://${METADATA}:PORT/`, 'amqps://[fe80::1]:PORT/'])(
      '%s: refused, no socket connects',
      async (url) => {
        mark();
        const { broker, result } = check(url);
        const err = await refusedBy(result);
        expect(err.message).toMatch(/^amqps?:\/\/.*: .* that sluice refuses to connect to \(see --allow-cidrs\)$/);
        await broker.close();
        await expectNothingAttempted(METADATA, 'fe80::1');
      },
    );
  });

  describe('the AWS SDK clients (Node Agents)', () => {
    it.each([`http://metadata.test:PORT/`, `http://${METADATA}:PORT/`])(
      'a plain http.get through the guarded agent to %s is refused',
      async (url) => {
        mark();
        const { httpAgent } = guard.nodeAgents();
        const err = await new Promise<unknown>((resolve) => {
          const req = httpGet(url.replace('PORT', String(trapPort)), { agent: httpAgent }, () => {
            resolve(new Error('answered'));
          });
          req.on('error', resolve);
        });
        httpAgent.destroy();
        expect(findAddressRefusal(err)).toBeInstanceOf(AddressRefusedError);
        await expectNothingAttempted(METADATA);
      },
    );

    it('SQS at an awsEndpoint that resolves to a metadata address: refused, not a backend failure', async () => {
      mark();
      // The default client factory (as in production), over the process-wide guard set above.
      const factory = awsSqsQueueScalerFactory(
        (config) => new SQSClient({ ...config, requestHandler: outboundGuard().nodeAgents(), maxAttempts: 1 }),
      );
      const scaler = standalone(
        factory(
          triggerInput({
            type: 'aws-sqs-queue',
            metadata: { queueURL: 'q1', awsRegion: 'eu-west-1' },
            authParams: {
              awsAccessKeyID: 'AKIDEXAMPLE',
              awsSecretAccessKey: 'not-a-real-secret',
              awsEndpoint: `http://metadata.test:${trapPort}`,
            },
          }),
        ),
      );
      try {
        const err = await refusedBy(scaler.sample(AbortSignal.timeout(5000)));
        expect(err.message).toMatch(
          /^SQS at http:\/\/metadata\.test:\d+: metadata\.test resolves to 169\.254\.169\.254/,
        );
        expect(describeError(err)).not.toContain('not-a-real-secret');
      } finally {
        await scaler.close();
      }
      await expectNothingAttempted();
    });
  });

  it('http-rate: an EndpointSlice address that is refused fails the read before any scrape', async () => {
    mark();
    const scaler = standalone(
      createHttpRateScaler(
        triggerInput({
          type: 'http-rate',
          metadata: { service: 'ingress', port: 'metrics', counter: 'requests_total', targetRate: '1' },
          cluster: {
            readyEndpoints: () =>
              Promise.resolve([
                { address: '127.0.0.1', port: trapPort },
                { address: 'fd00:ec2::254', port: trapPort },
              ]),
          },
        }),
      ),
    );
    try {
      const err = await refusedBy(scaler.sample(AbortSignal.timeout(5000)));
      expect(err.message).toBe(
        `endpoint [fd00:ec2::254]:${trapPort} of Service test/ingress port metrics: fd00:ec2::254 is a cloud metadata address (fd00:ec2::/32, AWS instance metadata and credentials) that sluice refuses to connect to (see --allow-cidrs)`,
      );
    } finally {
      await scaler.close();
    }
    // Not even the allowed endpoint was scraped: the read failed whole, first.
    await expectNothingAttempted('fd00:ec2::254', '127.0.0.1');
  });
});
