// Scheduled VM backups (issue 23 items 5, 6): which job the node that runs a VM starts next, what
// retention prunes of its chain, and what the backup alarms say of it. Pure: the same decisions
// as the MySQL and Redis backups (schedule.ts backupDue, verifyDue, backupProblems; retention.ts
// retain), fed with the VM manifests (resources/vm-backup-manifest.ts asCatalog: the same JSON).
//   - one job at a time on a node, backups before verifications, VMs in catalog order;
//   - a backup only of a VM that runs here and is left alone: not while it starts, stops or
//     migrates (its QEMU is about to go or to change node), nor while its guest is paused;
//   - due by vms.backup.every_s from its newest good backup, or at once on an operator's request
//     (register flag backup-now:vm:<name> = wall ms, as `bollard backup now` for MySQL);
//   - the newest unverified backup of each VM run here is verified (verifyDue), the newest good
//     one again every verify_every_s.
import type { RetentionPolicy, PruneDecision } from "./retention.ts";
import { retain } from "./retention.ts";
import { isGood } from "./manifest.ts";
import { backupDue, backupProblems, verifyDue, type BackupProblem, type JobResult } from "./schedule.ts";
import { asCatalog, type VmBackupManifest } from "../resources/vm-backup-manifest.ts";

/** A VM as the node that would back it up sees it now. */
export interface VmHere {
  name: string;
  /** its QEMU's run state on this node (ha/vm-types.ts VmRunState), null when it has none here */
  state: string | null;
  /** the register places it on this node */
  placedHere: boolean;
  /** an action of the VM runtime under way ("start", "stop", "migrate", ...) */
  busy: string | null;
  /** a live migration asked for (vm-mig:<vm>) or under way out of this node */
  migration: string | null;
}

export const subjectOf = (vm: string): string => `vm:${vm}`;
export const requestFlag = (vm: string): string => `backup-now:vm:${vm}`;

/** Why a scheduled backup of `x` must not start now, or null. */
export function backupBlocked(x: VmHere): string | null {
  if (!x.placedHere) return "not placed on this node";
  if (x.state !== "running") return x.state === null ? "no QEMU of it runs here" : `its QEMU is ${x.state}`;
  if (x.busy) return `busy: ${x.busy} under way`;
  if (x.migration) return `a live migration: ${x.migration}`;
  return null;
}

const mine = (all: readonly VmBackupManifest[], vm: string) => all.filter((m) => m.name === vm);
const newestGood = (ms: readonly VmBackupManifest[]) => [...ms].filter((m) => isGood(asCatalog(m))).sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.id.localeCompare(b.id)).at(-1) ?? null;

export type VmJob = { do: "backup"; vm: string; why: string; request: number | null } | { do: "verify"; vm: string; id: string; why: string };

export interface NextJobInput {
  vms: readonly VmHere[];
  manifests: readonly VmBackupManifest[];
  everyS: number;
  verifyEveryS: number;
  nowMs: number;
  flags: Readonly<Record<string, string>>;
  /** per VM, the wall ms of the last operator request this node carried out */
  handled: Readonly<Record<string, number>>;
}

/** The next job this node starts, or null; `skipped`: why each VM due a backup waits. */
export function nextJob(i: NextJobInput): { job: VmJob | null; skipped: { vm: string; why: string }[] } {
  const skipped: { vm: string; why: string }[] = [];
  for (const x of i.vms) {
    const latest = newestGood(mine(i.manifests, x.name));
    const req = Number(i.flags[requestFlag(x.name)] ?? NaN);
    const request = Number.isFinite(req) ? req : null;
    const handled = Math.max(i.handled[x.name] ?? 0, latest ? Date.parse(latest.startedAt) : 0);
    const due = backupDue(latest ? asCatalog(latest) : null, i.everyS, i.nowMs, request, handled);
    if (!due) continue;
    const blocked = backupBlocked(x);
    if (blocked) { if (x.placedHere) skipped.push({ vm: x.name, why: blocked }); continue; }
    return { job: { do: "backup", vm: x.name, why: due, request }, skipped };
  }
  for (const x of i.vms) {
    if (!x.placedHere) continue;
    const v = verifyDue(mine(i.manifests, x.name).map(asCatalog), i.verifyEveryS, i.nowMs);
    if (v) return { job: { do: "verify", vm: x.name, id: v.id, why: v.state === "complete" ? "not verified yet" : `verified over ${i.verifyEveryS} s ago` }, skipped };
  }
  return { job: null, skipped };
}

/** Retention over one VM's backups (retention.ts retain: a kept incremental keeps its parents,
 *  the newest good one is always kept); the backups of other VMs are never looked at. */
export function pruneVm(all: readonly VmBackupManifest[], vm: string, policy: RetentionPolicy, nowMs: number): PruneDecision {
  return retain(mine(all, vm).map(asCatalog), policy, nowMs);
}

/** The backup alarms of the VMs this node judges: backup-failed, backup-missed and
 *  backup-verify-failed with subject vm:<name> (schedule.ts backupProblems). `judge`: the VMs
 *  that run here (their alarms raised or cleared); `clear`: the others (what this node raised
 *  of them, when they ran here, clears). */
export function vmBackupProblems(o: { judge: readonly string[]; clear: readonly string[]; manifests: readonly VmBackupManifest[]; jobs: readonly JobResult[]; everyS: number; nowMs: number }): { problems: BackupProblem[]; judged: { rule: BackupProblem["rule"]; subject: string }[] } {
  const kinds = o.judge.map((vm) => {
    const ms = mine(o.manifests, vm);
    const good = newestGood(ms);
    return { kind: "vm" as const, subject: subjectOf(vm), everyS: o.everyS, newestGood: good ? asCatalog(good) : null, bad: ms.filter((m) => m.state === "bad").map(asCatalog) };
  });
  const r = backupProblems({ kinds, jobs: [...o.jobs], archive: null, targets: [], fullRatio: 1 }, o.nowMs);
  for (const vm of o.clear) for (const rule of ["backup-missed", "backup-failed", "backup-verify-failed"] as const) r.judged.push({ rule, subject: subjectOf(vm) });
  return r;
}
