import type { Dispute } from "../api";
import { count } from "../format";
import { disputeView } from "../model";
import { useQueryParam } from "../router";
import { Amount, Badge, type Column, Count, Filters, JobLink, Loaded, Page, ProviderLink, Select, Table, TicketLink } from "../ui";
import { useDisputes, useOwners } from "./shared";

type Row = Dispute & { view: ReturnType<typeof disputeView> };

const COLUMNS: Column<Row>[] = [
  { label: "Ticket", cell: (d) => <TicketLink id={d.ticket} /> },
  { label: "Job", cell: (d) => <JobLink id={d.job} /> },
  { label: "Provider", cell: (d) => <ProviderLink address={d.view.provider} /> },
  { label: "State", cell: (d) => <Badge value={d.state} /> },
  { label: "Outcome", cell: (d) => <Badge value={d.outcome ?? null} /> },
  {
    label: "Votes",
    cell: (d) => {
      const cast = d.view.votes.filter((v) => v.agrees !== undefined);
      if (d.view.votes.length === 0) return <span class="muted">none drawn</span>;
      const against = cast.filter((v) => !v.agrees).length;
      return `${cast.length} of ${d.view.votes.length}: ${against} against the provider`;
    },
  },
  { label: "Amount", cell: (d) => <Amount units={d.view.claimed ? String(d.view.claimed.fields.amount) : null} />, num: true },
  { label: "Evidence", cell: (d) => (d.evidence ? `${d.evidence.runs.length} re-runs` : <span class="muted">—</span>) },
];

export function Disputes() {
  const { disputes } = useDisputes();
  const owners = useOwners();
  const [state, setState] = useQueryParam("state", "all");
  return (
    <Page
      title="Tickets and disputes"
      lead="Tickets a provider claimed on chain because the buyer withheld a voucher; the disputes the buyer raised with its evidence; the verifiers' votes and the outcome."
    >
      <Filters label="Filter tickets">
        <Select
          id="f-dstate"
          label="State"
          value={state}
          onChange={setState}
          options={[
            ["all", "all"],
            ["withheld", "withheld"],
            ["claimed", "claimed"],
            ["disputed", "disputed"],
            ["drawn", "verifiers drawn"],
            ["settled", "settled"],
          ]}
        />
      </Filters>
      <Loaded
        res={disputes}
        what="disputes"
        empty="No tickets or disputes yet: they appear when a buyer withholds payment for a result its spot check found wrong (a cheating provider is caught this way)."
      >
        {(all) => {
          const rows = all
            .filter((d) => state === "all" || d.state === state)
            .map((d) => ({ ...d, view: disputeView(d, owners) }))
            .sort((a, b) => b.view.lastBlock - a.view.lastBlock);
          return (
            <>
              <Count testid="dispute-count">
                {count(rows.length)} tickets{state !== "all" ? ` ${state}` : ""}
              </Count>
              <Table
                empty={`No ${state} tickets among ${count(all.length)}.`}
                caption="Tickets and disputes"
                testid="disputes"
                columns={COLUMNS}
                rows={rows}
                rowKey={(d) => d.ticket}
              />
            </>
          );
        }}
      </Loaded>
    </Page>
  );
}
