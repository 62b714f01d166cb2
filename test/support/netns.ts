// A test host with a non-loopback address, on this machine: a network namespace joined to the test's own namespace
// by a veth pair with a private /30. For tests that need an address Kubernetes accepts in an EndpointSlice (loopback
// is rejected by validation) while every packet stays on this machine. Needs root and iproute2 (`ip netns`).
//
// Processes started with `spawn` run inside the namespace and are stopped by PID on close(); deleting the namespace
// removes the veth pair with it. Namespaces left behind by a test process that died are removed on the next create.
import { execFile, spawn as spawnChild, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { promisify } from 'node:util';

const run = promisify(execFile);
const PREFIX = 'sluice-t';

export interface TestHost {
  /** The namespace's name. */
  readonly name: string;
  /** The address of the namespace side (what tests put into EndpointSlices and servers bind to). */
  readonly address: string;
  /** Starts `command args…` inside the namespace; resolves once its stdout has printed a line matching `ready`. */
  spawn(command: string, args: string[], ready: RegExp): Promise<ChildProcess>;
  close(): Promise<void>;
}

let created = 0;

async function ip(...args: string[]): Promise<string> {
  return (await run('ip', args)).stdout;
}

/** Removes namespaces of test processes that no longer exist. */
async function removeStale(): Promise<void> {
  const list = await ip('netns', 'list').catch(() => '');
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const match = new RegExp(`^${PREFIX}(\\d+)-\\d+$`).exec(name);
    if (!match) continue;
    let alive = true;
    try {
      process.kill(Number(match[1]), 0);
    } catch {
      alive = false;
    }
    if (!alive) await ip('netns', 'del', name).catch(() => undefined);
  }
}

export async function createTestHost(): Promise<TestHost> {
  await removeStale();
  const n = created++;
  const name = `${PREFIX}${process.pid}-${n}`;
  // 10.251.0.0/16 split into /30s by PID and count: .1 is this side, .2 the namespace.
  const slot = (process.pid * 4 + n) % 16384;
  const net = `10.251.${slot >> 6}`;
  const hostSide = `${net}.${((slot & 63) << 2) + 1}`;
  const nsSide = `${net}.${((slot & 63) << 2) + 2}`;
  const vethHost = `slh${process.pid}x${n}`.slice(0, 15);
  const vethNs = `sln${process.pid}x${n}`.slice(0, 15);
  try {
    await ip('netns', 'add', name);
    await ip('link', 'add', vethHost, 'type', 'veth', 'peer', 'name', vethNs);
    await ip('link', 'set', vethNs, 'netns', name);
    await ip('addr', 'add', `${hostSide}/30`, 'dev', vethHost);
    await ip('link', 'set', vethHost, 'up');
    await ip('netns', 'exec', name, 'ip', 'addr', 'add', `${nsSide}/30`, 'dev', vethNs);
    await ip('netns', 'exec', name, 'ip', 'link', 'set', vethNs, 'up');
    await ip('netns', 'exec', name, 'ip', 'link', 'set', 'lo', 'up');
  } catch (err) {
    await ip('netns', 'del', name).catch(() => undefined);
    await ip('link', 'del', vethHost).catch(() => undefined);
    throw new Error(`cannot create the test network namespace ${name} (needs root and iproute2)`, { cause: err });
  }

  const children: ChildProcess[] = [];
  return {
    name,
    address: nsSide,
    async spawn(command, args, ready) {
      // `ip netns exec` enters the namespace and execs the command: the child's PID is the command's.
      const child = spawnChild('ip', ['netns', 'exec', name, command, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      let output = '';
      await new Promise<void>((resolve, reject) => {
        const onData = (chunk: Buffer): void => {
          output += chunk.toString();
          if (ready.test(output)) {
            child.stdout.off('data', onData);
            resolve();
          }
        };
        child.stdout.on('data', onData);
        child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
        child.once('exit', (code) => {
          reject(new Error(`${command} exited with ${code} in ${name}: ${output}`));
        });
        setTimeout(() => {
          reject(new Error(`${command} did not become ready in ${name} within 10 s: ${output}`));
        }, 10_000).unref();
      });
      return child;
    },
    async close() {
      for (const child of children) {
        if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
          const exited = once(child, 'exit');
          process.kill(child.pid, 'SIGTERM');
          await exited;
        }
      }
      await ip('netns', 'del', name).catch(() => undefined);
    },
  };
}
