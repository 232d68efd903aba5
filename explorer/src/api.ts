// The node's HTTP API as the explorer reads it (node/src/api/openapi.json). Token amounts
// are decimal strings of base units; ids and addresses are 0x-prefixed hex.

export const API = "/api/v1";

/** Most jobs `GET /jobs` returns (its `limit`'s maximum). */
export const MAX_JOBS = 1000;
/**
 * Most jobs the node sorts for `GET /jobs` (node/src/api/mod.rs): past this many stored, the
 * newest-first listing is of a sample of them.
 */
export const SCAN_JOBS = 10_000;

export interface NodeInfo {
  peer_id: string;
  evm_address: string;
  listen_addrs: string[];
  peers: string[];
  offers: number;
  gossip: { accepted: number; rejected: number; ignored: number; banned: number };
  connections: { open: number; opened: number; failed: number; dials_refused: number };
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

/** What the node saw of a job's spot check (kept in memory: its latest 10,000 jobs since it started). */
export interface JobCheck {
  sampled: boolean;
  reruns: number;
  /** Whether the provider's result held; null until the check ends, or when not sampled. */
  passed: boolean | null;
  /** `Passed`, `ProviderRight`, `ProviderWrong`, `Undecided { .. }`. */
  decision: string | null;
}

export interface Job {
  job_id: string;
  spec_hash: string;
  /** The other side: a buyer's job's provider once one delivered, a provider's job's buyer. */
  counterparty: string;
  /** The counterparty, null while there is none (a buyer's job no provider delivered yet). */
  provider: string | null;
  /** How it ended, in words, as the node saw it (null: not yet, or not since the node started). */
  outcome: string | null;
  check: JobCheck;
  state: string;
  channel: string | null;
  amount: string | null;
  fuel_used: number | null;
  output_hash: string | null;
  note: string;
  created_at: number;
  updated_at: number;
  outputs?: Outputs;
  /**
   * A generation job (the inference guest's): in the listing true or false (from its spec);
   * on `GET /jobs/{id}` the summary of its completions once its outputs hold them.
   */
  generation?: boolean | Generation;
}

/** What a generation job gave: the node's summary of its first 1,000 completion lines. */
export interface Generation {
  prompts: number;
  errors: number;
  prompt_tokens: number;
  completion_tokens: number;
  /** From submission to the node's last change of the job (whole seconds, at least 1). */
  seconds: number;
  tokens_per_second: number;
  /** Base units per 1,000 tokens (prompt and completion); null for no tokens. */
  cost_per_1k_tokens: string | null;
  /** The first completion's text, at most 200 characters: a model's words, untrusted. */
  first_text: string;
  first_text_truncated: boolean;
  first_finish: string | null;
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

/** A provider: one with a live offer, or (`offer: false`) a registered account with none. */
export interface Provider {
  offer: boolean;
  evm_address: string;
  peer_id: string | null;
  provider: string;
  /** The offer's; null without an offer (as are the price and hardware). */
  offered_stake: string | null;
  stake: string | null;
  registered: boolean | null;
  price_per_gfuel: string | null;
  cpu_cores: number | null;
  memory_bytes: number | null;
  gpus: string[];
  reputation: Reputation;
}

/** An escrow event; `fields` holds the event's own fields (amounts as decimal strings). */
export interface ChainRecord {
  block: number;
  /** Unix time this node saw it; `/settlements` has it, a dispute's events do not. */
  seen_at?: number;
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

/** An answer, with the `X-Total-Count` of a listing that has one. */
export interface Answer<T> {
  data: T;
  total?: number;
}

export async function get<T>(path: string, signal?: AbortSignal): Promise<Answer<T>> {
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
  const total = Number(res.headers.get("x-total-count") ?? NaN);
  return { data: (await res.json()) as T, total: Number.isFinite(total) ? total : undefined };
}

/** One pre-flight check of this node as a provider: what stops it from earning. */
export interface PreflightCheck {
  check: "providing" | "chain" | "registered" | "stake" | "gpu" | "reachable" | "blobs";
  status: "ok" | "warning" | "blocking";
  message: string;
  fix: string | null;
}

/** A channel this node is paid from, as a provider. */
export interface OwnChannel {
  channel: string;
  buyer: string;
  state: "open" | "closing" | "closed" | "unknown" | null;
  deposit: string | null;
  voucher: string;
  paid: string | null;
  owed: string;
  claimable: boolean;
  last_job_at: number;
}

/** `GET /api/v1/provider`: this node as a provider. */
export interface OwnProvider {
  providing: boolean;
  evm_address: string;
  peer_id: string;
  offer: {
    price_per_gfuel: string;
    price_per_gpu_second: string;
    stake: string;
    cpu_cores: number;
    memory_bytes: number;
    max_input_bytes: number;
    features: string[];
  } | null;
  gpus: (Gpu & { driver: string })[];
  offer_gpu: boolean;
  chain: {
    reachable: boolean;
    error: string | null;
    stake: string | null;
    unstaking: string | null;
    min_stake: string | null;
    registered: boolean | null;
    credited: string | null;
  } | null;
  value_caps: { sampling_ppm: number; max_job_value: string | null }[];
  jobs: { total: number; scanned: number; by_state: Record<string, number>; settled: number; withheld_since_start: number };
  reputation: Reputation;
  earnings: { total: string; bucket_secs: number; buckets: { start: number; amount: string; jobs: number }[] };
  channels: OwnChannel[];
  channels_total: number;
  owed: string;
  claimable: string;
  blobs: { bytes: number; count: number; quota_bytes: number };
  network: { reachability: "unknown" | "public" | "private"; relays: number; relayed: boolean; peers: number };
  preflight: PreflightCheck[];
}

/** Counts of the market over some time: the escrow's events this node read, and its own finished jobs. */
export interface MarketCounts {
  /** This node's jobs finished, paid or withheld (this node). */
  jobs: number;
  channels: number;
  /** Vouchers claimed: one claim pays every job its voucher covers. */
  claims: number;
  /** Tickets claimed, one job each. */
  tickets: number;
  /** Paid to providers: voucher claims and settled tickets (base units). */
  volume: string;
  disputes: number;
  slashes: number;
  slashed: string;
}

/** One sample of a GPU model's offers in the order book (prices in base units). */
export interface PricePoint {
  start: number;
  offers: number;
  gpus: number;
  min_gpu_hour: string | null;
  median_gpu_hour: string | null;
  min_gfuel: string | null;
  median_gfuel: string | null;
}

/** `GET /api/v1/market`: the whole market as this node knows it, since it started. */
export interface Market {
  since: number | null;
  blocks: { first: number; last: number } | null;
  sample_secs: number;
  registered: { providers: number; stake: string } | null;
  totals: MarketCounts;
  bucket_secs: number;
  buckets: (MarketCounts & { start: number })[];
  providers: {
    evm_address: string;
    claims: number;
    tickets: number;
    volume: string;
    disputes: number;
    slashes: number;
    slashed: string;
  }[];
  /** One series per GPU model (`model` null: the CPU-only offers), the most offered first. */
  prices: { model: string | null; bucket_secs: number; points: PricePoint[] }[];
}
