/**
 * Where triggers may make sluice connect (docs/security.md#read-back-and-reach): installed once, before any trigger
 * connects, by `sluice operator` and `sluice serve` alike, and said in the log.
 */
import type { OperatorConfig } from './config.ts';
import type { Logger } from './log.ts';
import { AddressPolicy, OutboundGuard, setOutboundGuard } from './scalers/address-filter.ts';

export function installOutboundGuard(outbound: OperatorConfig['outbound'], log: Logger): void {
  setOutboundGuard(
    new OutboundGuard({
      policy: new AddressPolicy({ deny: outbound.deny, allow: outbound.allow }),
      hosts: outbound.hosts,
    }),
  );
  log('info', 'trigger connections: link-local and cloud metadata addresses are refused', {
    denyCidrs: outbound.deny.map((r) => r.text),
    allowCidrs: outbound.allow.map((r) => r.text),
    resolve: Object.fromEntries(outbound.hosts),
  });
}
