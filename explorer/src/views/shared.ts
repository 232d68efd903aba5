// Resources several views combine.

import type { ChainRecord, Channel, Dispute } from "../api";
import { channelOwners, disputesByJob } from "../model";
import { useResource } from "../ui";

/** The escrow's recent events (the API keeps the newest; 1000 is its most per request). */
export const RECENT = "settlements?limit=1000";
export const OPENED = "settlements?kind=ChannelOpened&limit=1000";
export const REGISTERED = "settlements?kind=Registered&limit=1000";
export const SLASHED = "settlements?kind=Slashed&limit=1000";

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
