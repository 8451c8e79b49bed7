// The backup metrics (issue 23 item 6, docs/metrics.md): the catalog as this node reads it from
// every target, the archive's last word, the targets' space. Drawn from the backup runtime's
// snapshot at each scrape.
import { isGood } from "../backup/manifest.ts";
import type { BackupSnapshot } from "../backup/snapshot.ts";

type Gauge = (name: string, help: string, labels: Record<string, string>, v: number | null | undefined) => void;

export function renderBackupMetrics(g: Gauge, s: BackupSnapshot, nowMs: number): void {
  for (const kind of ["mysql", "redis", "vm"]) {
    const mine = s.backups.filter((b) => b.manifest.kind === kind);
    if (!mine.length) continue;
    const good = mine.filter((b) => isGood(b.manifest));
    const newest = good[good.length - 1]?.manifest;
    g("bollard_backup_count", "Backups in the catalog, by kind and state", { kind, state: "good" }, good.length);
    g("bollard_backup_count", "Backups in the catalog, by kind and state", { kind, state: "bad" }, mine.length - good.length);
    g("bollard_backup_bytes", "Bytes used by the backups of each kind, all targets", { kind }, mine.reduce((a, b) => a + b.manifest.bytes, 0));
    if (newest) {
      g("bollard_backup_last_good_age_seconds", "Age of the newest good backup of each kind", { kind }, (nowMs - Date.parse(newest.startedAt)) / 1000);
      g("bollard_backup_last_duration_seconds", "Duration of the newest good backup of each kind", { kind }, (Date.parse(newest.finishedAt) - Date.parse(newest.startedAt)) / 1000);
    }
  }
  if (s.archive) {
    g("bollard_backup_archive_streaming", "1 while the MySQL binlog archive streams from the primary", { node: s.archive.node }, s.archive.running ? 1 : 0);
    g("bollard_backup_archive_lag_seconds", "Seconds since the binlog archive last held everything the primary had", {}, s.archive.lagS);
    g("bollard_backup_archive_behind_transactions", "Transactions the primary has that the binlog archive has not", {}, s.archive.behind);
    g("bollard_backup_archive_gap", "1 when the binlog archive has a gap in its GTID sequence", {}, s.archive.gap ? 1 : 0);
  }
  for (const t of s.targets) g("bollard_backup_target_used_ratio", "Used share of each node's backup target filesystem", { node: t.node }, t.usedRatio);
  for (const j of s.jobs) g("bollard_backup_job_ok", "1 when the last job of each kind succeeded", { job: j.kind, node: j.node }, j.ok ? 1 : 0);
}
