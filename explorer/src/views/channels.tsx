import type { ChainRecord, Channel } from "../api";
import { describeRecord, Seen } from "../describe";
import { count } from "../format";
import { channelViews, type ChannelView } from "../model";
import { useQueryParam } from "../router";
import { Amount, Badge, Filters, Hex, Loaded, Page, ProviderLink, Section, Select, Table, useResource } from "../ui";
import { RECENT } from "./shared";

function Used(props: { c: ChannelView }) {
  const dep = BigInt(props.c.deposit ?? "0");
  const used = BigInt(props.c.voucher ?? props.c.claimed ?? "0");
  if (dep === 0n) return <span class="muted">—</span>;
  const share = Number((used * 10000n) / dep) / 100;
  return (
    <span class="score">
      <meter min={0} max={100} value={share} aria-hidden="true" />
      <span>{share.toFixed(2)}%</span>
    </span>
  );
}

export function ChannelTable(props: { rows: ChannelView[]; empty: string }) {
  return (
    <Table
      empty={props.empty}
      caption="Payment channels"
      testid="channels"
      rows={props.rows}
      rowKey={(c) => c.channel}
      columns={[
        { label: "Channel", cell: (c) => <Hex value={c.channel} /> },
        { label: "Provider", cell: (c) => <ProviderLink address={c.provider} /> },
        { label: "State", cell: (c) => <Badge value={c.state} /> },
        { label: "Deposit", cell: (c) => <Amount units={c.deposit} />, num: true },
        { label: "Latest voucher", cell: (c) => <Amount units={c.voucher ?? null} />, num: true },
        { label: "Claimed on chain", cell: (c) => <Amount units={c.claimed ?? null} />, num: true },
        { label: "Used", cell: (c) => <Used c={c} />, num: true },
        { label: "Refund", cell: (c) => <Amount units={c.refund ?? null} />, num: true },
      ]}
    />
  );
}

const KINDS = [
  "Registered",
  "Staked",
  "ChannelOpened",
  "ChannelToppedUp",
  "VoucherClaimed",
  "CloseStarted",
  "ChannelClosed",
  "TicketClaimed",
  "TicketDisputed",
  "VerifiersDrawn",
  "VerdictSubmitted",
  "TicketSettled",
  "Slashed",
  "VerifierPaid",
];

export function Channels() {
  const channels = useResource<Channel[]>("channels");
  const recent = useResource<ChainRecord[]>(RECENT);
  const [kind, setKind] = useQueryParam("kind", "all");
  const rows = channelViews(channels.data, recent.data);
  return (
    <Page
      title="Channels and settlements"
      lead="Payment channels (a buyer's deposit for one provider, paid out by vouchers the provider claims) and the escrow's recent events."
    >
      <Section title="Channels">
        <Loaded res={channels} what="channels">
          {() => <ChannelTable rows={rows} empty="No channels yet: a buyer opens one to a provider on its first job there." />}
        </Loaded>
      </Section>
      <Section
        title="Escrow events"
        actions={
          <Filters inline label="Filter escrow events">
            <Select
              id="f-kind"
              label="Kind"
              value={kind}
              onChange={setKind}
              options={[["all", "all kinds"], ...KINDS.map((k): [string, string] => [k, k])]}
            />
          </Filters>
        }
      >
        <Loaded
          res={recent}
          what="escrow events"
          empty="No escrow events yet: this node records them as its chain watcher sees them (a block a second on the devnet)."
        >
          {(all) => {
            const list = all.filter((r) => kind === "all" || r.kind === kind).reverse();
            return (
              <Table
                empty={`No ${kind} event among the ${count(all.length)} recent ones.`}
                caption="Escrow events, newest first"
                testid="settlements"
                rows={list.slice(0, 200)}
                rowKey={(r) => `${r.block}-${r.kind}-${JSON.stringify(r.fields)}`}
                columns={[
                  {
                    label: "Seen",
                    cell: (r) => (r.seen_at !== undefined ? <Seen unix={r.seen_at} /> : <span class="muted">—</span>),
                    num: true,
                  },
                  { label: "Block", cell: (r) => count(r.block), num: true },
                  { label: "Event", cell: (r) => <code>{r.kind}</code> },
                  { label: "What", cell: (r) => describeRecord(r) },
                ]}
              />
            );
          }}
        </Loaded>
      </Section>
    </Page>
  );
}
