import type { Market, Offer } from "../api";
import { ago, bytes, count } from "../format";
import { useQueryParam } from "../router";
import { SourceLegend } from "../source";
import { Amount, type Column, Count, Filters, Loaded, NumberField, Page, ProviderLink, Select, Table, useResource } from "../ui";
import { GpuModels } from "./models";

const GIB = 1024 ** 3;

function gpuText(o: Offer) {
  if (o.gpus.length === 0) return <span class="muted">CPU only</span>;
  return (
    <ul class="plain">
      {o.gpus.map((g) => (
        <li>
          {g.model} · {bytes(g.memory_bytes)} · sm {g.compute_capability}
        </li>
      ))}
    </ul>
  );
}

const COLUMNS: Column<Offer>[] = [
  { label: "Provider", cell: (o) => <ProviderLink address={o.evm_address} /> },
  { label: "GPUs", cell: gpuText, source: "gossip" },
  { label: "CPU cores", cell: (o) => count(o.cpu_cores), num: true, source: "gossip" },
  { label: "Memory", cell: (o) => bytes(o.memory_bytes), num: true, source: "gossip" },
  { label: "Price per 10⁹ fuel", cell: (o) => <Amount units={o.price_per_gfuel} />, num: true, source: "gossip" },
  {
    label: "Price per GPU-hour",
    cell: (o) => (o.gpus.length === 0 ? <span class="muted">—</span> : <Amount units={BigInt(o.price_per_gpu_second) * 3600n} />),
    num: true,
    source: "gossip",
  },
  { label: "Stake (offered)", cell: (o) => <Amount units={o.stake} />, num: true, source: "gossip" },
  {
    label: "Expires",
    cell: (o) => <time dateTime={new Date(o.expires_at * 1000).toISOString()}>{ago(o.expires_at)}</time>,
    num: true,
    source: "gossip",
  },
];

export function Offers() {
  const offers = useResource<Offer[]>("offers");
  const market = useResource<Market>("market");
  const [gpu, setGpu] = useQueryParam("gpu", "any");
  const [mem, setMem] = useQueryParam("gpu_mem", "");
  const models = [...new Set((offers.data ?? []).flatMap((o) => o.gpus.map((g) => g.model)))].sort();
  const minGpuMem = Number(mem) > 0 ? Number(mem) * GIB : 0;

  const keep = (o: Offer) => {
    const gpus = gpu === "any" || gpu === "cpu" || gpu === "gpu" ? o.gpus : o.gpus.filter((g) => g.model === gpu);
    if (gpu === "cpu" && o.gpus.length > 0) return false;
    if (gpu !== "any" && gpu !== "cpu" && gpus.length === 0) return false;
    if (minGpuMem > 0 && !gpus.some((g) => g.memory_bytes >= minGpuMem)) return false;
    return true;
  };

  return (
    <Page
      title="Offers"
      lead="The live offers in this node's order book, cheapest first. Providers sign each offer and re-announce it before it expires; gossip carries them from node to node."
    >
      <SourceLegend kinds={["gossip"]} />
      <Filters role="search" label="Filter offers">
        <Select
          id="f-gpu"
          label="GPU model"
          value={gpu}
          onChange={setGpu}
          options={[["any", "any (CPU-only too)"], ["cpu", "CPU only"], ["gpu", "any GPU"], ...models.map((m): [string, string] => [m, m])]}
        />
        <NumberField
          id="f-gpu-mem"
          label="Minimum GPU memory (GiB)"
          value={mem}
          onChange={setMem}
          min={0}
          step={1}
          hint="0: no minimum; above 0 keeps GPU offers only"
        />
        <button type="button" class="button" onClick={() => (setGpu("any"), setMem(""))}>
          Clear filters
        </button>
      </Filters>
      <Loaded
        res={offers}
        what="offers"
        empty="No offers yet: providers announce every few seconds, and a node that just started waits for gossip to reach it."
      >
        {(all) => {
          const rows = all.filter(keep).sort((a, b) => (BigInt(a.price_per_gfuel) < BigInt(b.price_per_gfuel) ? -1 : 1));
          return (
            <>
              <Count testid="offer-count">
                {rows.length === all.length ? `${count(all.length)} offers` : `${count(rows.length)} of ${count(all.length)} offers match`}
              </Count>
              <Table
                empty={`No offer matches these filters. Clear them to see all ${count(all.length)}.`}
                caption="Live offers"
                testid="offers"
                columns={COLUMNS}
                rows={rows}
                rowKey={(o) => o.provider}
              />
            </>
          );
        }}
      </Loaded>
      {offers.data && <GpuModels offers={offers.data} market={market} />}
    </Page>
  );
}
