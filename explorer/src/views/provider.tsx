import type { ChainRecord, Channel, Job } from "../api";
import { recordItems } from "../describe";
import { ago, bytes, count, sameAddress } from "../format";
import { live } from "../live";
import { channelViews, disputeView, jobCheck, jobProvider, disputeOf } from "../model";
import { Amount, Badge, Facts, Feed, Full, JobLink, Loaded, Note, Page, Section, Table, TicketLink, useResource } from "../ui";
import { Score, slashesOf, useProviders } from "./providers";
import { RECENT, useDisputes, useOwners } from "./shared";
import { ChannelTable } from "./channels";

const names = (r: ChainRecord, a: string) =>
  Object.values(r.fields).some((v) => (Array.isArray(v) ? v.some((x) => sameAddress(String(x), a)) : sameAddress(String(v), a)));

export function ProviderDetail(props: { address: string }) {
  const a = props.address;
  const { providers, list } = useProviders();
  const jobs = useResource<Job[]>("jobs?side=buyer");
  const recent = useResource<ChainRecord[]>(RECENT);
  const channels = useResource<Channel[]>("channels");
  const owners = useOwners();
  const { disputes, byJob } = useDisputes();
  const p = list.find((x) => sameAddress(x.evm_address, a));

  const theirJobs = (jobs.data ?? [])
    .filter((j) => sameAddress(jobProvider(j, live.facts.get(j.job_id), owners), a))
    .sort((x, y) => y.created_at - x.created_at);
  const theirChannels = channelViews(channels.data, recent.data).filter((c) => sameAddress(c.provider, a));
  const events = (recent.data ?? []).filter((r) => names(r, a)).reverse();
  const against = (disputes.data ?? []).filter((d) => sameAddress(disputeView(d, owners).provider, a));

  return (
    <Page title="Provider">
      <p>
        <Full value={a} />
      </p>
      <Loaded res={providers} what="providers">
        {() =>
          !p ? (
            <Note kind="empty">This node knows no provider {a}: it has no live offer here and no escrow event names it.</Note>
          ) : (
            <>
              <Section title="Stake and reputation">
                <Facts
                  testid="provider-facts"
                  items={[
                    ["stake (on chain)", <Amount units={p.live?.stake ?? null} />],
                    ["stake stated in the offer", <Amount units={p.live?.offered_stake ?? p.offer?.stake ?? null} />],
                    [
                      "registered key matches",
                      p.live?.registered === null || p.live?.registered === undefined ? "—" : p.live.registered ? "yes" : "no",
                    ],
                    ["reputation", <Score value={p.live?.reputation.score} />],
                    ["settled jobs", count(p.live?.reputation.settled_jobs)],
                    ["checks passed", count(p.live?.reputation.checks_passed)],
                    ["checks failed", count(p.live?.reputation.checks_failed)],
                    [
                      "slashes",
                      <>
                        {count(slashesOf(p))}
                        {p.slashed > 0n && (
                          <>
                            {" "}
                            (<Amount units={p.slashed} /> slashed)
                          </>
                        )}
                      </>,
                    ],
                    ["disputes", count(p.live?.reputation.disputes ?? against.length)],
                  ]}
                />
                {!p.live && (
                  <Note kind="empty">
                    No live offer from this provider: its stake and reputation are shown while it has one. What the escrow recorded is
                    below.
                  </Note>
                )}
              </Section>
              {p.offer && (
                <Section title="Offer">
                  <Facts
                    items={[
                      ["price per 10⁹ fuel", <Amount units={p.offer.price_per_gfuel} />],
                      ["price per GPU-second", <Amount units={p.offer.price_per_gpu_second} />],
                      [
                        "hardware",
                        `${count(p.offer.cpu_cores)} CPU cores, ${bytes(p.offer.memory_bytes)}; ${p.offer.gpus.length ? p.offer.gpus.map((g) => `${g.model} ${bytes(g.memory_bytes)}`).join(", ") : "CPU only"}`,
                      ],
                      ["peer id", <Full value={p.offer.peer_id} />],
                      ["node key (ed25519)", <Full value={p.offer.provider} />],
                      ["addresses", p.offer.addresses.join(", ") || "—"],
                      ["sequence", count(p.offer.sequence)],
                      ["expires", ago(p.offer.expires_at)],
                    ]}
                  />
                </Section>
              )}
            </>
          )
        }
      </Loaded>
      <Section title="Jobs this node sent it">
        <Table
          empty={jobs.data ? "No job of this node went to this provider." : "Loading jobs…"}
          caption="Jobs sent to this provider"
          testid="provider-jobs"
          rows={theirJobs.slice(0, 20)}
          rowKey={(j) => j.job_id}
          columns={[
            { label: "Job", cell: (j) => <JobLink id={j.job_id} /> },
            { label: "State", cell: (j) => <Badge value={j.state} /> },
            { label: "Price", cell: (j) => <Amount units={j.amount} />, num: true },
            {
              label: "Check",
              cell: (j) => <Badge value={jobCheck(j, live.facts.get(j.job_id), disputeOf(byJob, j.job_id)).state ?? null} />,
            },
            { label: "Updated", cell: (j) => ago(j.updated_at), num: true },
          ]}
        />
      </Section>
      <Section title="Disputes over its tickets">
        {against.length === 0 ? (
          <Note kind="empty">No ticket of this provider was claimed or disputed.</Note>
        ) : (
          <ul class="plain">
            {against.map((d) => (
              <li>
                ticket <TicketLink id={d.ticket} /> <Badge value={d.outcome ?? d.state} />
              </li>
            ))}
          </ul>
        )}
      </Section>
      <Section title="Channels to it">
        <ChannelTable rows={theirChannels} empty="No channel to this provider among the escrow events this node kept." />
      </Section>
      <Section title="Escrow events naming it">
        <Feed items={recordItems(events.slice(0, 50))} empty="No recent escrow event names this provider." />
      </Section>
    </Page>
  );
}
