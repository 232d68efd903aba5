// The offers by GPU model (gossip): how many, their GPUs and memory, the cheapest and median
// prices per GPU-hour and per 10^9 fuel now (from the order book) and over time (the node's
// samples of its book, `GET /api/v1/market`), one chart per model.

import type { Market, Offer, PricePoint } from "../api";
import { TimeChart } from "../chart";
import { bytes, count, tokensFloat } from "../format";
import { Amount, type Column, Loaded, Note, Section, Table } from "../ui";
import type { Resource } from "../live";
import { fmtTokens } from "./overview";

export const CPU_ONLY = "CPU only";

/** What the book offers of one GPU model (`model` null: the CPU-only offers). */
export interface ModelRow {
  model: string | null;
  offers: number;
  gpus: number;
  memMin: number;
  memMax: number;
  gpuHour: { min: bigint | null; median: bigint | null };
  gfuel: { min: bigint | null; median: bigint | null };
}

/** The cheapest and the upper median, as the node computes them for its samples. */
function minMedian(v: bigint[]): { min: bigint | null; median: bigint | null } {
  const s = [...v].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return { min: s.length ? s[0] : null, median: s.length ? s[s.length >> 1] : null };
}

/** The live offers grouped by GPU model, the most offered first; CPU-only offers are one group. */
export function modelRows(offers: Offer[]): ModelRow[] {
  const by = new Map<string | null, { offers: number; gpus: number; mem: number[]; gpuHour: bigint[]; gfuel: bigint[] }>();
  const at = (m: string | null) => {
    let g = by.get(m);
    if (!g) {
      g = { offers: 0, gpus: 0, mem: [], gpuHour: [], gfuel: [] };
      by.set(m, g);
    }
    return g;
  };
  for (const o of offers) {
    if (o.gpus.length === 0) {
      const g = at(null);
      g.offers++;
      g.gfuel.push(BigInt(o.price_per_gfuel));
      continue;
    }
    for (const gpu of o.gpus) {
      const g = at(gpu.model);
      g.gpus++;
      g.mem.push(gpu.memory_bytes);
    }
    for (const model of new Set(o.gpus.map((x) => x.model))) {
      const g = at(model);
      g.offers++;
      g.gpuHour.push(BigInt(o.price_per_gpu_second) * 3600n);
      g.gfuel.push(BigInt(o.price_per_gfuel));
    }
  }
  return [...by.entries()]
    .map(([model, g]) => ({
      model,
      offers: g.offers,
      gpus: g.gpus,
      memMin: g.mem.length ? Math.min(...g.mem) : 0,
      memMax: g.mem.length ? Math.max(...g.mem) : 0,
      gpuHour: minMedian(g.gpuHour),
      gfuel: minMedian(g.gfuel),
    }))
    .sort((a, b) => b.offers - a.offers || (a.model ?? "").localeCompare(b.model ?? ""));
}

const modelName = (m: string | null) => m ?? CPU_ONLY;

const COLUMNS: Column<ModelRow>[] = [
  { label: "GPU model", cell: (r) => (r.model === null ? <span class="muted">{CPU_ONLY}</span> : r.model), source: "gossip" },
  { label: "Offers", cell: (r) => count(r.offers), num: true, source: "gossip" },
  { label: "GPUs", cell: (r) => count(r.gpus), num: true, source: "gossip" },
  {
    label: "GPU memory",
    cell: (r) => (r.gpus === 0 ? "—" : r.memMin === r.memMax ? bytes(r.memMin) : `${bytes(r.memMin)}–${bytes(r.memMax)}`),
    num: true,
    source: "gossip",
  },
  { label: "Cheapest per GPU-hour", cell: (r) => <Amount units={r.gpuHour.min} />, num: true, source: "gossip" },
  { label: "Median per GPU-hour", cell: (r) => <Amount units={r.gpuHour.median} />, num: true, source: "gossip" },
  { label: "Cheapest per 10⁹ fuel", cell: (r) => <Amount units={r.gfuel.min} />, num: true, source: "gossip" },
  { label: "Median per 10⁹ fuel", cell: (r) => <Amount units={r.gfuel.median} />, num: true, source: "gossip" },
];

/** Buckets of `step` seconds on a regular grid from the first to now: each start, and the bucket there if any. */
export function grid<B extends { start: number }>(
  buckets: B[],
  step: number,
  now = Date.now() / 1000,
): { x: number[]; at: (B | undefined)[] } {
  const x: number[] = [];
  const at: (B | undefined)[] = [];
  if (buckets.length === 0 || !(step > 0)) return { x, at };
  const by = new Map(buckets.map((b) => [b.start, b]));
  const last = Math.max(buckets[buckets.length - 1].start, now - (now % step));
  // The node keeps at most 240 buckets; a few more reach from the last one to now.
  for (let t = buckets[0].start; t <= last && x.length < 1000; t += step) {
    x.push(t);
    at.push(by.get(t));
  }
  return { x, at };
}

const tokensOrNull = (v: string | null | undefined) => (v === null || v === undefined ? null : tokensFloat(v));

function PriceChart(props: { model: string | null; step: number; points: PricePoint[] }) {
  const gpu = props.model !== null;
  const { x, at } = grid(props.points, props.step);
  const pick = (p: PricePoint | undefined, which: "min" | "median") => {
    if (!p) return null;
    if (which === "min") return tokensOrNull(gpu ? p.min_gpu_hour : p.min_gfuel);
    return tokensOrNull(gpu ? p.median_gpu_hour : p.median_gfuel);
  };
  const min = at.map((p) => pick(p, "min"));
  const median = at.map((p) => pick(p, "median"));
  const unit = gpu ? "per GPU-hour" : "per 10⁹ fuel";
  const last = [...props.points].reverse().find((p) => p.offers > 0);
  const latest = last ? pick(last, "min") : null;
  return (
    <TimeChart
      testid="model-price-chart"
      source="gossip"
      title={`${modelName(props.model)}: price ${unit} (tokens)`}
      yLabel="tokens"
      x={x}
      step={props.step}
      series={[
        { label: "cheapest", color: "#1d4ed8", values: min, format: fmtTokens },
        { label: "median", color: "#b45309", values: median, format: fmtTokens },
      ]}
      summary={
        latest === null
          ? `No sample of ${modelName(props.model)} offers yet.`
          : `${modelName(props.model)}: cheapest ${fmtTokens(latest)} tokens ${unit} at the latest of ${props.points.length} samples, from ${last?.offers ?? 0} offers.`
      }
    />
  );
}

/** The offers by GPU model now, and each model's prices over time. */
export function GpuModels(props: { offers: Offer[]; market: Resource<Market> }) {
  const rows = modelRows(props.offers);
  return (
    <>
      <Section title="Models on offer">
        <Table
          caption="Offers by GPU model"
          testid="gpu-models"
          columns={COLUMNS}
          rows={rows}
          rowKey={(r) => modelName(r.model)}
          empty="No offers to group yet."
        />
      </Section>
      <Section title="Prices over time">
        <p class="muted small">
          This node samples its order book every few seconds; each point is the book at its bucket's last sample. Per GPU-hour for a GPU
          model (3,600 × the price per GPU-second), per 10⁹ fuel for CPU-only offers.
        </p>
        <Loaded res={props.market} what="price history">
          {(m) =>
            m.prices.length === 0 ? (
              <Note kind="empty">No samples yet: the node samples its order book every {m.sample_secs} s.</Note>
            ) : (
              <div class="charts">
                {m.prices.map((p) => (
                  <PriceChart key={modelName(p.model)} model={p.model} step={p.bucket_secs} points={p.points} />
                ))}
              </div>
            )
          }
        </Loaded>
      </Section>
    </>
  );
}
