// Which base backup and which archived binlogs a point-in-time restore uses, and the exact point
// it reaches (issue 23 item 3): pure. A point is restorable when a good base backup was taken at
// or before it and the archive holds every transaction from the backup's GTID up to it, in one
// unbroken GTID sequence (gtid_strict_mode: seq_no grows by one per transaction within a domain,
// whichever server wrote it, so "unbroken" is "no missing seq_no"). Archives of several streams
// (one per primary, after failovers) overlap; a transaction is counted once.
//   --to-time T: every transaction whose binlog time is before T, T taken to the whole second (the
//     binlog keeps seconds). The point is stated as the GTID of the last such transaction.
//   --to-gtid G: every transaction up to and including G.
// Anything else is refused, naming the oldest and newest points that can be restored.
import type { BinlogEvent } from "./binlog-scan.ts";

export interface BaseInput {
  id: string;
  /** the backup's GTID position (gtid_binlog_pos at its consistent point), "" for none */
  gtid: string;
  finishedMs: number;
  dir: string;
}
export interface ArchiveFileInput {
  path: string;
  /** one stream of mariadb-binlog (one primary, from one start) */
  segment: string;
  events: BinlogEvent[];
}
export interface ArchiveInput {
  files: ArchiveFileInput[];
  /** the last time the archiver saw itself caught up with the primary (ms), or null */
  caughtUpMs: number | null;
  /** the seq of the last GTID it had then: the archive vouches for the time only up to there */
  caughtUpSeq?: number | null;
}
export type Target = { time: number } | { gtid: string };

export interface RestorePlan {
  base: BaseInput;
  /** in replay order; each applied from the restored server's position on (duplicates skipped) */
  segments: { segment: string; files: string[] }[];
  /** the GTID reached (the last transaction applied), "" when nothing at all */
  reach: string;
  /** mariadb-binlog --stop-position (inclusive), null when the base alone is the point */
  stop: string | null;
  /** transactions replayed from the archive */
  transactions: number;
  /** a line for --dry-run and the log */
  describe: string;
}
export type PlanResult = { ok: true; plan: RestorePlan } | { ok: false; error: string };

const iso = (ms: number) => new Date(ms).toISOString().replace(".000Z", "Z");
const gtidText = (e: { domain: number; server: number; seq: number }) => `${e.domain}-${e.server}-${e.seq}`;

/** "0-1-42" (one domain) to its parts; "" is seq 0 in domain 0. */
export function parseOneDomain(gtid: string): { domain: number; server: number; seq: number } | string {
  const parts = gtid.split(",").map((s) => s.trim()).filter(Boolean);
  if (parts.length === 0) return { domain: 0, server: 0, seq: 0 };
  if (parts.length > 1) return `"${gtid}" spans ${parts.length} GTID domains: restore to a point supports one domain`;
  const m = /^(\d+)-(\d+)-(\d+)$/.exec(parts[0]!);
  if (!m) return `"${gtid}" is not a MariaDB GTID (domain-server-seq)`;
  return { domain: Number(m[1]), server: Number(m[2]), seq: Number(m[3]) };
}

interface Coverage {
  base: BaseInput;
  seq: number;
  /** the base's point in time: its transaction's time when archived, else when it finished */
  fromMs: number;
  /** the last seq the archive holds unbroken from the base on */
  endSeq: number;
  toMs: number;
}

export function planRestore(bases: BaseInput[], archive: ArchiveInput, target: Target): PlanResult {
  if (!bases.length) return { ok: false, error: "no good base backup exists: nothing to restore (take one with 'bollard backup now mysql')" };
  const bySeq = new Map<number, BinlogEvent & { path: string; segment: string }>();
  let domain: number | null = null;
  for (const f of archive.files) for (const e of f.events) {
    if (domain !== null && e.domain !== domain) return { ok: false, error: `the archive holds GTID domains ${domain} and ${e.domain}: restore to a point supports one domain` };
    domain = e.domain;
    if (!bySeq.has(e.seq)) bySeq.set(e.seq, { ...e, path: f.path, segment: f.segment });
  }
  const maxSeq = Math.max(0, ...bySeq.keys());
  const covs: Coverage[] = [];
  for (const b of bases) {
    const g = parseOneDomain(b.gtid);
    if (typeof g === "string") return { ok: false, error: `base backup ${b.id}: ${g}` };
    if (domain !== null && b.gtid && g.domain !== domain) return { ok: false, error: `base backup ${b.id} is in GTID domain ${g.domain}, the archive in ${domain}` };
    let end = g.seq;
    while (bySeq.has(end + 1)) end++;
    const own = bySeq.get(g.seq);
    const fromMs = own ? own.ts : Math.floor(b.finishedMs / 1000) * 1000;
    const last = bySeq.get(end);
    let toMs = Math.max(fromMs, last?.ts ?? 0);
    if (end >= maxSeq && archive.caughtUpMs !== null && archive.caughtUpSeq !== undefined && archive.caughtUpSeq !== null && end >= archive.caughtUpSeq) toMs = Math.max(toMs, Math.floor(archive.caughtUpMs / 1000) * 1000);
    covs.push({ base: b, seq: g.seq, fromMs, endSeq: end, toMs });
  }
  covs.sort((a, b) => b.seq - a.seq || b.base.finishedMs - a.base.finishedMs);
  const range = () => {
    const from = covs.reduce((a, c) => (c.fromMs < a.fromMs ? c : a));
    const to = covs.reduce((a, c) => (c.toMs > a.toMs ? c : a));
    const holes = holesText(covs);
    return `restorable points: from ${iso(from.fromMs)} (gtid ${gtidOf(from.seq)}, base backup ${from.base.id}) to ${iso(to.toMs)} (gtid ${gtidOf(to.endSeq)})${holes}`;
  };
  const gtidOf = (seq: number) => { const e = bySeq.get(seq); return e ? gtidText(e) : covs.find((c) => c.seq === seq)?.base.gtid || `${domain ?? 0}-?-${seq}`; };

  let chosen: Coverage | undefined, reach = 0;
  if ("time" in target) {
    const t = Math.floor(target.time / 1000) * 1000;
    if (!Number.isFinite(t)) return { ok: false, error: "the time is not a valid date" };
    for (const c of covs) {
      if (t < c.fromMs || t > c.toMs) continue;
      let r = c.seq;
      while (r < c.endSeq && bySeq.get(r + 1)!.ts < t) r++;
      chosen = c; reach = r;
      break;
    }
    if (!chosen) return { ok: false, error: `no backup covers ${iso(t)}: ${range()}` };
  } else {
    const g = parseOneDomain(target.gtid);
    if (typeof g === "string") return { ok: false, error: g };
    if (domain !== null && g.domain !== domain) return { ok: false, error: `GTID domain ${g.domain}: the archive is in domain ${domain}` };
    const at = bySeq.get(g.seq);
    if (at && at.server !== g.server) return { ok: false, error: `no transaction ${target.gtid}: seq ${g.seq} was written by server ${at.server} (${gtidText(at)})` };
    chosen = covs.find((c) => c.seq <= g.seq && g.seq <= c.endSeq);
    if (!chosen) return { ok: false, error: `no backup covers gtid ${target.gtid}: ${range()}` };
    reach = g.seq;
  }
  const c = chosen;
  const files = new Map<string, Set<string>>(), order: string[] = [];
  for (let s = c.seq + 1; s <= reach; s++) {
    const e = bySeq.get(s)!;
    if (!files.has(e.segment)) { files.set(e.segment, new Set()); order.push(e.segment); }
    files.get(e.segment)!.add(e.path);
  }
  // every file of a segment that holds a needed transaction, in the segment's file order
  const segments = order.map((seg) => ({ segment: seg, files: archive.files.filter((f) => f.segment === seg && files.get(seg)!.has(f.path)).map((f) => f.path) }));
  const reachText = reach === c.seq ? c.base.gtid : gtidText(bySeq.get(reach)!);
  const n = reach - c.seq;
  const describe = `base backup ${c.base.id} (gtid ${c.base.gtid || "none"}), then ${n} transaction(s) from ${segments.reduce((a, s) => a + s.files.length, 0)} archived binlog file(s)` +
    `${segments.length ? ` [${segments.map((s) => s.files.map((f) => f.split("/").slice(-2).join("/")).join(", ")).join("; ")}]` : ""}, reaching gtid ${reachText || "none"}` +
    `${reach > c.seq ? ` (written ${iso(bySeq.get(reach)!.ts)})` : ""}`;
  return { ok: true, plan: { base: c.base, segments, reach: reachText, stop: reach > c.seq ? reachText : null, transactions: n, describe } };
}

function holesText(covs: Coverage[]): string {
  const sorted = [...covs].sort((a, b) => a.fromMs - b.fromMs);
  const holes: string[] = [];
  let end = sorted[0]!.toMs;
  for (const c of sorted.slice(1)) {
    if (c.fromMs > end) holes.push(`${iso(end)} to ${iso(c.fromMs)}`);
    end = Math.max(end, c.toMs);
  }
  return holes.length ? `, except ${holes.join(" and ")} (a gap in the binlog archive)` : "";
}
