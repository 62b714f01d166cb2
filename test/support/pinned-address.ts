// KEDA's test rows write a scaler's address in trigger metadata next to credentials from the TriggerAuthentication.
// sluice sends a TriggerAuthentication's credentials only to an address that TriggerAuthentication gives too
// (src/scalers/metadata.ts pinAddress, docs/security.md#credentials): this puts the rows' address where sluice wants
// it, so that the rows keep testing what they test. The pinning rule itself is tested in
// test/unit/scalers/address-pin.test.ts.

/**
 * When `authParams` holds anything, the address moves from `metadata` into `authParams` (`move`: the scalers whose
 * metadata may not give it, rabbitmq and aws-sqs-queue) or is copied there too (`copy`: prometheus and metrics-api,
 * whose metadata may give an address at or under the TriggerAuthentication's).
 */
export function pinnedAddress(
  address: string,
  how: 'move' | 'copy',
  metadata: Readonly<Record<string, string>>,
  authParams: Readonly<Record<string, string>>,
): { metadata: Record<string, string>; authParams: Record<string, string> } {
  const value = metadata[address];
  if (Object.keys(authParams).length === 0 || value === undefined || authParams[address] !== undefined) {
    return { metadata: { ...metadata }, authParams: { ...authParams } };
  }
  const rest = Object.fromEntries(Object.entries(metadata).filter(([key]) => key !== address));
  return { metadata: how === 'move' ? rest : { ...metadata }, authParams: { ...authParams, [address]: value } };
}
