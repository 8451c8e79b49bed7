// make bench-peers: the figures of each peer's runs and the one summary line (no I/O here, so
// that test/unit/peers-stats.test.ts can check it).

/** One power-off of a peer's primary: seconds from the fault to the first acknowledged write
 * (or, for a VIP alone, to the first login through the VIP); NaN when it never came back. */
export interface RunFigure { run: number; seconds: number; lost: number | null; note?: string }

/** The nearest-rank percentile (as bench-failover's): NaN for no finite value. */
export function pct(xs: number[], p: number): number {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]! : NaN;
}

export const fmt = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : "n/a");

/** bollard's time over the peer's: below 1 is bollard faster. */
export const ratio = (bollard: number, peer: number): number => (Number.isFinite(bollard) && Number.isFinite(peer) && peer > 0 ? bollard / peer : NaN);

export interface PeerResult {
  /** the key in the summary line: bollard_mysql, bollard_redis, bollard_vip, mha, pacemaker, sentinel, keepalived_vip, ... */
  key: string;
  /** what was measured, for the table */
  what: string;
  runs: RunFigure[];
  /** why it did not run (then runs is empty) */
  skipped?: string;
}

export interface Summary { p50: number; p99: number; min: number; max: number; ok: number; lost: number | null }

/** A run that never came back counts as a failed run, not as a fast one: it is left out of the
 * percentiles and shown by ok < runs. lost is null when no run could check it. */
export function summarize(runs: RunFigure[]): Summary {
  const xs = runs.map((r) => r.seconds).filter(Number.isFinite);
  const checked = runs.filter((r) => r.lost !== null);
  return {
    p50: pct(xs, 50), p99: pct(xs, 99), min: xs.length ? Math.min(...xs) : NaN, max: xs.length ? Math.max(...xs) : NaN,
    ok: xs.length, lost: checked.length ? checked.reduce((a, r) => a + r.lost!, 0) : null,
  };
}

/** The table: one row per measured thing. */
export function table(results: PeerResult[]): string[] {
  const out = [`${"peer".padEnd(16)} ${"measured".padEnd(44)} runs  ok   p50_s   p99_s   min_s   max_s  lost_acked`];
  for (const r of results) {
    if (r.skipped) { out.push(`${r.key.padEnd(16)} ${r.what.padEnd(44)} did not run: ${r.skipped}`); continue; }
    const s = summarize(r.runs);
    out.push(`${r.key.padEnd(16)} ${r.what.padEnd(44)} ${String(r.runs.length).padStart(4)} ${String(s.ok).padStart(3)} ${[s.p50, s.p99, s.min, s.max].map((x) => fmt(x).padStart(7)).join(" ")}  ${s.lost === null ? "-" : s.lost}`);
  }
  return out;
}

/**
 * peers: bollard_mysql_p50=X bollard_redis_p50=X bollard_vip_p50=X mha_p50=X pacemaker_p50=X sentinel_p50=X
 * keepalived_vip_p50=X ratio_mha=X ratio_pacemaker=X ratio_sentinel=X lost_acked=bollard:0,mha:K,...
 * Ratios are bollard's p50 over the peer's for the same service (Redis for Sentinel); lost_acked
 * counts acknowledged writes missing after the failover ("-" where nothing acknowledged was
 * checked: the VIP alone, or a peer that did not run).
 */
export function summaryLine(results: PeerResult[]): string {
  const get = (k: string) => results.find((r) => r.key === k);
  const p50 = (k: string) => { const r = get(k); return r && !r.skipped ? summarize(r.runs).p50 : NaN; };
  const lost = (k: string) => { const r = get(k); if (!r || r.skipped) return "-"; const l = summarize(r.runs).lost; return l === null ? "-" : String(l); };
  const bl = [lost("bollard_mysql"), lost("bollard_redis")].filter((x) => x !== "-");
  const bollardLost = bl.length ? String(bl.reduce((a, x) => a + Number(x), 0)) : "-";
  return [
    "peers:",
    `bollard_mysql_p50=${fmt(p50("bollard_mysql"))}`, `bollard_redis_p50=${fmt(p50("bollard_redis"))}`, `bollard_vip_p50=${fmt(p50("bollard_vip"))}`,
    `mha_p50=${fmt(p50("mha"))}`, `pacemaker_p50=${fmt(p50("pacemaker"))}`, `sentinel_p50=${fmt(p50("sentinel"))}`, `keepalived_vip_p50=${fmt(p50("keepalived_vip"))}`,
    `ratio_mha=${fmt(ratio(p50("bollard_mysql"), p50("mha")))}`, `ratio_pacemaker=${fmt(ratio(p50("bollard_mysql"), p50("pacemaker")))}`,
    `ratio_sentinel=${fmt(ratio(p50("bollard_redis"), p50("sentinel")))}`,
    `lost_acked=bollard:${bollardLost},mha:${lost("mha")},pacemaker:${lost("pacemaker")},sentinel:${lost("sentinel")},keepalived:${lost("keepalived_vip")}`,
  ].join(" ");
}
