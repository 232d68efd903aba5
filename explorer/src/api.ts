// The node's HTTP API as the explorer reads it (node/src/api/openapi.json). Token amounts
// are decimal strings of base units; ids and addresses are 0x-prefixed hex.

export const API = "/api/v1";

/** Most jobs `GET /jobs` returns. */
export const MAX_JOBS = 1000;

export interface NodeInfo {
  peer_id: string;
  evm_address: string;
  listen_addrs: string[];
  peers: string[];
  offers: number;
  gossip: { accepted: number; rejected: number; ignored: number; banned: number };
  chain: { chain_id: number; escrow: string; token: string } | null;
}

export interface Gpu {
  model: string;
  memory_bytes: number;
  compute_capability: string;
}

export interface Offer {
  provider: string;
  peer_id: string | null;
  evm_address: string;
  cpu_cores: number;
  memory_bytes: number;
  gpus: Gpu[];
  price_per_gfuel: string;
  price_per_gpu_second: string;
  stake: string;
  addresses: string[];
  sequence: number;
  expires_at: number;
}

export type Side = "buyer" | "provider";

export interface Outputs {
  outcome: string;
  exit_code: number | null;
  stdout: string;
  files: Record<string, string>;
  output_hash: string;
  fuel_used: number;
  amount: string;
}

export interface Job {
  job_id: string;
  spec_hash: string;
  counterparty: string;
  state: string;
  channel: string | null;
  amount: string | null;
  fuel_used: number | null;
  output_hash: string | null;
  note: string;
  created_at: number;
  updated_at: number;
  outputs?: Outputs;
}

export interface Channel {
  channel: string;
  provider: string;
  cumulative: string;
  deposit: string;
}

export interface Reputation {
  score: number;
  settled_jobs: number;
  checks_passed: number;
  checks_failed: number;
  slashes: number;
  disputes: number;
}

export interface Provider {
  evm_address: string;
  peer_id: string | null;
  provider: string;
  offered_stake: string;
  stake: string | null;
  registered: boolean | null;
  price_per_gfuel: string;
  cpu_cores: number;
  memory_bytes: number;
  gpus: string[];
  reputation: Reputation;
}

/** An escrow event; `fields` holds the event's own fields (amounts as decimal strings). */
export interface ChainRecord {
  block: number;
  kind: string;
  fields: Record<string, unknown>;
}

export interface EvidenceRun {
  provider: string;
  output_hash: string;
  fuel_used: number;
  agrees: boolean;
  signature: string;
}

export interface Dispute {
  ticket: string;
  job?: string;
  state: string;
  outcome?: string;
  events: ChainRecord[];
  withheld_by_this_node?: boolean;
  decision?: string;
  evidence?: {
    summary: string | null;
    original: { provider: string };
    runs: EvidenceRun[];
  };
}

export interface Bucket {
  start: number;
  jobs: number;
  failed: number;
  checks: number;
  paid: string;
  fuel: number;
}

export interface Stats {
  bucket_secs: number;
  buckets: Bucket[];
}

/** A live event from `/api/v1/events`; `kind` names it (node/src/events.rs). */
export interface NodeEvent {
  kind: string;
  [field: string]: unknown;
}

/** The API's error answer, or a transport failure, in words. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code?: string,
  ) {
    super(message);
  }
}

export async function get<T>(path: string, signal?: AbortSignal): Promise<T> {
  let res: Response;
  try {
    res = await fetch(`${API}/${path}`, { signal, headers: { accept: "application/json" } });
  } catch (e) {
    if (signal?.aborted) throw e;
    throw new ApiError("the node did not answer (is it running?)", 0);
  }
  if (!res.ok) {
    let code: string | undefined;
    let message = `${res.status} ${res.statusText}`;
    try {
      const body = (await res.json()) as { code?: string; message?: string };
      code = body.code;
      if (body.message) message = body.message;
    } catch {
      // Not the API's JSON error: keep the status line.
    }
    throw new ApiError(message, res.status, code);
  }
  return (await res.json()) as T;
}
