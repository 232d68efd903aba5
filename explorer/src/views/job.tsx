import type { ComponentChildren } from "preact";
import type { Job } from "../api";
import { eventItems } from "../describe";
import { ago, bytes, count, decodeOutput, sameAddress } from "../format";
import { live } from "../live";
import { disputeOf, jobCheck, jobProvider } from "../model";
import { Link, useQueryParam } from "../router";
import {
  Amount,
  Badge,
  CheckBadge,
  Facts,
  Feed,
  Full,
  Hex,
  Loaded,
  Note,
  Page,
  ProviderLink,
  Section,
  TicketLink,
  useResource,
} from "../ui";
import { useDisputes } from "./shared";
import { GenerationFigures, generationOf, isGeneration, modelText } from "../generation";
import type { Generation } from "../api";

/** A generation job's summary: tokens, speed, cost per 1k and the first completion (as text only). */
function GenerationSection(props: { g: Generation }) {
  const g = props.g;
  return (
    <Section title="Generation">
      <Facts
        testid="generation-facts"
        items={[
          ["prompts", `${count(g.prompts)}${g.errors ? ` (${count(g.errors)} refused: error lines)` : ""}`],
          ["tokens", `${count(g.prompt_tokens)} prompt, ${count(g.completion_tokens)} generated`],
          ["speed", <GenerationFigures g={g} />],
          ["timed", `${count(g.seconds)} s from submission to the node's last change of the job (its result, or its check and payment)`],
        ]}
      />
      <figure class="output" data-testid="first-completion">
        <figcaption>
          First completion{" "}
          <span class="muted">
            (the model's words, shown as text{g.first_finish ? `; finish: ${g.first_finish}` : ""}
            {g.first_text_truncated ? "; its first 200 characters" : ""})
          </span>
        </figcaption>
        {g.first_text === "" ? (
          <p class="muted">empty</p>
        ) : (
          <pre tabIndex={0} dir="auto">
            {modelText(g.first_text)}
            {g.first_text_truncated ? "…" : ""}
          </pre>
        )}
      </figure>
    </Section>
  );
}

function Output(props: { name: string; b64: string; testid?: string }) {
  const d = decodeOutput(props.b64);
  return (
    <figure class="output" data-testid={props.testid}>
      <figcaption>
        {props.name}{" "}
        <span class="muted">
          ({bytes(d.size)}
          {d.text === null ? ", binary: first bytes in hex" : ""})
        </span>
      </figcaption>
      {d.size === 0 ? <p class="muted">empty</p> : <pre tabIndex={0}>{d.text ?? d.hex}</pre>}
    </figure>
  );
}

export function JobView(props: { id: string }) {
  const [side] = useQueryParam("side", "buyer");
  const res = useResource<Job>(`jobs/${props.id}?side=${side === "provider" ? "provider" : "buyer"}`);
  const { byJob } = useDisputes();
  const facts = live.facts.get(props.id);
  const seen = live.events.filter((e) => e.event.job === props.id);
  const other = side === "provider" ? "buyer" : "provider";

  return (
    <Page title="Job">
      <p>
        <Full value={props.id} />
      </p>
      <Loaded res={res} what={`job ${props.id}`}>
        {(j) => {
          const dispute = disputeOf(byJob, j.job_id);
          const provider = side === "provider" ? undefined : jobProvider(j, facts);
          return (
            <>
              <Facts
                testid="job-facts"
                items={[
                  ...(isGeneration(j)
                    ? [
                        [
                          "kind",
                          <>
                            <Badge value="generation" title="a language model's completions" />
                            {generationOf(j) && (
                              <>
                                {" "}
                                <GenerationFigures g={generationOf(j)!} />
                              </>
                            )}
                          </>,
                        ] as [string, ComponentChildren],
                      ]
                    : []),
                  [
                    "state",
                    <>
                      <Badge value={j.state} />
                      {j.note && ` ${j.note}`}
                    </>,
                  ],
                  [
                    side === "provider" ? "buyer" : "provider",
                    side === "provider" ? <Hex value={j.counterparty} /> : <ProviderLink address={provider} />,
                  ],
                  ["price", <Amount units={j.amount} />],
                  ["fuel used", count(j.fuel_used)],
                  ["check", <CheckBadge check={jobCheck(j)} detail />],
                  ["outcome", j.outputs?.outcome ?? j.outcome ?? "—"],
                  ["channel", <Hex value={j.channel} />],
                  ["output hash", <Hex value={j.output_hash} />],
                  ["spec hash", <Hex value={j.spec_hash} />],
                  ["created", ago(j.created_at)],
                  ["updated", ago(j.updated_at)],
                  ...(facts?.millis !== undefined ? [["took", `${count(facts.millis)} ms from submission`] as [string, string]] : []),
                  ...(dispute
                    ? [
                        [
                          "ticket",
                          <>
                            <TicketLink id={dispute.ticket} /> <Badge value={dispute.outcome ?? dispute.state} />
                          </>,
                        ] as [string, ComponentChildren],
                      ]
                    : []),
                ]}
              />
              {provider && sameAddress(provider, dispute?.evidence?.original.provider) && (
                <Note kind="warn">The re-runs disagreed with this provider: see the ticket's dispute.</Note>
              )}
              {generationOf(j) && <GenerationSection g={generationOf(j)!} />}
              <Section title="Outputs">
                {j.outputs ? (
                  <>
                    <Facts
                      items={[
                        ["outcome", j.outputs.outcome],
                        ["exit code", j.outputs.exit_code ?? "—"],
                        ["output hash", <Hex value={j.outputs.output_hash} />],
                      ]}
                    />
                    <Output name="stdout" b64={j.outputs.stdout} testid="stdout" />
                    {Object.entries(j.outputs.files).map(([name, b64]) => (
                      <Output name={`/output/${name}`} b64={b64} />
                    ))}
                  </>
                ) : (
                  <Note kind="empty">
                    No outputs kept for this job: it has not finished, failed before a result, or ran before the node kept outputs.
                  </Note>
                )}
              </Section>
            </>
          );
        }}
      </Loaded>
      {res.error && res.data === undefined && (
        <p>
          <Link href={`/jobs/${props.id}${other === "provider" ? "?side=provider" : ""}`}>
            Look for it among the jobs {other === "provider" ? "this node ran" : "this node bought"}
          </Link>
        </p>
      )}
      <Section title="Seen live">
        <Feed items={eventItems(seen)} empty="No event about this job since this page was opened." />
      </Section>
    </Page>
  );
}
