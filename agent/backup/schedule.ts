// When a backup or a verification is due, and what the backup alarms say (issue 23 items 1, 6,
// 7): pure, from the catalog, the jobs' last results and the archive's status.
import { isGood, type BackupKind, type Manifest } from "./manifest.ts";

/** Why a backup of `kind` is due now, or null. `requestMs`: an operator's `backup now` (the
 *  register flag's time), `handledMs`: the last request this node carried out. */
export function backupDue(latest: Manifest | null, everyS: number, nowMs: number, requestMs: number | null, handledMs: number): string | null {
  if (requestMs !== null && requestMs > handledMs) return `requested by an operator at ${new Date(requestMs).toISOString()}`;
  if (everyS <= 0) return null;
  if (!latest) return "no backup yet";
  const age = nowMs - Date.parse(latest.startedAt);
  return age >= everyS * 1000 ? `the last one is ${Math.round(age / 1000)} s old (every ${everyS} s)` : null;
}

/** The newest backup not yet verified, when a verification is due (the newest's verdict older
 *  than the period, or none). Bad ones are not verified again. */
export function verifyDue(backups: Manifest[], everyS: number, nowMs: number): Manifest | null {
  if (everyS <= 0) return null;
  const good = backups.filter(isGood).sort((a, b) => b.startedAt.localeCompare(a.startedAt));
  const newest = good[0];
  if (!newest) return null;
  const at = (m: Manifest) => Date.parse(String((m.detail.verify as { at?: string } | undefined)?.at ?? "")) || 0;
  const lastVerify = Math.max(0, ...backups.map(at));
  if (newest.state === "complete") return newest;
  return nowMs - lastVerify >= everyS * 1000 ? newest : null;
}

export interface JobResult {
  kind: BackupKind | "verify-mysql" | "verify-redis" | "verify-vm";
  /** what was backed up when a kind has several (a VM's backups: "vm:<name>"); absent: the kind */
  subject?: string;
  node: string;
  at: string;
  ok: boolean;
  error: string | null;
  id: string | null;
  ms: number;
}

export interface BackupAlarmFacts {
  /** per kind backed up (mysql, redis; each VM: kind vm, subject vm:<name>): the schedule, the
   *  newest good backup, the bad ones */
  kinds: { kind: BackupKind; subject?: string; everyS: number; newestGood: Manifest | null; bad: Manifest[] }[];
  /** the latest job results from every node */
  jobs: JobResult[];
  /** the archive: null when not configured */
  archive: { gap: string | null; error: string | null; updatedMs: number | null; running: boolean; downSinceMs?: number | null } | null;
  /** per node target: used ratio, null when unreadable */
  targets: { node: string; usedRatio: number | null; error: string | null }[];
  fullRatio: number;
}

export interface BackupProblem {
  rule: "backup-failed" | "backup-missed" | "backup-verify-failed" | "backup-archive-gap" | "backup-archive-down" | "backup-target-full";
  subject: string;
  severity: "critical" | "major" | "minor";
  text: string;
  detail: string;
}

/** What is wrong with the backups now; `judged`: the subjects looked at (an alarm of a judged
 *  subject with no problem clears). */
export function backupProblems(f: BackupAlarmFacts, nowMs: number): { problems: BackupProblem[]; judged: { rule: BackupProblem["rule"]; subject: string }[] } {
  const problems: BackupProblem[] = [];
  const judged: { rule: BackupProblem["rule"]; subject: string }[] = [];
  for (const k of f.kinds) {
    const subject = k.subject ?? k.kind;
    judged.push({ rule: "backup-missed", subject }, { rule: "backup-failed", subject }, { rule: "backup-verify-failed", subject });
    if (k.everyS > 0) {
      const age = k.newestGood ? (nowMs - Date.parse(k.newestGood.startedAt)) / 1000 : Infinity;
      // one period late, plus half a period for the job itself
      if (age > k.everyS * 1.5) problems.push({ rule: "backup-missed", subject, severity: "major", text: `no good ${subject} backup within its schedule`, detail: k.newestGood ? `newest good ${k.newestGood.id}, ${Math.round(age)} s old (every ${k.everyS} s)` : "no good backup at all" });
    }
    const last = f.jobs.filter((j) => j.kind === k.kind && (j.subject ?? j.kind) === subject).sort((a, b) => b.at.localeCompare(a.at))[0];
    if (last && !last.ok) problems.push({ rule: "backup-failed", subject, severity: "major", text: `the last ${subject} backup failed`, detail: `on ${last.node} at ${last.at}: ${last.error}` });
    const bad = k.bad.filter((b) => !k.newestGood || b.startedAt > k.newestGood.startedAt || b.state === "bad");
    if (bad.length) problems.push({ rule: "backup-verify-failed", subject, severity: "major", text: `a ${subject} backup failed its verification`, detail: bad.map((b) => `${b.id}: ${String((b.detail.verify as { error?: string } | undefined)?.error ?? "bad")}`).join("; ").slice(0, 300) });
  }
  if (f.archive) {
    judged.push({ rule: "backup-archive-gap", subject: "mysql" }, { rule: "backup-archive-down", subject: "mysql" });
    if (f.archive.gap) problems.push({ rule: "backup-archive-gap", subject: "mysql", severity: "critical", text: "gap in the MySQL binlog archive: points after it need a new base backup", detail: f.archive.gap });
    // no status at all: no archiver has started yet (a new cluster, an agent start): not judged
    const stale = f.archive.updatedMs !== null && nowMs - f.archive.updatedMs > 60_000;
    // a stream that stopped is given 30 s to come back (a failover re-points it within seconds)
    const stopped = !f.archive.running && (f.archive.downSinceMs === undefined || f.archive.downSinceMs === null || nowMs - f.archive.downSinceMs > 30_000);
    if (!f.archive.gap && f.archive.updatedMs !== null && (stale || stopped)) problems.push({ rule: "backup-archive-down", subject: "mysql", severity: "major", text: "the MySQL binlog archive is not streaming", detail: f.archive.error ?? (stale ? "no word from the archiver for over a minute" : "not running") });
  }
  for (const t of f.targets) {
    judged.push({ rule: "backup-target-full", subject: t.node });
    if (t.error) problems.push({ rule: "backup-target-full", subject: t.node, severity: "major", text: `backup target of ${t.node} unusable`, detail: t.error });
    else if (t.usedRatio !== null && t.usedRatio >= f.fullRatio) problems.push({ rule: "backup-target-full", subject: t.node, severity: t.usedRatio >= 0.97 ? "critical" : "major", text: `backup target of ${t.node} nearly full`, detail: `${Math.round(t.usedRatio * 1000) / 10} % used (alarm at ${f.fullRatio * 100} %)` });
  }
  return { problems, judged };
}
