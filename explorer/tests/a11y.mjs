// An automated accessibility check in the browser: axe-core (from npm, the version in
// package-lock.json) loaded into the page as a same-origin script, so the node's
// Content-Security-Policy stays as it is, and run over the whole document.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const AXE_PATH = "/__test__/axe.min.js";
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/** Serves axe-core to the pages of `ctx` at a path of the node's own origin. */
export async function serveAxe(ctx) {
  await ctx.route(`**${AXE_PATH}`, (r) => r.fulfill({ status: 200, contentType: "text/javascript", body: axeSource }));
}

/** Impacts that fail the check. */
const FAILING = new Set(["serious", "critical"]);

/**
 * Runs axe on `page` (whose context `serveAxe` prepared): fails on any violation of impact
 * serious or critical, naming the rule, its help and where. Returns every violation, minor
 * and moderate ones too, to report.
 */
export async function checkAccessibility(page, name) {
  if (!(await page.evaluate(() => typeof window.axe === "object"))) await page.addScriptTag({ url: AXE_PATH });
  const violations = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => `${n.target.join(" ")}: ${n.failureSummary?.split("\n").slice(1).join(" ").trim()}`),
    }));
  });
  const failing = violations.filter((v) => FAILING.has(v.impact));
  const said = (list) =>
    list.map((v) => `${v.impact} ${v.id} (${v.help}) at ${v.nodes.length}: ${v.nodes.slice(0, 3).join(" | ")}`).join("\n");
  assert.equal(failing.length, 0, `${name}: accessibility violations (axe-core)\n${said(failing)}`);
  return violations;
}
