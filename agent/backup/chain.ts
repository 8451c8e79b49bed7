// Incremental MariaDB base backups (issue 23 item 1): which backup a new one may build on, and
// the chain a restore applies. Pure.
//   An incremental backup copies the InnoDB pages changed since its parent's checkpoint LSN
//   (`mariadb-backup --backup --incremental-lsn=<parent's to_lsn>`). An LSN means something only
//   in the datadir that wrote it: a parent is usable only when it was taken on the same node from
//   the same datadir (its identity: the system tablespace's inode and birth time, recorded in
//   every manifest as detail.source). After a failover the backups are taken on another replica,
//   whose datadir is another: the next backup is full. A chain is at most `maxIncrementals`
//   incrementals long; then a full one starts the next.
//   A restore copies the chain's full backup (prepared when it was taken) and applies each
//   incremental in order (`mariadb-backup --prepare --incremental-dir`), on the copy, never on
//   the stored backups. A chain with a link missing or found bad is not restorable.
import { isGood, type Manifest } from "./manifest.ts";

export interface ParentChoice {
  parent: { id: string; toLsn: number; depth: number } | null;
  /** why a full backup (or which parent), for the log and the event */
  why: string;
}

const lsnOf = (m: Manifest): number | null => (typeof m.detail.toLsn === "number" && Number.isSafeInteger(m.detail.toLsn) ? m.detail.toLsn : null);
const depthOf = (m: Manifest): number => (typeof m.detail.depth === "number" ? m.detail.depth : 0);

/** The backup a new MySQL backup taken on `node` from datadir `source` builds on, or why full. */
export function incrementalParent(all: Manifest[], node: string, source: string, maxIncrementals: number): ParentChoice {
  if (maxIncrementals <= 0) return { parent: null, why: "full: incremental backups are off (backup.mysql_incrementals: 0)" };
  const newest = all.filter((m) => m.kind === "mysql").sort((a, b) => b.startedAt.localeCompare(a.startedAt) || b.id.localeCompare(a.id))[0];
  if (!newest) return { parent: null, why: "full: the first backup" };
  if (newest.node !== node || newest.detail.source !== source) return { parent: null, why: `full: the newest backup ${newest.id} was taken on ${newest.node} from another datadir (an LSN means something only in its own)` };
  const chain = restoreChain(all, newest.id);
  if (!chain.ok) return { parent: null, why: `full: the newest backup ${newest.id} cannot be built on (${chain.error})` };
  const lsn = lsnOf(newest);
  if (lsn === null) return { parent: null, why: `full: the newest backup ${newest.id} records no checkpoint LSN` };
  const depth = depthOf(newest);
  if (depth >= maxIncrementals) return { parent: null, why: `full: ${newest.id} ends a chain of ${depth} incremental(s) (backup.mysql_incrementals: ${maxIncrementals})` };
  return { parent: { id: newest.id, toLsn: lsn, depth: depth + 1 }, why: `incremental on ${newest.id} (from LSN ${lsn}, ${depth + 1} of at most ${maxIncrementals})` };
}

/** The backups a restore of `id` applies, full first; refused when a link is missing or bad. */
export function restoreChain(all: Manifest[], id: string): { ok: true; chain: Manifest[] } | { ok: false; error: string } {
  const byId = new Map(all.map((m) => [m.id, m]));
  const chain: Manifest[] = [];
  for (let cur: string | null = id; cur !== null;) {
    const m = byId.get(cur);
    if (!m) return { ok: false, error: cur === id ? `no backup ${id}` : `backup ${id} needs ${cur}, which is not there: the chain is broken` };
    if (!isGood(m)) return { ok: false, error: `backup ${m.id}${m.id === id ? "" : ` (in the chain of ${id})`} is ${m.state}` };
    if (chain.some((x) => x.id === m.id) || chain.length > 1000) return { ok: false, error: `backup ${id}'s chain loops at ${m.id}` };
    chain.unshift(m);
    cur = m.parent;
  }
  return { ok: true, chain };
}

/** The good backups whose whole chain is good: what a restore may start from. */
export function restorable(all: Manifest[]): Manifest[] {
  return all.filter((m) => isGood(m) && restoreChain(all, m.id).ok);
}
