// A tripwire for tests of the address filter (src/scalers/address-filter.ts): it makes sure that no test sends a
// packet anywhere but 127.0.0.1, even when the filter under test is broken, and records what would have gone
// elsewhere.
//
// It patches net.Socket.prototype.connect, which every TCP connection of the process goes through (net.connect,
// tls.connect, http.Agent, undici, amqplib). A connection to an IP address outside the loopback range is sent to
// 127.0.0.1 instead (to `redirectPort` when given); a host name's lookup (the socket's own, or dns.lookup) is wrapped
// so that any address outside the loopback range it answers becomes 127.0.0.1, and a socket without a lookup of its
// own resolves `localhost` only (no DNS query leaves the machine either). Each rewrite is recorded. So a filter
// that lets a metadata address through makes the process connect to a server the test runs on 127.0.0.1, which sees
// the connection arrive: the test fails, and nothing left the machine.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import net from 'node:net';

export interface TripwireEvent {
  /** The host the connection was for. */
  readonly host: string;
  /** The address outside the loopback range that was replaced by 127.0.0.1. */
  readonly address: string;
}

export interface Tripwire {
  /** Addresses outside loopback that a connection would have gone to (each was sent to 127.0.0.1 instead). */
  readonly redirected: TripwireEvent[];
  /** Every host a socket was asked to connect to (names and addresses), in order. */
  readonly connects: string[];
  uninstall(): void;
}

export function isLoopback(address: string): boolean {
  const bare = address.replace(/^\[|\]$/g, '').toLowerCase();
  return bare === '::1' || /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(bare);
}

type Lookup = (
  hostname: string,
  options: { all?: boolean },
  callback: (err: Error | null, address: string | LookupAddress[], family?: number) => void,
) => void;

interface ConnectOptions {
  host?: unknown;
  port?: unknown;
  path?: unknown;
  lookup?: Lookup;
}

/**
 * What a socket without a lookup of its own resolves with: `localhost` only (through the system's resolver, which
 * answers it from /etc/hosts); any other name fails as unknown without asking a DNS server, so that not even a query
 * leaves the machine.
 */
const offlineLookup: Lookup = (hostname, options, callback) => {
  if (hostname.toLowerCase() === 'localhost') {
    (dnsLookup as unknown as Lookup)(hostname, options, callback);
    return;
  }
  const err = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname} (the test tripwire resolves no names)`), {
    code: 'ENOTFOUND',
  });
  process.nextTick(() => {
    callback(err, '', 0);
  });
};

let installed: Tripwire | undefined;

/** Installs the tripwire in this process (once; a second install returns the first). */
export function installTripwire(options: { readonly redirectPort?: number } = {}): Tripwire {
  if (installed) return installed;
  // Called with the socket as `this` (apply), as Node calls it.
  // eslint-disable-next-line @typescript-eslint/unbound-method
  const original = net.Socket.prototype.connect;
  const redirected: TripwireEvent[] = [];
  const connects: string[] = [];

  const guard = (target: ConnectOptions): void => {
    if (typeof target.path === 'string') return; // a Unix socket
    const host = typeof target.host === 'string' ? target.host.replace(/^\[|\]$/g, '') : 'localhost';
    connects.push(host);
    if (net.isIP(host) !== 0) {
      if (!isLoopback(host)) {
        redirected.push({ host, address: host });
        target.host = '127.0.0.1';
        if (options.redirectPort !== undefined) target.port = options.redirectPort;
      }
      return;
    }
    const inner: Lookup = target.lookup ?? offlineLookup;
    target.lookup = (hostname, lookupOptions, callback) => {
      inner(hostname, lookupOptions, (err, address, family) => {
        if (err) {
          callback(err, address, family);
          return;
        }
        const safe = (a: string): string => {
          if (isLoopback(a)) return a;
          redirected.push({ host: hostname, address: a });
          return '127.0.0.1';
        };
        if (Array.isArray(address)) {
          callback(
            null,
            address.map((a) => (isLoopback(a.address) ? a : { address: safe(a.address), family: 4 })),
          );
        } else {
          const rewritten = safe(address);
          callback(null, rewritten, rewritten === address ? family : 4);
        }
      });
    };
  };

  net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
    const first = args[0];
    // net.connect passes its normalized arguments, an array whose first element is the options.
    const options: unknown = Array.isArray(first) ? (first as unknown[])[0] : first;
    if (typeof options === 'object' && options !== null) {
      guard(options);
    } else if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
      const target: ConnectOptions = { host: typeof args[1] === 'string' ? args[1] : 'localhost', port: first };
      guard(target);
      args[0] = target.port;
      args[1] = target.host;
    }
    return (original as (...a: unknown[]) => net.Socket).apply(this, args);
  };

  installed = {
    redirected,
    connects,
    uninstall() {
      net.Socket.prototype.connect = original;
      installed = undefined;
    },
  };
  return installed;
}
