// The explorer's live state: API resources fetched on demand and kept fresh, the node's
// event stream (server-sent events), and the little those events say about a job that its
// record does not yet: the provider a job in flight was sent to, and how long it took.
//
// Freshness: a resource is re-fetched when an event that changes it arrives (at most once
// per THROTTLE_MS per resource; escrow events come on the stream too), and every
// REFRESH_LIVE_MS anyway (offers expire and stats age without an event); while the stream
// is down, every REFRESH_OFFLINE_MS.

import { ApiError, API, get, type NodeEvent } from "./api";

export type Connection = "connecting" | "live" | "reconnecting" | "offline";

export interface Resource<T> {
  data?: T;
  /** A listing's `X-Total-Count`: how many there are, of which `data` may be the first. */
  total?: number;
  error?: string;
  /** When the data was fetched (ms). */
  at?: number;
}

export interface JobFacts {
  /** The provider it was last sent to (its record names a provider once one delivers). */
  provider?: string;
  /** Milliseconds from submission to its end. */
  millis?: number;
}

export interface SeenEvent {
  seq: number;
  at: number;
  event: NodeEvent;
}

const THROTTLE_MS = 1000;
const STALE_MS = 2000;
const REFRESH_LIVE_MS = 5000;
const REFRESH_OFFLINE_MS = 3000;
const MAX_EVENTS = 200;
const MAX_FACTS = 5000;
const RETRY_STREAM_MS = 4000;

/** Which resources (by path prefix) an event kind changes. */
const TOUCHES: Record<string, string[]> = {
  announced: ["offers", "providers", "node"],
  withdrew: ["offers", "providers", "node"],
  registered: ["providers", "settlements"],
  connected: ["node"],
  disconnected: ["node"],
  banned: ["node"],
  submitted: ["jobs"],
  sent: ["jobs"],
  retrying: ["jobs"],
  accepted: ["jobs"],
  refused: ["jobs"],
  ran: ["jobs", "stats"],
  job_failed: ["jobs", "stats"],
  delivered: ["jobs"],
  result_in: ["jobs", "stats"],
  checking: ["jobs"],
  checked: ["jobs", "stats", "providers"],
  finished: ["jobs", "stats", "providers"],
  paid: ["jobs", "channels"],
  withheld: ["jobs", "disputes", "provider"],
  claimed: ["settlements", "channels", "provider"],
  channel_opened: ["channels", "settlements"],
  ticket_claimed: ["disputes", "settlements"],
  disputed: ["disputes", "settlements", "providers"],
  verdict: ["disputes", "settlements"],
  ticket_settled: ["disputes", "settlements", "providers"],
  // Escrow events (kind `escrow`), by their name.
  "escrow:Registered": ["settlements", "providers"],
  "escrow:Staked": ["settlements", "providers"],
  "escrow:ChannelOpened": ["settlements", "channels"],
  "escrow:ChannelToppedUp": ["settlements", "channels"],
  "escrow:VoucherClaimed": ["settlements", "channels", "provider"],
  "escrow:CloseStarted": ["settlements", "channels"],
  "escrow:ChannelClosed": ["settlements", "channels"],
  "escrow:TicketClaimed": ["settlements", "disputes"],
  "escrow:TicketDisputed": ["settlements", "disputes"],
  "escrow:VerifiersDrawn": ["settlements", "disputes"],
  "escrow:VerdictSubmitted": ["settlements", "disputes"],
  "escrow:TicketSettled": ["settlements", "disputes", "providers"],
  "escrow:Slashed": ["settlements", "disputes", "providers"],
  "escrow:VerifierPaid": ["settlements", "disputes"],
  "escrow:VerifierPenalized": ["settlements", "disputes", "providers"],
  "escrow:DrawRearmed": ["settlements", "disputes"],
  "escrow:Redrawn": ["settlements", "disputes"],
  delivered_in_dispute: ["disputes", "jobs"],
};

function touched(event: NodeEvent): string[] {
  const kind = event.kind === "escrow" ? `escrow:${String(event.name)}` : event.kind;
  // "jobs" is the lists and this event's own job, not every job's detail.
  const job = typeof event.job === "string" ? event.job : "";
  const prefixes = TOUCHES[kind] ?? (event.kind === "escrow" ? ["settlements"] : []);
  return prefixes.flatMap((p) => (p === "jobs" ? ["jobs?", ...(job ? [`jobs/${job}`] : [])] : [p]));
}

interface Entry {
  res: Resource<unknown>;
  watchers: number;
  inflight: boolean;
  /** A refresh asked for while one was in flight or throttled. */
  again: boolean;
  last: number;
  timer?: ReturnType<typeof setTimeout>;
}

export class Live {
  connection: Connection = "connecting";
  events: SeenEvent[] = [];
  readonly facts = new Map<string, JobFacts>();
  private readonly entries = new Map<string, Entry>();
  private readonly listeners = new Set<() => void>();
  private source?: EventSource;
  private seq = 0;
  private frame = 0;
  private poll?: ReturnType<typeof setInterval>;

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Tells listeners once per animation frame, however many changes came. */
  private changed(): void {
    if (this.frame) return;
    const run = () => {
      this.frame = 0;
      for (const fn of this.listeners) fn();
    };
    this.frame = typeof requestAnimationFrame === "function" ? requestAnimationFrame(run) : (setTimeout(run, 16) as unknown as number);
  }

  resource<T>(path: string): Resource<T> {
    return (this.entries.get(path)?.res ?? {}) as Resource<T>;
  }

  /** Keeps `path` fresh while watched; fetches it now if it never was. */
  watch(path: string): () => void {
    let e = this.entries.get(path);
    if (!e) {
      e = { res: {}, watchers: 0, inflight: false, again: false, last: 0 };
      this.entries.set(path, e);
    }
    e.watchers++;
    // A view shown again gets what it had at once, and fresh data right after.
    if (!e.res.at || Date.now() - e.res.at > STALE_MS) this.schedule(path, e);
    return () => {
      e.watchers--;
    };
  }

  /** Re-fetches every watched resource whose path starts with one of `prefixes`. */
  touch(prefixes: string[]): void {
    for (const [path, e] of this.entries) {
      if (e.watchers > 0 && prefixes.some((p) => path.startsWith(p))) this.schedule(path, e);
    }
  }

  refreshAll(): void {
    this.touch([""]);
  }

  private schedule(path: string, e: Entry): void {
    if (e.inflight || e.timer) {
      e.again = true;
      return;
    }
    const wait = e.last + THROTTLE_MS - Date.now();
    if (wait <= 0) {
      void this.fetch(path, e);
    } else {
      e.timer = setTimeout(() => {
        e.timer = undefined;
        void this.fetch(path, e);
      }, wait);
    }
  }

  private async fetch(path: string, e: Entry): Promise<void> {
    e.inflight = true;
    e.again = false;
    e.last = Date.now();
    try {
      const { data, total } = await get<unknown>(path);
      e.res = { data, total, at: Date.now() };
    } catch (err) {
      // Keep what was shown; say why it is not fresh.
      const why = err instanceof ApiError ? err.message : String(err);
      e.res = { ...e.res, error: why };
    } finally {
      e.inflight = false;
      this.changed();
      if (e.again && e.watchers > 0) this.schedule(path, e);
    }
  }

  /** Starts the event stream and the periodic refresh. */
  start(): void {
    this.connect();
    this.restartPoll();
  }

  private restartPoll(): void {
    if (this.poll) clearInterval(this.poll);
    const every = this.connection === "live" ? REFRESH_LIVE_MS : REFRESH_OFFLINE_MS;
    this.poll = setInterval(() => this.refreshAll(), every);
  }

  private setConnection(c: Connection): void {
    if (c === this.connection) return;
    const was = this.connection;
    this.connection = c;
    if ((was === "live") !== (c === "live")) this.restartPoll();
    this.changed();
  }

  private connect(): void {
    if (typeof EventSource === "undefined") {
      this.setConnection("offline");
      return;
    }
    const es = new EventSource(`${API}/events`);
    this.source = es;
    es.onopen = () => {
      this.setConnection("live");
      // Events may have been missed while connecting: catch up.
      this.refreshAll();
    };
    es.onerror = () => {
      if (es.readyState === EventSource.CLOSED) {
        this.setConnection("offline");
        es.close();
        if (this.source === es) setTimeout(() => this.connect(), RETRY_STREAM_MS);
      } else {
        this.setConnection("reconnecting");
      }
    };
    es.addEventListener("node", (m) => {
      try {
        this.ingest(JSON.parse((m as MessageEvent<string>).data) as NodeEvent);
      } catch {
        // A malformed event is skipped; the periodic refresh covers what it meant.
      }
    });
  }

  ingest(event: NodeEvent): void {
    // Escrow events say when the node saw them; the others are as good as now.
    const at = typeof event.seen_at === "number" ? event.seen_at * 1000 : Date.now();
    this.events.unshift({ seq: ++this.seq, at, event });
    if (this.events.length > MAX_EVENTS) this.events.length = MAX_EVENTS;
    this.learn(event);
    if (event.kind === "lagged") this.refreshAll();
    else this.touch(touched(event));
    this.changed();
  }

  private learn(ev: NodeEvent): void {
    const job = typeof ev.job === "string" ? ev.job : null;
    if (!job || (ev.kind !== "sent" && ev.kind !== "finished")) return;
    let f = this.facts.get(job);
    if (!f) {
      f = {};
      this.facts.set(job, f);
      if (this.facts.size > MAX_FACTS) this.facts.delete(this.facts.keys().next().value as string);
    }
    if (ev.kind === "sent") f.provider = String(ev.provider);
    if (ev.kind === "finished") f.millis = Number(ev.millis);
  }
}

export const live = new Live();
