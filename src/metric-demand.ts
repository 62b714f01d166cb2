/**
 * Metric demand: how the external-metrics API tells whoever fills the MetricStore that a request named a metric and a
 * label selector, without either side importing the other. The server calls `request` for every metric read it has
 * authorized; a MetricSource (src/operator/metric-sources.ts) that owns the metric name starts reading for a selector
 * it has not seen (or notes that the selector is still in use), and the server then answers from the store as for any
 * other series. Names nobody here owns are `unowned`: the server answers them as it always has (a ScaledObject's
 * series, or a 404) — and another adapter may be asked for them.
 */
import type { Selector } from './labels.ts';

export type DemandAnswer =
  /** No MetricSource owns this name in the namespace (or the selector names a ScaledObject's series). */
  | { readonly kind: 'unowned' }
  /**
   * A MetricSource owns the name but cannot serve this selector: answered with a `metav1.Status` of `code` (404 when
   * the selector cannot fill the placeholders, 429 when the MetricSource already serves as many selectors as it may).
   * The message names what is missing and holds no credential.
   */
  | { readonly kind: 'refused'; readonly code: 404 | 429; readonly message: string }
  /**
   * A MetricSource serves the selector; the store holds (or is about to hold) its series. `firstRead` settles once the
   * series has its first reading or the scaler's timeout has passed, whichever comes first; it never rejects.
   */
  | { readonly kind: 'served'; readonly firstRead: Promise<void> };

export interface MetricDemand {
  /** Whether a MetricSource owns `metricName` in `namespace` (names compared case-insensitively, as the store does). */
  owns(namespace: string, metricName: string): boolean;
  /** A request for `metricName` with `selector` in `namespace` was authorized: serve it, or say why not. */
  request(namespace: string, metricName: string, selector: Selector): DemandAnswer;
}

/** A demand nobody answers: every name is unowned (tests, and servers without MetricSources). */
export const NO_DEMAND: MetricDemand = {
  owns: () => false,
  request: () => ({ kind: 'unowned' }),
};
