// The network views in the browser (called from explorer.test.mjs, on its devnet): the
// market's totals and their history as the node counted them from the chain's events, the
// offers by GPU model with a price chart per model, every provider's volume, disputes and
// slashes, each figure tagged with its source; at phone width; and axe-core's accessibility
// check on every main view.

import assert from "node:assert/strict";
import { checkAccessibility, serveAxe } from "./a11y.mjs";
import { eventually, heading, noSideScroll, readable, tokensOf, waitRows } from "./helpers.mjs";

const SOURCES = ["gossip", "chain", "node"];
const sumBig = (list, f) => list.reduce((a, x) => a + BigInt(f(x)), 0n);
const same = (a, b) => a.toLowerCase() === b.toLowerCase();
const tileValue = (page, testid) => page.getByTestId(testid).locator(".tile-value").textContent();
const cell = (row, label) => row.locator(`td[data-label="${label}"]`);

/** Every tag in `scope` names a known source and says what it means in its title. */
async function tagsExplained(scope, what) {
  const tags = await scope.locator(".src").evaluateAll((ts) => ts.map((t) => ({ source: t.dataset.source, title: t.title })));
  assert.ok(tags.length > 0, `${what}: no source tag`);
  for (const t of tags) {
    assert.ok(SOURCES.includes(t.source), `${what}: a tag names ${t.source}`);
    assert.match(t.title, /^Source: \S/, `${what}: a ${t.source} tag says what it means`);
  }
  return tags.map((t) => t.source);
}

/** The legend names each source the view uses. */
async function legendNames(page, kinds) {
  const legend = page.getByTestId("source-legend");
  await legend.waitFor();
  assert.deepEqual(await legend.locator("[data-source]").evaluateAll((ts) => ts.map((t) => t.dataset.source)), kinds);
}

/** `/market`: totals by source, each the node's count of the chain's events; charts over time. */
export async function marketView({ page, api, shot }) {
  await page.getByRole("navigation").getByRole("link", { name: "Market" }).click();
  assert.equal(await heading(page), "Market");
  await legendNames(page, SOURCES);
  const tiles = page.getByTestId("market-tiles");
  await tiles.waitFor();
  // Each tile says where its figure comes from.
  const perTile = await tiles.locator("li").evaluateAll((lis) => lis.map((li) => li.querySelectorAll(".src").length));
  assert.ok(perTile.length >= 8 && perTile.every((n) => n === 1), `one source tag per tile: ${perTile}`);
  assert.deepEqual([...new Set(await tagsExplained(tiles, "market tiles"))].sort(), ["chain", "gossip", "node"]);

  // The node's totals are the chain's events it read, and the page shows the node's.
  const m = await eventually(async () => {
    const m = (await api("market")).data;
    const claims = (await api("settlements?kind=VoucherClaimed&limit=1000")).data;
    const settled = (await api("settlements?kind=TicketSettled&limit=1000")).data;
    const disputed = (await api("settlements?kind=TicketDisputed&limit=1000")).data;
    const providers = (await api("providers")).data;
    assert.ok(m.totals.claims > 0 && claims.length < 1000, `claims: ${m.totals.claims} counted, ${claims.length} listed`);
    assert.equal(m.totals.claims, claims.length, "voucher claims: the escrow's VoucherClaimed events");
    assert.equal(m.totals.disputes, disputed.length, "disputes: the escrow's TicketDisputed events");
    assert.equal(
      BigInt(m.totals.volume),
      sumBig(claims, (r) => r.fields.amount) + sumBig(settled, (r) => r.fields.to_provider),
      "volume: what claims moved and settled tickets credited",
    );
    for (const p of m.providers)
      assert.equal(p.claims, claims.filter((r) => same(r.fields.provider, p.evm_address)).length, `${p.evm_address}: claims`);
    assert.equal(
      m.totals.claims,
      m.buckets.reduce((a, b) => a + b.claims, 0),
      "the buckets add up to the totals",
    );
    assert.ok(m.totals.jobs > 0, "this node's jobs finished");
    // Registered providers and their stake: the accounts the node's providers list names.
    assert.equal(m.registered.providers, providers.length, "registered providers");
    assert.equal(
      BigInt(m.registered.stake),
      sumBig(providers, (p) => p.stake ?? 0),
      "their stake",
    );
    assert.equal(await tileValue(page, "tile-claims"), m.totals.claims.toLocaleString("en-US"));
    assert.equal(await tileValue(page, "tile-tickets"), m.totals.tickets.toLocaleString("en-US"));
    assert.equal(await tileValue(page, "tile-disputes"), m.totals.disputes.toLocaleString("en-US"));
    assert.equal(await tileValue(page, "tile-registered"), m.registered.providers.toLocaleString("en-US"));
    return m;
  }, 30_000);
  console.log(
    `market: ${m.totals.claims} claims, ${m.totals.tickets} tickets, ${m.totals.disputes} disputes, ${m.buckets.length} buckets of ${m.bucket_secs} s`,
  );

  // Over time, each chart captioned with its source.
  for (const [id, source] of [
    ["chart-market-volume", "chain"],
    ["chart-market-claims", "chain"],
    ["chart-market-disputes", "chain"],
    ["chart-market-jobs", "node"],
  ]) {
    const chart = page.getByTestId(id);
    await chart.locator("canvas").waitFor();
    assert.equal(await chart.locator("figcaption .src").getAttribute("data-source"), source, `${id}: its source`);
  }
  await shot(page, "market");
}

/** `/offers`: the book by GPU model, with a price chart per model, as the node gossips it. */
export async function offersByModel({ page, api, shot }) {
  await page.getByRole("navigation").getByRole("link", { name: "Offers" }).click();
  assert.equal(await heading(page), "Offers");
  await legendNames(page, ["gossip"]);
  await waitRows(page, "gpu-models", 1, 20_000);
  const offers = (await api("offers")).data;
  const cpu = offers.filter((o) => o.gpus.length === 0);
  const models = new Set(offers.flatMap((o) => o.gpus.map((g) => g.model)));
  await eventually(async () => {
    const now = (await api("offers")).data;
    const groups = new Set(now.map((o) => (o.gpus.length === 0 ? null : o.gpus.map((g) => g.model))).flat());
    assert.equal(await page.locator('[data-testid="gpu-models"] tbody tr').count(), groups.size, "one row per model");
  });
  // Every column of both tables says it is gossip.
  const heads = page.locator('[data-testid="gpu-models"] thead th');
  assert.deepEqual(
    [...new Set(await tagsExplained(page.locator('[data-testid="gpu-models"] thead'), "GPU models"))],
    ["gossip"],
    "GPU models: gossip",
  );
  assert.equal(await heads.locator(".src").count(), await heads.count(), "a tag in every column");
  await tagsExplained(page.locator('[data-testid="offers"] thead'), "offers");
  if (cpu.length > 0) {
    // The devnet's offers are CPU-only: prices per 10^9 fuel, none per GPU-hour.
    const row = page.locator('[data-testid="gpu-models"] tbody tr', { hasText: "CPU only" });
    await eventually(async () => {
      const now = (await api("offers")).data.filter((o) => o.gpus.length === 0);
      const fuel = now.map((o) => BigInt(o.price_per_gfuel)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
      assert.equal(await cell(row, "Offers").textContent(), String(now.length));
      assert.equal(await cell(row, "Cheapest per 10⁹ fuel").locator(".amount").getAttribute("title"), tokensOf(fuel[0]));
      assert.equal(await cell(row, "Median per 10⁹ fuel").locator(".amount").getAttribute("title"), tokensOf(fuel[fuel.length >> 1]));
      assert.equal(await cell(row, "Cheapest per GPU-hour").textContent(), "—");
    });
    assert.equal(await page.locator('[data-testid="offers"] td[data-label="Price per GPU-hour"]').first().textContent(), "—");
  }
  // One price chart per model the node sampled, the latest point the book's.
  const chart = page.locator('[data-testid="model-price-chart"]', { hasText: cpu.length > 0 ? "CPU only" : [...models][0] });
  await chart.locator("canvas").waitFor({ timeout: 30_000 });
  assert.equal(await chart.locator("figcaption .src").getAttribute("data-source"), "gossip");
  const m = await eventually(async () => {
    const m = (await api("market")).data;
    assert.equal(await page.locator('[data-testid="model-price-chart"]').count(), m.prices.length, "a chart per sampled model");
    return m;
  });
  if (cpu.length > 0) {
    const series = m.prices.find((p) => p.model === null);
    const last = series.points.at(-1);
    const fuel = cpu.map((o) => BigInt(o.price_per_gfuel));
    assert.equal(
      BigInt(last.min_gfuel),
      fuel.reduce((a, b) => (b < a ? b : a)),
      "the sample's cheapest is the book's",
    );
    assert.equal(last.min_gpu_hour, null);
  }
  await shot(page, "offers-models");
}

/** `/providers`: each provider's volume, disputes and slashes as the chain's events say. */
export async function providersFromChain({ page, api, shot }) {
  await page.getByRole("navigation").getByRole("link", { name: "Providers" }).click();
  await waitRows(page, "providers", 4, 30_000);
  await legendNames(page, SOURCES);
  for (const [label, source] of [
    ["Stake (on chain)", "chain"],
    ["Volume", "chain"],
    ["Disputes", "chain"],
    ["Slashes", "chain"],
    ["Checks passed", "node"],
    ["Reputation", "node"],
  ]) {
    const th = page.locator('[data-testid="providers"] thead th', { hasText: label });
    assert.equal(await th.locator(".src").getAttribute("data-source"), source, `${label}: its source`);
  }
  await eventually(async () => {
    const m = (await api("market")).data;
    const listed = (await api("providers")).data;
    assert.ok(
      m.providers.some((p) => BigInt(p.volume) > 0n),
      "a provider was paid on chain",
    );
    for (const p of listed) {
      const row = page.locator('[data-testid="providers"] tbody tr', { has: page.locator(`code[title="${p.evm_address}" i]`) });
      const counted = m.providers.find((x) => same(x.evm_address, p.evm_address));
      assert.equal(
        await cell(row, "Volume").locator(".amount").getAttribute("title"),
        tokensOf(counted?.volume ?? 0),
        `${p.evm_address}: volume`,
      );
      const disputes = Math.max(p.reputation.disputes, counted?.disputes ?? 0);
      assert.equal(await cell(row, "Disputes").textContent(), disputes.toLocaleString("en-US"), `${p.evm_address}: disputes`);
      const slashes = Math.max(p.reputation.slashes, counted?.slashes ?? 0);
      assert.ok(Number(await cell(row, "Slashes").textContent()) >= slashes, `${p.evm_address}: slashes`);
    }
    // The cheater was slashed, and its ticket disputed, on chain.
    assert.ok(
      m.providers.some((p) => p.slashes >= 1 && BigInt(p.slashed) > 0n),
      "a slash with its amount",
    );
  }, 30_000);
  await shot(page, "providers-network");
}

/** The network views at a phone's width (390 px): no sideways scroll, every text readable. */
export async function networkOnPhone({ browser, open, shot }) {
  const phone = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  for (const [name, path, ready] of [
    ["phone-market", "/market", '[data-testid="chart-market-volume"] canvas'],
    ["phone-offers-models", "/offers", '[data-testid="model-price-chart"] canvas'],
    ["phone-providers", "/providers", '[data-testid="providers"] tbody tr'],
  ]) {
    const p = await open(phone, path);
    await p.locator(ready).first().waitFor({ timeout: 30_000 });
    await noSideScroll(p, 390);
    await readable(p, 390);
    // A table cell on a phone is labelled with its column and that column's source.
    if (path === "/providers") {
      const before = await p
        .locator('[data-testid="providers"] td[data-label="Volume"]')
        .first()
        .evaluate((td) => getComputedStyle(td, "::before").content);
      assert.match(before, /Volume · chain/);
    }
    await shot(p, name, false);
    await p.close();
  }
  await phone.close();
}

/**
 * axe-core on each main view, on a desktop and (the market and the providers) on a phone:
 * no violation of impact serious or critical. `views`: [name, path, selector once ready].
 */
export async function accessibility({ browser, open }, views) {
  const report = [];
  for (const [width, height, list] of [
    [1280, 900, views],
    [390, 844, views.filter(([n]) => n === "market" || n === "providers")],
  ]) {
    const ctx = await browser.newContext({ viewport: { width, height } });
    await serveAxe(ctx);
    for (const [name, path, ready] of list) {
      assert.ok(path, `${name}: an earlier step found no page to open`);
      const p = await open(ctx, path);
      await p.locator(ready).first().waitFor({ timeout: 30_000 });
      const all = await checkAccessibility(p, `${name} at ${width} px`);
      report.push(`${name}@${width}: ${all.length ? all.map((v) => `${v.impact} ${v.id}`).join(", ") : "no violation"}`);
      await p.close();
    }
    await ctx.close();
  }
  console.log(`accessibility (axe-core), serious and critical fail:\n  ${report.join("\n  ")}`);
}
