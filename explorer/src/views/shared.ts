// Resources several views combine.

import { MAX_JOBS, type ChainRecord, type Channel, type Dispute, type Side } from "../api";
import { channelOwners, disputesByJob } from "../model";
import { useResource } from "../ui";

/** The escrow's recent events (the API keeps the newest; 1000 is its most per request). */
export const RECENT = "settlements?limit=1000";
export const OPENED = "settlements?kind=ChannelOpened&limit=1000";
export const SLASHED = "settlements?kind=Slashed&limit=1000";

/** A side's newest jobs, as many as one request returns (one resource, shared by the views). */
export const jobsOf = (side: Side) => `jobs?side=${side}&limit=${MAX_JOBS}`;

/** Channel id → provider. */
export function useOwners() {
  const channels = useResource<Channel[]>("channels");
  const opened = useResource<ChainRecord[]>(OPENED);
  return channelOwners(channels.data, opened.data);
}

export function useDisputes() {
  const disputes = useResource<Dispute[]>("disputes");
  return { disputes, byJob: disputesByJob(disputes.data) };
}

const recordKey = (r: ChainRecord) => `${r.block}|${r.kind}|${JSON.stringify(r.fields)}`;

/** `records` with the time this node saw each, from `recent` escrow events: a dispute's events come without it. */
export function withSeen(records: ChainRecord[], recent: ChainRecord[] | undefined): ChainRecord[] {
  const seen = new Map((recent ?? []).map((r) => [recordKey(r), r.seen_at]));
  return records.map((r) => (r.seen_at !== undefined ? r : { ...r, seen_at: seen.get(recordKey(r)) }));
}
