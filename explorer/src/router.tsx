// Client-side routes on real links: the node answers any non-API path with index.html, so
// every view has its own address that can be bookmarked, reloaded and opened in a new tab.

import type { AnchorHTMLAttributes, ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";

const listeners = new Set<() => void>();

/** Moves to another view made since the page loaded (not filter changes, which replace). */
export let navigations = 0;

function notify(): void {
  for (const fn of listeners) fn();
}

if (typeof window !== "undefined")
  window.addEventListener("popstate", () => {
    navigations++;
    notify();
  });

export function navigate(href: string, replace = false): void {
  if (href === location.pathname + location.search) return;
  if (replace) history.replaceState(null, "", href);
  else {
    history.pushState(null, "", href);
    navigations++;
    window.scrollTo(0, 0);
  }
  notify();
}

/** The current location; re-renders the caller when it changes. */
export function useLocation(): { path: string; query: URLSearchParams } {
  const [, set] = useState(0);
  useEffect(() => {
    const fn = () => set((n) => n + 1);
    listeners.add(fn);
    return () => listeners.delete(fn);
  }, []);
  return { path: location.pathname.replace(/\/+$/, "") || "/", query: new URLSearchParams(location.search) };
}

/** A query parameter as state: changing it replaces the address (no history entry). */
export function useQueryParam(name: string, fallback = ""): [string, (v: string) => void] {
  const { query } = useLocation();
  const value = query.get(name) ?? fallback;
  const set = (v: string) => {
    const q = new URLSearchParams(location.search);
    if (v === fallback || v === "") q.delete(name);
    else q.set(name, v);
    const s = q.toString();
    navigate(location.pathname + (s ? `?${s}` : ""), true);
  };
  return [value, set];
}

type AnchorProps = AnchorHTMLAttributes<HTMLAnchorElement> & { href: string; children?: ComponentChildren };

/** A link that navigates in the app; modified clicks (new tab, ...) stay the browser's. */
export function Link({ href, children, ...rest }: AnchorProps) {
  const onClick = (e: MouseEvent) => {
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(href);
  };
  return (
    <a href={href} onClick={onClick} {...rest}>
      {children}
    </a>
  );
}

/** Matches `/jobs/:id`-style patterns; returns the parameters or null. */
export function match(pattern: string, path: string): Record<string, string> | null {
  const p = pattern.split("/");
  const a = path.split("/");
  if (p.length !== a.length) return null;
  const out: Record<string, string> = {};
  for (let i = 0; i < p.length; i++) {
    if (p[i].startsWith(":")) out[p[i].slice(1)] = decodeURIComponent(a[i]);
    else if (p[i] !== a[i]) return null;
  }
  return out;
}
