// What the views derive from the resources: who ran a job and how its check went, what a
// ticket's dispute came to, where each channel stands, what is known of each provider.

import type { ChainRecord, Channel, Dispute, Job, Market, Offer, Provider } from "./api";
import type { JobFacts } from "./live";
import { decisionValue } from "./format";

const key = (s: string) => s.toLowerCase();

export function field(r: ChainRecord | undefined, name: string): string | undefined {
  const v = r?.fields[name];
  return v === undefined || v === null ? undefined : String(v);
}

/** Channel id → provider, from this node's channels and the escrow's ChannelOpened events. */
export function channelOwners(channels: Channel[] | undefined, records: ChainRecord[] | undefined): Map<string, string> {
  const m = new Map<string, string>();
  for (const r of records ?? []) {
    if (r.kind === "ChannelOpened") {
      const c = field(r, "channel");
      const p = field(r, "provider");
      if (c && p) m.set(key(c), p);
    }
  }
  for (const c of channels ?? []) m.set(key(c.channel), c.provider);
  return m;
}

/** A buyer's job's provider: its record's, else (in flight) the one it was last sent to. */
export function jobProvider(job: Job, facts: JobFacts | undefined): string | undefined {
  return job.provider ?? facts?.provider;
}

export type CheckState = "checking" | "passed" | "failed";

export interface CheckView {
  /** A check's state, shown as a badge; none when there is no check to show. */
  state?: CheckState;
  /** Without a state: why there is none, in a word or two. */
  text: string;
  /** More on where the answer comes from. */
  why: string;
}

/** A job's spot check, as the node reports it. */
export function jobCheck(job: Job): CheckView {
  const c = job.check;
  const reruns = `${c.reruns} re-run${c.reruns === 1 ? "" : "s"}`;
  if (c.passed !== null)
    return {
      state: c.passed ? "passed" : "failed",
      text: "",
      why: `${c.decision ? decisionValue(c.decision).replace(/_/g, " ") : c.passed ? "passed" : "failed"}, ${reruns}`,
    };
  if (c.sampled) return { state: "checking", text: "", why: "sampled: the re-runs are under way" };
  // The node remembers checks in memory; the record's note outlives a restart.
  if (/spot check failed/i.test(job.note)) return { state: "failed", text: "", why: job.note };
  if (job.output_hash && job.outcome === null)
    return { text: "not recorded", why: "the node keeps the checks of its latest 10,000 jobs since it started; not this one's" };
  if (job.output_hash) return { text: "not sampled", why: "its result was not picked for a spot check" };
  if (job.state === "failed" || job.state === "refused") return { text: "none", why: "it ended without a result to check" };
  return { text: "pending", why: "no result yet" };
}

/** Disputes by job id. */
export function disputesByJob(disputes: Dispute[] | undefined): Map<string, Dispute> {
  const m = new Map<string, Dispute>();
  for (const d of disputes ?? []) if (d.job) m.set(key(d.job), d);
  return m;
}

export function disputeOf(map: Map<string, Dispute>, job: string): Dispute | undefined {
  return map.get(key(job));
}

export interface Vote {
  verifier: string;
  agrees?: boolean;
  output_hash?: string;
  paid?: string;
  /** Stake it lost for not voting in its round (a round without a majority is drawn again). */
  penalized?: string;
}

export interface DisputeView {
  provider?: string;
  claimed?: ChainRecord;
  disputed?: ChainRecord;
  settled?: ChainRecord;
  slashed?: ChainRecord;
  votes: Vote[];
  lastBlock: number;
}

/** A ticket's escrow events read as one story: claim, dispute, draw, votes, settlement. */
export function disputeView(d: Dispute, owners: Map<string, string>): DisputeView {
  const find = (k: string) => d.events.find((e) => e.kind === k);
  const claimed = find("TicketClaimed");
  const votes = new Map<string, Vote>();
  // Every round's draw: a round without a majority is drawn again (`Redrawn`).
  for (const drawn of d.events.filter((e) => e.kind === "VerifiersDrawn")) {
    for (const v of (drawn.fields.verifiers as string[] | undefined) ?? []) {
      if (!votes.has(key(v))) votes.set(key(v), { verifier: v });
    }
  }
  for (const e of d.events) {
    const who = field(e, "verifier");
    if (!who) continue;
    const v = votes.get(key(who)) ?? { verifier: who };
    if (e.kind === "VerdictSubmitted") {
      v.agrees = e.fields.agrees === true;
      v.output_hash = field(e, "output_hash");
    }
    if (e.kind === "VerifierPaid") v.paid = field(e, "amount");
    if (e.kind === "VerifierPenalized") v.penalized = field(e, "amount");
    votes.set(key(who), v);
  }
  const channel = field(claimed, "channel");
  return {
    provider: (channel ? owners.get(key(channel)) : undefined) ?? d.evidence?.original.provider ?? field(find("Slashed"), "provider"),
    claimed,
    disputed: find("TicketDisputed"),
    settled: find("TicketSettled"),
    slashed: find("Slashed"),
    votes: [...votes.values()],
    lastBlock: Math.max(0, ...d.events.map((e) => e.block)),
  };
}

export type ChannelState = "open" | "closing" | "closed";

export interface ChannelView {
  channel: string;
  provider?: string;
  buyer?: string;
  deposit?: string;
  /** Latest voucher this node signed (its own channels only). */
  voucher?: string;
  /** Paid out by claims on chain. */
  claimed?: string;
  state: ChannelState;
  refund?: string;
}

/** Every channel this node knows: its own and those the escrow's events name. */
export function channelViews(channels: Channel[] | undefined, records: ChainRecord[] | undefined): ChannelView[] {
  const m = new Map<string, ChannelView>();
  const at = (id: string) => {
    let v = m.get(key(id));
    if (!v) {
      v = { channel: id, state: "open" };
      m.set(key(id), v);
    }
    return v;
  };
  for (const r of records ?? []) {
    const id = field(r, "channel");
    if (!id) continue;
    const v = at(id);
    switch (r.kind) {
      case "ChannelOpened":
        v.provider = field(r, "provider");
        v.buyer = field(r, "buyer");
        v.deposit = field(r, "deposit");
        break;
      case "ChannelToppedUp":
        v.deposit = (BigInt(v.deposit ?? "0") + BigInt(field(r, "amount") ?? "0")).toString();
        break;
      case "VoucherClaimed":
        v.claimed = field(r, "paid");
        break;
      case "CloseStarted":
        v.state = "closing";
        break;
      case "ChannelClosed":
        v.state = "closed";
        v.refund = field(r, "refund");
        break;
    }
  }
  for (const c of channels ?? []) {
    const v = at(c.channel);
    v.provider = c.provider;
    v.deposit = c.deposit;
    v.voucher = c.cumulative;
  }
  // Events only for a channel whose opening fell out of the window: skip what says nothing.
  return [...m.values()].filter((v) => v.provider || v.deposit).reverse();
}

export interface ProviderView {
  evm_address: string;
  /** What `/providers` says of it: stake, reputation, whether it has a live offer. */
  listed?: Provider;
  offer?: Offer;
  /** Slashes among the escrow events this node kept, and what they took. */
  slashes: number;
  slashed: bigint;
  /** What the escrow's events since the node started said of it (`/market`): paid, disputed, slashed. */
  market?: Market["providers"][number];
}

/** Whether the provider has a live offer. */
export const hasOffer = (p: ProviderView) => p.listed?.offer ?? p.offer !== undefined;

/**
 * Providers: those the node lists (with a live offer or registered without one), with their
 * offer and the slashes the escrow's events show.
 */
export function providerViews(
  providers: Provider[] | undefined,
  offers: Offer[] | undefined,
  slashed: ChainRecord[] | undefined,
  market?: Market,
): ProviderView[] {
  const m = new Map<string, ProviderView>();
  const at = (a: string) => {
    let v = m.get(key(a));
    if (!v) {
      v = { evm_address: a, slashes: 0, slashed: 0n };
      m.set(key(a), v);
    }
    return v;
  };
  for (const p of providers ?? []) at(p.evm_address).listed = p;
  for (const o of offers ?? []) at(o.evm_address).offer = o;
  for (const r of slashed ?? []) {
    if (r.kind !== "Slashed") continue;
    const v = at(field(r, "provider") ?? "");
    v.slashes++;
    v.slashed += BigInt(field(r, "amount") ?? "0");
  }
  m.delete("");
  // Only for providers known otherwise: the market's figures add to a row, they make none.
  for (const mp of market?.providers ?? []) {
    const v = m.get(key(mp.evm_address));
    if (v) v.market = mp;
  }
  return [...m.values()].sort(
    (a, b) => (b.listed?.reputation.score ?? -1) - (a.listed?.reputation.score ?? -1) || a.evm_address.localeCompare(b.evm_address),
  );
}
