// What the backup runtime last saw (runtime.ts), read by the metrics (runtime/backup-metrics.ts)
// and the status body. A file of its own: the metrics need the shape, not the runtime, whose
// config import would close a cycle (config/schema.ts -> runtime/metrics.ts -> here).
import type { ArchiveStatus } from "./archive.ts";
import type { Listed } from "./manifest.ts";
import type { BackupProblem, JobResult } from "./schedule.ts";

export interface BackupSnapshot {
  backups: Listed[];
  archive: ArchiveStatus | null;
  jobs: JobResult[];
  running: string[];
  problems: BackupProblem[] | null;
  judged: { rule: BackupProblem["rule"]; subject: string }[];
  targets: { node: string; usedRatio: number | null; error: string | null }[];
}
