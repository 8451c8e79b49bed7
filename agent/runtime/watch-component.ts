// The hardware and alarm watch as a component (watch.ts): hardware, host and cluster
// readings -> alarms (history, bus, webhooks) and metrics. Started after the HA runtime,
// whose facts it judges; it mounts its routes (GET /alarms, POST /alarms/ack) on the
// control socket while it runs.
import type { BackupComponent } from "./backup-component.ts";
import type { ClusterComponents } from "./cluster-component.ts";
import type { AgentContext, Component } from "./component.ts";
import type { Route } from "./control.ts";
import type { HaComponent } from "./ha-component.ts";
import type { VmComponent } from "./vm-component.ts";
import type { HostReading } from "../hw/host.ts";
import type { ReadinessComponent } from "./readiness.ts";
import { Watch } from "./watch.ts";

export class WatchComponent implements Component {
  readonly name = "watch";
  watch: Watch | null = null;

  constructor(
    private readonly ctx: AgentContext,
    private readonly cluster: ClusterComponents,
    private readonly ha: HaComponent,
    /** the control socket's extra routes, shared with the control component */
    private readonly routes: Record<string, Route>,
    /** N+1 readiness, judged by its own component: the not-ready alarms */
    private readonly ready?: ReadinessComponent,
    private readonly vms: VmComponent | null = null,
    /** each host reading (the web console's chart samples) */
    private readonly onHost?: (h: HostReading, wall: number) => void,
    private readonly backup: BackupComponent | null = null,
  ) {}

  async start(): Promise<void> {
    const { config, log, timers, build, startedMono } = this.ctx;
    const watch = new Watch({
      config, log, bus: this.cluster.bus!, view: () => this.cluster.node?.view() ?? null, facts: () => this.ha.runtime?.snapshot().facts ?? null,
      writes: () => this.ha.runtime?.writesInput() ?? null,
      sites: () => this.ha.runtime?.siteAlarms() ?? null,
      siteMetrics: () => this.ha.runtime?.snapshot().sites.map((x) => ({ site: x.site, up: x.state !== "unreachable" && x.state !== "unknown", state: x.state, lagSeconds: x.lagS, lagTransactions: x.lagTrx })) ?? null,
      onEvent: (fn) => this.cluster.events.onRecord(fn), build: { version: build.version, rev: build.rev },
      uptimeS: () => (performance.now() - startedMono) / 1000, timers, now: () => performance.now(), wall: () => Date.now(),
      vms: () => {
        const rt = this.vms?.runtime;
        if (!rt) return null;
        const m = rt.metrics();
        const backups = this.vms?.backups?.status();
        return { alarms: () => rt.alarmInput(), metrics: m && backups ? { ...m, backups } : m };
      },
      ...(this.onHost ? { onHost: this.onHost } : {}),
      readiness: () => this.ready?.snapshot() ?? null,
      backups: () => {
        // the MySQL/Redis backups' (the acting leader judges) and the VMs' (each VM's node judges)
        const b = this.backup?.runtime ? { alarms: this.backup.alarmInput(), snap: this.backup.runtime.snap } : null;
        const v = this.vms?.backups?.alarmInput() ?? null;
        if (!v) return b;
        const a = b?.alarms ?? null;
        return { snap: b?.snap ?? null, alarms: { judge: a?.judge ?? false, judged: [...(a?.judged ?? []), ...v.judged], problems: [...(a?.problems ?? []), ...v.problems] } };
      },
    });
    await watch.start();
    this.watch = watch;
    Object.assign(this.routes, watch.routes());
  }

  async stop(): Promise<void> {
    for (const k of Object.keys(this.routes)) delete this.routes[k];
    await this.watch?.stop();
    this.watch = null;
  }
}
