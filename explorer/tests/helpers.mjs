// What the browser tests share: waiting for rows, reading headings, the phone-width checks,
// amounts as the explorer's titles write them, and retrying an assertion while the page
// refreshes.

import assert from "node:assert/strict";

export const rowCount = (page, testid) => page.locator(`[data-testid="${testid}"] tbody tr`).count();

/** Waits until the table has at least `n` rows, without reloading the page. */
export async function waitRows(page, testid, n, timeout) {
  await page.waitForFunction(([id, min]) => document.querySelectorAll(`[data-testid="${id}"] tbody tr`).length >= min, [testid, n], {
    timeout,
    polling: 250,
  });
  return rowCount(page, testid);
}

export async function heading(page) {
  return (await page.locator("h1").textContent())?.trim();
}

/** Neither the page nor any table, chart or output in it is wider than the screen. */
export async function noSideScroll(page, width) {
  const w = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(w <= width + 1, `${page.url()} scrolls sideways at ${width} px (content ${w} px wide)`);
  const over = await page.evaluate(() =>
    [...document.querySelectorAll(".table-wrap, .facts, .feed, .chart, td")]
      .filter((el) => el.scrollWidth > el.clientWidth + 1)
      .map((el) => `${el.className || el.tagName} ${el.getAttribute("data-label") ?? ""} (${el.scrollWidth} > ${el.clientWidth})`),
  );
  assert.deepEqual(over, [], `${page.url()}: content wider than its box at ${width} px`);
}

/**
 * Readable at phone width: no text smaller than `min` px, and no text that starts or ends
 * outside the screen (cut off, or reachable only by scrolling sideways).
 */
export async function readable(page, width, min = 11) {
  const bad = await page.evaluate(
    ([w, px]) => {
      const out = [];
      const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
      for (let n = walker.nextNode(); n && out.length < 10; n = walker.nextNode()) {
        const el = n.parentElement;
        if (!el || !n.textContent.trim()) continue;
        if (el.closest(".sr-only, [aria-hidden='true'], .skip, script, style")) continue;
        // A table's header row, hidden (for screen readers only) where rows become cards.
        const head = el.closest("thead");
        if (head && head.getBoundingClientRect().width <= 1) continue;
        const range = document.createRange();
        range.selectNodeContents(n);
        const r = range.getBoundingClientRect();
        if (r.width === 0 || r.height === 0) continue;
        const size = parseFloat(getComputedStyle(el).fontSize);
        if (size < px) out.push(`"${n.textContent.trim().slice(0, 30)}" at ${size} px`);
        else if (r.left < -1 || r.right > w + 1)
          out.push(`"${n.textContent.trim().slice(0, 30)}" spans ${r.left.toFixed(0)}..${r.right.toFixed(0)} px`);
      }
      return out;
    },
    [width, min],
  );
  assert.deepEqual(bad, [], `${page.url()}: text not readable at ${width} px`);
}

/** Base units as the exact tokens an amount's title says, e.g. `1,000 tokens`. */
export function tokensOf(units) {
  const b = BigInt(units);
  const frac = (b % 10n ** 18n).toString().padStart(18, "0").replace(/0+$/, "");
  return `${(b / 10n ** 18n).toLocaleString("en-US")}${frac ? `.${frac}` : ""} tokens`;
}

/** Retries `check` (an async assertion) until it passes or `ms` ran out: the page refreshes within seconds. */
export async function eventually(check, ms = 15_000) {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return await check();
    } catch (e) {
      if (Date.now() > end) throw e;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}
