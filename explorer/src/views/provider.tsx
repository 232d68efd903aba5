import type { ChainRecord, Channel, Job } from "../api";
import { recordItems } from "../describe";
import { ago, bytes, count, sameAddress } from "../format";
import { live } from "../live";
import { channelViews, disputeView, hasOffer, jobCheck, jobProvider, type ProviderView } from "../model";
import { Amount, Badge, CheckBadge, Facts, Feed, Full, JobLink, Loaded, Note, Page, Section, Table, TicketLink, useResource } from "../ui";
import { Sourced } from "../source";
import { disputesOf, OfferState, Score, slashesOf, useProviders, volumeOf } from "./providers";
import { jobsOf, RECENT, useDisputes, useOwners } from "./shared";
import { ChannelTable } from "./channels";

const names = (r: ChainRecord, a: string) =>
  Object.values(r.fields).some((v) => (Array.isArray(v) ? v.some((x) => sameAddress(String(x), a)) : sameAddress(String(v), a)));

/** Whether the offer's key is the one registered with the escrow. */
function keyMatches(p: ProviderView): string {
  if (!hasOffer(p)) return "no offer to compare";
  const r = p.listed?.registered;
  return r === null || r === undefined ? "—" : r ? "yes" : "no";
}

export function ProviderDetail(props: { address: string }) {
  const a = props.address;
  const { providers, market, list } = useProviders();
  const jobs = useResource<Job[]>(jobsOf("buyer"));
  const recent = useResource<ChainRecord[]>(RECENT);
  const channels = useResource<Channel[]>("channels");
  const owners = useOwners();
  const { disputes } = useDisputes();
  const p = list.find((x) => sameAddress(x.evm_address, a));

  // Newest first, as the node lists them.
  const theirJobs = (jobs.data ?? []).filter((j) => sameAddress(jobProvider(j, live.facts.get(j.job_id)), a));
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
            <Note kind="empty">
              This node knows no provider {a}: it has no offer here, is not registered with the escrow, and no escrow event names it.
            </Note>
          ) : (
            <>
              <Section title="Stake and reputation">
                <Facts
                  testid="provider-facts"
                  items={[
                    ["offer", <OfferState p={p} />],
                    [
                      "stake (on chain)",
                      <Sourced of="chain">
                        <Amount units={p.listed?.stake ?? null} />
                      </Sourced>,
                    ],
                    [
                      "stake stated in the offer",
                      <Sourced of="gossip">
                        <Amount units={p.listed?.offered_stake ?? p.offer?.stake ?? null} />
                      </Sourced>,
                    ],
                    ["registered key matches", keyMatches(p)],
                    [
                      "reputation",
                      <Sourced of="node">
                        <Score value={p.listed?.reputation.score} />
                      </Sourced>,
                    ],
                    [
                      "volume (paid on chain)",
                      <Sourced of="chain">
                        <Amount units={volumeOf(p, market.data)} />
                      </Sourced>,
                    ],
                    ["settled jobs", <Sourced of="chain">{count(p.listed?.reputation.settled_jobs)}</Sourced>],
                    ["checks passed", <Sourced of="node">{count(p.listed?.reputation.checks_passed)}</Sourced>],
                    ["checks failed", <Sourced of="node">{count(p.listed?.reputation.checks_failed)}</Sourced>],
                    [
                      "slashes",
                      <Sourced of="chain">
                        {count(slashesOf(p))}
                        {p.slashed > 0n && (
                          <>
                            {" "}
                            (<Amount units={p.slashed} /> slashed)
                          </>
                        )}
                      </Sourced>,
                    ],
                    ["disputes", <Sourced of="chain">{count(p.listed || p.market ? disputesOf(p) : against.length)}</Sourced>],
                  ]}
                />
                {!hasOffer(p) && (
                  <Note kind="empty">
                    No live offer from this provider (withdrawn, expired, or slashed out of the market): no buyer can pick it now. Its stake
                    is the escrow's, its reputation this node's; what the escrow recorded is below.
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
            { label: "Check", cell: (j) => <CheckBadge check={jobCheck(j)} /> },
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
