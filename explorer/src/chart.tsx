// Time charts with uPlot. The chart is drawn on a canvas; the figure's caption and a text
// summary say what it shows for those who cannot see it.

import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { Source, type SourceKind } from "./source";

export interface ChartSeries {
  label: string;
  color: string;
  values: (number | null)[];
  bars?: boolean;
  format?: (v: number) => string;
}

const HEIGHT = 200;
const MIN_SPAN = 600;

function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  return v || fallback;
}

function options(width: number, series: ChartSeries[], yLabel: string, step: number): uPlot.Options {
  const fg = cssVar("--muted", "#555");
  const grid = cssVar("--line", "#ddd");
  const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
  const compact = new Intl.NumberFormat("en", { notation: "compact", maximumSignificantDigits: 3 });
  return {
    width,
    height: HEIGHT,
    cursor: { drag: { x: false, y: false } },
    // At least the last ten minutes, so that a few buckets do not stretch over years; room
    // after the last bucket for its bar.
    scales: { x: { time: true, range: (_u, lo, hi) => [Math.min(lo, hi - MIN_SPAN), hi + step] } },
    axes: [axis, { ...axis, label: yLabel, size: 56, labelSize: 18, values: (_u, splits) => splits.map((v) => compact.format(v)) }],
    series: [
      {},
      ...series.map((s) => ({
        label: s.label,
        stroke: s.color,
        width: 2,
        fill: s.bars ? `${s.color}99` : undefined,
        paths: s.bars ? uPlot.paths.bars?.({ size: [0.7, 40] }) : undefined,
        points: { show: false },
        spanGaps: false,
        value: (_u: uPlot, v: number | null) => (v === null || v === undefined ? "—" : s.format ? s.format(v) : String(v)),
      })),
    ],
  };
}

export function TimeChart(props: {
  title: string;
  yLabel: string;
  x: number[];
  step: number;
  series: ChartSeries[];
  summary: string;
  testid?: string;
  /** Where the figures come from, as a tag in the caption. */
  source?: SourceKind;
}) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const data = [props.x, ...props.series.map((s) => s.values)] as uPlot.AlignedData;

  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const u = new uPlot(options(Math.max(el.clientWidth, 200), props.series, props.yLabel, props.step), data, el);
    plot.current = u;
    const ro = new ResizeObserver(() => u.setSize({ width: Math.max(el.clientWidth, 200), height: HEIGHT }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
      plot.current = null;
    };
    // The series' shape is fixed for a chart; data changes go through setData below.
  }, []);

  useEffect(() => {
    plot.current?.setData(data);
  });

  return (
    <figure class="chart" data-testid={props.testid}>
      <figcaption>
        {props.title}
        {props.source && (
          <>
            {" "}
            <Source of={props.source} />
          </>
        )}
      </figcaption>
      <div ref={box} class="chart-box" aria-hidden="true" />
      <p class="sr-only">{props.summary}</p>
    </figure>
  );
}
