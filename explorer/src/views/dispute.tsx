import type { ChainRecord } from "../api";
import { recordItems } from "../describe";
import { ago, count, decisionValue, sameAddress } from "../format";
import { disputeView, field } from "../model";
import { Amount, Badge, Facts, Feed, Full, Hex, JobLink, Loaded, Note, Page, ProviderLink, Section, Table, useResource } from "../ui";
import { RECENT, useDisputes, useOwners, withSeen } from "./shared";

export function DisputeView(props: { ticket: string }) {
  const { disputes } = useDisputes();
  const owners = useOwners();
  const recent = useResource<ChainRecord[]>(RECENT);
  return (
    <Page title="Ticket">
      <p>
        <Full value={props.ticket} />
      </p>
      <Loaded res={disputes} what="disputes">
        {(all) => {
          const d = all.find((x) => sameAddress(x.ticket, props.ticket));
          if (!d)
            return (
              <Note kind="empty">
                This node knows no ticket {props.ticket}: it was never claimed on the chain it watches, or its events are older than what it
                keeps.
              </Note>
            );
          const v = disputeView(d, owners);
          const f = (r: typeof v.claimed, n: string) => field(r, n);
          const challenge = Number(f(v.claimed, "challenge_ends") ?? 0);
          return (
            <>
              <Facts
                testid="dispute-facts"
                items={[
                  ["state", <Badge value={d.state} />],
                  ["outcome", d.outcome ? <Badge value={d.outcome} /> : <span class="muted">not settled yet</span>],
                  ["job", <JobLink id={d.job} />],
                  ["provider", <ProviderLink address={v.provider} />],
                  ["amount claimed", <Amount units={f(v.claimed, "amount") ?? null} />],
                  ["fuel claimed", count(Number(f(v.claimed, "fuel_used") ?? NaN) || null)],
                  ["provider's output hash", <Hex value={f(v.claimed, "output_hash")} />],
                  ["challenge window ends", challenge ? ago(challenge) : "—"],
                  ["disputed by", <Hex value={f(v.disputed, "buyer")} />],
                  ["buyer's bond", <Amount units={f(v.disputed, "bond") ?? null} />],
                  ["to the provider", <Amount units={f(v.settled, "to_provider") ?? null} />],
                  ["refunded to the buyer", <Amount units={f(v.settled, "refund") ?? null} />],
                  ["slashed", <Amount units={f(v.slashed, "amount") ?? null} />],
                  ["withheld by this node", d.withheld_by_this_node ? "yes" : "no"],
                ]}
              />
              <Section title="Verifiers' votes">
                <Table
                  empty={
                    v.disputed
                      ? "Verifiers are drawn with on-chain randomness a few blocks after the dispute."
                      : "No dispute: no verifier drawn."
                  }
                  caption="Verifiers drawn and their votes"
                  testid="votes"
                  rows={v.votes}
                  rowKey={(x) => x.verifier}
                  columns={[
                    { label: "Verifier", cell: (x) => <ProviderLink address={x.verifier} /> },
                    {
                      label: "Vote",
                      cell: (x) =>
                        x.agrees === undefined ? (
                          <span class="muted">not yet</span>
                        ) : x.agrees ? (
                          "agrees with the provider"
                        ) : (
                          "disagrees with the provider"
                        ),
                    },
                    { label: "Output hash", cell: (x) => <Hex value={x.output_hash} /> },
                    { label: "Paid", cell: (x) => <Amount units={x.paid ?? null} />, num: true },
                    {
                      label: "Lost for not voting",
                      cell: (x) => <Amount units={x.penalized ?? null} />,
                      num: true,
                    },
                  ]}
                />
              </Section>
              <Section title="Evidence">
                {d.evidence ? (
                  <div data-testid="evidence">
                    {d.decision && (
                      <p>
                        Spot-check decision: <Badge value={decisionValue(d.decision)} />
                      </p>
                    )}
                    {d.evidence.summary && <p class="evidence-summary">{d.evidence.summary}</p>}
                    <p>
                      Original result by <ProviderLink address={d.evidence.original.provider} />; the re-runs:
                    </p>
                    <Table
                      caption="Re-runs"
                      testid="evidence-runs"
                      rows={d.evidence.runs}
                      rowKey={(r) => r.signature}
                      columns={[
                        { label: "Re-run by", cell: (r) => <ProviderLink address={r.provider} /> },
                        { label: "Agrees", cell: (r) => (r.agrees ? "agrees" : "disagrees") },
                        { label: "Output hash", cell: (r) => <Hex value={r.output_hash} /> },
                        { label: "Fuel", cell: (r) => count(r.fuel_used), num: true },
                        { label: "Signature", cell: (r) => <Hex value={r.signature} /> },
                      ]}
                    />
                  </div>
                ) : (
                  <Note kind="empty">
                    {d.withheld_by_this_node
                      ? "This node withheld the voucher but keeps no evidence for it (it ran before the node kept evidence)."
                      : "Evidence is kept by the buyer that withheld payment; this node is not that buyer."}
                  </Note>
                )}
              </Section>
              <Section title="Escrow events">
                <Feed
                  testid="dispute-events"
                  items={recordItems(withSeen(d.events, recent.data))}
                  empty="No escrow event for this ticket yet."
                />
              </Section>
            </>
          );
        }}
      </Loaded>
    </Page>
  );
}
