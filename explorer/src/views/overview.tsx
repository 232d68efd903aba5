import { type ChainRecord, type Dispute, type Job, type NodeInfo, type Offer, type Stats } from "../api";
import { TimeChart } from "../chart";
import { eventItems } from "../describe";
import { count, sumUnits, tokens, tokensFloat } from "../format";
import { live } from "../live";
import { Amount, Facts, Feed, Full, Hex, Loaded, Note, Page, Section, Tile, useResource } from "../ui";
import { SourceLegend } from "../source";
import { jobsOf, SLASHED } from "./shared";

/** Buckets on a regular grid from the first to now; a gap is a bucket with no activity. */
export function series(stats: Stats, now = Date.now() / 1000) {
  const step = stats.bucket_secs || 10;
  const by = new Map(stats.buckets.map((b) => [b.start, b]));
  const x: number[] = [];
  const jobs: number[] = [];
  const failed: number[] = [];
  const checks: number[] = [];
  const price: (number | null)[] = [];
  const fuel: number[] = [];
  const paid: number[] = [];
  if (stats.buckets.length === 0) return { x, jobs, failed, checks, price, fuel, paid };
  const last = Math.max(stats.buckets[stats.buckets.length - 1].start, now - (now % step));
  for (let t = stats.buckets[0].start; t <= last; t += step) {
    const b = by.get(t);
    x.push(t);
    jobs.push(b?.jobs ?? 0);
    failed.push(b?.failed ?? 0);
    checks.push(b?.checks ?? 0);
    fuel.push((b?.fuel ?? 0) / step);
    paid.push(tokensFloat(b?.paid ?? "0"));
    // Price per 10^9 fuel: what was charged over the fuel it bought.
    price.push(b && b.fuel > 0 ? (tokensFloat(b.paid) / b.fuel) * 1e9 : null);
  }
  return { x, jobs, failed, checks, price, fuel, paid };
}

export const fmtTokens = (v: number) => (v === 0 ? "0" : v < 0.001 ? v.toExponential(2) : v.toPrecision(3));

export function Overview() {
  const node = useResource<NodeInfo>("node");
  const offers = useResource<Offer[]>("offers");
  const jobs = useResource<Job[]>(jobsOf("buyer"));
  const stats = useResource<Stats>("stats");
  const disputes = useResource<Dispute[]>("disputes");
  const slashes = useResource<ChainRecord[]>(SLASHED);

  const hour = stats.data?.buckets ?? [];
  const disputed = (disputes.data ?? []).filter((d) => d.events.some((e) => e.kind === "TicketDisputed")).length;
  const n = (v: number | undefined) => (v === undefined ? "…" : count(v));

  return (
    <Page
      title="Network overview"
      lead="What this node sees of the market: its order book, its jobs, the escrow's events and activity over the last hour."
    >
      <SourceLegend />
      <ul class="tiles" aria-label="Counts">
        <Tile label="live offers" value={n(offers.data?.length)} href="/offers" testid="tile-offers" source="gossip" />
        <Tile
          label="jobs (this node)"
          value={n(jobs.data && Math.max(jobs.total ?? 0, jobs.data.length))}
          href="/jobs"
          testid="tile-jobs"
          source="node"
        />
        <Tile label="jobs finished (hour)" value={stats.data ? count(hour.reduce((a, b) => a + b.jobs, 0)) : "…"} source="node" />
        <Tile label="checks (hour)" value={stats.data ? count(hour.reduce((a, b) => a + b.checks, 0)) : "…"} source="node" />
        <Tile label="charged (hour), tokens" value={stats.data ? tokens(sumUnits(hour.map((b) => b.paid)), 3) : "…"} source="node" />
        <Tile label="disputes" value={disputes.data ? count(disputed) : "…"} href="/disputes" source="chain" />
        <Tile label="slashes" value={n(slashes.data?.length)} href="/providers" source="chain" />
        <Tile label="peers" value={n(node.data?.peers.length)} source="node" />
      </ul>

      <Section title="Activity over time">
        <Loaded res={stats} what="activity">
          {(s) => {
            if (s.buckets.length === 0)
              return <Note kind="empty">No activity yet: charts fill in as jobs finish (10-second buckets).</Note>;
            const d = series(s);
            const lastPrice = [...d.price].reverse().find((p) => p !== null);
            return (
              <div class="charts">
                <TimeChart
                  testid="chart-jobs"
                  source="node"
                  title={`Jobs per ${s.bucket_secs} s`}
                  yLabel="jobs"
                  x={d.x}
                  step={s.bucket_secs}
                  series={[
                    { label: "finished", color: "#2563eb", values: d.jobs, bars: true },
                    { label: "checks", color: "#d97706", values: d.checks },
                    { label: "failed", color: "#dc2626", values: d.failed },
                  ]}
                  summary={`${d.jobs.reduce((a, b) => a + b, 0)} jobs finished, ${d.checks.reduce((a, b) => a + b, 0)} checks and ${d.failed.reduce((a, b) => a + b, 0)} failures over ${d.x.length} buckets.`}
                />
                <TimeChart
                  testid="chart-price"
                  source="node"
                  title="Price per 10⁹ fuel (tokens)"
                  yLabel="tokens"
                  x={d.x}
                  step={s.bucket_secs}
                  series={[{ label: "price", color: "#7c3aed", values: d.price, format: fmtTokens }]}
                  summary={lastPrice === undefined ? "No priced jobs yet." : `Latest price ${fmtTokens(lastPrice)} tokens per 10^9 fuel.`}
                />
                <TimeChart
                  testid="chart-fuel"
                  source="node"
                  title="Throughput (fuel per second)"
                  yLabel="fuel/s"
                  x={d.x}
                  step={s.bucket_secs}
                  series={[{ label: "fuel/s", color: "#059669", values: d.fuel, format: (v) => count(Math.round(v)) }]}
                  summary={`Peak ${count(Math.round(Math.max(...d.fuel)))} fuel per second.`}
                />
              </div>
            );
          }}
        </Loaded>
      </Section>

      <div class="two">
        <Section title="Live events">
          <Feed
            testid="event-feed"
            items={eventItems(live.events.slice(0, 30))}
            empty={
              live.connection === "live" ? "Connected; waiting for the node's next event." : "Not connected to the node's event stream yet."
            }
          />
        </Section>
        <Section title="This node">
          <Loaded res={node} what="the node">
            {(nd) => (
              <Facts
                items={[
                  ["peer id", <Full value={nd.peer_id} />],
                  ["EVM address", <Full value={nd.evm_address} />],
                  ["chain", nd.chain ? `chain id ${nd.chain.chain_id}` : "none configured"],
                  ["escrow", nd.chain ? <Hex value={nd.chain.escrow} /> : "—"],
                  ["token", nd.chain ? <Hex value={nd.chain.token} /> : "—"],
                  ["offers in the book", count(nd.offers)],
                  ["peers", count(nd.peers.length)],
                  [
                    "gossip",
                    `${count(nd.gossip.accepted)} accepted, ${count(nd.gossip.rejected)} rejected, ${count(nd.gossip.ignored)} ignored, ${count(nd.gossip.banned)} banned`,
                  ],
                  [
                    "connections",
                    `${count(nd.connections.open)} open; since start ${count(nd.connections.opened)} opened, ${count(nd.connections.failed)} failed, ${count(nd.connections.dials_refused)} dials refused at the limit`,
                  ],
                ]}
              />
            )}
          </Loaded>
          {jobs.data && jobs.data.length > 0 && (
            <p class="muted">
              Charged for this node's {(jobs.total ?? 0) > jobs.data.length ? `newest ${count(jobs.data.length)} jobs` : "jobs so far"}:{" "}
              <Amount units={sumUnits(jobs.data.map((j) => j.amount))} />.
            </p>
          )}
        </Section>
      </div>
    </Page>
  );
}
