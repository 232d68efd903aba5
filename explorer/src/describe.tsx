// Node events and escrow events in words, with links to what they name.

import type { ComponentChildren } from "preact";
import type { ChainRecord, NodeEvent } from "./api";
import type { SeenEvent } from "./live";
import { Amount, Badge, Hex, JobLink, ProviderLink, TicketLink, type FeedItem } from "./ui";
import { clock, count, decisionValue } from "./format";

/** A unix time as a clock time, machine-readable too. */
export const Seen = (props: { unix: number }) => <time dateTime={new Date(props.unix * 1000).toISOString()}>{clock(props.unix)}</time>;

/** Live events as feed items. */
export const eventItems = (seen: SeenEvent[]): FeedItem[] =>
  seen.map((e) => ({
    key: e.seq,
    when: <Seen unix={e.at / 1000} />,
    body: describeEvent(e.event),
    kind: e.event.kind,
  }));

/** Escrow events as feed items: when this node saw them (when known) and their block. */
export const recordItems = (records: ChainRecord[]): FeedItem[] =>
  records.map((r, i) => ({
    key: `${r.block}-${i}`,
    when: (
      <>
        {r.seen_at !== undefined && (
          <>
            <Seen unix={r.seen_at} />,{" "}
          </>
        )}
        block {r.block}
      </>
    ),
    body: describeRecord(r),
    kind: r.kind,
  }));

const s = (v: unknown) => (v === undefined || v === null ? "" : String(v));

/** One live event of the node, as a short sentence. */
export function describeEvent(e: NodeEvent): ComponentChildren {
  const job = <JobLink id={s(e.job)} />;
  switch (e.kind) {
    case "submitted":
      return <>job {job} submitted</>;
    case "sent":
      return (
        <>
          job {job} sent to <ProviderLink address={s(e.provider)} />
          {Number(e.attempt) > 1 && ` (attempt ${s(e.attempt)})`}
        </>
      );
    case "retrying":
      return (
        <>
          job {job}: <ProviderLink address={s(e.provider)} /> {s(e.reason)}; trying another provider
        </>
      );
    case "result_in":
      return (
        <>
          result of job {job}: {s(e.outcome)}, {count(Number(e.fuel))} fuel, <Amount units={s(e.amount)} />
        </>
      );
    case "checking":
      return (
        <>
          job {job} sampled for a check: {s(e.reruns)} re-run(s)
        </>
      );
    case "checked":
      return (
        <>
          check of job {job} <Badge value={e.passed ? "passed" : "failed"} />
          {typeof e.decision === "string" && ` (${decisionValue(e.decision).replace(/_/g, " ")}, ${s(e.reruns)} re-run(s))`}
        </>
      );
    case "escrow":
      return (
        <>
          on chain, block {s(e.block)}:{" "}
          {describeRecord({ block: Number(e.block), kind: s(e.name), fields: (e.fields ?? {}) as Record<string, unknown> })}
        </>
      );
    case "finished":
      return (
        <>
          job {job} finished <Badge value={s(e.state)} /> in {count(Number(e.millis))} ms
        </>
      );
    case "channel_opened":
      return (
        <>
          channel <Hex value={s(e.channel)} /> opened to <ProviderLink address={s(e.provider)} /> with <Amount units={s(e.deposit)} />
        </>
      );
    case "claimed":
      return (
        <>
          vouchers of {s(e.channels)} channel(s) claimed: <Amount units={s(e.amount)} /> ({count(Number(e.gas))} gas)
        </>
      );
    case "ticket_claimed":
      return (
        <>
          ticket <TicketLink id={s(e.ticket)} /> claimed for job {job}
        </>
      );
    case "disputed":
      return (
        <>
          ticket <TicketLink id={s(e.ticket)} /> disputed
        </>
      );
    case "verdict":
      return (
        <>
          verdict on ticket <TicketLink id={s(e.ticket)} />: {e.agrees ? "agrees" : "disagrees"} with the provider
        </>
      );
    case "ticket_settled":
      return (
        <>
          ticket <TicketLink id={s(e.ticket)} /> settled <Badge value={s(e.outcome)} />
        </>
      );
    case "paid":
      return (
        <>
          job {job} paid by a voucher (cumulative <Amount units={s(e.cumulative)} />)
        </>
      );
    case "withheld":
      return (
        <>
          payment for job {job} withheld: {s(e.reason)}
        </>
      );
    case "accepted":
      return <>job {job} accepted</>;
    case "refused":
      return (
        <>
          job {job} refused: {s(e.reason)}
        </>
      );
    case "ran":
      return (
        <>
          ran job {job}: {s(e.outcome)}, {count(Number(e.fuel))} fuel
        </>
      );
    case "job_failed":
      return (
        <>
          job {job} failed: {s(e.reason)}
        </>
      );
    case "delivered":
      return <>result of job {job} delivered</>;
    case "announced":
      return <>offer announced (sequence {s(e.sequence)})</>;
    case "withdrew":
      return <>offer withdrawn (sequence {s(e.sequence)})</>;
    case "registered":
      return (
        <>
          registered <ProviderLink address={s(e.account)} /> with stake <Amount units={s(e.stake)} />
        </>
      );
    case "connected":
      return (
        <>
          connected to <Hex value={s(e.peer)} />
        </>
      );
    case "disconnected":
      return (
        <>
          disconnected from <Hex value={s(e.peer)} />
        </>
      );
    case "banned":
      return (
        <>
          peer <Hex value={s(e.peer)} /> cut off for forwarding invalid offers
        </>
      );
    case "warning":
      return <>warning: {s(e.message)}</>;
    case "lagged":
      return <>the stream fell behind and skipped {s(e.missed)} events; views were refreshed</>;
    default:
      return <>{e.kind.replace(/_/g, " ")}</>;
  }
}

/** One escrow event, as a short sentence. */
export function describeRecord(r: ChainRecord): ComponentChildren {
  const f = (n: string) => s(r.fields[n]);
  const ticket = <TicketLink id={f("ticket")} />;
  switch (r.kind) {
    case "Registered":
      return (
        <>
          <ProviderLink address={f("account")} /> registered its node key
        </>
      );
    case "Staked":
      return (
        <>
          <ProviderLink address={f("account")} /> staked <Amount units={f("amount")} /> (total <Amount units={f("total")} />)
        </>
      );
    case "ChannelOpened":
      return (
        <>
          channel <Hex value={f("channel")} /> opened by <Hex value={f("buyer")} /> to <ProviderLink address={f("provider")} />:{" "}
          <Amount units={f("deposit")} />
        </>
      );
    case "ChannelToppedUp":
      return (
        <>
          channel <Hex value={f("channel")} /> topped up by <Amount units={f("amount")} />
        </>
      );
    case "VoucherClaimed":
      return (
        <>
          <ProviderLink address={f("provider")} /> claimed a voucher on <Hex value={f("channel")} />: <Amount units={f("amount")} /> (paid
          so far <Amount units={f("paid")} />)
        </>
      );
    case "CloseStarted":
      return (
        <>
          close of channel <Hex value={f("channel")} /> started by <Hex value={f("by")} />
        </>
      );
    case "ChannelClosed":
      return (
        <>
          channel <Hex value={f("channel")} /> closed; <Amount units={f("refund")} /> back to the buyer
        </>
      );
    case "TicketClaimed":
      return (
        <>
          ticket {ticket} claimed for job <JobLink id={f("job")} />: <Amount units={f("amount")} />
        </>
      );
    case "TicketDisputed":
      return (
        <>
          ticket {ticket} disputed by <Hex value={f("buyer")} />, bond <Amount units={f("bond")} />
        </>
      );
    case "VerifiersDrawn":
      return (
        <>
          {((r.fields.verifiers as unknown[]) ?? []).length} verifiers drawn for ticket {ticket}
        </>
      );
    case "VerdictSubmitted":
      return (
        <>
          <ProviderLink address={f("verifier")} /> voted on ticket {ticket}: {r.fields.agrees ? "agrees" : "disagrees"}
        </>
      );
    case "TicketSettled":
      return (
        <>
          ticket {ticket} settled <Badge value={f("outcome")} />: <Amount units={f("to_provider")} /> to the provider,{" "}
          <Amount units={f("refund")} /> refunded
        </>
      );
    case "Slashed":
      return (
        <>
          <ProviderLink address={f("provider")} /> slashed <Amount units={f("amount")} /> over ticket {ticket} (compensation{" "}
          <Amount units={f("compensation")} />, burned <Amount units={f("burned")} />)
        </>
      );
    case "VerifierPaid":
      return (
        <>
          verifier <ProviderLink address={f("verifier")} /> paid <Amount units={f("amount")} /> for ticket {ticket}
        </>
      );
    default:
      return <>{r.kind}</>;
  }
}
