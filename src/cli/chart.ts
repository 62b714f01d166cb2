/**
 * `sluice simulate --out chart.svg|chart.png`: the trace's metric values and the replica counts over time, drawn with
 * Vega-Lite (compiled to a Vega spec, rendered headless to SVG by Vega) and, for PNG, rasterised by resvg. Loaded only
 * when a chart is asked for (`import()` from simulate.ts): the operator never loads these libraries.
 *
 * Top panel: each trigger's value (gaps where the read failed) with its HPA target as a dashed rule. Bottom panel:
 * the replica count and what the metrics ask for (step lines).
 */
import { writeFile } from 'node:fs/promises';
import { Resvg } from '@resvg/resvg-js';
import { View, parse } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { SimModel, SimStep } from './simulate.ts';

/** The Vega-Lite spec of a simulation (pure; exported for tests). */
export function chartSpec(model: Pick<SimModel, 'triggers'>, steps: readonly SimStep[], title: string): TopLevelSpec {
  const metric = steps.flatMap((s) =>
    model.triggers.map((trigger, i) => ({ t: s.t, trigger: trigger.column, value: s.values[i] ?? null })),
  );
  const targets = model.triggers.map((trigger) => ({
    trigger: trigger.column,
    target: trigger.target,
    label: `${trigger.column} target ${trigger.target}${trigger.metricType === 'AverageValue' ? ' per replica' : ''}`,
  }));
  const replicas = steps.flatMap((s) => [
    { t: s.t, series: 'replicas', count: s.replicas },
    { t: s.t, series: 'desired', count: s.desiredReplicas },
  ]);
  const width = 640;
  const x = { field: 't', type: 'quantitative', title: 'seconds' } as const;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    background: 'white',
    resolve: { scale: { color: 'independent' }, legend: { color: 'independent' } },
    vconcat: [
      {
        width,
        height: 160,
        layer: [
          {
            data: { values: metric },
            mark: { type: 'line', interpolate: 'step-after', point: false },
            encoding: {
              x,
              y: { field: 'value', type: 'quantitative', title: 'metric value' },
              color: { field: 'trigger', type: 'nominal', title: 'trigger' },
            },
          },
          {
            data: { values: targets },
            mark: { type: 'rule', strokeDash: [4, 4], color: 'gray' },
            encoding: { y: { field: 'target', type: 'quantitative' }, tooltip: { field: 'label' } },
          },
        ],
      },
      {
        width,
        height: 160,
        data: { values: replicas },
        mark: { type: 'line', interpolate: 'step-after' },
        encoding: {
          x,
          y: { field: 'count', type: 'quantitative', title: 'replicas' },
          color: {
            field: 'series',
            type: 'nominal',
            title: 'replicas',
            scale: { domain: ['replicas', 'desired'], range: ['#1f77b4', '#ff7f0e'] },
          },
        },
      },
    ],
  };
}

/** Renders the chart to `path` (.svg or .png); returns the bytes written. */
export async function writeChart(
  path: string,
  model: Pick<SimModel, 'triggers'>,
  steps: readonly SimStep[],
  title: string,
): Promise<number> {
  const vega = compile(chartSpec(model, steps, title)).spec;
  const view = new View(parse(vega), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  const bytes = /\.png$/i.test(path)
    ? new Resvg(svg, { background: 'white', font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } })
        .render()
        .asPng()
    : Buffer.from(svg, 'utf8');
  await writeFile(path, bytes);
  return bytes.length;
}
