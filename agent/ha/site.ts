// A MySQL replica in another equipment room (issue 18, docs/site.md): asynchronous, never a
// failover candidate, kept replicating from whichever node the register names as the MySQL
// holder. Pure: the remote's facts and the register in, what to do and what to say out. The
// runtime (runtime/site-runtime.ts) reads the remote, carries out the action on the acting
// leader only, and feeds the alarms, metrics and views from the judgement.
//
// Flags (register, flags.ts conventions):
//   site-promoted:<site>   set by the leader once it has seen that remote promoted (`bollard site
//                          promote` at the other room): this room's MySQL stays read-only and needs
//                          re-cloning from the remote; cleared only by an operator (docs/site.md)
import type { ClusterConfig } from "../bus/messages.ts";
import { parseGtid, subsetOf, subtract, weight, type GtidKind, type GtidSet } from "../resources/gtid.ts";

type Flags = ClusterConfig["flags"];

/** What a read of the remote found (resources/site-mysql.ts). */
export interface RemoteFacts {
  up: boolean;
  /** why it could not be read */
  error?: string;
  readOnly: boolean;
  /** Master_Host:Master_Port, or null when no replication is configured (RESET SLAVE ALL) */
  source: string | null;
  ioRunning: boolean;
  sqlRunning: boolean;
  /** Seconds_Behind_Master; null while a thread is stopped */
  lagSeconds: number | null;
  lastError: string | null;
  /** MariaDB @@gtid_binlog_state / MySQL @@gtid_executed */
  executed: string;
  /** the relay log's position too (Gtid_IO_Pos / Retrieved_Gtid_Set folded in) */
  received: string;
  /** the marker `bollard site promote` leaves on it */
  promoted: { at: number; by: string; lost: string } | null;
  /** the primary's position as the primary room's leader last recorded it there */
  seen: { gtid: string; at: number; holder: string } | null;
}

export type SiteState = "unknown" | "unreachable" | "replicating" | "lagging" | "broken" | "diverged" | "waiting" | "promoted";

export interface SiteInput {
  site: string;
  kind: GtidKind;
  facts: RemoteFacts | null;
  flags: Flags;
  /** committed MySQL holder and its host:port, and whether its report says it is a writable primary */
  holder: string | null;
  holderAddr: string | null;
  holderWritable: boolean;
  /** the holder's executed position (its report's binlog state) */
  primaryGtid: string | null;
  lagAlarmS: number;
  lagAlarmTrx: number;
}

export type SiteAction =
  | { do: "repoint"; to: string; why: string }
  | { do: "flag-promoted"; why: string }
  | { do: "record"; gtid: string; holder: string };

export interface SiteAlarm {
  rule: "site-lag" | "site-down" | "site-promoted" | "site-diverged";
  severity: "critical" | "major" | "minor";
  text: string;
  detail: string;
}

export interface SiteJudgement {
  site: string;
  state: SiteState;
  lagS: number | null;
  lagTrx: number | null;
  /** transactions the primary has that the remote lacks (printable), "" when none or unknown */
  missing: string;
  why: string;
  actions: SiteAction[];
  alarms: SiteAlarm[];
  /** MySQL must not be placed, recovered or made writable here: why */
  hold: string | null;
}

export const promotedFlag = (site: string) => `site-promoted:${site}`;
/** The sites whose remote was promoted: this room's MySQL is read-only until it is re-cloned. */
export function promotedSites(f: Flags): string[] {
  return Object.keys(f).filter((k) => k.startsWith("site-promoted:")).map((k) => k.slice("site-promoted:".length));
}

/**
 * Transactions `primary` has that `remote` lacks: a count and a printable list, or null if
 * unreadable. MariaDB: per domain, the primary's highest seq_no minus the remote's (one
 * increasing sequence per domain under gtid_strict_mode, across changes of primary); a remote
 * ahead of the primary's (reported, so slightly old) position counts 0. MySQL: the set difference.
 */
export function lagTransactions(kind: GtidKind, primary: string, remote: string): { count: number; text: string } | null {
  const p = parseGtid(kind, primary), r = parseGtid(kind, remote);
  if (!p.ok || !r.ok) return null;
  if (p.value.kind === "mariadb" && r.value.kind === "mariadb") {
    const heads = (s: GtidSet) => { const m = new Map<number, bigint>(); if (s.kind === "mariadb") for (const g of s.gtids) if ((m.get(g.domain) ?? -1n) < g.seq) m.set(g.domain, g.seq); return m; };
    const hp = heads(p.value), hr = heads(r.value);
    let n = 0n;
    const parts: string[] = [];
    for (const [d, seq] of hp) {
      const have = hr.get(d) ?? 0n;
      if (seq <= have) continue;
      n += seq - have;
      parts.push(seq === have + 1n ? `domain ${d}: ${seq}` : `domain ${d}: ${have + 1n}..${seq}`);
    }
    return { count: Number(n), text: parts.join(", ") };
  }
  if (p.value.kind === "mysql" && r.value.kind === "mysql") {
    const d = subtract(p.value, r.value);
    return { count: Number(weight(d)), text: d.sources.map((x) => `${x.source}:${x.intervals.map(([a, b]) => (a === b ? `${a}` : `${a}-${b}`)).join(":")}`).join(",") };
  }
  return null;
}

/**
 * What the remote has that `primary` (a gtid_binlog_state: every server's last GTID) lacks,
 * printable, or null when it has nothing more (docs/mysql.md "GTID rules"). Asked only before the
 * remote is pointed at a new primary: one that replicates from the holder only has what the
 * holder had, even when it is ahead of the holder's last report.
 */
export function remoteExtra(kind: GtidKind, remote: string, primary: string): string | null {
  const r = subsetOf(kind, remote, primary);
  if (!r.ok) return null;
  return r.value.subset ? null : r.value.extra;
}

/** One judgement of a remote site. `leading`: this node is the acting leader (only it acts and alarms). */
export function judgeSite(inp: SiteInput, leading: boolean): SiteJudgement {
  const { site, facts: f, flags } = inp;
  const j: SiteJudgement = { site, state: "unknown", lagS: null, lagTrx: null, missing: "", why: "", actions: [], alarms: [], hold: null };
  const flagged = promotedFlag(site) in flags;
  if (flagged) j.hold = `${site} was promoted (${flags[promotedFlag(site)]}): this room's MySQL stays read-only until it is re-cloned from ${site}, then 'bollard site clear ${site}'`;
  if (!f) return { ...j, why: "not read yet" };
  if (!f.up) {
    j.state = "unreachable";
    j.why = f.error ?? "no answer";
    if (leading) j.alarms.push({ rule: "site-down", severity: "major", text: `remote site ${site}: MySQL unreachable`, detail: `${j.why}; its lag is unknown` });
    return j;
  }
  // promoted: replicating from nothing and writable, or carrying the marker of `bollard site promote`
  if (f.promoted || (f.source === null && !f.readOnly)) {
    j.state = "promoted";
    const when = f.promoted ? `${new Date(f.promoted.at).toISOString()} by ${f.promoted.by}` : "by hand (writable, replicating from nothing)";
    j.why = `promoted ${when}`;
    j.hold = `${site} was promoted ${when}: this room's MySQL stays read-only until it is re-cloned from ${site}, then 'bollard site clear ${site}'`;
    if (leading && !flagged) j.actions.push({ do: "flag-promoted", why: j.why });
    if (leading) j.alarms.push({ rule: "site-promoted", severity: "critical", text: `remote site ${site} was promoted: this room is read-only`, detail: `${j.why}${f.promoted?.lost ? `; it stated it would lose ${f.promoted.lost}` : ""}; re-clone this room's MySQL from ${site} (docs/site.md)` });
    return j;
  }
  const pointed = inp.holderAddr !== null && f.source === inp.holderAddr;
  const extra = !pointed && inp.primaryGtid !== null && inp.holderWritable ? remoteExtra(inp.kind, f.executed, inp.primaryGtid) : null;
  if (extra) {
    j.state = "diverged";
    j.why = `the remote has ${extra}, which the primary ${inp.holder} lacks: needs re-cloning, not re-pointed`;
    if (leading) j.alarms.push({ rule: "site-diverged", severity: "critical", text: `remote site ${site}: data diverged from the primary`, detail: j.why });
    return j;
  }
  const lag = inp.primaryGtid !== null ? lagTransactions(inp.kind, inp.primaryGtid, f.executed) : null;
  if (lag) { j.lagTrx = lag.count; j.missing = lag.text; }
  j.lagS = pointed && f.ioRunning && f.sqlRunning ? f.lagSeconds : null;
  if (flagged) { j.state = "waiting"; j.why = j.hold!; return j; }
  if (!inp.holder || !inp.holderAddr || !inp.holderWritable) {
    j.state = "waiting";
    j.why = inp.holder ? `${inp.holder} is not a writable primary yet` : "no MySQL primary is assigned";
  } else if (!pointed || !f.ioRunning || !f.sqlRunning) {
    j.state = "broken";
    j.why = !pointed ? `replicates from ${f.source ?? "nothing"}, the primary is ${inp.holder} (${inp.holderAddr})`
      : `${!f.ioRunning ? "receiver" : "applier"} stopped${f.lastError ? `: ${f.lastError}` : ""}`;
    if (leading) j.actions.push({ do: "repoint", to: inp.holderAddr, why: j.why });
  } else {
    const over = (j.lagS ?? 0) >= inp.lagAlarmS || (j.lagTrx ?? 0) >= inp.lagAlarmTrx;
    j.state = over ? "lagging" : "replicating";
    j.why = `from ${inp.holder}, ${j.lagS ?? "?"} s and ${j.lagTrx ?? "?"} transactions behind`;
  }
  if (leading && inp.holder && inp.holderWritable && inp.primaryGtid) j.actions.push({ do: "record", gtid: inp.primaryGtid, holder: inp.holder });
  if (leading && (j.state === "lagging" || j.state === "broken")) {
    j.alarms.push({
      rule: "site-lag", severity: "major", text: `remote site ${site}: replication lag`,
      detail: j.state === "broken" ? `not replicating: ${j.why}` : `${j.lagS} s and ${j.lagTrx} transactions behind (thresholds ${inp.lagAlarmS} s, ${inp.lagAlarmTrx} transactions)`,
    });
  }
  return j;
}

/** What `bollard site promote` states before it asks: what the remote would lose, as far as known. */
export function promotePlan(kind: GtidKind, f: RemoteFacts, wallNow: number): { lines: string[]; lostTrx: number | null; lost: string } {
  const lines: string[] = [];
  if (f.promoted) lines.push(`already promoted at ${new Date(f.promoted.at).toISOString()} by ${f.promoted.by}`);
  lines.push(`this replica has applied ${f.executed || "nothing"} and received ${f.received || "nothing"}; what it received is applied before it is made writable`);
  if (f.source) lines.push(`it replicates from ${f.source} (receiver ${f.ioRunning ? "running" : "stopped"}${f.lastError ? `, last error: ${f.lastError}` : ""})`);
  if (!f.seen) {
    lines.push("the primary room never recorded its position here: what is lost is UNKNOWN");
    return { lines, lostTrx: null, lost: "an unknown number of transactions" };
  }
  const age = Math.max(0, Math.round((wallNow - f.seen.at) / 1000));
  const lag = lagTransactions(kind, f.seen.gtid, f.received);
  const at = `${new Date(f.seen.at).toISOString()} (${age} s ago)`;
  if (!lag) {
    lines.push(`the primary (${f.seen.holder}) was last seen at ${at} at ${f.seen.gtid}; the positions cannot be compared`);
    return { lines, lostTrx: null, lost: "an unknown number of transactions" };
  }
  const lost = lag.count ? `${lag.count} transaction${lag.count === 1 ? "" : "s"} (${lag.text})` : "no transaction";
  lines.push(`the primary (${f.seen.holder}) was last seen at ${at} at ${f.seen.gtid}: this replica lacks ${lost}`);
  lines.push(`and whatever the primary room committed after ${new Date(f.seen.at).toISOString()}: not known here`);
  return { lines, lostTrx: lag.count, lost: `${lost} known, plus what was committed after ${new Date(f.seen.at).toISOString()}` };
}
