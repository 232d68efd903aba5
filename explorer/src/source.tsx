// Where a figure comes from: gossip (what providers say of themselves in signed offers), the
// chain (the escrow's events and accounts, as this node read them) or this node (what it did
// and saw itself). A small labelled tag beside the figure, its meaning in a title, and a
// legend on each view that uses them.

import type { ComponentChildren } from "preact";

export type SourceKind = "gossip" | "chain" | "node";

export const SOURCES: Record<SourceKind, { label: string; what: string }> = {
  gossip: {
    label: "gossip",
    what: "the providers' signed offers, relayed peer to peer and kept in this node's order book: what each provider says of itself",
  },
  chain: {
    label: "chain",
    what: "the escrow contract on chain: its events and accounts, as this node read them",
  },
  node: {
    label: "this node",
    what: "this node's own work: the jobs it bought or ran, the checks it made, what it counted",
  },
};

/** A figure's source as a small tag; screen readers hear "source: chain". */
export function Source(props: { of: SourceKind }) {
  const s = SOURCES[props.of];
  return (
    <span class={`src src-${props.of}`} data-source={props.of} title={`Source: ${s.what}`}>
      <span class="sr-only">source: </span>
      {s.label}
    </span>
  );
}

/** The sources a view's tags name, each with what it means. */
export function SourceLegend(props: { kinds?: SourceKind[] }) {
  const kinds = props.kinds ?? (["gossip", "chain", "node"] as SourceKind[]);
  return (
    <div class="sources" data-testid="source-legend">
      <p class="sources-title">Where the figures come from</p>
      <dl>
        {kinds.map((k) => (
          <div class="source-item">
            <dt>
              <Source of={k} />
            </dt>
            <dd>{SOURCES[k].what}</dd>
          </div>
        ))}
      </dl>
    </div>
  );
}

/** A figure followed by its source's tag. */
export function Sourced(props: { of: SourceKind; children: ComponentChildren }) {
  return (
    <>
      {props.children} <Source of={props.of} />
    </>
  );
}
