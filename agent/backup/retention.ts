// Which backups to keep (issue 23 item 1): pure, from the catalog and a policy like
// pgBackRest's or Proxmox Backup Server's "keep-daily 7, keep-weekly 4". Applied to the backups
// of one (kind, name) at a time:
//   - daily N: for each of the last N UTC days (today included) that has one, its newest good
//     backup is kept;
//   - weekly M: likewise for each of the last M ISO weeks (Monday to Sunday, UTC);
//   - the newest good backup is always kept, whatever the windows say (a cluster that stopped
//     taking backups keeps its last one);
//   - a pinned backup (manifest `pinned`: the old data `restore --replace` kept) is kept until an
//     operator unpins it (`bollard backup unpin ID`), apart from the windows (it takes no slot);
//   - a kept incremental backup keeps its parent chain;
//   - a bad backup (failed verification) is kept for inspection while it is in the daily window,
//     and pruned after; everything else outside the windows is pruned.
import { isGood, type Manifest } from "./manifest.ts";

export interface RetentionPolicy {
  daily: number;
  weekly: number;
}

export interface PruneDecision {
  keep: { id: string; why: string }[];
  prune: { id: string; why: string }[];
}

const DAY = 86_400_000;
const dayIndex = (ms: number) => Math.floor(ms / DAY);
/** days since 1970-01-05 (a Monday) divided by 7: the ISO week number in a running count */
const weekIndex = (ms: number) => Math.floor((dayIndex(ms) - 4) / 7);

export function retain(backups: Manifest[], policy: RetentionPolicy, nowMs: number): PruneDecision {
  const keep = new Map<string, string>();
  const byNewest = [...backups].sort((a, b) => b.startedAt.localeCompare(a.startedAt) || b.id.localeCompare(a.id));
  // pinned (the old data `restore --replace` kept): kept until an operator unpins it, and apart:
  // it takes no daily or weekly slot, so the regular backups of its day are kept as without it
  for (const b of byNewest) if (b.pinned) keep.set(b.id, `pinned: ${b.pinned}`);
  const good = byNewest.filter((b) => isGood(b) && !b.pinned);
  if (good[0]) keep.set(good[0].id, "newest good backup");
  const today = dayIndex(nowMs), week = weekIndex(nowMs);
  const daysSeen = new Set<number>(), weeksSeen = new Set<number>();
  for (const b of good) {
    const t = Date.parse(b.startedAt);
    const d = dayIndex(t), w = weekIndex(t);
    if (today - d < policy.daily && !daysSeen.has(d)) {
      daysSeen.add(d);
      if (!keep.has(b.id)) keep.set(b.id, `daily: newest of ${new Date(d * DAY).toISOString().slice(0, 10)}`);
    }
    if (week - w < policy.weekly && !weeksSeen.has(w)) {
      weeksSeen.add(w);
      if (!keep.has(b.id)) keep.set(b.id, `weekly: newest of the week of ${new Date((w * 7 + 4) * DAY).toISOString().slice(0, 10)}`);
    }
  }
  for (const b of byNewest) if (b.state === "bad" && today - dayIndex(Date.parse(b.startedAt)) < policy.daily) keep.set(b.id, "bad, kept for inspection within the daily window");
  // parents of what is kept
  const byId = new Map(backups.map((b) => [b.id, b]));
  for (const id of [...keep.keys()]) {
    let p = byId.get(id)?.parent ?? null;
    const seen = new Set<string>();
    while (p && !seen.has(p)) {
      seen.add(p);
      if (!keep.has(p)) keep.set(p, `parent of ${id}`);
      p = byId.get(p)?.parent ?? null;
    }
  }
  const out: PruneDecision = { keep: [], prune: [] };
  for (const b of byNewest) {
    const why = keep.get(b.id);
    if (why) out.keep.push({ id: b.id, why });
    else out.prune.push({ id: b.id, why: b.state === "bad" ? "bad and older than the daily window" : "outside the daily and weekly windows and not the newest" });
  }
  return out;
}
