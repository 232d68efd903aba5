// `/provider`: this node as a provider (`GET /api/v1/provider`): what stops it from earning
// first, then what it earned over time, its jobs and checks, its stake and the job values that
// stake allows, the channels it is paid from, its GPU and blob cache.

import type { ComponentChildren } from "preact";
import type { OwnChannel, OwnProvider, PreflightCheck } from "../api";
import { TimeChart } from "../chart";
import { bytes, count, percent, tokens, tokensFloat } from "../format";
import { Amount, Badge, type Column, Facts, Hex, Loaded, Note, Page, Section, Table, Tile, useResource } from "../ui";

const fmtTokens = (v: number) => (v === 0 ? "0" : v < 0.001 ? v.toExponential(2) : v.toPrecision(3));

/** The verdict of the pre-flight check, in one sentence. */
export function verdict(p: OwnProvider): { text: string; tone: "good" | "warn" | "bad" } {
  const blocking = p.preflight.filter((c) => c.status === "blocking").length;
  const warnings = p.preflight.filter((c) => c.status === "warning").length;
  if (!p.providing) return { text: "This node is not a provider: it sells no compute, so it earns nothing.", tone: "bad" };
  if (blocking > 0)
    return {
      text: `Not earning: ${blocking} ${blocking === 1 ? "thing stops" : "things stop"} this provider${warnings ? `, and ${warnings} ${warnings === 1 ? "warning" : "warnings"}` : ""}.`,
      tone: "bad",
    };
  if (warnings > 0) return { text: `Earning, with ${warnings} ${warnings === 1 ? "warning" : "warnings"}.`, tone: "warn" };
  return { text: "Earning: every check passes.", tone: "good" };
}

const CHECK_NAME: Record<PreflightCheck["check"], string> = {
  providing: "Providing",
  chain: "Chain",
  registered: "Registered",
  stake: "Stake",
  gpu: "GPU",
  reachable: "Reachable",
  blobs: "Blob cache",
};

function Preflight(props: { checks: PreflightCheck[] }) {
  return (
    <ul class="preflight" data-testid="preflight">
      {props.checks.map((c) => (
        <li class={`check check-${c.status}`} data-check={c.check} data-status={c.status}>
          <Badge value={c.status} />
          <div>
            <strong>{CHECK_NAME[c.check] ?? c.check}</strong>: {c.message}
            {c.fix && <p class="fix">Fix: {c.fix}</p>}
          </div>
        </li>
      ))}
    </ul>
  );
}

const CHANNELS: Column<OwnChannel>[] = [
  { label: "Channel", cell: (c) => <Hex value={c.channel} /> },
  { label: "Buyer", cell: (c) => <Hex value={c.buyer} keep={4} /> },
  { label: "State", cell: (c) => <Badge value={c.state ?? "unknown"} /> },
  { label: "Latest voucher", cell: (c) => <Amount units={c.voucher} />, num: true },
  { label: "Paid on chain", cell: (c) => <Amount units={c.paid} />, num: true },
  { label: "Owed", cell: (c) => <Amount units={c.owed} />, num: true },
  { label: "Claimable", cell: (c) => (c.claimable ? "yes" : "no") },
];

function Own(props: { p: OwnProvider }) {
  const { p } = props;
  const v = verdict(p);
  const e = p.earnings;
  const paid = p.jobs.by_state["paid"] ?? 0;
  const failed = p.jobs.by_state["failed"] ?? 0;
  const r = p.reputation;
  return (
    <>
      <p class={`verdict verdict-${v.tone}`} data-testid="verdict" role="status">
        {v.text}
      </p>
      <Section title="Pre-flight check">
        <Preflight checks={p.preflight} />
      </Section>
      {!p.providing ? (
        <Note kind="empty">
          <span data-testid="not-providing">
            This node is not a provider: it announces no offer and refuses every job, so it has no earnings, channels or stake to show. Open
            the explorer on a providing node's API (each <code>sietch devnet</code> provider prints its own) to see its view.
          </span>
        </Note>
      ) : (
        <>
          <ul class="tiles" aria-label="Counts">
            <Tile label="earned, tokens" value={tokens(e.total, 4)} testid="tile-earned" source="node" />
            <Tile label="jobs run" value={count(p.jobs.total)} testid="tile-jobs" source="node" />
            <Tile label="jobs settled on chain" value={count(p.jobs.settled)} testid="tile-settled" source="chain" />
            <Tile label="owed, tokens" value={tokens(p.owed, 4)} testid="tile-owed" source="node" />
            <Tile label="claimable, tokens" value={tokens(p.claimable, 4)} source="chain" />
            <Tile label="stake, tokens" value={p.chain?.stake ? tokens(p.chain.stake, 4) : "—"} source="chain" />
          </ul>
          <Section title="Earnings over time">
            {e.buckets.length === 0 ? (
              <Note kind="empty">No job paid yet: the chart fills in as buyers pay this provider's jobs.</Note>
            ) : (
              <div class="charts">
                <TimeChart
                  testid="chart-earnings"
                  title={`Earned per ${e.bucket_secs >= 3600 ? `${e.bucket_secs / 3600} h` : e.bucket_secs >= 60 ? `${e.bucket_secs / 60} min` : `${e.bucket_secs} s`} (tokens)`}
                  yLabel="tokens"
                  x={e.buckets.map((b) => b.start)}
                  step={e.bucket_secs}
                  series={[
                    {
                      label: "earned",
                      color: "#059669",
                      values: e.buckets.map((b) => tokensFloat(b.amount)),
                      bars: true,
                      format: fmtTokens,
                    },
                  ]}
                  summary={`${tokens(e.total)} tokens earned by ${count(paid)} paid jobs over ${e.buckets.length} buckets of ${e.bucket_secs} s.`}
                />
                <TimeChart
                  testid="chart-paid-jobs"
                  title="Jobs paid"
                  yLabel="jobs"
                  x={e.buckets.map((b) => b.start)}
                  step={e.bucket_secs}
                  series={[{ label: "paid jobs", color: "#2563eb", values: e.buckets.map((b) => b.jobs), bars: true }]}
                  summary={`${count(paid)} paid jobs, at most ${count(Math.max(...e.buckets.map((b) => b.jobs)))} in one bucket.`}
                />
              </div>
            )}
          </Section>
          <div class="two">
            <Section title="Jobs and checks">
              <Facts
                testid="own-jobs"
                items={[
                  [
                    "jobs run",
                    `${count(p.jobs.total)}${p.jobs.scanned < p.jobs.total ? ` (counts below of ${count(p.jobs.scanned)})` : ""}`,
                  ],
                  [
                    "by state",
                    Object.entries(p.jobs.by_state)
                      .map(([s, n]) => `${count(n)} ${s}`)
                      .join(", ") || "none",
                  ],
                  ["settled on chain", `${count(p.jobs.settled)} jobs whose voucher the escrow has paid`],
                  ["failed", count(failed)],
                  ["checks passed", count(r.checks_passed)],
                  [
                    "checks failed",
                    `${count(r.checks_failed)}; ${count(p.jobs.withheld_since_start)} payments withheld by buyers since start`,
                  ],
                  ["disputes, slashes", `${count(r.disputes)}, ${count(r.slashes)}`],
                ]}
              />
              <p class="muted small">
                A buyer spot-checks a provider's results; this node counts the checks it made itself and what the escrow says (disputes,
                slashes). A failed check shows here as a payment withheld.
              </p>
            </Section>
            <Section title="Stake and what it allows">
              <Facts
                testid="own-stake"
                items={[
                  ["stake on chain", p.chain ? <Amount units={p.chain.stake} unit /> : "no chain configured"],
                  ["escrow's minStake", p.chain ? <Amount units={p.chain.min_stake} unit /> : "—"],
                  ["stated in the offer", <Amount units={p.offer?.stake} unit />],
                  ["unstaking", p.chain ? <Amount units={p.chain.unstaking} unit /> : "—"],
                  ["credited, not withdrawn", p.chain ? <Amount units={p.chain.credited} unit /> : "—"],
                  ...p.value_caps.map((c): [string, ComponentChildren] => [
                    `job value, ${percent(c.sampling_ppm / 1e6)} checked`,
                    c.max_job_value === null ? "any" : <Amount units={c.max_job_value} unit />,
                  ]),
                ]}
              />
              <p class="muted small">
                A buyer that spot-checks a share q of its jobs sends a job here only if it is worth at most stake · q / (1 − q): a cheat
                caught on one job in 1/q loses more stake than it gains.
              </p>
            </Section>
          </div>
          <Section title="Channels it is paid from">
            <p class="muted" data-testid="own-channel-count">
              {count(p.channels_total)} channels; owed <Amount units={p.owed} unit />, of which claimable{" "}
              <Amount units={p.claimable} unit /> (the node claims when what is owed passes its threshold, every hour, and when a channel
              starts closing).
            </p>
            <Table
              caption="Channels this provider is paid from"
              testid="own-channels"
              columns={CHANNELS}
              rows={p.channels}
              rowKey={(c) => c.channel}
              empty="No channel yet: a buyer opens one to this provider with its first job."
            />
          </Section>
          <div class="two">
            <Section title="Hardware and offer">
              <Facts
                testid="own-hardware"
                items={[
                  [
                    "GPU",
                    p.gpus.length > 0
                      ? p.gpus
                          .map((g) => `${g.model} (${bytes(g.memory_bytes)}, compute ${g.compute_capability}, driver ${g.driver})`)
                          .join(", ")
                      : p.offer_gpu
                        ? "none found: CPU only"
                        : "not offered (offer_gpu = false)",
                  ],
                  ["CPU cores", count(p.offer?.cpu_cores)],
                  ["memory a job may use", bytes(p.offer?.memory_bytes)],
                  ["price per 10⁹ fuel", <Amount units={p.offer?.price_per_gfuel} unit />],
                  ["price per GPU-second", <Amount units={p.offer?.price_per_gpu_second} unit />],
                  [
                    "reachable",
                    `${p.network.reachability === "public" ? "yes (AutoNAT: public)" : p.network.reachability === "private" ? "no (AutoNAT: private)" : "not judged yet"}; ${count(p.network.relays)} relays${p.network.relayed ? ", listening through one" : ""}; ${count(p.network.peers)} peers`,
                  ],
                ]}
              />
            </Section>
            <Section title="Model and blob cache">
              <Facts
                testid="own-blobs"
                items={[
                  ["held", `${bytes(p.blobs.bytes)} in ${count(p.blobs.count)} blobs (modules, inputs, models)`],
                  ["quota", bytes(p.blobs.quota_bytes)],
                  [
                    "used",
                    <span class="score">
                      <meter
                        min={0}
                        max={1}
                        high={0.9}
                        value={p.blobs.quota_bytes ? p.blobs.bytes / p.blobs.quota_bytes : 1}
                        aria-hidden="true"
                      />
                      <span>{percent(p.blobs.quota_bytes ? p.blobs.bytes / p.blobs.quota_bytes : 1, 1)}</span>
                    </span>,
                  ],
                ]}
              />
            </Section>
          </div>
        </>
      )}
    </>
  );
}

export function OwnProviderView() {
  const own = useResource<OwnProvider>("provider");
  return (
    <Page
      title="This node as a provider"
      lead="What this node earns selling compute, and what stops it: the pre-flight check first, each item with its fix. Everything comes from this node's store, the chain and its network."
    >
      <Loaded res={own} what="this node's provider view">
        {(p) => <Own p={p} />}
      </Loaded>
    </Page>
  );
}
