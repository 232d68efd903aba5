import type { ChainRecord, Market, Offer, Provider } from "../api";
import { count, percent } from "../format";
import { hasOffer, providerViews, type ProviderView } from "../model";
import { Amount, Badge, type Column, Count, Loaded, Page, ProviderLink, Table, useResource } from "../ui";
import { SourceLegend } from "../source";
import { SLASHED } from "./shared";

/** Providers as the views list them: the node's (with or without a live offer), with their offers and slashes. */
export function useProviders() {
  const providers = useResource<Provider[]>("providers");
  const offers = useResource<Offer[]>("offers");
  const slashed = useResource<ChainRecord[]>(SLASHED);
  const market = useResource<Market>("market");
  return { providers, market, list: providerViews(providers.data, offers.data, slashed.data, market.data) };
}

export function Score(props: { value: number | undefined }) {
  if (props.value === undefined) return <span class="muted">—</span>;
  return (
    <span class="score">
      <meter min={0} max={1} low={0.5} high={0.8} optimum={1} value={props.value} aria-hidden="true" />
      <span>{props.value.toFixed(3)}</span>
    </span>
  );
}

export const slashesOf = (p: ProviderView) => Math.max(p.listed?.reputation.slashes ?? 0, p.slashes, p.market?.slashes ?? 0);
/** Its tickets disputed: the larger of this node's reputation counter (kept across restarts) and the market's count since start. */
export const disputesOf = (p: ProviderView) => Math.max(p.listed?.reputation.disputes ?? 0, p.market?.disputes ?? 0);
/** Paid to it on chain since this node started (voucher claims and settled tickets); null before the market loaded. */
export const volumeOf = (p: ProviderView, market: Market | undefined) => (market ? (p.market?.volume ?? "0") : null);

/** Whether its offer stands, and whether it was slashed. */
export function OfferState(props: { p: ProviderView }) {
  const { p } = props;
  return (
    <>
      {hasOffer(p) ? (
        <Badge value="live_offer" title="an offer of it is in the book" />
      ) : (
        <Badge value="no_live_offer" title="registered, but no offer in the book: withdrawn, expired or slashed out of the market" />
      )}
      {slashesOf(p) > 0 && (
        <>
          {" "}
          <Badge value="slashed" title="the escrow slashed its stake over a ticket it lost" />
        </>
      )}
    </>
  );
}

const columns = (market: Market | undefined): Column<ProviderView>[] => [
  { label: "Provider", cell: (p) => <ProviderLink address={p.evm_address} /> },
  { label: "Offer", cell: (p) => <OfferState p={p} />, source: "gossip" },
  { label: "Stake (on chain)", cell: (p) => <Amount units={p.listed?.stake ?? null} />, num: true, source: "chain" },
  { label: "Volume", cell: (p) => <Amount units={volumeOf(p, market)} />, num: true, source: "chain" },
  { label: "Settled jobs", cell: (p) => count(p.listed?.reputation.settled_jobs), num: true, source: "chain" },
  { label: "Disputes", cell: (p) => count(disputesOf(p)), num: true, source: "chain" },
  { label: "Slashes", cell: (p) => count(slashesOf(p)), num: true, source: "chain" },
  { label: "Checks passed", cell: (p) => count(p.listed?.reputation.checks_passed), num: true, source: "node" },
  { label: "Checks failed", cell: (p) => count(p.listed?.reputation.checks_failed), num: true, source: "node" },
  {
    label: "Reputation",
    cell: (p) => <Score value={p.listed?.reputation.score} />,
    num: true,
    source: "node",
  },
];

export function Providers() {
  const { providers, market, list } = useProviders();
  return (
    <Page
      title="Providers"
      lead="Every provider this node knows from the chain or from gossip: its stake, what it was paid on chain (volume, since this node started), settled jobs, disputes, slashes and spot checks. Reputation is this node's own: recomputed from escrow events and the checks it saw, never from a central service."
    >
      <SourceLegend />
      <Loaded
        res={providers}
        what="providers"
        empty={
          list.length === 0
            ? "No providers yet: a provider appears once its offer reaches this node (providers announce every few seconds) or the escrow registers it."
            : undefined
        }
      >
        {() => (
          <>
            <Count testid="provider-count">
              {count(list.length)} providers, {count(list.filter(hasOffer).length)} with a live offer
              {list.length > 0 &&
                `; checks passed overall ${percent(
                  list.reduce((a, p) => a + (p.listed?.reputation.checks_passed ?? 0), 0) /
                    Math.max(
                      1,
                      list.reduce((a, p) => a + (p.listed ? p.listed.reputation.checks_passed + p.listed.reputation.checks_failed : 0), 0),
                    ),
                )}`}
            </Count>
            <Table caption="Providers" testid="providers" columns={columns(market.data)} rows={list} rowKey={(p) => p.evm_address} />
          </>
        )}
      </Loaded>
    </Page>
  );
}
