// A second RabbitMQ node of the test environment's own, for tests that stop a broker's process and start it again
// (fallback, recovery): the shared broker stays up for every other test. It runs Debian's rabbitmq-server exactly as
// scripts/env/lib.sh runs the shared one (self-contained state, 127.0.0.1 only, the environment's epmd), as node
// `spare@localhost` on the reserved ports base+11 (AMQP), base+12 (management API) and base+13 (Erlang
// distribution), and carries SLUICE_ENV_ID so `npm run env:down` stops a leftover.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadTestEnv, waitFor } from './env.ts';

const RABBITMQ_SERVER = '/usr/lib/rabbitmq/bin/rabbitmq-server';

export interface SpareBroker {
  readonly amqpUrl: string;
  /** With guest credentials in the URL (as the env's managementUrl). */
  readonly managementUrl: string;
  /** Starts the node and waits until its management API and AMQP listener answer. */
  start(): Promise<void>;
  /** Stops the node's Erlang VM: `kill` sends SIGKILL (a crash), otherwise SIGTERM (a clean stop). */
  stop(options?: { kill?: boolean }): Promise<void>;
  /** Whether the management API answers now. */
  answers(): Promise<boolean>;
}

export function spareBroker(): SpareBroker {
  const env = loadTestEnv();
  const base = env.ports.etcdClient;
  const ports = { amqp: base + 11, management: base + 12, dist: base + 13 };
  const dir = path.join('/dev/shm', `sluice-${env.id}`, 'spare-rabbitmq');
  const conf = path.join(dir, 'conf');
  mkdirSync(path.join(conf, 'home'), { recursive: true });
  writeFileSync(path.join(conf, 'rabbitmq-env.conf'), '');
  writeFileSync(path.join(conf, 'enabled_plugins'), '[rabbitmq_management].\n');
  writeFileSync(
    path.join(conf, 'rabbitmq.conf'),
    [
      `listeners.tcp.default = 127.0.0.1:${ports.amqp}`,
      'management.tcp.ip = 127.0.0.1',
      `management.tcp.port = ${ports.management}`,
      'collect_statistics_interval = 250',
      '',
    ].join('\n'),
  );
  writeFileSync(
    path.join(conf, 'advanced.config'),
    '[{rabbitmq_management_agent, [{sample_retention_policies, [{global, [{605,1}]}, {basic, [{605,1}]}, {detailed, [{605,1}]}]}]}].\n',
  );
  const managementUrl = `http://guest:guest@127.0.0.1:${ports.management}`;
  let child: ChildProcess | undefined;

  const answers = async (): Promise<boolean> => {
    try {
      const res = await fetch(`http://127.0.0.1:${ports.management}/api/health/checks/port-listener/${ports.amqp}`, {
        headers: { authorization: `Basic ${Buffer.from('guest:guest').toString('base64')}` },
        signal: AbortSignal.timeout(2000),
      });
      return res.ok;
    } catch {
      return false;
    }
  };

  /** The node's Erlang VM (a child of the wrapper script). */
  const beamPid = (): number | undefined => {
    const wrapper = child?.pid;
    if (wrapper === undefined) return undefined;
    try {
      const out = execFileSync('pgrep', ['-P', String(wrapper), '-x', 'beam.smp'], { encoding: 'utf8' });
      const pid = Number(out.trim().split('\n')[0]);
      return Number.isInteger(pid) && pid > 0 ? pid : undefined;
    } catch {
      return undefined;
    }
  };

  return {
    amqpUrl: `amqp://guest:guest@127.0.0.1:${ports.amqp}`,
    managementUrl,
    answers,
    async start() {
      const log = openSync(path.join(env.logsDir, 'spare-rabbitmq.log'), 'a');
      child = spawn(RABBITMQ_SERVER, [], {
        cwd: conf,
        detached: true,
        stdio: ['ignore', log, log],
        env: {
          PATH: process.env['PATH'] ?? '/usr/bin:/bin',
          HOME: path.join(conf, 'home'),
          SLUICE_ENV_ID: env.id,
          RABBITMQ_NODENAME: 'spare@localhost',
          RABBITMQ_CONF_ENV_FILE: path.join(conf, 'rabbitmq-env.conf'),
          RABBITMQ_CONFIG_FILE: path.join(conf, 'rabbitmq.conf'),
          RABBITMQ_ADVANCED_CONFIG_FILE: path.join(conf, 'advanced.config'),
          RABBITMQ_ENABLED_PLUGINS_FILE: path.join(conf, 'enabled_plugins'),
          RABBITMQ_MNESIA_BASE: path.join(dir, 'mnesia'),
          RABBITMQ_LOG_BASE: env.logsDir,
          RABBITMQ_LOGS: '-',
          RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
          RABBITMQ_NODE_PORT: String(ports.amqp),
          RABBITMQ_DIST_PORT: String(ports.dist),
          ERL_EPMD_ADDRESS: '127.0.0.1',
          ERL_EPMD_PORT: String(env.ports.epmd),
          RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
        },
      });
      child.unref();
      await waitFor(answers, {
        timeoutMs: 90_000,
        intervalMs: 250,
        message: `the spare RabbitMQ node to answer on port ${ports.management} (log: ${env.logsDir}/spare-rabbitmq.log)`,
      });
    },
    async stop(options = {}) {
      const beam = beamPid();
      const wrapper = child?.pid;
      if (beam !== undefined) process.kill(beam, options.kill === true ? 'SIGKILL' : 'SIGTERM');
      else if (wrapper !== undefined) process.kill(wrapper, 'SIGKILL');
      for (let i = 0; i < 300; i++) {
        if (!alive(beam) && !alive(wrapper)) break;
        await sleep(100);
      }
      if (alive(wrapper) && wrapper !== undefined) process.kill(wrapper, 'SIGKILL');
      child = undefined;
    },
  };
}

function alive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
