import { useState } from "preact/hooks";
import { SCAN_JOBS, type Job } from "../api";
import { ago, count } from "../format";
import { live } from "../live";
import { jobCheck, jobProvider } from "../model";
import { useQueryParam } from "../router";
import {
  Amount,
  Badge,
  CheckBadge,
  type Column,
  Count,
  Filters,
  JobLink,
  Loaded,
  Page,
  ProviderLink,
  Select,
  Table,
  useResource,
} from "../ui";
import { jobsOf } from "./shared";
import { GenerationCell, useGenerations } from "../generation";

const PAGE = 50;

/** "Showing 50 of 1,234 jobs" and what the listing leaves out, in words. */
function countText(shown: number, rows: number, listed: number, total: number, state: string): string {
  const of = listed < total ? `the newest ${count(listed)} of ${count(total)}` : count(total);
  const head = state === "all" ? `Showing ${count(shown)} of ${count(total)} jobs` : `${count(rows)} ${state} among ${of} jobs`;
  const more = state !== "all" && rows > shown ? `; showing the newest ${count(shown)}` : "";
  const sample =
    total > SCAN_JOBS ? ` (past ${count(SCAN_JOBS)} stored jobs the node sorts a sample of them: newer ones may be missing)` : "";
  return `${head}${more}, newest first${sample}`;
}

export function Jobs() {
  const [side, setSide] = useQueryParam("side", "buyer");
  const [state, setState] = useQueryParam("state", "all");
  const [shown, setShown] = useState(PAGE);
  const buyer = side !== "provider";
  const jobs = useResource<Job[]>(jobsOf(buyer ? "buyer" : "provider"));
  const states = [...new Set((jobs.data ?? []).map((j) => j.state))].sort();
  // The summaries of the generation jobs among the rows shown (fetched once each).
  const rows = (jobs.data ?? []).filter((j) => state === "all" || j.state === state).slice(0, shown);
  const generations = useGenerations(rows, buyer ? "buyer" : "provider");

  const columns: Column<Job>[] = [
    { label: "Job", cell: (j) => <JobLink id={j.job_id} side={side} /> },
    {
      // A provider's job's counterparty is its buyer.
      label: buyer ? "Provider" : "Buyer",
      cell: (j) => <ProviderLink address={buyer ? jobProvider(j, live.facts.get(j.job_id)) : j.counterparty} />,
    },
    {
      label: "State",
      cell: (j) => (
        <>
          <Badge value={j.state} />
          {j.note && <span class="note-inline"> {j.note}</span>}
        </>
      ),
    },
    { label: "Price", cell: (j) => <Amount units={j.amount} />, num: true },
    { label: "Fuel", cell: (j) => count(j.fuel_used), num: true },
    { label: "Check", cell: (j) => <CheckBadge check={jobCheck(j)} /> },
    { label: "Outcome", cell: (j) => j.outcome ?? <span class="muted">—</span> },
    { label: "Generation", cell: (j) => <GenerationCell job={j} summary={generations.get(j.job_id)} /> },
    { label: "Updated", cell: (j) => ago(j.updated_at), num: true },
  ];

  return (
    <Page title="Jobs" lead="Jobs this node bought (or, on a provider, ran): their state, price, spot check and outcome. Newest first.">
      <Filters label="Filter jobs">
        <Select
          id="f-side"
          label="Side"
          value={buyer ? "buyer" : "provider"}
          onChange={setSide}
          options={[
            ["buyer", "bought by this node"],
            ["provider", "run by this node"],
          ]}
        />
        <Select
          id="f-state"
          label="State"
          value={state}
          onChange={setState}
          options={[["all", "all states"], ...states.map((s): [string, string] => [s, s])]}
        />
      </Filters>
      <Loaded
        res={jobs}
        what="jobs"
        empty={
          buyer
            ? "No jobs yet: this node has not bought any. Submit one with `sietch job submit`, or run `sietch devnet`, whose buyer submits jobs continuously."
            : "No jobs run by this node: it is not providing, or no buyer has picked its offer yet."
        }
      >
        {(all) => {
          // The node lists its newest jobs first; a state filter narrows those.
          const rows = all.filter((j) => state === "all" || j.state === state);
          const total = Math.max(jobs.total ?? all.length, all.length);
          const visible = rows.slice(0, shown);
          return (
            <>
              <Count testid="job-count">{countText(visible.length, rows.length, all.length, total, state)}</Count>
              <Table
                empty={`No ${state} jobs among the ${count(all.length)} newest this node stored.`}
                caption="Jobs"
                testid="jobs"
                columns={columns}
                rows={visible}
                rowKey={(j) => j.job_id}
              />
              {rows.length > shown && (
                <button type="button" class="button" onClick={() => setShown(shown + PAGE)}>
                  Show {Math.min(PAGE, rows.length - shown)} more
                </button>
              )}
              {rows.length <= shown && all.length < total && (
                <p class="muted small">The node lists its newest {count(all.length)} jobs; older ones are not shown here.</p>
              )}
            </>
          );
        }}
      </Loaded>
    </Page>
  );
}
