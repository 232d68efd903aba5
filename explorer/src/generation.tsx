// Generation jobs (a language model's completions, docs/ai.md): the node marks them in its job
// listing (`generation: true`, from the spec; the listing reads no outputs) and summarises
// their completions on `GET /jobs/{id}` (`generation: {...}`). The jobs list fetches the
// summary of the generation jobs it shows, once each when their result is in.

import { useEffect, useState } from "preact/hooks";
import { get, type Generation, type Job, type Side } from "./api";
import { count } from "./format";
import { Amount, Badge } from "./ui";

/** The summary, when the answer holds one (the job view's answer; a list row holds only `true`). */
export function generationOf(j: Job): Generation | undefined {
  return typeof j.generation === "object" && j.generation !== null ? j.generation : undefined;
}

/** Whether a job is a generation job (marked by the node, or summarised). */
export const isGeneration = (j: Job) => j.generation === true || generationOf(j) !== undefined;

/** Tokens per second, in words: "12.3 tokens/s". */
export function tokensPerSecond(g: Generation): string {
  const t = g.tokens_per_second;
  return `${t >= 100 ? Math.round(t).toLocaleString("en-US") : t.toFixed(t >= 10 ? 1 : 2)} tokens/s`;
}

/**
 * A model's text as shown: untrusted, so only ever a text node (never markup), with control
 * characters and bidirectional overrides written as escapes so that they cannot hide or
 * reorder what is around them.
 */
export function modelText(s: string): string {
  return s.replace(
    /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`,
  );
}

/** A generation job's figures, for a list row or a fact: tokens/s and the cost per 1k tokens. */
export function GenerationFigures(props: { g: Generation }) {
  const g = props.g;
  return (
    <span class="generation-figures">
      <span data-testid="tokens-per-second" title={`${count(g.completion_tokens)} tokens generated in ${count(g.seconds)} s`}>
        {tokensPerSecond(g)}
      </span>
      {" · "}
      <span data-testid="cost-per-1k">
        {g.cost_per_1k_tokens === null ? <span class="muted">no tokens</span> : <Amount units={g.cost_per_1k_tokens} />} per 1k model tokens
      </span>
    </span>
  );
}

/** A list row's generation cell: the badge, and the figures once the summary is in. */
export function GenerationCell(props: { job: Job; summary: Generation | undefined }) {
  if (!isGeneration(props.job)) return <span class="muted">—</span>;
  const g = props.summary ?? generationOf(props.job);
  return (
    <>
      <Badge value="generation" title="a language model's completions" />{" "}
      {g ? (
        <GenerationFigures g={g} />
      ) : (
        <span class="muted">{props.job.amount === null ? "no result yet" : "reading its completions…"}</span>
      )}
    </>
  );
}

/** Summaries fetched so far, by side and job id (a job's outputs do not change once kept). */
const summaries = new Map<string, Generation>();
/** The record's `updated_at` when its summary was last asked for and not there (asked again when it changes). */
const tried = new Map<string, number>();
const inFlight = new Set<string>();
/** Jobs to ask about, by key: the path and the record's `updated_at`. */
const queue = new Map<string, { path: string; updated: number }>();
/** Views to re-render when a summary comes in. */
const listeners = new Set<() => void>();
/** Most detail requests at once. */
const PARALLEL = 4;
/** Most summaries kept. */
const MAX_KEPT = 5000;

function pump() {
  for (const [k, q] of queue) {
    if (inFlight.size >= PARALLEL) return;
    queue.delete(k);
    if (summaries.has(k) || inFlight.has(k) || tried.get(k) === q.updated) continue;
    inFlight.add(k);
    get<Job>(q.path)
      .then(({ data }) => {
        const g = generationOf(data);
        if (g) {
          if (summaries.size >= MAX_KEPT) summaries.clear();
          summaries.set(k, g);
          tried.delete(k);
        } else {
          if (tried.size >= MAX_KEPT) tried.clear();
          tried.set(k, q.updated);
        }
      })
      // A failed request is asked again when the rows change.
      .catch(() => undefined)
      .finally(() => {
        inFlight.delete(k);
        for (const f of listeners) f();
        pump();
      });
  }
}

/**
 * The summaries of the generation jobs among `jobs` (the rows shown) whose result is in:
 * each is fetched once from `GET /jobs/{id}` (again only if it had none and its record
 * changed since), at most PARALLEL at a time.
 */
export function useGenerations(jobs: Job[], side: Side): Map<string, Generation> {
  const [, setTick] = useState(0);
  useEffect(() => {
    const f = () => setTick((t) => t + 1);
    listeners.add(f);
    return () => void listeners.delete(f);
  }, []);
  const wanted = jobs.filter((j) => j.generation === true && j.amount !== null);
  const key = wanted.map((j) => `${j.job_id}@${j.updated_at}`).join();
  useEffect(() => {
    queue.clear();
    for (const j of wanted) {
      const k = `${side}|${j.job_id}`;
      if (!summaries.has(k) && tried.get(k) !== j.updated_at)
        queue.set(k, { path: `jobs/${j.job_id}?side=${side}`, updated: j.updated_at });
    }
    pump();
  }, [key, side]);
  const out = new Map<string, Generation>();
  for (const j of jobs) {
    const g = summaries.get(`${side}|${j.job_id}`);
    if (g) out.set(j.job_id, g);
  }
  return out;
}
