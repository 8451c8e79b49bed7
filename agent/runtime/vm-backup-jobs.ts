// Scheduled VM backups, their retention and verification (issue 23 items 5, 6) on the node that
// runs each VM: every tick (vm-component.ts, every TICK_MS) backup/vm-schedule.ts picks at most
// one job and this carries it out, awaiting it (one VM at a time on a node):
//   backup  through the agent's own QMP connection to the VM's QEMU (the VM runtime's). Not the
//           second monitor (ctl.sock): a QEMU socket chardev serves one client at a time, and that
//           one stays free for the operator's `bollard vm backup`. The VM runtime is told first
//           (claim): it starts no stop or migration of the VM until the backup is over (a kill,
//           as a node fences itself, still goes); then retention over that VM's chain.
//   verify  of the newest unverified backup (resources/vm-backup-verify.ts), into a scratch
//           directory under the state directory.
// Each backup, prune and verification is an event in the event log. Each job's result goes to
// <vms.backup.dir>/vm-jobs-<node>.json (JobResult, as the MySQL/Redis jobs.json) for the alarms
// and `bollard backup status`. The alarms of the VMs that run here are judged here.
import { mkdir, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { VmBackupConfig } from "../config/vm-schema.ts";
import type { Logger } from "../env/env.ts";
import type { VmDef } from "../ha/vm-types.ts";
import type { BackupAlarmInput } from "../alarms/types.ts";
import type { JobResult } from "../backup/schedule.ts";
import { nextJob, pruneVm, subjectOf, vmBackupProblems, type VmHere } from "../backup/vm-schedule.ts";
import type { VmPaths } from "../resources/qemu-args.ts";
import type { Qmp } from "../resources/qmp.ts";
import { readBackups, takeBackup } from "../resources/vm-backup.ts";
import { verifyVmBackup } from "../resources/vm-backup-verify.ts";
import { jobsFile, readVmJobs } from "../backup/vm-jobs-file.ts";
import { vmBackupStatus, type VmBackupStatus } from "../backup/vm-status.ts";

export const TICK_MS = 5000;

export interface VmBackupJobsDeps {
  /** vms.backup (read at every tick) */
  backup: VmBackupConfig;
  self: string;
  log: Logger;
  /** the event log (kind "backup") */
  event(detail: string, fields: Record<string, unknown>): void;
  /** the VMs as the VM runtime sees them now, with the QEMU's QMP connection where one runs here */
  vms(): (VmHere & { def: VmDef; paths: VmPaths; qmp: Qmp | null })[];
  /** the committed register's flags (backup-now:vm:<name>) */
  flags(): Readonly<Record<string, string>>;
  /** the VM runtime holds back stops and migrations of `vm` until release; false: it is busy */
  claim(vm: string): boolean;
  release(vm: string): void;
  /** where verifications restore (a directory of this node's) */
  scratch: string;
  now?: () => number;
  /** ms to wait for a guest agent's fsfreeze answer */
  agentMs?: number;
}

export class VmBackupJobs {
  private readonly now: () => number;
  private readonly handled: Record<string, number> = {};
  private ticking = false;
  private jobs: JobResult[] = [];
  private alarms: BackupAlarmInput = { judge: false, judged: [], problems: [] };
  private statusHere: VmBackupStatus[] = [];
  /** the job under way ("backup app", "verify app-2026...") */
  running: string | null = null;

  constructor(private readonly d: VmBackupJobsDeps) {
    this.now = d.now ?? Date.now;
  }

  private get b() {
    return this.d.backup;
  }

  /** One step: at most one job, awaited, then the alarms judged. */
  async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      await this.step();
    } catch (e) {
      this.d.log.error("VM backup step failed", { err: (e as Error).message });
    } finally {
      this.ticking = false;
      this.running = null;
    }
  }

  private async step(): Promise<void> {
    const vms = this.d.vms();
    this.jobs = await readVmJobs(this.b.dir, this.d.self);
    const { manifests } = readBackups(this.b.dir);
    const { job } = nextJob({ vms, manifests, everyS: this.b.everyS, verifyEveryS: this.b.verifyEveryS, nowMs: this.now(), flags: this.d.flags(), handled: this.handled });
    const x = job && vms.find((v) => v.name === job.vm)!;
    if (job?.do === "backup" && x?.qmp) {
      // a mirror's incremental rebuild is a backup job too (resources/vm-rebuild.ts): wait for
      // it rather than fail (and raise backup-failed) on it
      const other = (await x.qmp.execute<{ device: string; type: string; status: string }[]>("query-block-jobs").catch(() => [])).filter((j) => j.type === "backup" && j.status !== "concluded");
      if (!other.length && this.d.claim(job.vm)) {
        if (job.request !== null) this.handled[job.vm] = Math.max(this.handled[job.vm] ?? 0, job.request);
        this.running = `backup ${job.vm}`;
        try {
          await this.backup(x, x.qmp, job.why);
        } finally {
          this.d.release(job.vm);
        }
      } else this.d.log.debug(`VM backup of ${job.vm} waits: ${other.length ? `block job ${other.map((j) => j.device).join(", ")} runs` : "an action on it is under way"}`);
    } else if (job?.do === "verify") {
      this.running = `verify ${job.id}`;
      await this.verify(job.vm, job.id, manifests);
    }
    // judged after the job: a VM with no backup yet is not "missed" while its first one is taken
    this.judge(this.d.vms());
  }

  private async backup(x: { def: VmDef; paths: VmPaths; name: string }, q: Qmp, why: string): Promise<void> {
    const t0 = performance.now();
    const storedOn = this.b.node ?? this.d.self;
    let res: JobResult;
    try {
      const r = await takeBackup(q, { def: x.def, paths: x.paths, root: this.b.dir, node: this.d.self, storedOn, full: false, fullEvery: this.b.fullEvery, qemuVersion: q.version, agentMs: this.d.agentMs ?? 3000 });
      const m = r.manifest;
      res = { kind: "vm", subject: subjectOf(x.name), node: this.d.self, at: new Date(this.now()).toISOString(), ok: true, error: null, id: m.id, ms: r.ms };
      this.d.log.info(`VM backup ${m.id} of ${x.name} complete: ${m.bytes} bytes in ${r.ms} ms (${r.plan.why}; ${why})`);
      this.d.event(`vm backup ${m.id} of ${x.name} complete on ${storedOn} (${r.ms} ms, ${m.bytes} bytes, ${m.parent ? `incremental on ${m.parent}` : "full"}: ${r.plan.why}; ${m.detail.consistency}; ${why})`, { vm: x.name, id: m.id, ms: r.ms, bytes: m.bytes, parent: m.parent });
      await this.prune(x.name);
    } catch (e) {
      const error = (e as Error).message.slice(0, 400);
      res = { kind: "vm", subject: subjectOf(x.name), node: this.d.self, at: new Date(this.now()).toISOString(), ok: false, error, id: null, ms: Math.round(performance.now() - t0) };
      this.d.log.error(`VM backup of ${x.name} failed`, { err: error });
      this.d.event(`vm backup of ${x.name} FAILED: ${error}`, { vm: x.name, failed: true });
    }
    await this.record(res);
  }

  /** Retention over the VM's chain (vm-schedule.ts pruneVm); the newest first, so that a parent
   *  goes only after its children. */
  private async prune(vm: string): Promise<void> {
    const { manifests } = readBackups(this.b.dir);
    const d = pruneVm(manifests, vm, this.b.retention, this.now());
    for (const p of d.prune) {
      await rm(join(this.b.dir, "vm", p.id), { recursive: true, force: true });
      this.d.log.info(`VM backup ${p.id} of ${vm} pruned: ${p.why}`);
      this.d.event(`vm backup ${p.id} of ${vm} pruned: ${p.why}`, { vm, id: p.id, pruned: true });
    }
  }

  private async verify(vm: string, id: string, manifests: Parameters<typeof verifyVmBackup>[1]): Promise<void> {
    const r = await verifyVmBackup(this.b.dir, manifests, id, join(this.d.scratch, id), this.now);
    this.d.log[r.ok ? "info" : "error"](`verification of VM backup ${id}: ${r.ok ? "good" : `BAD: ${r.error}`}`, { ms: r.ms });
    this.d.event(`vm backup ${id} of ${vm} ${r.ok ? "verified" : `found BAD: ${r.error}`}${r.alsoBad.length ? ` (also marked bad: ${r.alsoBad.join(", ")})` : ""} in ${r.ms} ms`, { vm, id, ok: r.ok, ms: r.ms });
    await this.record({ kind: "verify-vm", subject: subjectOf(vm), node: this.d.self, at: new Date(this.now()).toISOString(), ok: r.ok, error: r.error, id, ms: r.ms });
  }

  private judge(vms: ReturnType<VmBackupJobsDeps["vms"]>): void {
    const here = vms.filter((v) => v.placedHere && v.state !== null);
    const { manifests } = readBackups(this.b.dir);
    const r = vmBackupProblems({
      judge: here.map((v) => v.name), clear: vms.filter((v) => !here.includes(v)).map((v) => v.name),
      manifests, jobs: this.jobs, everyS: this.b.everyS, nowMs: this.now(),
    });
    this.alarms = { judge: false, judged: r.judged, problems: r.problems };
    const names = here.map((v) => v.name);
    this.statusHere = vmBackupStatus(manifests, this.jobs, names, this.now()).filter((x) => names.includes(x.vm));
  }

  /** The backup status of the VMs that run here, as of the last step (the status body, the
   *  console's Backup lines and the metrics). */
  status(): VmBackupStatus[] {
    return this.statusHere.map((x) => ({ ...x }));
  }

  /** What the backup alarm rules judge of the VMs (merged with the MySQL/Redis ones). */
  alarmInput(): BackupAlarmInput {
    return this.alarms;
  }

  /** The last job results of this node. */
  lastJobs(): JobResult[] {
    return [...this.jobs];
  }

  private async record(r: JobResult): Promise<void> {
    const jobs = (await readVmJobs(this.b.dir, this.d.self)).filter((j) => !(j.kind === r.kind && j.subject === r.subject));
    jobs.push(r);
    this.jobs = jobs;
    try {
      await mkdir(this.b.dir, { recursive: true });
      const f = jobsFile(this.b.dir, this.d.self);
      await writeFile(`${f}.new`, JSON.stringify(jobs, null, 2) + "\n");
      await rename(`${f}.new`, f);
    } catch (e) {
      this.d.log.warn("could not record a VM backup job's result", { err: (e as Error).message });
    }
  }
}
