// GTID arithmetic for candidate selection and rejoin (DESIGN §5, issue 4 items 1, 7, 8).
// Pure: no I/O. Text from a server is input from outside, so parsing returns an error value,
// never throws. Two models:
//
// MariaDB (https://mariadb.com/kb/en/gtid/): a GTID is domain_id-server_id-seq_no.
//   - @@gtid_binlog_state holds "the last GTID logged for every (domain_id, server_id)
//     combination"; @@gtid_binlog_pos / @@gtid_current_pos / @@gtid_slave_pos hold one GTID per
//     domain (the last one). All parse to the same shape here: a list of (domain, server, seq).
//   - With gtid_strict_mode=1 seq_no only grows within a domain: a replica "stops with an error
//     if it encounters an event that would cause it to generate an out-of-order binlog"
//     (ER_GTID_STRICT_OUT_OF_ORDER), and a master refuses a replica asking for a GTID it does not
//     have "since the master's binlog contains GTIDs with higher sequence numbers, it probably
//     means that the slave has diverged" (ER_GTID_POSITION_NOT_FOUND_IN_BINLOG2, error 1955).
//   SUBSET RULE (ours): a ⊆ b  iff  for every (d, s, n) in a, b has (d, s, m) with m >= n.
//     Under strict mode the transactions one server logged in one domain form one increasing
//     sequence, and a binlog that has (d, s, m) has every (d, s, k <= m) of that history, so
//     comparing the last seq per (domain, server) decides containment. b must be a
//     gtid_binlog_state (all servers), else the rule is conservative: a server that b's string
//     does not mention counts as missing, i.e. "diverged" (never a false "safe to rejoin").
//   DIVERGED: not a subset. The extra transactions are, per offending (d, s), those with seq in
//     (m, n] (m = 0 when b never saw server s in domain d), printed "d-s-(m+1)..d-s-n".
//   ADVANCE (candidate order, replicas of one primary): per domain, the highest seq_no; a is
//     ahead of b when it is >= in every domain and > in one. MASTER_GTID_WAIT uses the same
//     per-domain "same or higher seq_no" rule (https://mariadb.com/kb/en/master_gtid_wait/).
//
// MySQL 8 (https://dev.mysql.com/doc/refman/8.0/en/replication-gtids-concepts.html): a GTID set
//   is `uuid:1-5:7,uuid2:1-3` (8.3+ also `uuid:tag:1-5`); @@gtid_executed is such a set. Subset
//   and difference are plain set operations (GTID_SUBSET / GTID_SUBTRACT semantics); advance is
//   "superset", ties between incomparable sets broken by transaction count.

export type GtidKind = "mariadb" | "mysql";
export type Result<T> = { ok: true; value: T } | { ok: false; error: string };

export interface MariaGtid {
  domain: number;
  server: number;
  seq: bigint;
}
/** Sorted by domain, then server; at most one entry per (domain, server). */
export interface MariaGtidSet {
  kind: "mariadb";
  gtids: MariaGtid[];
}
/** Closed interval [start, end], start >= 1. */
export type Interval = [bigint, bigint];
/** `source` is the uuid, or `uuid:tag`; sorted by source; intervals sorted, merged. */
export interface MysqlGtidSet {
  kind: "mysql";
  sources: { source: string; intervals: Interval[] }[];
}
export type GtidSet = MariaGtidSet | MysqlGtidSet;

const U32 = 0xffffffff;
const U64 = (1n << 64n) - 1n;
const ok = <T>(value: T): Result<T> => ({ ok: true, value });
const fail = <T>(error: string): Result<T> => ({ ok: false, error });

export function parseGtid(kind: GtidKind, text: string): Result<GtidSet> {
  return kind === "mariadb" ? parseMariadb(text) : parseMysql(text);
}

/** `0-1-281,1-2-5` (gtid_binlog_state or any *_pos). Empty string: the empty set. */
export function parseMariadb(text: unknown): Result<MariaGtidSet> {
  if (typeof text !== "string") return fail(`MariaDB GTID: expected a string, got ${typeof text}`);
  const gtids: MariaGtid[] = [];
  const trimmed = text.trim();
  if (trimmed === "") return ok({ kind: "mariadb", gtids });
  for (const raw of trimmed.split(",")) {
    const part = raw.trim();
    const m = /^(\d{1,10})-(\d{1,10})-(\d{1,20})$/.exec(part);
    if (!m) return fail(`MariaDB GTID: "${clip(part)}" in "${clip(text)}" is not domain-server-seq`);
    const domain = Number(m[1]), server = Number(m[2]), seq = BigInt(m[3]!);
    if (domain > U32 || server > U32 || seq > U64) return fail(`MariaDB GTID: "${part}" out of range`);
    if (gtids.some((g) => g.domain === domain && g.server === server))
      return fail(`MariaDB GTID: domain ${domain} server ${server} appears twice in "${clip(text)}"`);
    gtids.push({ domain, server, seq });
  }
  gtids.sort((a, b) => a.domain - b.domain || a.server - b.server);
  return ok({ kind: "mariadb", gtids });
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const TAG = /^[a-z_][a-z0-9_]{0,31}$/;

/** `uuid:1-5:7,uuid2:1-3` (gtid_executed; whitespace and newlines ignored). */
export function parseMysql(text: unknown): Result<MysqlGtidSet> {
  if (typeof text !== "string") return fail(`MySQL GTID set: expected a string, got ${typeof text}`);
  const acc = new Map<string, Interval[]>();
  const compact = text.replace(/\s+/g, "");
  if (compact === "") return ok({ kind: "mysql", sources: [] });
  for (const block of compact.split(",")) {
    const parts = block.toLowerCase().split(":");
    const uuid = parts[0]!;
    if (!UUID.test(uuid)) return fail(`MySQL GTID set: "${clip(uuid)}" in "${clip(text)}" is not a UUID`);
    if (parts.length < 2) return fail(`MySQL GTID set: "${clip(block)}" has no interval`);
    let source = uuid;
    for (const p of parts.slice(1)) {
      if (TAG.test(p)) { source = `${uuid}:${p}`; continue; }
      const m = /^(\d{1,19})(?:-(\d{1,19}))?$/.exec(p);
      if (!m) return fail(`MySQL GTID set: "${clip(p)}" in "${clip(block)}" is not an interval or a tag`);
      const start = BigInt(m[1]!), end = m[2] === undefined ? start : BigInt(m[2]);
      if (start < 1n || end < start) return fail(`MySQL GTID set: interval "${clip(p)}" in "${clip(block)}" is empty or starts at 0`);
      const list = acc.get(source) ?? [];
      list.push([start, end]);
      acc.set(source, list);
    }
  }
  return ok(normalize(acc));
}

function normalize(acc: Map<string, Interval[]>): MysqlGtidSet {
  const sources = [...acc.entries()]
    .map(([source, list]) => {
      const sorted = [...list].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      const merged: Interval[] = [];
      for (const [s, e] of sorted) {
        const last = merged[merged.length - 1];
        if (last && s <= last[1] + 1n) last[1] = e > last[1] ? e : last[1];
        else merged.push([s, e]);
      }
      return { source, intervals: merged };
    })
    .filter((x) => x.intervals.length > 0)
    .sort((a, b) => (a.source < b.source ? -1 : a.source > b.source ? 1 : 0));
  return { kind: "mysql", sources };
}

/** The canonical text of a set (the server's own format). */
export function formatGtid(set: GtidSet): string {
  if (set.kind === "mariadb") return set.gtids.map((g) => `${g.domain}-${g.server}-${g.seq}`).join(",");
  return set.sources.map((x) => `${x.source}:${x.intervals.map(iv).join(":")}`).join(",");
}

const iv = ([s, e]: Interval) => (s === e ? `${s}` : `${s}-${e}`);

/** a ⊆ b by the rules above. Sets of different kinds are never subsets of each other. */
export function isSubset(a: GtidSet, b: GtidSet): boolean {
  if (a.kind !== b.kind) return false;
  return missing(a, b) === "";
}

/** What a has that b lacks, printable ("0-1-282..0-1-285", "uuid:6-9"); "" when a ⊆ b. */
export function missing(a: GtidSet, b: GtidSet): string {
  if (a.kind === "mariadb" && b.kind === "mariadb") {
    const out: string[] = [];
    for (const g of a.gtids) {
      const have = b.gtids.find((x) => x.domain === g.domain && x.server === g.server)?.seq ?? 0n;
      if (have >= g.seq) continue;
      const lo = have + 1n;
      out.push(lo === g.seq ? `${g.domain}-${g.server}-${g.seq}` : `${g.domain}-${g.server}-${lo}..${g.domain}-${g.server}-${g.seq}`);
    }
    return out.join(",");
  }
  if (a.kind === "mysql" && b.kind === "mysql") return formatGtid(subtract(a, b));
  return `${formatGtid(a)} (a ${a.kind} GTID compared with a ${b.kind} one)`;
}

/** a minus b (GTID_SUBTRACT). */
export function subtract(a: MysqlGtidSet, b: MysqlGtidSet): MysqlGtidSet {
  const acc = new Map<string, Interval[]>();
  for (const { source, intervals } of a.sources) {
    const minus = b.sources.find((x) => x.source === source)?.intervals ?? [];
    let rest: Interval[] = intervals.map(([s, e]) => [s, e]);
    for (const [ms, me] of minus) {
      const next: Interval[] = [];
      for (const [s, e] of rest) {
        if (me < s || ms > e) { next.push([s, e]); continue; }
        if (s < ms) next.push([s, ms - 1n]);
        if (e > me) next.push([me + 1n, e]);
      }
      rest = next;
    }
    acc.set(source, rest);
  }
  return normalize(acc);
}

/** Transactions in a MySQL set; for MariaDB, the sum of the per-domain highest seq_no. */
export function weight(set: GtidSet): bigint {
  if (set.kind === "mysql")
    return set.sources.reduce((n, x) => n + x.intervals.reduce((m, [s, e]) => m + e - s + 1n, 0n), 0n);
  return [...domainHeads(set).values()].reduce((n, s) => n + s, 0n);
}

function domainHeads(set: MariaGtidSet): Map<number, bigint> {
  const heads = new Map<number, bigint>();
  for (const g of set.gtids) if ((heads.get(g.domain) ?? -1n) < g.seq) heads.set(g.domain, g.seq);
  return heads;
}

export type Relation = "equal" | "ahead" | "behind" | "diverged";

/** How a stands to b for candidate selection: ahead means a has everything b has and more. */
export function relation(a: GtidSet, b: GtidSet): Relation {
  if (a.kind === "mariadb" && b.kind === "mariadb") {
    const ha = domainHeads(a), hb = domainHeads(b);
    let ge = true, le = true;
    for (const d of new Set([...ha.keys(), ...hb.keys()])) {
      const x = ha.get(d) ?? 0n, y = hb.get(d) ?? 0n;
      if (x < y) ge = false;
      if (x > y) le = false;
    }
    return ge && le ? "equal" : ge ? "ahead" : le ? "behind" : "diverged";
  }
  const ab = isSubset(a, b), ba = isSubset(b, a);
  return ab && ba ? "equal" : ba ? "ahead" : ab ? "behind" : "diverged";
}

/** Sort comparator, most advanced first when used as `sets.sort(compareAdvance).reverse()`:
 *  > 0 when a is more advanced; incomparable sets are ordered by weight(). */
export function compareAdvance(a: GtidSet, b: GtidSet): number {
  const r = relation(a, b);
  if (r === "ahead") return 1;
  if (r === "behind") return -1;
  if (r === "equal") return 0;
  const wa = weight(a), wb = weight(b);
  return wa > wb ? 1 : wa < wb ? -1 : 0;
}

/** Index of the most advanced set (the first one on ties: callers list by priority); -1 if none. */
export function mostAdvanced(sets: readonly GtidSet[]): number {
  let best = -1;
  sets.forEach((s, i) => { if (best < 0 || compareAdvance(s, sets[best]!) > 0) best = i; });
  return best;
}

/** Everything in a or b: MySQL set union; MariaDB the highest seq per (domain, server). Used to
 *  fold a replica's received position (relay log) and its executed one into one value. */
export function union<T extends GtidSet>(a: T, b: T): T;
export function union(a: GtidSet, b: GtidSet): GtidSet {
  if (a.kind === "mariadb" && b.kind === "mariadb") {
    const out = new Map<string, MariaGtid>();
    for (const g of [...a.gtids, ...b.gtids]) {
      const k = `${g.domain}-${g.server}`;
      if ((out.get(k)?.seq ?? -1n) < g.seq) out.set(k, g);
    }
    return { kind: "mariadb", gtids: [...out.values()].sort((x, y) => x.domain - y.domain || x.server - y.server) };
  }
  if (a.kind === "mysql" && b.kind === "mysql") {
    const acc = new Map<string, Interval[]>();
    for (const x of [...a.sources, ...b.sources]) acc.set(x.source, [...(acc.get(x.source) ?? []), ...x.intervals]);
    return normalize(acc);
  }
  return a;
}

/** The HA manager's order of two positions (ha/manager.ts HaInput.cmp): > 0 a ahead, 0 same,
 *  < 0 behind, null when they cannot be ordered (diverged, or not parseable). */
export function cmpGtid(kind: GtidKind, a: string, b: string): number | null {
  const pa = parseGtid(kind, a), pb = parseGtid(kind, b);
  if (!pa.ok || !pb.ok) return null;
  const r = relation(pa.value, pb.value);
  return r === "ahead" ? 1 : r === "behind" ? -1 : r === "equal" ? 0 : null;
}

/**
 * `pos` without the transaction `gtid` (an event group that never arrived whole, relay.ts):
 * MariaDB: the domain's head goes back to seq - 1 when `gtid` is that head (the transactions of a
 * domain form one sequence under strict mode); MySQL: set difference. Unparseable input, or a
 * `gtid` that is not in `pos`, gives `pos` unchanged.
 */
export function withoutGtid(kind: GtidKind, pos: string, gtid: string | null): string {
  if (!gtid) return pos;
  const p = parseGtid(kind, pos), g = parseGtid(kind, gtid);
  if (!p.ok || !g.ok) return pos;
  if (p.value.kind === "mariadb" && g.value.kind === "mariadb") {
    const x = g.value.gtids[0];
    if (!x) return pos;
    const gtids = p.value.gtids.map((y) => (y.domain === x.domain && y.server === x.server && y.seq === x.seq ? { ...y, seq: y.seq - 1n } : y)).filter((y) => y.seq > 0n);
    return formatGtid({ kind: "mariadb", gtids });
  }
  if (p.value.kind === "mysql" && g.value.kind === "mysql") return formatGtid(subtract(p.value, g.value));
  return pos;
}

/** String-level helpers for callers holding server text: every failure is an error value. */
export function subsetOf(kind: GtidKind, a: string, b: string): Result<{ subset: boolean; extra: string }> {
  const pa = parseGtid(kind, a), pb = parseGtid(kind, b);
  if (!pa.ok) return pa;
  if (!pb.ok) return pb;
  const extra = missing(pa.value, pb.value);
  return ok({ subset: extra === "", extra });
}

function clip(s: string): string {
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
