// The VM metrics (issue 14 §4, docs/metrics.md): each node's VMs as it runs them, and on the
// leader what is wrong with them. Drawn from the VM runtime's snapshot at each scrape.
import type { VmBackupStatus } from "../backup/vm-status.ts";
import type { VmNodeFacts, VmProblem } from "../ha/vm-types.ts";

export interface VmMetrics {
  node: string;
  facts: VmNodeFacts;
  memoryMb: Record<string, number>;
  /** the leader's problems; null on other nodes */
  problems: VmProblem[] | null;
  /** the backups of the VMs this node runs (vms.backup); absent without */
  backups?: VmBackupStatus[];
}

type Gauge = (name: string, help: string, labels: Record<string, string>, v: number | null | undefined) => void;

export function renderVmMetrics(g: Gauge, m: VmMetrics): void {
  for (const x of m.facts.vms) {
    const l = { vm: x.name, node: m.node };
    g("bollard_vm_running", "1 when the VM's guest runs on this node", l, x.state === "running" ? 1 : 0);
    g("bollard_vm_state", "The VM's state on this node (label state), always 1", { ...l, state: x.state }, 1);
    g("bollard_vm_start_failures", "Failed starts (or unrequested exits) of the VM on this node, counted for its restart back-off", l, x.fails);
    if (x.state !== "stopped" && x.state !== "failed") g("bollard_vm_memory_bytes", "Memory given to the VM", l, (m.memoryMb[x.name] ?? 0) * 1024 * 1024);
    if (x.mirror) {
      const ml = { ...l, replica: x.mirror.to };
      g("bollard_vm_mirror_in_sync", "1 while every disk of the VM is mirrored write-blocking to its replica and in sync", ml, x.mirror.state === "ready" ? 1 : 0);
      g("bollard_vm_mirror_copied_ratio", "Share of the first copy of the VM's disks done, 0..1", ml, x.mirror.done);
    }
    if (x.migration?.ms !== undefined) {
      g("bollard_vm_last_migration_seconds", "Duration of the VM's last live migration from this node", { ...l, to: x.migration.to }, x.migration.ms / 1000);
      if (x.migration.downtimeMs !== undefined) g("bollard_vm_last_migration_downtime_seconds", "Guest pause of the VM's last live migration from this node", { ...l, to: x.migration.to }, x.migration.downtimeMs / 1000);
    }
  }
  for (const b of m.backups ?? []) {
    const l = { vm: b.vm, node: m.node };
    g("bollard_vm_backup_count", "Backups of the VM in its chain, by state (good counts verified ones too)", { ...l, state: "good" }, b.good);
    g("bollard_vm_backup_count", "Backups of the VM in its chain, by state (good counts verified ones too)", { ...l, state: "bad" }, b.bad);
    g("bollard_vm_backup_last_good_age_seconds", "Age of the VM's newest good backup", l, b.ageS);
    if (b.lastGood) g("bollard_vm_backup_last_good_verified", "1 when the VM's newest good backup has been verified by restoring it", l, b.verified ? 1 : 0);
    if (b.lastBackupJob) g("bollard_vm_backup_job_ok", "1 when the VM's last backup or verification job on this node succeeded", { ...l, job: "backup" }, b.lastBackupJob.ok ? 1 : 0);
    if (b.lastVerifyJob) g("bollard_vm_backup_job_ok", "1 when the VM's last backup or verification job on this node succeeded", { ...l, job: "verify" }, b.lastVerifyJob.ok ? 1 : 0);
  }
  g("bollard_vm_replicas_served", "VMs whose disks this node serves as their replica", { node: m.node }, m.facts.exports.length);
  g("bollard_vm_storage_daemon_up", "1 when this node's qemu-storage-daemon answers", { node: m.node }, m.facts.storage ? 1 : 0);
  if (m.problems) {
    for (const kind of ["down", "restart-failed", "mirror-degraded", "no-capacity"] as const) {
      g("bollard_vm_problems", "VMs with each kind of problem, as the leader sees them", { kind }, m.problems.filter((p) => p.kind === kind).length);
    }
  }
}
