// Read-back and reach, end to end through `sluice operator --local` (docs/security.md#read-back-and-reach): what a
// ScaledObject's author can make sluice read must not come back in the ScaledObject's status, and sluice must not
// connect to link-local or cloud metadata addresses for a trigger.
//
// - A metrics-api server answers a string where a number belongs (an AWS-secret-like 40 characters): the status says
//   the value is not a number and quotes nothing of it; neither do the Events nor sluice's log. A Prometheus-style
//   400 whose error text holds the same string is named by its errorType only.
// - `--resolve metadata.test=169.254.169.254` (curl's --resolve, a debugging aid) makes a trigger URL name the
//   metadata address without any DNS: the status says the address is refused, and no connection was attempted.
//
// No connection goes anywhere but 127.0.0.1, even if the filter were broken: sluice runs with the tripwire of
// test/support/tripwire.ts preloaded (`node --import`), which sends any connection outside loopback to a TCP server
// this test binds on 127.0.0.1 and counts connections on. The metadata URL names that server's port, so a connection
// for metadata.test would arrive there either way. A control object reaches the test's server through
// `--resolve loop.test=127.0.0.1`, so the names do resolve as given.
import { readFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, createNamespace, deleteNamespace, kubeConfig } from '../support/env.ts';
import { startMetricServer, type MetricServer } from '../support/metric-server.ts';
import { ScalingTestKit } from '../support/scaling.ts';
import { startSluice, type SluiceProcess } from '../support/sluice.ts';

/** 40 characters, an AWS secret access key's length, as an instance-metadata endpoint would hand one out. */
const SECRET = 'AKIAIOSFODNN7EXAMPLEKEY0123456789abcdef';
/** Pieces of it that must not appear anywhere either (a shortened quote would still leak). */
const PIECES = ['AKIA', 'EXAMPLEKEY', '0123456789abcdef', SECRET.slice(0, 10), SECRET.slice(-10)];

describe('read-back and reach e2e: the status quotes nothing a backend sent; metadata addresses are refused', () => {
  let kit: ScalingTestKit | undefined;
  let sluice: SluiceProcess | undefined;
  let api: MetricServer;
  let trap: Server;
  let trapPort = 0;
  let arrived = 0;
  const trapSockets = new Set<Socket>();

  beforeAll(async () => {
    api = await startMetricServer();
    api.respond = (req) => {
      if (req.url === '/secret') return { body: JSON.stringify({ value: SECRET }), contentType: 'application/json' };
      if (req.url.startsWith('/api/v1/query')) {
        return {
          status: 400,
          body: JSON.stringify({ status: 'error', errorType: 'bad_data', error: `parse error near ${SECRET}` }),
          contentType: 'application/json',
        };
      }
      if (req.url === '/ok') return { body: JSON.stringify({ value: 3 }), contentType: 'application/json' };
      return { status: 404, body: SECRET };
    };
    trap = createServer((socket) => {
      arrived++;
      trapSockets.add(socket);
      socket.on('close', () => trapSockets.delete(socket));
      socket.on('error', () => undefined);
      socket.destroy();
    });
    await new Promise<void>((resolve) => trap.listen(0, '127.0.0.1', resolve));
    trapPort = (trap.address() as AddressInfo).port;

    // The child inherits the environment at spawn: the tripwire for this one sluice process only.
    const saved = { options: process.env['NODE_OPTIONS'], port: process.env['SLUICE_TRIPWIRE_PORT'] };
    const preload = path.join(REPO_ROOT, 'test/support/tripwire-preload.ts');
    process.env['NODE_OPTIONS'] = [saved.options, `--import=${preload}`].filter(Boolean).join(' ');
    process.env['SLUICE_TRIPWIRE_PORT'] = String(trapPort);
    try {
      sluice = await startSluice({
        logName: 'sluice-read-back-e2e.log',
        extraArgs: ['--resolve', 'metadata.test=169.254.169.254', '--resolve', 'loop.test=127.0.0.1'],
      });
    } finally {
      if (saved.options === undefined) delete process.env['NODE_OPTIONS'];
      else process.env['NODE_OPTIONS'] = saved.options;
      if (saved.port === undefined) delete process.env['SLUICE_TRIPWIRE_PORT'];
      else process.env['SLUICE_TRIPWIRE_PORT'] = saved.port;
    }
    const kc = kubeConfig();
    kit = new ScalingTestKit(kc, await createNamespace(kc, 'read-back-e2e'));
  });

  afterAll(async () => {
    if (kit) await deleteNamespace(kit.kc, kit.namespace);
    await sluice?.stop();
    await api.close();
    for (const s of trapSockets) s.destroy();
    await new Promise((resolve) => trap.close(resolve));
  });

  /** This run's part of sluice's log (the file is appended to by every run), from the tripwire's first line on. */
  const installed = () => `tripwire: installed; connections outside loopback go to 127.0.0.1:${trapPort}\n`;
  const log = async () => {
    const text = sluice ? await readFile(sluice.logFile, 'utf8') : '';
    const start = text.lastIndexOf(installed());
    return start < 0 ? '' : text.slice(start);
  };

  it('runs sluice with the tripwire installed', async () => {
    expect(await log()).toContain(installed());
  });

  const metricsApi = (name: string, url: string) => ({
    scaleTargetRef: { name },
    minReplicaCount: 0,
    maxReplicaCount: 2,
    pollingInterval: 1,
    triggers: [{ type: 'metrics-api', metadata: { url, valueLocation: 'value', targetValue: '5' } }],
  });

  /** The ScaledObject's whole status, every Event about it, and sluice's log: none may hold any piece of SECRET. */
  const expectQuotedNowhere = async (name: string) => {
    if (!kit) throw new Error('setup failed');
    const status = JSON.stringify((await kit.scaledObject(name)).status);
    const events = JSON.stringify((await kit.events(name)).map((e) => e.message));
    const everything = `${status}\n${events}\n${await log()}`;
    for (const piece of PIECES) expect(everything).not.toContain(piece);
  };

  it('a string where the number belongs: the status says it is not a number and quotes nothing of it', async () => {
    if (!kit) throw new Error('setup failed');
    await kit.createDeployment('secret', 0);
    await kit.createScaledObject('secret', metricsApi('secret', `${api.url}/secret`));
    const ready = await kit.waitForCondition('secret', 'Ready', 'TriggerError');
    expect(ready.status).toBe('False');
    expect(ready.message).toContain(`${api.url}/secret: the value at "value" is not a number`);
    expect(api.requests.some((r) => r.url === '/secret')).toBe(true);
    const event = await kit.waitForEvent('secret', 'KEDAScalerFailed');
    expect(event.message).toContain('the value at "value" is not a number');
    await expectQuotedNowhere('secret');
  });

  it("Prometheus' error text is not quoted: the error is named by its errorType", async () => {
    if (!kit) throw new Error('setup failed');
    await kit.createDeployment('promql', 0);
    await kit.createScaledObject('promql', {
      scaleTargetRef: { name: 'promql' },
      minReplicaCount: 0,
      maxReplicaCount: 2,
      pollingInterval: 1,
      triggers: [{ type: 'prometheus', metadata: { serverAddress: api.url, query: 'up', threshold: '5' } }],
    });
    const ready = await kit.waitForCondition('promql', 'Ready', 'TriggerError');
    expect(ready.message).toContain('answered HTTP 400: bad_data (the query or its parameters are invalid');
    await expectQuotedNowhere('promql');
  });

  it('control: a name given with --resolve is reached (loop.test → 127.0.0.1)', async () => {
    if (!kit) throw new Error('setup failed');
    await kit.createDeployment('control', 0);
    await kit.createScaledObject('control', metricsApi('control', `http://loop.test:${api.port}/ok`));
    expect((await kit.waitForCondition('control', 'Ready', 'ScaledObjectReady')).status).toBe('True');
    expect(api.requests.some((r) => r.url === '/ok' && r.headers.host === `loop.test:${api.port}`)).toBe(true);
  });

  it('a URL whose name resolves to 169.254.169.254 is refused, in the status, and no connection is attempted', async () => {
    if (!kit) throw new Error('setup failed');
    const before = arrived;
    await kit.createDeployment('metadata', 0);
    await kit.createScaledObject(
      'metadata',
      metricsApi('metadata', `http://metadata.test:${trapPort}/latest/meta-data/iam/security-credentials/`),
    );
    const ready = await kit.waitForCondition('metadata', 'Ready', 'TriggerError');
    // Several reads later (one a second): nothing arrived at the trap, and the tripwire redirected nothing, so no
    // connection for metadata.test was attempted (one would have gone to 169.254.169.254, i.e. to the trap).
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(arrived - before, 'connections that reached the trap').toBe(0);
    expect(await log()).not.toMatch(/tripwire: a connection for/);
    expect(ready.status).toBe('False');
    expect(ready.message).toContain(
      `http://metadata.test:${trapPort}/latest/meta-data/iam/security-credentials/: metadata.test resolves to ` +
        '169.254.169.254, a link-local address (169.254.0.0/16, where cloud metadata services answer) that sluice ' +
        'refuses to connect to (see --allow-cidrs)',
    );
    // Not a backend failure: the refusal is not counted by the circuit breaker, so the read is tried every time.
    expect(ready.message).not.toMatch(/circuit|cannot reach/);
  });
});
