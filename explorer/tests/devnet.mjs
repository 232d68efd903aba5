// Starts `sietch devnet` for the browser tests and stops it on every way out: the test's
// own end, a failure, Ctrl-C, SIGTERM from a test runner, or the process exiting.

import { spawn } from "node:child_process";
import { createWriteStream, existsSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Runs the devnet (4 providers, provider-0 cheating on every job, every job
 * spot-checked) with the buyer's API on a free port; resolves once the API answers.
 */
export async function startDevnet({ root, logPath, args = [] }) {
  const bin = process.env.SIETCH_BIN ?? join(root, "target/debug/sietch");
  if (!existsSync(bin)) throw new Error(`${bin} is missing: build it with \`cargo build -p sietch-cli\``);
  const port = await freePort();
  const log = createWriteStream(logPath);
  const child = spawn(
    bin,
    [
      "devnet",
      "--providers",
      "4",
      // The cheater cheats on every job and every job is checked: its first job is caught
      // (at half and half it could first be drawn only as a re-runner, lose its reputation
      // there and get no job of its own to be caught on).
      "--cheat-ppm",
      "1000000",
      "--sampling-ppm",
      "1000000",
      "--api-port",
      String(port),
      "--jobs",
      "0",
      // The node serves the explorer only from the directory it is given.
      "--explorer-dir",
      join(root, "explorer/dist"),
      ...args,
    ],
    {
      cwd: root,
      // Its own process group, so that anvil and anything else it starts go with it.
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, SIETCH_ROOT: root, PATH: `${join(root, "tools/bin")}:${process.env.PATH}` },
    },
  );
  let tail = "";
  // Each provider's own API, as the devnet prints it: `provider-1  0x…  staked …  api http://127.0.0.1:PORT/`.
  const providerApis = new Map();
  let lines = "";
  const keep = (chunk) => {
    log.write(chunk);
    tail = (tail + chunk.toString()).slice(-4000);
    lines += chunk.toString();
    const cut = lines.lastIndexOf("\n");
    if (cut < 0) return;
    for (const l of lines.slice(0, cut).split("\n")) {
      const m = l.match(/^provider-(\d+)\s.*\sapi (http:\/\/[\d.:]+)\/?$/);
      if (m) providerApis.set(Number(m[1]), m[2]);
    }
    lines = lines.slice(cut + 1).slice(-4000);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  let exited = null;
  const done = new Promise((resolve) =>
    child.on("exit", (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    }),
  );

  const killGroup = (sig) => {
    try {
      process.kill(-child.pid, sig);
    } catch {
      // Already gone.
    }
  };
  const onExit = () => killGroup("SIGKILL");
  const onSignal = (sig) => {
    killGroup("SIGKILL");
    process.exit(sig === "SIGINT" ? 130 : 143);
  };
  process.on("exit", onExit);
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  let stopped = false;
  /** Ctrl-C to the devnet (it settles and exits), then whatever is left of its group is killed. */
  const stop = async () => {
    if (stopped) return exited;
    stopped = true;
    if (!exited) {
      child.kill("SIGINT");
      await Promise.race([done, sleep(20_000)]);
    }
    killGroup("SIGKILL");
    await Promise.race([done, sleep(5_000)]);
    process.off("exit", onExit);
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await new Promise((r) => log.end(r));
    return exited;
  };

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`the devnet exited (${JSON.stringify(exited)}) before its API answered:\n${tail}`);
    }
    try {
      const r = await fetch(`${url}/api/v1/node`);
      if (r.ok) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the devnet's API did not answer at ${url} within 120 s:\n${tail}`);
    }
    await sleep(250);
  }
  return { url, port, stop, tail: () => tail, exited: () => exited, providerApi: (i) => providerApis.get(i) };
}
