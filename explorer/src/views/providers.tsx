import type { ChainRecord, Offer, Provider } from "../api";
import { count, percent } from "../format";
import { providerViews, type ProviderView } from "../model";
import { Amount, Badge, type Column, Count, Loaded, Page, ProviderLink, Table, useResource } from "../ui";
import { REGISTERED, SLASHED } from "./shared";

/** Providers as the views list them: live ones with reputation, and those known from the escrow. */
export function useProviders() {
  const providers = useResource<Provider[]>("providers");
  const offers = useResource<Offer[]>("offers");
  const registered = useResource<ChainRecord[]>(REGISTERED);
  const slashed = useResource<ChainRecord[]>(SLASHED);
  const records = [...(registered.data ?? []), ...(slashed.data ?? [])];
  return { providers, list: providerViews(providers.data, offers.data, records) };
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

export const slashesOf = (p: ProviderView) => Math.max(p.live?.reputation.slashes ?? 0, p.slashes);

const COLUMNS: Column<ProviderView>[] = [
  { label: "Provider", cell: (p) => <ProviderLink address={p.evm_address} /> },
  {
    label: "Offer",
    cell: (p) => (
      <Badge
        value={p.offer ? "open" : "closed"}
        title={p.offer ? "an offer is in the book" : "no live offer: withdrawn, expired or no longer staked"}
      />
    ),
  },
  { label: "Stake (on chain)", cell: (p) => <Amount units={p.live?.stake ?? null} />, num: true },
  { label: "Settled jobs", cell: (p) => count(p.live?.reputation.settled_jobs), num: true },
  { label: "Checks passed", cell: (p) => count(p.live?.reputation.checks_passed), num: true },
  { label: "Checks failed", cell: (p) => count(p.live?.reputation.checks_failed), num: true },
  { label: "Slashes", cell: (p) => count(slashesOf(p)), num: true },
  {
    label: "Reputation",
    cell: (p) => <Score value={p.live?.reputation.score} />,
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
            ? "No providers yet: a provider appears once its offer reaches this node (providers announce every few seconds)."
            : undefined
        }
      >
        {(live) => (
          <>
            <Count testid="provider-count">
              {count(list.length)} providers, {count(live.length)} with a live offer
              {list.length > 0 &&
                `; checks passed overall ${percent(
                  list.reduce((a, p) => a + (p.live?.reputation.checks_passed ?? 0), 0) /
                    Math.max(
                      1,
                      list.reduce((a, p) => a + (p.live ? p.live.reputation.checks_passed + p.live.reputation.checks_failed : 0), 0),
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
