// Loaded with `node --import` into a sluice process started by an e2e test (test/integration/read-back-e2e.test.ts):
// the tripwire of tripwire.ts, sending any connection outside the loopback range to 127.0.0.1:$SLUICE_TRIPWIRE_PORT,
// where the test counts what arrives. Each rewrite is also written to stderr (sluice's log).
import { installTripwire } from './tripwire.ts';

const port = Number(process.env['SLUICE_TRIPWIRE_PORT']);
if (!Number.isInteger(port) || port <= 0) throw new Error('SLUICE_TRIPWIRE_PORT must be set to a port on 127.0.0.1');
const tripwire = installTripwire({ redirectPort: port });
const push = tripwire.redirected.push.bind(tripwire.redirected);
tripwire.redirected.push = (...events) => {
  for (const e of events)
    process.stderr.write(`tripwire: a connection for ${e.host} to ${e.address} went to 127.0.0.1\n`);
  return push(...events);
};
process.stderr.write(`tripwire: installed; connections outside loopback go to 127.0.0.1:${port}\n`);
