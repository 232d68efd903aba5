import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import "./style.css";
import { live, type Connection } from "./live";
import { Link, match, useLocation } from "./router";
import { Note, Page } from "./ui";
import { setToken, tokenDecimals, tokenSymbol } from "./format";
import { Overview } from "./views/overview";
import { Offers } from "./views/offers";
import { Jobs } from "./views/jobs";
import { JobView } from "./views/job";
import { Providers } from "./views/providers";
import { ProviderDetail } from "./views/provider";
import { OwnProviderView } from "./views/own";
import { Channels } from "./views/channels";
import { Disputes } from "./views/disputes";
import { DisputeView } from "./views/dispute";
import { MarketView } from "./views/market";

const NAV: [string, string][] = [
  ["/", "Overview"],
  ["/market", "Market"],
  ["/offers", "Offers"],
  ["/jobs", "Jobs"],
  ["/providers", "Providers"],
  ["/channels", "Channels"],
  ["/disputes", "Disputes"],
  ["/provider", "This provider"],
];

const CONNECTION: Record<Connection, string> = {
  connecting: "connecting to the node…",
  live: "live",
  reconnecting: "reconnecting; refreshing every few seconds",
  offline: "event stream down; refreshing every few seconds",
};

function route(path: string) {
  let m: Record<string, string> | null;
  if (path === "/") return <Overview />;
  if (path === "/market") return <MarketView />;
  if (path === "/offers") return <Offers />;
  if (path === "/jobs") return <Jobs />;
  if ((m = match("/jobs/:id", path))) return <JobView id={m.id} />;
  if (path === "/providers") return <Providers />;
  if (path === "/provider") return <OwnProviderView />;
  if ((m = match("/providers/:address", path))) return <ProviderDetail address={m.address} />;
  if (path === "/channels") return <Channels />;
  if (path === "/disputes") return <Disputes />;
  if ((m = match("/disputes/:ticket", path))) return <DisputeView ticket={m.ticket} />;
  return (
    <Page title="Not found">
      <Note kind="empty">
        Nothing at {path}. <Link href="/">Back to the overview</Link>.
      </Note>
    </Page>
  );
}

/** The node's token, read once: amounts are shown in its decimals with its symbol. */
async function loadToken(): Promise<boolean> {
  try {
    const node = await (await fetch("/api/v1/node")).json();
    if (node?.token && typeof node.token.decimals === "number") {
      setToken(node.token.decimals, String(node.token.symbol ?? ""));
      return true;
    }
  } catch {
    // No answer yet: the views show their own errors; amounts stay at 18 decimals.
  }
  return false;
}

function App() {
  const { path } = useLocation();
  const [, tick] = useState(0);
  useEffect(() => live.subscribe(() => tick((n) => n + 1)), []);
  useEffect(() => {
    loadToken().then((read) => read && tick((n) => n + 1));
  }, []);
  const section = "/" + (path.split("/")[1] ?? "");

  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <Link href="/" class="brand">
          Sietch <span>explorer</span>
        </Link>
        <nav aria-label="Views">
          <ul>
            {NAV.map(([href, label]) => (
              <li>
                <Link href={href} aria-current={section === href ? "page" : undefined}>
                  {label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <p class={`conn conn-${live.connection}`} role="status" data-testid="connection" data-state={live.connection}>
          <span class="dot" aria-hidden="true" />
          {CONNECTION[live.connection]}
        </p>
      </header>
      <main id="main" tabIndex={-1}>
        {route(path)}
      </main>
      <footer class="muted">
        Read-only view of this node's <a href="/api/v1/openapi.json">HTTP API</a>. Amounts in {tokenSymbol()} ({tokenDecimals()} decimals);
        hover an amount or id for its exact value.
      </footer>
    </>
  );
}

live.start();
render(<App />, document.getElementById("app")!);
