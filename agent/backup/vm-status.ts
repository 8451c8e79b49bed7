// Each VM's backup status (issue 23 item 6, `bollard backup status`): its newest good backup and
// its age, whether that one is verified, how many good and bad, its last backup and verification
// jobs. vmBackupStatus is pure; readVmBackupStatus reads vms.backup.dir (the manifests and every
// node's vm-jobs-<node>.json, backup/vm-jobs-file.ts).
import { readBackups } from "../resources/vm-backup.ts";
import type { VmBackupManifest } from "../resources/vm-backup-manifest.ts";
import { readVmJobs } from "./vm-jobs-file.ts";
import type { JobResult } from "./schedule.ts";
import { subjectOf } from "./vm-schedule.ts";

export interface VmBackupStatus {
  vm: string;
  lastGood: string | null;
  lastGoodAt: string | null;
  ageS: number | null;
  verified: boolean;
  good: number;
  bad: number;
  lastBackupJob: JobResult | null;
  lastVerifyJob: JobResult | null;
}

export function vmBackupStatus(manifests: readonly VmBackupManifest[], jobs: readonly JobResult[], vms: readonly string[], nowMs: number): VmBackupStatus[] {
  const names = [...new Set([...vms, ...manifests.map((m) => m.name)])].sort();
  const last = (kind: string, vm: string) => jobs.filter((j) => j.kind === kind && j.subject === subjectOf(vm)).sort((a, b) => b.at.localeCompare(a.at))[0] ?? null;
  return names.map((vm) => {
    const mine = manifests.filter((m) => m.name === vm).sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.id.localeCompare(b.id));
    const good = mine.filter((m) => m.state !== "bad");
    const g = good.at(-1) ?? null;
    return {
      vm, lastGood: g?.id ?? null, lastGoodAt: g?.startedAt ?? null, ageS: g ? Math.round((nowMs - Date.parse(g.startedAt)) / 1000) : null,
      verified: g?.state === "verified", good: good.length, bad: mine.length - good.length, lastBackupJob: last("vm", vm), lastVerifyJob: last("verify-vm", vm),
    };
  });
}

const age = (s: number) => (s < 120 ? `${s} s` : s < 7200 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`);

/** One line per VM for `bollard backup status`. */
export function vmStatusLine(s: VmBackupStatus): string {
  const j = s.lastBackupJob, v = s.lastVerifyJob;
  return `vm ${s.vm}: last good ${s.lastGood ?? "none"}${s.ageS !== null ? ` (${age(s.ageS)} ago${s.verified ? ", verified" : ""})` : ""}; ${s.good} good, ${s.bad} bad` +
    (j ? `; last backup ${j.ok ? "ok" : `FAILED: ${j.error}`} at ${j.at} on ${j.node}` : "") +
    (v ? `; last verification ${v.ok ? "good" : `BAD: ${v.error}`} at ${v.at}` : "");
}

/** The status of every VM (`vms`: vms.machines' names) from `dir` (vms.backup.dir), reading the
 *  job results of `nodes`. */
export async function readVmBackupStatus(dir: string, vms: readonly string[], nodes: readonly string[], nowMs: number): Promise<VmBackupStatus[]> {
  const jobs: JobResult[] = [];
  for (const n of nodes) jobs.push(...(await readVmJobs(dir, n)));
  return vmBackupStatus(readBackups(dir).manifests, jobs, vms, nowMs);
}
