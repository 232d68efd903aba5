import { useState } from "preact/hooks";
import { MAX_JOBS, type Job } from "../api";
import { ago, count } from "../format";
import { live } from "../live";
import { disputeOf, jobCheck, jobProvider } from "../model";
import { useQueryParam } from "../router";
import { Amount, Badge, type Column, Count, Filters, JobLink, Loaded, Page, ProviderLink, Select, Table, useResource } from "../ui";
import { useDisputes, useOwners } from "./shared";

const PAGE = 50;

export function Jobs() {
  const [side, setSide] = useQueryParam("side", "buyer");
  const [state, setState] = useQueryParam("state", "all");
  const [shown, setShown] = useState(PAGE);
  const jobs = useResource<Job[]>(`jobs?side=${side === "provider" ? "provider" : "buyer"}`);
  const owners = useOwners();
  const { byJob } = useDisputes();
  const states = [...new Set((jobs.data ?? []).map((j) => j.state))].sort();
  const buyer = side !== "provider";

  const columns: Column<Job>[] = [
    { label: "Job", cell: (j) => <JobLink id={j.job_id} side={side} /> },
    {
      label: buyer ? "Provider" : "Buyer",
      cell: (j) => <ProviderLink address={buyer ? jobProvider(j, live.facts.get(j.job_id), owners) : j.counterparty} />,
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
    {
      label: "Check",
      cell: (j) => {
        const c = jobCheck(j, live.facts.get(j.job_id), disputeOf(byJob, j.job_id));
        return c.state ? (
          <Badge value={c.state} title={c.why} />
        ) : (
          <span class="muted" title={c.why}>
            not seen
          </span>
        );
      },
    },
    {
      label: "Outcome",
      cell: (j) =>
        live.facts.get(j.job_id)?.outcome ?? (
          <span class="muted" title="open the job for its outcome">
            —
          </span>
        ),
    },
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
          const rows = all
            .filter((j) => state === "all" || j.state === state)
            .sort((a, b) => b.created_at - a.created_at || b.updated_at - a.updated_at);
          return (
            <>
              <Count testid="job-count">
                {count(rows.length)} jobs{state !== "all" ? ` ${state}` : ""}
                {rows.length > shown ? `, newest ${shown} shown` : ""}
                {all.length >= MAX_JOBS ? ` (the node returns ${count(MAX_JOBS)} of its jobs, in id order: not always the newest)` : ""}
              </Count>
              <Table
                empty={`No ${state} jobs among the ${count(all.length)} this node stored.`}
                caption="Jobs"
                testid="jobs"
                columns={columns}
                rows={rows.slice(0, shown)}
                rowKey={(j) => j.job_id}
              />
              <p class="muted small">
                Check and outcome are what this page saw live; for a job finished before it opened, open the job (the job list does not
                carry them).
              </p>
              {rows.length > shown && (
                <button type="button" class="button" onClick={() => setShown(shown + PAGE)}>
                  Show {Math.min(PAGE, rows.length - shown)} more
                </button>
              )}
            </>
          );
        }}
      </Loaded>
    </Page>
  );
}
