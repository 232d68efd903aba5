// The whole market as this node knows it: totals now and over time, each from its source:
// the order book (gossip), the escrow's events and accounts (chain), this node's own jobs.

import type { ComponentProps } from "preact";
import type { Market as MarketData, Offer } from "../api";
import { TimeChart } from "../chart";
import { clock, count, tokens, tokensFloat } from "../format";
import { SourceLegend } from "../source";
import { Link } from "../router";
import { Loaded, Note, Page, Section, Tile, useResource } from "../ui";
import { grid } from "./models";
import { fmtTokens } from "./overview";

const sum = (v: number[]) => v.reduce((a, b) => a + b, 0);

/** The market's counts on a regular grid of its buckets (a bucket with nothing counted is 0). */
export function marketSeries(m: MarketData, now = Date.now() / 1000) {
  const { x, at } = grid(m.buckets, m.bucket_secs, now);
  const of = (f: (b: MarketData["buckets"][number]) => number) => at.map((b) => (b ? f(b) : 0));
  return {
    x,
    jobs: of((b) => b.jobs),
    claims: of((b) => b.claims),
    tickets: of((b) => b.tickets),
    volume: of((b) => tokensFloat(b.volume)),
    disputes: of((b) => b.disputes),
    slashes: of((b) => b.slashes),
  };
}

function OverTime(props: { m: MarketData }) {
  const { m } = props;
  if (m.buckets.length === 0)
    return <Note kind="empty">Nothing counted yet: the charts fill in as the escrow's events come and this node's jobs finish.</Note>;
  const d = marketSeries(m);
  const per = `per ${m.bucket_secs} s`;
  const over = `over ${d.x.length} buckets`;
  const counts = (a: string, b: string, x: number[], y: number[]) => `${sum(x)} ${a} and ${sum(y)} ${b} ${over}.`;
  const charts: ComponentProps<typeof TimeChart>[] = [
    {
      testid: "chart-market-volume",
      source: "chain",
      title: `Paid to providers ${per} (tokens)`,
      yLabel: "tokens",
      series: [{ label: "paid", color: "#047857", values: d.volume, bars: true, format: fmtTokens }],
      summary: `${tokens(m.totals.volume)} tokens paid to providers ${over} of ${m.bucket_secs} s.`,
    },
    {
      testid: "chart-market-claims",
      source: "chain",
      title: `Claims and tickets ${per}`,
      yLabel: "count",
      series: [
        { label: "voucher claims", color: "#1d4ed8", values: d.claims, bars: true },
        { label: "tickets", color: "#b45309", values: d.tickets },
      ],
      summary: counts("voucher claims", "tickets", d.claims, d.tickets),
    },
    {
      testid: "chart-market-disputes",
      source: "chain",
      title: `Disputes and slashes ${per}`,
      yLabel: "count",
      series: [
        { label: "disputes", color: "#b45309", values: d.disputes, bars: true },
        { label: "slashes", color: "#b91c1c", values: d.slashes },
      ],
      summary: counts("disputes", "slashes", d.disputes, d.slashes),
    },
    {
      testid: "chart-market-jobs",
      source: "node",
      title: `This node's jobs finished ${per}`,
      yLabel: "jobs",
      series: [{ label: "jobs", color: "#6d28d9", values: d.jobs, bars: true }],
      summary: `${sum(d.jobs)} jobs of this node finished ${over}.`,
    },
  ].map((c) => ({ ...c, x: d.x, step: m.bucket_secs }) as ComponentProps<typeof TimeChart>);
  return (
    <div class="charts">
      {charts.map((c) => (
        <TimeChart key={c.testid} {...c} />
      ))}
    </div>
  );
}

export function MarketView() {
  const market = useResource<MarketData>("market");
  const offers = useResource<Offer[]>("offers");
  const o = offers.data;
  const n = (v: number | undefined) => (v === undefined ? "…" : count(v));
  return (
    <Page
      title="Market"
      lead="The whole market as this node knows it: the offers gossip brought it, the escrow's events and accounts it read on chain, and its own jobs. Totals count from when this node started."
    >
      <SourceLegend />
      <Loaded res={market} what="the market">
        {(m) => (
          <>
            <ul class="tiles" aria-label="Market totals" data-testid="market-tiles">
              <Tile label="live offers" value={n(o?.length)} href="/offers" testid="tile-market-offers" source="gossip" />
              <Tile label="GPUs offered" value={n(o?.reduce((a, x) => a + x.gpus.length, 0))} href="/offers" source="gossip" />
              <Tile
                label="providers registered"
                value={n(m.registered?.providers)}
                href="/providers"
                testid="tile-registered"
                source="chain"
              />
              <Tile label="staked, tokens" value={m.registered ? tokens(m.registered.stake, 4) : "—"} testid="tile-staked" source="chain" />
              <Tile label="paid to providers, tokens" value={tokens(m.totals.volume, 4)} testid="tile-volume" source="chain" />
              <Tile label="voucher claims" value={count(m.totals.claims)} testid="tile-claims" source="chain" />
              <Tile label="tickets claimed" value={count(m.totals.tickets)} testid="tile-tickets" source="chain" />
              <Tile label="disputes" value={count(m.totals.disputes)} href="/disputes" testid="tile-disputes" source="chain" />
              <Tile label="slashes" value={count(m.totals.slashes)} testid="tile-slashes" source="chain" />
              <Tile label="jobs finished by this node" value={count(m.totals.jobs)} href="/jobs" testid="tile-node-jobs" source="node" />
            </ul>
            <p class="muted small" data-testid="market-since">
              {m.since === null
                ? "Nothing recorded yet."
                : `Counted since ${clock(m.since)} (this node's clock)${m.blocks ? `, escrow events of blocks ${count(m.blocks.first)} to ${count(m.blocks.last)}` : ""}. A voucher claim pays every job its voucher covers; a ticket is one job.`}{" "}
              Prices by GPU model are on <Link href="/offers">Offers</Link>, each provider's volume on{" "}
              <Link href="/providers">Providers</Link>.
            </p>
            <Section title="Market over time">
              <OverTime m={m} />
            </Section>
          </>
        )}
      </Loaded>
    </Page>
  );
}
