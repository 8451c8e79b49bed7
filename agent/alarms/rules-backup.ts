// The backup alarms (issue 23 items 6, 7): a backup that failed, a schedule missed, a backup
// that failed its verification, a gap in the binlog archive or the archive not streaming, a
// backup target nearly full or unusable. backup/schedule.ts finds them from the catalog, which
// every node can read; the acting leader judges them (one voice for the cluster), and a node that
// does not judge clears what it raised when it did. A VM's (subject vm:<name>): the node that
// runs it judges them, from its vms.backup.dir (runtime/vm-backup-jobs.ts). Pure.
import type { Collector } from "./collector.ts";
import { alarmId, type BackupAlarmInput } from "./types.ts";

export function backupRules(out: Collector, reporter: string, b: BackupAlarmInput): void {
  if (!b.judge) {
    for (const rule of ["backup-failed", "backup-missed", "backup-verify-failed", "backup-archive-gap", "backup-archive-down"] as const) for (const s of ["mysql", "redis"]) out.judged(alarmId(rule, s));
  }
  // the VMs' (subject vm:<name>) are judged by the node that runs each VM, leader or not
  // (runtime/vm-backup-jobs.ts): they come in `judged` and `problems` whatever `judge` says
  // a subject of parts (vm:<name>) is an id of parts: backup-missed:vm:app
  for (const j of b.judged) out.judged(alarmId(j.rule, ...j.subject.split(":")));
  for (const p of b.problems) {
    const id = alarmId(p.rule, ...p.subject.split(":"));
    out.add({ id, scope: id, rule: p.rule, severity: p.severity, node: p.rule === "backup-target-full" ? p.subject : reporter, text: p.text, detail: p.detail });
  }
}
