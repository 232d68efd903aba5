// Shared pieces of every view: resources with their loading, empty and error states, tables
// that become labelled cards on a phone, ids, amounts and state badges.

import type { ComponentChildren, TargetedEvent } from "preact";
import { useEffect, useRef } from "preact/hooks";
import { live, type Resource } from "./live";
import { Link, navigations } from "./router";
import { ago, short, tokens, tokensExact } from "./format";
import type { CheckView } from "./model";
import { Source, SOURCES, type SourceKind } from "./source";

/** Keeps `path` (under /api/v1/) fresh while the caller is shown. */
export function useResource<T>(path: string | null): Resource<T> {
  useEffect(() => (path ? live.watch(path) : undefined), [path]);
  return path ? live.resource<T>(path) : {};
}

export function Page(props: { title: string; lead?: ComponentChildren; children?: ComponentChildren }) {
  const h = useRef<HTMLHeadingElement>(null);
  useEffect(() => {
    document.title = `${props.title} · Sietch explorer`;
    // After an in-app navigation (not on load), start reading and tabbing at the new view's heading.
    if (navigations > 0) h.current?.focus({ preventScroll: true });
  }, [props.title]);
  return (
    <>
      <h1 tabIndex={-1} ref={h}>
        {props.title}
      </h1>
      {props.lead && <p class="lead">{props.lead}</p>}
      {props.children}
    </>
  );
}

export function Section(props: { title: string; id?: string; children?: ComponentChildren; actions?: ComponentChildren }) {
  const id = props.id ?? `s-${props.title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  return (
    <section aria-labelledby={id} class="section">
      <div class="section-head">
        <h2 id={id}>{props.title}</h2>
        {props.actions}
      </div>
      {props.children}
    </section>
  );
}

export function Note(props: { kind: "empty" | "error" | "loading" | "stale" | "warn"; children: ComponentChildren }) {
  const role = props.kind === "error" ? "alert" : "status";
  return (
    <p class={`note note-${props.kind}`} role={role} data-state={props.kind}>
      {props.children}
    </p>
  );
}

/**
 * Renders a resource: loading until the first answer, the error when there is nothing to
 * show, `empty` when the answer is an empty list, and a notice above stale data when a
 * refresh failed.
 */
export function Loaded<T>(props: { res: Resource<T>; what: string; empty?: ComponentChildren; children: (data: T) => ComponentChildren }) {
  const { res, what } = props;
  if (res.data === undefined) {
    if (res.error)
      return (
        <Note kind="error">
          Could not load {what}: {res.error}. Retrying every few seconds.
        </Note>
      );
    return <Note kind="loading">Loading {what}…</Note>;
  }
  const stale = res.error ? (
    <Note kind="stale">
      Could not refresh {what} ({res.error}); showing what was loaded {ago((res.at ?? 0) / 1000)}.
    </Note>
  ) : null;
  if (Array.isArray(res.data) && res.data.length === 0 && props.empty)
    return (
      <>
        {stale}
        <Note kind="empty">{props.empty}</Note>
      </>
    );
  return (
    <>
      {stale}
      {props.children(res.data)}
    </>
  );
}

export interface Column<R> {
  label: string;
  cell: (row: R) => ComponentChildren;
  num?: boolean;
  /** Where the column's figures come from: a tag under its header (and beside its label on a phone). */
  source?: SourceKind;
}

/** A table, or `empty` when there are no rows; under 640 px each row is a card whose cells carry their column's label. */
export function Table<R>(props: {
  caption: string;
  columns: Column<R>[];
  rows: R[];
  rowKey: (r: R) => string;
  testid?: string;
  empty?: ComponentChildren;
}) {
  if (props.rows.length === 0 && props.empty) return <Note kind="empty">{props.empty}</Note>;
  return (
    <div class="table-wrap">
      <table class="cards" data-testid={props.testid}>
        <caption class="sr-only">{props.caption}</caption>
        <thead>
          <tr>
            {props.columns.map((c) => (
              <th scope="col" class={c.num ? "num" : undefined}>
                {c.label}
                {c.source && (
                  <>
                    <br />
                    <Source of={c.source} />
                  </>
                )}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {props.rows.map((r) => (
            <tr key={props.rowKey(r)}>
              {props.columns.map((c) => (
                <td data-label={c.label} data-source={c.source && SOURCES[c.source].label} class={c.num ? "num" : undefined}>
                  {c.cell(r)}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** A count in a row of tiles: its value, what it counts, where it comes from; a link when `href`. */
export function Tile(props: { label: string; value: string; href?: string; testid?: string; source?: SourceKind }) {
  const body = (
    <>
      <span class="tile-value">{props.value}</span>
      <span class="tile-label">{props.label}</span>
      {props.source && (
        <span class="tile-source">
          <Source of={props.source} />
        </span>
      )}
    </>
  );
  return (
    <li class="tile" data-testid={props.testid}>
      {props.href ? <Link href={props.href}>{body}</Link> : body}
    </li>
  );
}

export interface FeedItem {
  key: string | number;
  /** When: a clock time, a block or both. */
  when: ComponentChildren;
  body: ComponentChildren;
  kind?: string;
}

/** Things that happened, newest first, or `empty`. */
export function Feed(props: { items: FeedItem[]; empty: ComponentChildren; testid?: string }) {
  if (props.items.length === 0) return <Note kind="empty">{props.empty}</Note>;
  return (
    <ol class="feed" data-testid={props.testid}>
      {props.items.map((i) => (
        <li key={i.key} data-kind={i.kind}>
          <span class="muted when">{i.when}</span> {i.body}
        </li>
      ))}
    </ol>
  );
}

/** A shortened id with the whole of it in a title (and for screen readers). */
export function Hex(props: { value: string | null | undefined; keep?: number }) {
  if (!props.value) return <span class="muted">—</span>;
  return (
    <code class="hex" title={props.value} aria-label={props.value}>
      {short(props.value, props.keep)}
    </code>
  );
}

export function Full(props: { value: string | null | undefined }) {
  if (!props.value) return <span class="muted">—</span>;
  return <code class="hex full">{props.value}</code>;
}

export function Amount(props: { units: string | bigint | null | undefined; unit?: boolean }) {
  if (props.units === null || props.units === undefined) return <span class="muted">—</span>;
  return (
    <span class="amount" title={`${tokensExact(props.units)} tokens`}>
      {tokens(props.units)}
      {props.unit !== false && <span class="unit"> tokens</span>}
    </span>
  );
}

const TONE: Record<string, string> = {
  paid: "good",
  passed: "good",
  settled: "neutral",
  undisputed: "good",
  provider_right: "good",
  done: "neutral",
  checked: "neutral",
  checking: "warn",
  running: "warn",
  accepted: "warn",
  requested: "warn",
  claimed: "warn",
  withheld: "warn",
  disputed: "bad",
  drawn: "warn",
  failed: "bad",
  refused: "bad",
  provider_wrong: "bad",
  undecided: "warn",
  open: "good",
  closing: "warn",
  closed: "neutral",
  live_offer: "good",
  no_live_offer: "neutral",
  slashed: "bad",
  ok: "good",
  warning: "warn",
  blocking: "bad",
};

/** A state in words, toned by what it means (the word carries it; colour only helps). */
export function Badge(props: { value: string | null | undefined; title?: string }) {
  if (!props.value) return <span class="muted">—</span>;
  const tone = TONE[props.value] ?? "neutral";
  return (
    <span class={`badge badge-${tone}`} title={props.title} data-value={props.value}>
      {props.value.replace(/_/g, " ")}
    </span>
  );
}

/** A job's spot check: its state as a badge, or why there is none. */
export function CheckBadge(props: { check: CheckView; detail?: boolean }) {
  const c = props.check;
  if (!c.state)
    return (
      <span class="muted" title={c.why}>
        {props.detail ? `${c.text}: ${c.why}` : c.text}
      </span>
    );
  return (
    <>
      <Badge value={c.state} title={c.why} />
      {props.detail && <span class="muted"> {c.why}</span>}
    </>
  );
}

export function Facts(props: { items: [string, ComponentChildren][]; testid?: string }) {
  return (
    <dl class="facts" data-testid={props.testid}>
      {props.items.map(([k, v]) => (
        <div class="fact">
          <dt>{k}</dt>
          <dd>{v}</dd>
        </div>
      ))}
    </dl>
  );
}

export function ProviderLink(props: { address: string | null | undefined }) {
  if (!props.address) return <span class="muted">—</span>;
  return (
    <Link href={`/providers/${props.address}`} class="id-link">
      <Hex value={props.address} keep={4} />
    </Link>
  );
}

export function JobLink(props: { id: string | null | undefined; side?: string }) {
  if (!props.id) return <span class="muted">—</span>;
  return (
    <Link href={`/jobs/${props.id}${props.side === "provider" ? "?side=provider" : ""}`} class="id-link">
      <Hex value={props.id} />
    </Link>
  );
}

export function TicketLink(props: { id: string | null | undefined }) {
  if (!props.id) return <span class="muted">—</span>;
  return (
    <Link href={`/disputes/${props.id}`} class="id-link">
      <Hex value={props.id} />
    </Link>
  );
}

/** A row of filters (changes apply as they are made; Enter submits nothing). */
export function Filters(props: { label: string; children: ComponentChildren; inline?: boolean; role?: "search" }) {
  return (
    <form
      class={props.inline ? "filters inline" : "filters"}
      role={props.role}
      aria-label={props.label}
      onSubmit={(e) => e.preventDefault()}
    >
      {props.children}
    </form>
  );
}

/** How many rows a view shows, announced when it changes. */
export function Count(props: { testid: string; children: ComponentChildren }) {
  return (
    <p class="count" role="status" data-testid={props.testid}>
      {props.children}
    </p>
  );
}

export function Select(props: { label: string; value: string; onChange: (v: string) => void; options: [string, string][]; id: string }) {
  return (
    <label class="field" for={props.id}>
      <span>{props.label}</span>
      <select id={props.id} value={props.value} onChange={(e) => props.onChange((e.target as HTMLSelectElement).value)}>
        {props.options.map(([v, text]) => (
          <option value={v}>{text}</option>
        ))}
      </select>
    </label>
  );
}

export function NumberField(props: {
  label: string;
  value: string;
  onChange: (v: string) => void;
  id: string;
  min?: number;
  step?: number;
  hint?: string;
}) {
  const onInput = (e: TargetedEvent<HTMLInputElement>) => props.onChange(e.currentTarget.value);
  return (
    <label class="field" for={props.id}>
      <span>{props.label}</span>
      <input
        id={props.id}
        type="number"
        inputMode="decimal"
        min={props.min ?? 0}
        step={props.step ?? 1}
        value={props.value}
        onInput={onInput}
        aria-describedby={props.hint ? `${props.id}-hint` : undefined}
      />
      {props.hint && (
        <small id={`${props.id}-hint`} class="muted">
          {props.hint}
        </small>
      )}
    </label>
  );
}
