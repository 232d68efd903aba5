// The explorer in a real browser (Debian's chromium, driven by playwright-core) against a
// live devnet: offers and jobs appear without a reload, a provider and a job open, a
// cheating provider's dispute is followed to its evidence and outcome, the views work from
// the keyboard and at phone width, and errors are said. Screenshots go to test-results/.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startDevnet } from "./devnet.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "../..");
const results = join(here, "../test-results");
mkdirSync(results, { recursive: true });

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const t0 = Date.now();
const since = () => `${((Date.now() - t0) / 1000).toFixed(0)} s`;

let devnet;
let browser;
/** Uncaught errors in any page: a view that throws fails the test. */
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
  await page.goto(devnet.url + path);
  return page;
}

/** A screenshot: the whole page on a desktop, the first screens on a phone. */
const shot = (page, name, fullPage = true) => page.screenshot({ path: join(results, `${name}.png`), fullPage });

const rowCount = (page, testid) => page.locator(`[data-testid="${testid}"] tbody tr`).count();

/** Waits until the table has at least `n` rows, without reloading the page. */
async function waitRows(page, testid, n, timeout) {
  await page.waitForFunction(([id, min]) => document.querySelectorAll(`[data-testid="${id}"] tbody tr`).length >= min, [testid, n], {
    timeout,
    polling: 250,
  });
  return rowCount(page, testid);
}

async function heading(page) {
  return (await page.locator("h1").textContent())?.trim();
}

/** Neither the page nor any table, chart or output in it is wider than the screen. */
async function noSideScroll(page, width) {
  const w = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(w <= width + 1, `${page.url()} scrolls sideways at ${width} px (content ${w} px wide)`);
  const over = await page.evaluate(() =>
    [...document.querySelectorAll(".table-wrap, .facts, .feed, .chart, td")]
      .filter((el) => el.scrollWidth > el.clientWidth + 1)
      .map((el) => `${el.className || el.tagName} ${el.getAttribute("data-label") ?? ""} (${el.scrollWidth} > ${el.clientWidth})`),
  );
  assert.deepEqual(over, [], `${page.url()}: content wider than its box at ${width} px`);
}

let desktop;
let page;

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

test("jobs appear live with state, price and check", async () => {
  await page.getByRole("navigation").getByRole("link", { name: "Jobs" }).click();
  assert.equal(await heading(page), "Jobs");
  const first = await waitRows(page, "jobs", 1, 60_000);
  const count = async () => Number((await page.getByTestId("job-count").textContent()).match(/^[\d,]+/)[0].replace(/,/g, ""));
  const before = await count();
  await page.waitForFunction(
    (b) =>
      Number(
        document
          .querySelector('[data-testid="job-count"]')
          .textContent.match(/^[\d,]+/)[0]
          .replace(/,/g, ""),
      ) > b,
    before,
    { timeout: 30_000 },
  );
  console.log(`jobs: ${before} then ${await count()} at ${since()} (rows ${first}+)`);
  assert.ok(await page.evaluate(() => window.__sameDocument), "the page was reloaded");
  // A job's price is shown in tokens; some jobs were sampled and their check seen live.
  await page.locator('[data-testid="jobs"] td[data-label="Price"]', { hasText: "tokens" }).first().waitFor();
  await page.locator('[data-testid="jobs"] td[data-label="Check"] .badge').first().waitFor({ timeout: 30_000 });
  await shot(page, "jobs");
});

test("the overview charts activity and streams events", async () => {
  await page.getByRole("navigation").getByRole("link", { name: "Overview" }).click();
  assert.equal(await heading(page), "Network overview");
  await page.getByTestId("connection").and(page.locator('[data-state="live"]')).waitFor();
  await page.locator('[data-testid="chart-jobs"] canvas').waitFor();
  await page.locator('[data-testid="chart-price"] canvas').waitFor();
  await page.locator('[data-testid="event-feed"] li').first().waitFor({ timeout: 20_000 });
  assert.ok(await page.evaluate(() => window.__sameDocument), "the page was reloaded");
  await shot(page, "overview");
});

test("a provider opens with stake, checks, slashes and reputation", async () => {
  await page.getByRole("navigation").getByRole("link", { name: "Providers" }).click();
  await waitRows(page, "providers", 4, 30_000);
  await shot(page, "providers");
  const link = page.locator('[data-testid="providers"] tbody tr td[data-label="Provider"] a').first();
  const addr = await link.locator("code").getAttribute("title");
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

let jobPath;

test("a job opens with its outputs", async () => {
  await page.getByRole("navigation").getByRole("link", { name: "Jobs" }).click();
  await page.getByLabel("State").selectOption("paid");
  await waitRows(page, "jobs", 1, 30_000);
  await page.locator('[data-testid="jobs"] tbody tr td[data-label="Job"] a').first().click();
  assert.equal(await heading(page), "Job");
  jobPath = new URL(page.url()).pathname;
  const facts = page.getByTestId("job-facts");
  await facts.waitFor();
  assert.match(await facts.textContent(), /paid/);
  const stdout = page.locator('[data-testid="stdout"] pre');
  await stdout.waitFor();
  assert.ok((await stdout.textContent()).trim().length > 0, "stdout is shown as text");
  await shot(page, "job");
});

let disputePath;

test("a cheating provider's dispute is followed to its evidence and outcome", async () => {
  await page.getByRole("navigation").getByRole("link", { name: "Disputes" }).click();
  assert.equal(await heading(page), "Tickets and disputes");
  // Settled against the provider, with this buyer's evidence: the re-runs that caught it.
  const row = page
    .locator('[data-testid="disputes"] tbody tr', { has: page.locator('td[data-label="Outcome"] [data-value="provider_wrong"]') })
    .filter({ hasText: "re-runs" });
  await row.first().waitFor({ timeout: 150_000 });
  console.log(`dispute settled against the provider at ${since()}`);
  await shot(page, "disputes");
  await row.first().locator('td[data-label="Ticket"] a').click();
  assert.equal(await heading(page), "Ticket");
  disputePath = new URL(page.url()).pathname;
  const facts = page.getByTestId("dispute-facts");
  await facts.waitFor();
  assert.equal(await facts.locator('[data-value="provider_wrong"]').count(), 1, "outcome: provider wrong");
  assert.ok((await rowCount(page, "votes")) >= 1, "verifiers' votes");
  assert.ok((await rowCount(page, "evidence-runs")) >= 1, "the evidence's re-runs");
  assert.match(await page.getByTestId("evidence").textContent(), /found wrong/);
  assert.match(await page.getByTestId("dispute-events").textContent(), /slashed/);
  await shot(page, "dispute");

  // The provider it was about shows the slash.
  await facts.locator('.fact:has(dt:text-is("provider")) a').click();
  assert.equal(await heading(page), "Provider");
  const slashes = page.getByTestId("provider-facts").locator('.fact:has(dt:text-is("slashes")) dd');
  await page
    .waitForFunction((el) => Number(el.textContent.match(/\d+/)?.[0] ?? 0) >= 1, await slashes.elementHandle(), { timeout: 15_000 })
    .catch(async () => assert.fail(`the cheater shows no slash: ${await slashes.textContent()}`));
  await shot(page, "provider-slashed");
});

test("channels and settlements list escrow events", async () => {
  await page.getByRole("navigation").getByRole("link", { name: "Channels" }).click();
  await waitRows(page, "channels", 1, 20_000);
  await waitRows(page, "settlements", 1, 20_000);
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
    ["phone-dispute", disputePath, '[data-testid="evidence"]'],
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
