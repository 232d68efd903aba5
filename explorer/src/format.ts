// Formatting: token amounts (exact, in the token's own decimals), sizes, ids, times, job outputs.

// The node's token, from `GET /api/v1/node` (`token: {decimals, symbol}`): 18 decimals and
// "tokens" until it says, or when it follows no chain.
let DECIMALS = 18n;
let UNIT = 10n ** DECIMALS;
let SYMBOL = "tokens";

/** Sets the token amounts are read in (its decimals and symbol, as the node read them on chain). */
export function setToken(decimals: number, symbol: string): void {
  if (!Number.isInteger(decimals) || decimals < 0 || decimals > 36) return;
  DECIMALS = BigInt(decimals);
  UNIT = 10n ** DECIMALS;
  const clean = symbol.replace(/[^A-Za-z0-9.$_-]/g, "").slice(0, 16);
  SYMBOL = clean || "tokens";
}

/** The token's symbol ("tokens" when the node does not say). */
export function tokenSymbol(): string {
  return SYMBOL;
}

/** The token's decimals. */
export function tokenDecimals(): number {
  return Number(DECIMALS);
}

function toBig(v: string | number | bigint | null | undefined): bigint | null {
  if (v === null || v === undefined || v === "") return null;
  try {
    return BigInt(v);
  } catch {
    return null;
  }
}

/** Base units as an exact token decimal, e.g. `0.0000448856`. */
export function tokensExact(v: string | bigint | null | undefined): string {
  const b = toBig(v);
  if (b === null) return "—";
  const neg = b < 0n;
  const a = neg ? -b : b;
  const frac = (a % UNIT).toString().padStart(Number(DECIMALS), "0").replace(/0+$/, "");
  const whole = (a / UNIT).toLocaleString("en-US");
  return `${neg ? "-" : ""}${whole}${frac ? `.${frac}` : ""}`;
}

/** Base units as tokens for reading: at most `digits` significant fraction digits. */
export function tokens(v: string | bigint | null | undefined, digits = 4): string {
  const exact = tokensExact(v);
  const dot = exact.indexOf(".");
  if (dot < 0) return exact;
  const frac = exact.slice(dot + 1);
  const lead = frac.length - frac.replace(/^0+/, "").length;
  const keep = exact.startsWith("0.") ? lead + digits : digits;
  if (frac.length <= keep) return exact;
  return `${exact.slice(0, dot)}.${frac.slice(0, keep).replace(/0+$/, "")}`.replace(/\.$/, "") + "…";
}

/** Base units as a float number of tokens (charts only: loses precision). */
export function tokensFloat(v: string | bigint | null | undefined): number {
  const b = toBig(v) ?? 0n;
  // Nine decimals kept exactly enough for a chart; fewer when the token has fewer.
  const kept = DECIMALS < 9n ? DECIMALS : 9n;
  return Number(b / 10n ** (DECIMALS - kept)) / 10 ** Number(kept);
}

export function sumUnits(values: Iterable<string | null | undefined>): bigint {
  let s = 0n;
  for (const v of values) s += toBig(v) ?? 0n;
  return s;
}

const SIZES = ["B", "KiB", "MiB", "GiB", "TiB"];

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "—";
  let i = 0;
  let v = n;
  while (v >= 1024 && i < SIZES.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v >= 10 ? 0 : 1)} ${SIZES[i]}`;
}

export function count(n: number | null | undefined): string {
  return n === null || n === undefined ? "—" : n.toLocaleString("en-US");
}

/** `0x1234…abcd`: enough to tell ids apart; the full id goes in a title. */
export function short(id: string | null | undefined, keep = 6): string {
  if (!id) return "—";
  const body = id.startsWith("0x") ? id.slice(2) : id;
  const pre = id.startsWith("0x") ? "0x" : "";
  return body.length <= keep * 2 + 1 ? id : `${pre}${body.slice(0, keep)}…${body.slice(-4)}`;
}

export function sameAddress(a: string | null | undefined, b: string | null | undefined): boolean {
  return !!a && !!b && a.toLowerCase() === b.toLowerCase();
}

/** Unix seconds as "12 s ago" / "in 3 min". */
export function ago(unix: number | null | undefined, now = Date.now() / 1000): string {
  if (!unix) return "—";
  const d = Math.round(now - unix);
  const a = Math.abs(d);
  const span =
    a < 60 ? `${a} s` : a < 3600 ? `${Math.round(a / 60)} min` : a < 86400 ? `${Math.round(a / 3600)} h` : `${Math.round(a / 86400)} d`;
  return d >= 0 ? `${span} ago` : `in ${span}`;
}

export function clock(unix: number): string {
  return new Date(unix * 1000).toLocaleTimeString("en-GB", { hour12: false });
}

/** A spot check's decision (`ProviderWrong`) as a state (`provider_wrong`). */
export function decisionValue(decision: string): string {
  return decision
    .replace(/\s*\{.*\}\s*$/, "")
    .replace(/([a-z])([A-Z])/g, "$1_$2")
    .toLowerCase();
}

export function percent(x: number, digits = 0): string {
  return `${(x * 100).toFixed(digits)}%`;
}

/** Decoded output bytes: as text when they are printable UTF-8, else a hex preview. */
export interface Decoded {
  size: number;
  text: string | null;
  hex: string;
}

export function decodeOutput(b64: string): Decoded {
  let raw: Uint8Array;
  try {
    const bin = atob(b64);
    raw = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  } catch {
    return { size: 0, text: null, hex: "(not base64)" };
  }
  let text: string | null = null;
  try {
    const t = new TextDecoder("utf-8", { fatal: true }).decode(raw);
    // Printable: no control characters but tab, newline and carriage return.
    if (!/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/.test(t)) text = t;
  } catch {
    text = null;
  }
  const hex = Array.from(raw.slice(0, 256), (x) => x.toString(16).padStart(2, "0")).join(" ");
  return { size: raw.length, text, hex: raw.length > 256 ? `${hex} …` : hex };
}
