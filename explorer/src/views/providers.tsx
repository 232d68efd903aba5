import type { ChainRecord, Offer, Provider } from "../api";
import { count, percent } from "../format";
import { hasOffer, providerViews, type ProviderView } from "../model";
import { Amount, Badge, type Column, Count, Loaded, Page, ProviderLink, Table, useResource } from "../ui";
import { SLASHED } from "./shared";

/** Providers as the views list them: the node's (with or without a live offer), with their offers and slashes. */
export function useProviders() {
  const providers = useResource<Provider[]>("providers");
  const offers = useResource<Offer[]>("offers");
  const slashed = useResource<ChainRecord[]>(SLASHED);
  return { providers, list: providerViews(providers.data, offers.data, slashed.data) };
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

export const slashesOf = (p: ProviderView) => Math.max(p.listed?.reputation.slashes ?? 0, p.slashes);

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

const COLUMNS: Column<ProviderView>[] = [
  { label: "Provider", cell: (p) => <ProviderLink address={p.evm_address} /> },
  { label: "Offer", cell: (p) => <OfferState p={p} /> },
  { label: "Stake (on chain)", cell: (p) => <Amount units={p.listed?.stake ?? null} />, num: true },
  { label: "Settled jobs", cell: (p) => count(p.listed?.reputation.settled_jobs), num: true },
  { label: "Checks passed", cell: (p) => count(p.listed?.reputation.checks_passed), num: true },
  { label: "Checks failed", cell: (p) => count(p.listed?.reputation.checks_failed), num: true },
  { label: "Slashes", cell: (p) => count(slashesOf(p)), num: true },
  {
    label: "Reputation",
    cell: (p) => <Score value={p.listed?.reputation.score} />,
    num: true,
  },
];

export function Providers() {
  const { providers, list } = useProviders();
  return (
    <Page
      title="Providers"
      lead="Each provider's stake, settled jobs, spot checks and slashes. Reputation is this node's own: recomputed from escrow events and the checks it saw, never from a central service."
    >
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
            <Table caption="Providers" testid="providers" columns={COLUMNS} rows={list} rowKey={(p) => p.evm_address} />
          </>
        )}
      </Loaded>
    </Page>
  );
}
