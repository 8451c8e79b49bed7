// The VMs (issue 14) as a component: the VM runtime (vm-runtime.ts), started after the data
// path when the config has a `vms:` section, stepped by its own timer every STEP_MS (the main
// loop's tick stays the cluster's). It mounts GET /vms on the control socket (the CLI's
// `bollard vm list`, the console); the VM commands go through the leader as register flags.
import type { ClusterComponents } from "./cluster-component.ts";
import type { AgentContext, Component } from "./component.ts";
import type { Route } from "./control.ts";
import type { HaComponent } from "./ha-component.ts";
import { STEP_MS, VmRuntime } from "./vm-runtime.ts";
import type { TimerHandle } from "../env/env.ts";
import { join } from "node:path";
import { TICK_MS, VmBackupJobs } from "./vm-backup-jobs.ts";

export class VmComponent implements Component {
  readonly name = "vms";
  /** null without `vms:`, and before start and after stop */
  runtime: VmRuntime | null = null;
  /** scheduled VM backups and verifications (vms.backup); null without */
  backups: VmBackupJobs | null = null;
  private timer: TimerHandle | null = null;
  private backupTimer: TimerHandle | null = null;
  private off: (() => void) | null = null;

  constructor(
    private readonly ctx: AgentContext,
    private readonly cluster: ClusterComponents,
    private readonly ha: HaComponent,
    private readonly routes: Record<string, Route>,
  ) {}

  async start(): Promise<void> {
    const { config: c, log, timers } = this.ctx;
    if (!c.vms) return;
    const { node, bus, events } = this.cluster;
    const rt = new VmRuntime({
      config: c, node: node!, send: (to, msg) => bus!.send(to, msg), log,
      event: (kind, detail, fields) => events.record({ kind, node: c.cluster.node, term: node!.view().term, detail, fields }),
      haFacts: () => this.ha.runtime?.snapshot().facts ?? null,
    });
    this.off = bus!.onMessage((from, msg) => rt.receive(from, msg));
    await rt.start();
    this.runtime = rt;
    this.routes["GET /vms"] = async () => ({ code: 200, body: { status: "ok", ...rt.snapshot() } });
    if (c.vms.backup) {
      const jobs = new VmBackupJobs({
        backup: c.vms.backup, self: c.cluster.node, log: log.child("vm-backup"),
        event: (detail, fields) => events.record({ kind: "backup", node: c.cluster.node, term: node!.view().term, detail, fields }),
        vms: () => rt.backupView(), flags: () => node!.view().committed.flags,
        claim: (vm) => rt.claimForBackup(vm), release: (vm) => rt.releaseBackup(vm),
        scratch: join(c.stateDir, "vm-backup-verify"),
      });
      this.backups = jobs;
      this.backupTimer = timers.every(TICK_MS, () => void jobs.tick());
    }
    this.timer = timers.every(STEP_MS, () => {
      try {
        rt.step();
      } catch (e) {
        log.error("VM step failed", { err: e as Error });
      }
    });
  }

  async stop(): Promise<void> {
    this.timer?.cancel();
    this.timer = null;
    this.backupTimer?.cancel();
    this.backupTimer = null;
    this.backups = null;
    this.off?.();
    delete this.routes["GET /vms"];
    await this.runtime?.stop();
    this.runtime = null;
  }
}
