// The explorer in a real browser (Debian's chromium, driven by playwright-core) against a
// live devnet: offers and jobs appear without a reload, a provider and a job open, a
// cheating provider's dispute is followed to its evidence and outcome, the views work from
// the keyboard and at phone width, and errors are said. Screenshots go to test-results/.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startDevnet } from "./devnet.mjs";
import { eventually, heading, noSideScroll, rowCount, tokensOf, waitRows } from "./helpers.mjs";
import { accessibility, marketView, networkOnPhone, offersByModel, providersFromChain } from "./network.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "../..");
const results = join(here, "../test-results");
mkdirSync(results, { recursive: true });

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const t0 = Date.now();
const since = () => `${((Date.now() - t0) / 1000).toFixed(0)} s`;

let devnet;
let browser;
/** Uncaught errors and Content-Security-Policy violations in any page: a view that throws, or
 * loads what the node's policy refuses, fails the test. */
const pageErrors = [];

before(async () => {
  devnet = await startDevnet({ root, logPath: join(results, "devnet.log") });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"],
  });
});

after(async () => {
  await browser?.close().catch(() => {});
  const exit = await devnet?.stop();
  console.log(`devnet stopped (${JSON.stringify(exit)}) after ${since()}`);
});

async function open(ctx, path) {
  const page = await ctx.newPage();
  page.on("pageerror", (e) => pageErrors.push(`${path}: ${e.message}`));
  // The node's Content-Security-Policy must not block anything the explorer does.
  page.on("console", (m) => {
    if (m.type() === "error" && /Content Security Policy/i.test(m.text())) pageErrors.push(`${path}: ${m.text()}`);
  });
  // A path of the buyer's node, or a whole address (a provider's own API).
  await page.goto(path.startsWith("http") ? path : devnet.url + path);
  return page;
}

/** A screenshot: the whole page on a desktop, the first screens on a phone. */
const shot = (page, name, fullPage = true) => page.screenshot({ path: join(results, `${name}.png`), fullPage });

let desktop;
let page;
/** What the network views' checks use (network.mjs). */
const views = () => ({ browser, page, open, api, shot });

test("the node serves the built explorer at /", async () => {
  const html = await (await fetch(devnet.url + "/")).text();
  assert.match(html, /data-explorer="sietch"/, "/ is not the built explorer: run `npm run build` in explorer/");
  // A client-side route is served the app too.
  const deep = await (await fetch(devnet.url + "/jobs/0xabc")).text();
  assert.match(deep, /data-explorer="sietch"/);
  desktop = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await open(desktop, "/offers");
  // Marks this document: if it is still there later, updates came without a reload.
  await page.evaluate(() => (window.__sameDocument = true));
});

const expiries = (page) =>
  page.locator('[data-testid="offers"] td[data-label="Expires"] time').evaluateAll((ts) => ts.map((t) => t.dateTime));

test("offers appear live and filter by GPU model and memory", async () => {
  const first = await rowCount(page, "offers");
  if (first === 0) await shot(page, "offers-empty");
  const n = await waitRows(page, "offers", 4, 90_000);
  assert.equal(n, 4, "the four providers' offers");
  // Providers re-announce every 2 s with a later expiry: the rows follow without a reload.
  const was = (await expiries(page)).sort().join();
  await page.waitForFunction(
    (w) =>
      [...document.querySelectorAll('[data-testid="offers"] td[data-label="Expires"] time')]
        .map((t) => t.dateTime)
        .sort()
        .join() !== w,
    was,
    { timeout: 30_000, polling: 250 },
  );
  console.log(`offers: ${first} at load, ${n} at ${since()}, re-announced live`);
  assert.match(await page.locator('[data-testid="offers"]').textContent(), /CPU only/);
  await shot(page, "offers");

  await page.getByLabel("GPU model").selectOption("cpu");
  assert.equal(await rowCount(page, "offers"), 4, "devnet offers are CPU-only");
  await page.getByLabel("Minimum GPU memory (GiB)").fill("8");
  await page.locator('[data-state="empty"]', { hasText: "No offer matches" }).waitFor();
  assert.equal(await rowCount(page, "offers"), 0);
  assert.match(page.url(), /gpu=cpu/, "filters are kept in the address");
  await page.getByRole("button", { name: "Clear filters" }).click();
  await waitRows(page, "offers", 4, 5_000);
});

test("offers by GPU model: counts, memory, prices per GPU-hour and per 10⁹ fuel, a price chart per model (gossip)", () =>
  offersByModel(views()));

/** The API's answer, and its X-Total-Count. */
async function api(path) {
  const r = await fetch(`${devnet.url}/api/v1/${path}`);
  assert.ok(r.ok, `${path}: ${r.status}`);
  return { data: await r.json(), total: Number(r.headers.get("x-total-count")) };
}

/** The total the jobs view says: "Showing 50 of 1,234 jobs". */
const shownTotal = async (page) => {
  const m = (await page.getByTestId("job-count").textContent()).match(/^Showing ([\d,]+) of ([\d,]+) jobs/);
  assert.ok(m, "the jobs view says how many of how many it shows");
  return { shown: Number(m[1].replace(/,/g, "")), total: Number(m[2].replace(/,/g, "")) };
};

/** Waits, without a reload, until the jobs view's total is at least `n`. */
const totalReaches = (page, n, timeout) =>
  page.waitForFunction(
    (min) =>
      Number(
        document
          .querySelector('[data-testid="job-count"]')
          .textContent.match(/ of ([\d,]+) jobs/)?.[1]
          .replace(/,/g, ""),
      ) >= min,
    n,
    { timeout, polling: 250 },
  );

/** Each row of the jobs table: the job, its provider, check and outcome as shown. */
const jobRows = (page) =>
  page.locator('[data-testid="jobs"] tbody tr').evaluateAll((rows) =>
    rows.map((tr) => ({
      job: tr.querySelector('td[data-label="Job"] code')?.getAttribute("title"),
      provider: tr.querySelector('td[data-label="Provider"] code')?.getAttribute("title") ?? null,
      check:
        tr.querySelector('td[data-label="Check"] .badge')?.getAttribute("data-value") ??
        tr.querySelector('td[data-label="Check"]').textContent,
      outcome: tr.querySelector('td[data-label="Outcome"]').textContent,
    })),
  );

test("jobs appear live, newest first, with the node's total, provider, check and outcome", async () => {
  await page.getByRole("navigation").getByRole("link", { name: "Jobs" }).click();
  assert.equal(await heading(page), "Jobs");
  const first = await waitRows(page, "jobs", 1, 60_000);
  const before = (await shownTotal(page)).total;
  await totalReaches(page, before + 1, 30_000);
  console.log(`jobs: ${before} then ${(await shownTotal(page)).total} at ${since()} (rows ${first}+)`);
  assert.ok(await page.evaluate(() => window.__sameDocument), "the page was reloaded");
  // The total is the node's X-Total-Count (it grows: read between two answers), the rows are what it shows.
  const lo = (await api("jobs?side=buyer&limit=1")).total;
  await totalReaches(page, lo, 10_000);
  const said = await shownTotal(page);
  const hi = (await api("jobs?side=buyer&limit=1")).total;
  assert.ok(said.total >= lo && said.total <= hi, `total shown ${said.total}, X-Total-Count ${lo}..${hi}`);
  assert.equal(said.shown, await rowCount(page, "jobs"), "“Showing N” is the rows shown");
  assert.equal(said.shown, Math.min(50, said.total), "50 at a time");
  // Newest first: the rows are in the node's order.
  const rows = await jobRows(page);
  const order = new Map((await api("jobs?side=buyer&limit=1000")).data.map((j, i) => [j.job_id, i]));
  const at = rows.map((r) => order.get(r.job));
  assert.ok(
    at.every((i, k) => i !== undefined && (k === 0 || i > at[k - 1])),
    `rows not in the node's newest-first order: ${at.join()}`,
  );
  // A price in tokens.
  await page.locator('[data-testid="jobs"] td[data-label="Price"]', { hasText: "tokens" }).first().waitFor();
  await shot(page, "jobs");

  // A page opened now saw none of the checks live: provider, check and outcome are the node's.
  const decided = await eventually(async () => {
    const d = (await api("jobs?side=buyer&limit=100")).data.filter((j) => j.check.passed !== null);
    assert.ok(d.length > 0, "none of the newest 100 jobs had its spot check decided");
    return d;
  }, 60_000);
  const fresh = await open(desktop, "/jobs");
  await waitRows(fresh, "jobs", 1, 20_000);
  const seen = await jobRows(fresh);
  const byId = new Map((await api("jobs?side=buyer&limit=1000")).data.map((j) => [j.job_id, j]));
  const compared = seen.filter((r) => decided.some((d) => d.job_id === r.job));
  assert.ok(compared.length > 0, "a job whose check was decided before the page opened is among the rows");
  for (const r of compared) {
    const j = byId.get(r.job);
    assert.equal(r.check, j.check.passed ? "passed" : "failed", `job ${r.job}: check`);
    assert.equal(r.provider?.toLowerCase(), j.provider.toLowerCase(), `job ${r.job}: provider`);
    assert.equal(r.outcome, j.outcome, `job ${r.job}: outcome`);
  }
  console.log(`jobs: ${compared.length} rows of a fresh page show the node's check, provider and outcome`);
  await fresh.close();
});

test("the overview charts activity and streams events", async () => {
  await page.getByRole("navigation").getByRole("link", { name: "Overview" }).click();
  assert.equal(await heading(page), "Network overview");
  await page.getByTestId("connection").and(page.locator('[data-state="live"]')).waitFor();
  await page.locator('[data-testid="chart-jobs"] canvas').waitFor();
  await page.locator('[data-testid="chart-price"] canvas').waitFor();
  await page.locator('[data-testid="event-feed"] li').first().waitFor({ timeout: 20_000 });
  // Escrow events come on the stream too.
  await page
    .locator('[data-testid="event-feed"] li[data-kind="escrow"]', { hasText: "on chain, block" })
    .first()
    .waitFor({ timeout: 30_000 });
  // The node's connection counters, as its API gives them.
  const nd = await (await fetch(`${devnet.url}/api/v1/node`)).json();
  assert.ok(nd.connections.opened >= nd.connections.open && nd.connections.open >= 1, JSON.stringify(nd.connections));
  await eventually(async () =>
    assert.match(
      await page.locator('.fact:has(dt:text-is("connections")) dd').textContent(),
      /^\d[\d,]* open; since start \d[\d,]* opened, \d[\d,]* failed, \d[\d,]* dials refused at the limit$/,
    ),
  );
  assert.ok(await page.evaluate(() => window.__sameDocument), "the page was reloaded");
  await shot(page, "overview");
});

test("a provider opens with stake, checks, slashes and reputation", async () => {
  await page.getByRole("navigation").getByRole("link", { name: "Providers" }).click();
  await waitRows(page, "providers", 4, 30_000);
  // Every provider the node lists is a row, with the node's stake and settled jobs.
  await eventually(async () => {
    for (const p of (await api("providers")).data) {
      const row = page.locator('[data-testid="providers"] tbody tr', { has: page.locator(`code[title="${p.evm_address}" i]`) });
      assert.equal(await row.count(), 1, `provider ${p.evm_address} is listed once`);
      assert.equal(await row.locator('td[data-label="Stake (on chain)"] .amount').getAttribute("title"), tokensOf(p.stake));
    }
  });
  await shot(page, "providers");
  const link = page.locator('[data-testid="providers"] tbody tr td[data-label="Provider"] a').first();
  const addr = await link.locator("code").getAttribute("title");
  providerPath = `/providers/${addr}`;
  await link.click();
  assert.equal(await heading(page), "Provider");
  assert.match(page.url(), new RegExp(`/providers/${addr}$`));
  const facts = page.getByTestId("provider-facts");
  await facts.waitFor();
  const text = await facts.textContent();
  for (const w of ["stake (on chain)", "settled jobs", "checks passed", "slashes", "reputation"])
    assert.ok(text.includes(w), `provider facts lack ${w}`);
  assert.match(text, /1,000 tokens/, "the devnet stakes 1000 tokens");
  await shot(page, "provider");
});

/** `GET /api/v1/{path}` of the node at `base`. */
async function apiOf(base, path) {
  const r = await fetch(`${base}/api/v1/${path}`);
  assert.ok(r.ok, `${base} ${path}: ${r.status}`);
  return r.json();
}

test("this node's provider view: the buyer says it is no provider; a provider's shows earnings, settled jobs, stake, channels and its pre-flight check", async () => {
  // The devnet's buyer (the node the explorer is on) does not provide: the page says so plainly.
  await page.getByRole("navigation").getByRole("link", { name: "This provider" }).click();
  assert.equal(await heading(page), "This node as a provider");
  await page.getByTestId("not-providing").waitFor();
  assert.match(await page.getByTestId("verdict").textContent(), /not a provider/);
  const buyerChecks = page.locator('[data-testid="preflight"] li');
  assert.equal(await buyerChecks.count(), 1);
  assert.equal(await buyerChecks.first().getAttribute("data-status"), "blocking");
  assert.match(await buyerChecks.first().textContent(), /Fix: start it with `sietch node run --provide`/);
  await shot(page, "own-provider-buyer");

  // Provider-1 (honest) serves the same explorer on its own API, as the devnet prints it.
  const base = devnet.providerApi(1);
  assert.ok(base, "the devnet printed provider-1's API address");
  const own = await eventually(async () => {
    const o = await apiOf(base, "provider");
    assert.ok(o.providing && o.earnings.buckets.length > 0 && o.channels.length > 0, "provider-1 has been paid");
    return o;
  }, 60_000);
  assert.equal(own.chain.reachable, true);
  assert.equal(own.preflight.find((c) => c.check === "stake").status, "ok", "1000 tokens staked, above minStake");
  const pp = await open(desktop, `${base}/provider`);
  assert.equal(await heading(pp), "This node as a provider");
  await pp.locator('[data-testid="chart-earnings"] canvas').waitFor();
  // Each check of the API's pre-flight is an item with its status and, when not ok, its fix.
  const items = pp.locator('[data-testid="preflight"] li');
  assert.deepEqual(
    await items.evaluateAll((li) => li.map((l) => l.dataset.check)),
    own.preflight.map((c) => c.check),
  );
  for (const c of own.preflight) {
    const li = pp.locator(`[data-testid="preflight"] li[data-check="${c.check}"]`);
    if (c.status !== "ok") assert.match(await li.textContent(), /Fix: /);
  }
  assert.match(await pp.getByTestId("own-stake").textContent(), /1,000 tokens/);
  await waitRows(pp, "own-channels", 1, 15_000);
  await eventually(async () => {
    const o = await apiOf(base, "provider");
    assert.equal(await pp.getByTestId("tile-jobs").locator(".tile-value").textContent(), o.jobs.total.toLocaleString("en-US"));
  });
  await shot(pp, "own-provider");

  // Settled jobs count jobs, not claims: each VoucherClaimed pays every job its voucher covers.
  const addr = own.evm_address.toLowerCase();
  await eventually(async () => {
    const claims = (await api("settlements?kind=VoucherClaimed&limit=1000")).data.filter((r) => r.fields.provider.toLowerCase() === addr);
    assert.ok(claims.length > 0, "provider-1 claimed");
    const listed = (await api("providers")).data.find((p) => p.evm_address.toLowerCase() === addr);
    assert.ok(listed.reputation.settled_jobs > claims.length, `${listed.reputation.settled_jobs} settled jobs for ${claims.length} claims`);
  }, 30_000);

  // At phone width it does not scroll sideways.
  const phone = await browser.newContext({ viewport: { width: 375, height: 812 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  const small = await open(phone, `${base}/provider`);
  await small.locator('[data-testid="chart-earnings"] canvas').waitFor();
  await noSideScroll(small, 375);
  await shot(small, "phone-own-provider", false);
  await phone.close();
  await pp.close();
});

let jobPath;
let providerPath;

test("a job opens with its outputs", async () => {
  await page.getByRole("navigation").getByRole("link", { name: "Jobs" }).click();
  await page.getByLabel("State").selectOption("paid");
  await waitRows(page, "jobs", 1, 30_000);
  // A job of the toy kernels, whose stdout is text (a generation job writes none).
  await page
    .locator('[data-testid="jobs"] tbody tr', { hasNot: page.locator('[data-value="generation"]') })
    .locator('td[data-label="Job"] a')
    .first()
    .click();
  assert.equal(await heading(page), "Job");
  jobPath = new URL(page.url()).pathname;
  const facts = page.getByTestId("job-facts");
  await facts.waitFor();
  assert.match(await facts.textContent(), /paid/);
  // Its provider and outcome are the node's.
  const j = (await api(`jobs/${jobPath.split("/").pop()}`)).data;
  assert.equal(await facts.locator('.fact:has(dt:text-is("provider")) code').getAttribute("title"), j.provider);
  assert.equal(await facts.locator('.fact:has(dt:text-is("outcome")) dd').textContent(), j.outcome);
  const stdout = page.locator('[data-testid="stdout"] pre');
  await stdout.waitFor();
  assert.ok((await stdout.textContent()).trim().length > 0, "stdout is shown as text");
  await shot(page, "job");
});

/** The model the devnet's generation jobs run (`bash scripts/model.sh` caches it; the devnet never downloads it). */
const MODEL = join(process.env.SIETCH_MODEL_DIR ?? join(homedir(), ".cache/sietch/models"), "SmolLM2-135M-Instruct.Q4_1.gguf");

test("a generation job shows its badge, tokens/s, cost per 1k tokens and first completion", async (t) => {
  if (!existsSync(MODEL)) return t.skip(`no cached model at ${MODEL}: run \`bash scripts/model.sh\``);
  // The devnet submits a generation job every few seconds among its other jobs: wait, on the
  // live jobs list, for one with its figures (the list fetches each generation job's summary).
  const p = await open(desktop, "/jobs");
  const rows = p.locator('[data-testid="jobs"] tbody tr', {
    has: p.locator('td[data-label="Generation"] [data-testid="tokens-per-second"]'),
  });
  await rows.first().waitFor({ timeout: 180_000 });
  const id = await rows.first().locator('td[data-label="Job"] code').getAttribute("title");
  const row = p.locator('[data-testid="jobs"] tbody tr', { has: p.locator(`td[data-label="Job"] code[title="${id}"]`) });
  const cell = row.locator('td[data-label="Generation"]');
  const tps = await cell.getByTestId("tokens-per-second").textContent();
  const cost = await cell.locator('[data-testid="cost-per-1k"] .amount').getAttribute("title");
  await shot(p, "jobs-generation");
  const g = (await api(`jobs/${id}`)).data;
  console.log(`generation job ${id} at ${since()}: ${JSON.stringify(g.generation)}`);
  assert.equal(typeof g.generation, "object", "the node summarises the job's completions");
  assert.ok(g.generation.completion_tokens > 0 && g.generation.tokens_per_second > 0, JSON.stringify(g.generation));
  assert.equal(await cell.locator('[data-value="generation"]').count(), 1, "the generation badge");
  assert.match(tps, /^[\d,.]+ tokens\/s$/);
  const shownTps = Number(tps.replace(/[^\d.]/g, ""));
  assert.ok(
    Math.abs(shownTps - g.generation.tokens_per_second) <= 0.01 * g.generation.tokens_per_second + 0.01,
    `${tps}: tokens/s as the node says`,
  );
  assert.equal(cost, tokensOf(g.generation.cost_per_1k_tokens), "cost per 1k tokens as the node says");
  // A job that is not a generation job has no badge.
  const plain = (await api("jobs?side=buyer&limit=50")).data.find((j) => j.generation === false);
  if (plain) {
    const other = p.locator('[data-testid="jobs"] tbody tr', { has: p.locator(`td[data-label="Job"] code[title="${plain.job_id}"]`) });
    if ((await other.count()) > 0) assert.equal(await other.locator('[data-value="generation"]').count(), 0);
  }

  // The job view: the badge, the figures and the first completion, as text.
  await row.locator('td[data-label="Job"] a').click();
  assert.equal(await heading(p), "Job");
  const facts = p.getByTestId("job-facts");
  await facts.locator('[data-value="generation"]').waitFor();
  assert.match(await facts.getByTestId("tokens-per-second").textContent(), /tokens\/s$/);
  const gf = p.getByTestId("generation-facts");
  assert.match(await gf.textContent(), new RegExp(`${g.generation.completion_tokens.toLocaleString("en-US")} generated`));
  const first = p.locator('[data-testid="first-completion"] pre');
  if (g.generation.first_text !== "") {
    await first.waitFor();
    // As the node gave it, control and bidirectional-override characters written as escapes.
    const escaped = g.generation.first_text.replace(
      /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g,
      (c) => `\\u{${c.codePointAt(0).toString(16)}}`,
    );
    assert.equal(await first.textContent(), escaped + (g.generation.first_text_truncated ? "…" : ""));
    // Text, not markup: the model's words never become elements.
    assert.equal(await first.locator("*").count(), 0);
  }
  await shot(p, "job-generation");
  await p.close();
});

let disputePath;

/** What the node and the devnet's log say about tickets and disputes: the failure message of a
 * dispute that never settled against the provider names the step that did not happen. */
async function disputeTrail() {
  const api = await fetch(`${devnet.url}/api/v1/disputes`)
    .then((r) => r.text())
    .catch((e) => `unreachable: ${e.message}`);
  let lines = [];
  try {
    lines = readFileSync(join(results, "devnet.log"), "utf8")
      .split("\n")
      .filter((l) => /disput|ticket|verdict|verifier|withh|slash|check|WARN|ERROR/i.test(l) && !/ from \d+ channels? in /.test(l));
  } catch (e) {
    lines = [`devnet.log unreadable: ${e.message}`];
  }
  return `at ${since()}; /api/v1/disputes: ${api.slice(0, 3000)}\ndevnet log (tickets, disputes, checks, warnings; last 80):\n${lines.slice(-80).join("\n")}`;
}

test("a cheating provider's dispute is followed to its evidence and outcome", async () => {
  await page.getByRole("navigation").getByRole("link", { name: "Disputes" }).click();
  assert.equal(await heading(page), "Tickets and disputes");
  // Settled against the provider. With this buyer's evidence (the re-runs that caught it)
  // when the cheater was caught on a job of its own; a cheater drawn first as a re-runner of
  // other providers' jobs is disputed over that re-run, whose ticket carries no evidence of
  // its own (the check it lied in is the other job's), and once slashed it gets no job of its
  // own: which comes first depends on the draw.
  const wrong = page.locator('[data-testid="disputes"] tbody tr', {
    has: page.locator('td[data-label="Outcome"] [data-value="provider_wrong"]'),
  });
  await wrong
    .first()
    .waitFor({ timeout: 150_000 })
    .catch(async (e) => assert.fail(`${e.message}\n${await disputeTrail()}`));
  // A little longer for one with evidence, if the cheater's own job is also disputed.
  const withEvidence = wrong.filter({ hasText: "re-runs" });
  const hasEvidence = await withEvidence
    .first()
    .waitFor({ timeout: 20_000 })
    .then(() => true)
    .catch(() => false);
  const row = hasEvidence ? withEvidence : wrong;
  console.log(`dispute settled against the provider at ${since()} (${hasEvidence ? "with" : "without"} re-run evidence)`);
  await shot(page, "disputes");
  await row.first().locator('td[data-label="Ticket"] a').click();
  assert.equal(await heading(page), "Ticket");
  disputePath = new URL(page.url()).pathname;
  const facts = page.getByTestId("dispute-facts");
  await facts.waitFor();
  assert.equal(await facts.locator('[data-value="provider_wrong"]').count(), 1, "outcome: provider wrong");
  assert.ok((await rowCount(page, "votes")) >= 1, "verifiers' votes");
  if (hasEvidence) {
    assert.ok((await rowCount(page, "evidence-runs")) >= 1, "the evidence's re-runs");
    assert.match(await page.getByTestId("evidence").textContent(), /found wrong/);
  }
  assert.match(await page.getByTestId("dispute-events").textContent(), /slashed/);
  // Each escrow event with the time this node saw it.
  await page.locator('[data-testid="dispute-events"] li time').first().waitFor();
  await shot(page, "dispute");

  // The provider it was about shows the slash.
  await facts.locator('.fact:has(dt:text-is("provider")) a').click();
  assert.equal(await heading(page), "Provider");
  const slashes = page.getByTestId("provider-facts").locator('.fact:has(dt:text-is("slashes")) dd');
  await page
    .waitForFunction((el) => Number(el.textContent.match(/\d+/)?.[0] ?? 0) >= 1, await slashes.elementHandle(), { timeout: 15_000 })
    .catch(async () => assert.fail(`the cheater shows no slash: ${await slashes.textContent()}`));
  const cheater = decodeURIComponent(new URL(page.url()).pathname.split("/").pop());

  // Slashed out of the market: its offer goes, and the providers list still shows it, marked,
  // with the stake and slashes the node reports.
  await page.getByRole("navigation").getByRole("link", { name: "Providers" }).click();
  const listing = page.locator('[data-testid="providers"] tbody tr', { has: page.locator(`code[title="${cheater}" i]`) });
  await listing.locator('[data-value="no_live_offer"]').waitFor({ timeout: 90_000 });
  console.log(`the cheater's offer is gone at ${since()}`);
  assert.equal(await listing.locator('[data-value="slashed"]').count(), 1, "marked slashed");
  await eventually(async () => {
    const listed = (await api("providers")).data.find((p) => p.evm_address.toLowerCase() === cheater.toLowerCase());
    assert.equal(listed?.offer, false, "the node lists the cheater without an offer");
    const shown = Number(await listing.locator('td[data-label="Slashes"]').textContent());
    assert.ok(shown >= Math.max(1, listed.reputation.slashes), `its slashes: ${shown} shown, the node counts ${listed.reputation.slashes}`);
    assert.equal(await listing.locator('td[data-label="Stake (on chain)"] .amount').getAttribute("title"), tokensOf(listed.stake));
  });
  assert.match(await page.getByTestId("provider-count").textContent(), /4 providers, 3 with a live offer/);
  await shot(page, "providers-slashed");
  await listing.locator('td[data-label="Provider"] a').click();
  assert.equal(await heading(page), "Provider");
  await page.locator('[data-state="empty"]', { hasText: "No live offer from this provider" }).waitFor();
  await shot(page, "provider-slashed");
});

test("the market view: totals now and over time, each the node's count of the chain's events or of its own jobs, with its source", () =>
  marketView(views()));

test("every provider known from the chain with its stake, volume, disputes and slashes", () => providersFromChain(views()));

test("channels and settlements list escrow events", async () => {
  await page.getByRole("navigation").getByRole("link", { name: "Channels" }).click();
  await waitRows(page, "channels", 1, 20_000);
  await waitRows(page, "settlements", 1, 20_000);
  // The newest event with the time the node saw it.
  const { block, kind, seen } = await page
    .locator('[data-testid="settlements"] tbody tr')
    .first()
    .evaluate((tr) => ({
      block: Number(tr.querySelector('td[data-label="Block"]').textContent.replace(/,/g, "")),
      kind: tr.querySelector('td[data-label="Event"]').textContent,
      seen: tr.querySelector('td[data-label="Seen"] time')?.getAttribute("datetime"),
    }));
  const records = (await api("settlements?limit=1000")).data.filter((r) => r.block === block && r.kind === kind);
  assert.ok(
    records.some((r) => new Date(r.seen_at * 1000).toISOString() === seen),
    `${kind} in block ${block} shown as seen at ${seen}; the node says ${records.map((r) => r.seen_at).join()}`,
  );
  await page.getByLabel("Kind").selectOption("VoucherClaimed");
  await page.locator('[data-testid="settlements"] code', { hasText: "VoucherClaimed" }).first().waitFor();
  await shot(page, "channels");
});

test("the views work from the keyboard", async () => {
  const p = await open(desktop, "/");
  await p.keyboard.press("Tab");
  assert.equal(await p.evaluate(() => document.activeElement.textContent.trim()), "Skip to content");
  const seen = [];
  while (seen.length < 10 && seen.at(-1) !== "Offers") {
    await p.keyboard.press("Tab");
    seen.push(await p.evaluate(() => document.activeElement.textContent.trim()));
  }
  assert.equal(seen.at(-1), "Offers", `Tab reaches the Offers link (focused in turn: ${seen.join(" | ")})`);
  const outline = await p.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
  assert.notEqual(outline, "none", "focus is visible");
  await p.keyboard.press("Enter");
  await p.waitForURL(/\/offers$/);
  assert.equal(await heading(p), "Offers");
  assert.equal(await p.evaluate(() => document.activeElement.tagName), "H1", "focus moves to the new view");
  await p.close();
});

test("the views fit a phone", async () => {
  const phone = await browser.newContext({ viewport: { width: 375, height: 812 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  for (const [name, path, ready] of [
    ["phone-overview", "/", '[data-testid="chart-jobs"] canvas'],
    ["phone-offers", "/offers", '[data-testid="offers"] tbody tr'],
    ["phone-jobs", "/jobs", '[data-testid="jobs"] tbody tr'],
    ["phone-job", jobPath, '[data-testid="stdout"] pre'],
    ["phone-dispute", disputePath, '[data-testid="dispute-facts"]'],
  ]) {
    assert.ok(path, `${name}: an earlier step found no page to open`);
    const p = await open(phone, path);
    await p.locator(ready).first().waitFor({ timeout: 20_000 });
    await noSideScroll(p, 375);
    await shot(p, name, false);
    await p.close();
  }
  await phone.close();
});

test("the network views fit a 390 px phone: no sideways scroll, every text readable", () => networkOnPhone(views()));

test("accessibility: axe-core finds no serious or critical violation on any main view", () =>
  accessibility(views(), [
    ["overview", "/", '[data-testid="chart-jobs"] canvas'],
    ["market", "/market", '[data-testid="chart-market-volume"] canvas'],
    ["offers", "/offers", '[data-testid="model-price-chart"] canvas'],
    ["jobs", "/jobs", '[data-testid="jobs"] tbody tr'],
    ["job", jobPath, '[data-testid="stdout"] pre'],
    ["providers", "/providers", '[data-testid="providers"] tbody tr'],
    ["provider", providerPath, '[data-testid="provider-facts"]'],
    ["own-provider-buyer", "/provider", '[data-testid="preflight"] li'],
    ["own-provider", devnet.providerApi(1) && `${devnet.providerApi(1)}/provider`, '[data-testid="chart-earnings"] canvas'],
    ["channels", "/channels", '[data-testid="channels"] tbody tr'],
    ["disputes", "/disputes", '[data-testid="disputes"] tbody tr'],
    ["dispute", disputePath, '[data-testid="dispute-facts"]'],
  ]));

test("a model's text is shown as text, its figures as the node gives them", async () => {
  // The node's answers for one generation job, with hostile text: markup, a bidirectional
  // override and a control character must show as text.
  const id = `0x${"9a".repeat(32)}`;
  const text = '<img src=x onerror="window.__pwned=1">Paris\u202e!\u0007';
  const generation = {
    prompts: 2,
    errors: 1,
    prompt_tokens: 52,
    completion_tokens: 12,
    seconds: 4,
    tokens_per_second: 3,
    cost_per_1k_tokens: "1000000000000000",
    first_text: text,
    first_text_truncated: true,
    first_finish: "length",
  };
  const job = {
    job_id: id,
    spec_hash: `0x${"11".repeat(32)}`,
    counterparty: "0x0000000000000000000000000000000000000077",
    provider: "0x0000000000000000000000000000000000000077",
    buyer: null,
    outcome: "exited 0",
    check: { sampled: false, reruns: 0, passed: null, decision: null },
    state: "paid",
    channel: null,
    amount: "64000000000000000",
    fuel_used: 1000,
    output_hash: `0x${"0a".repeat(32)}`,
    note: "",
    created_at: Math.floor(Date.now() / 1000) - 4,
    updated_at: Math.floor(Date.now() / 1000),
  };
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const json = (r, body, headers = {}) => r.fulfill({ status: 200, contentType: "application/json", headers, body: JSON.stringify(body) });
  let details = 0;
  await ctx.route(/\/api\/v1\/jobs(\?|$)/, (r) => json(r, [{ ...job, generation: true }], { "x-total-count": "1" }));
  await ctx.route(/\/api\/v1\/jobs\/0x/, (r) => {
    details += 1;
    return json(r, {
      ...job,
      generation,
      outputs: {
        outcome: "exited 0",
        exit_code: 0,
        stdout: "",
        files: {},
        output_hash: job.output_hash,
        fuel_used: 1000,
        amount: job.amount,
      },
    });
  });
  const p = await open(ctx, "/jobs");
  const cell = p.locator('[data-testid="jobs"] td[data-label="Generation"]');
  await cell.getByTestId("tokens-per-second").waitFor();
  assert.equal(await cell.locator('[data-value="generation"]').count(), 1);
  assert.equal(await cell.getByTestId("tokens-per-second").textContent(), "3.00 tokens/s");
  assert.equal(await cell.locator('[data-testid="cost-per-1k"] .amount').getAttribute("title"), "0.001 tokens");
  assert.match(await cell.getByTestId("cost-per-1k").textContent(), /per 1k model tokens$/);
  // Asked once, kept: the list refreshes without asking again.
  await p.waitForTimeout(6_000);
  assert.equal(details, 1, "the summary is asked for once");
  await p.locator('[data-testid="jobs"] td[data-label="Job"] a').click();
  assert.equal(await heading(p), "Job");
  const first = p.locator('[data-testid="first-completion"] pre');
  await first.waitFor();
  assert.equal(await first.textContent(), '<img src=x onerror="window.__pwned=1">Paris\\u{202e}!\\u{7}…');
  assert.equal(await first.locator("*").count(), 0, "no element from the model's text");
  assert.equal(await p.evaluate(() => window.__pwned), undefined);
  assert.match(await p.getByTestId("generation-facts").textContent(), /2 \(1 refused: error lines\).*52 prompt, 12 generated/);
  assert.match(await p.getByTestId("first-completion").textContent(), /finish: length; its first 200 characters/);
  await shot(p, "job-generation-text");
  await ctx.close();
});

test("errors and a lost event stream are said", async () => {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await ctx.route("**/api/v1/offers", (r) =>
    r.fulfill({
      status: 503,
      contentType: "application/json",
      body: JSON.stringify({ code: "unavailable", message: "test: the order book is unavailable" }),
    }),
  );
  await ctx.route("**/api/v1/events", (r) => r.abort());
  const p = await open(ctx, "/offers");
  await p.locator('[data-state="error"]', { hasText: "Could not load offers: test: the order book is unavailable" }).waitFor();
  await p.getByTestId("connection").and(p.locator('[data-state="offline"], [data-state="reconnecting"]')).waitFor();
  await shot(p, "error");
  await ctx.close();
});

test("no view threw", () => {
  assert.deepEqual(pageErrors, []);
});
