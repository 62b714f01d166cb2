// A TCP proxy on 127.0.0.1 that pipes bytes to a target (kube-apiserver: TLS passes through untouched) and can cut
// every connection through it at once, or refuse new ones for a while: a dropped watch, or a network partition between
// one client and the API server, with the API server itself untouched.
import { createConnection, createServer, type Socket } from 'node:net';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { loadTestEnv } from './env.ts';
import { startSluice, type SluiceProcess } from './sluice.ts';

export interface TcpProxy {
  /** The port it listens on (127.0.0.1). */
  readonly port: number;
  /** Connections through it now. */
  open(): number;
  /** Connections accepted so far (refused ones included). */
  accepted(): number;
  /** Resets every connection through it now (TCP RST to the client); returns how many. New ones still pass. */
  cut(): number;
  /** Cuts every connection and resets each new one at once until `release()`. */
  hold(): number;
  release(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { readonly host: string; readonly port: number }): Promise<TcpProxy> {
  const pairs = new Set<{ client: Socket; upstream: Socket }>();
  let held = false;
  let accepted = 0;
  const server = createServer((client) => {
    accepted++;
    if (held) {
      client.resetAndDestroy();
      return;
    }
    const upstream = createConnection({ host: target.host, port: target.port });
    const pair = { client, upstream };
    pairs.add(pair);
    const drop = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('the proxy has no TCP address');

  const cut = (): number => {
    const n = pairs.size;
    for (const { client, upstream } of pairs) {
      client.resetAndDestroy();
      upstream.destroy();
    }
    pairs.clear();
    return n;
  };
  return {
    port: address.port,
    open: () => pairs.size,
    accepted: () => accepted,
    cut,
    hold() {
      held = true;
      return cut();
    },
    release() {
      held = false;
    },
    async close() {
      cut();
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      });
    },
  };
}

/** Writes a copy of the kubeconfig at `from` to `to` whose server is `https://127.0.0.1:<port>` (the proxy). */
export async function kubeconfigThrough(from: string, to: string, port: number): Promise<void> {
  const text = await readFile(from, 'utf8');
  const rewritten = text.replace(/(\bserver:\s*)https:\/\/127\.0\.0\.1:\d+/g, `$1https://127.0.0.1:${port}`);
  if (rewritten === text) throw new Error(`no https://127.0.0.1 server in ${from}`);
  await writeFile(to, rewritten, { mode: 0o600 });
}

/**
 * A proxy in front of the environment's kube-apiserver and `sluice operator --local` talking to kube-apiserver only
 * through it (its log: `sluice-<name>.log`). Stop sluice before closing the proxy.
 */
export async function startSluiceBehindProxy(name: string): Promise<{ proxy: TcpProxy; sluice: SluiceProcess }> {
  const env = loadTestEnv();
  const proxy = await startTcpProxy({ host: '127.0.0.1', port: env.ports.kubeApiserver });
  const kubeconfig = path.join(env.stateDir, 'run', `kubeconfig-${name}`);
  await kubeconfigThrough(env.kubeconfig, kubeconfig, proxy.port);
  const sluice = await startSluice({ logName: `sluice-${name}.log`, kubeconfig });
  return { proxy, sluice };
}
