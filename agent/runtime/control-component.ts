// The control socket as a component (control.ts): the status body, commands through the
// leader, any node's logs and events, and the routes other components mount (the watch's
// alarms). It also writes the status body to `<state_dir>/status.json` (status.ts), which
// the main loop asks for every second.
import type { BackupComponent } from "./backup-component.ts";
import type { Command } from "../bus/messages.ts";
import type { ClusterComponents } from "./cluster-component.ts";
import type { AgentContext, Component } from "./component.ts";
import { ControlServer, type CommandResult, type ControlHandlers, type FetchParams, type Route } from "./control.ts";
import type { HaComponent } from "./ha-component.ts";
import type { VmComponent } from "./vm-component.ts";
import { writeStatusFile, type StatusBody } from "./status.ts";
import type { ReadinessComponent } from "./readiness.ts";
import type { WatchComponent } from "./watch-component.ts";

const COMMAND_TIMEOUT_MS = 10_000;

export class ControlComponent implements Component {
  readonly name = "control";
  private server: ControlServer | null = null;
  private statusFileFailing = false;

  constructor(
    private readonly ctx: AgentContext,
    private readonly cluster: ClusterComponents,
    private readonly ha: HaComponent,
    private readonly watch: WatchComponent,
    /** routes other components mount while they run */
    private readonly routes: Record<string, Route>,
    private readonly ready?: ReadinessComponent,
    private readonly vms: VmComponent | null = null,
    private readonly backup: BackupComponent | null = null,
  ) {}

  async start(): Promise<void> {
    this.server = new ControlServer(this.ctx.config.control.socket, this.handlers(), this.ctx.log.child("control"));
    await this.server.start();
  }

  stop(): Promise<void> | void {
    return this.server?.stop();
  }

  statusBody(): StatusBody {
    const { node, bus, running } = this.cluster;
    if (!node || !bus || !running) throw new Error("the agent is starting or stopping");
    const { build, startedMono, startedWall } = this.ctx;
    return {
      agent: {
        version: build.version,
        rev: build.rev,
        pid: process.pid,
        uptimeS: Math.round((performance.now() - startedMono) / 1000),
        startedAt: new Date(startedWall).toISOString(),
      },
      cluster: this.ctx.config.cluster.name,
      view: node.view(),
      bus: bus.stats(),
      ha: this.ha.runtime?.snapshot() ?? null,
      watch: this.watch.watch?.snapshot() ?? null,
      ready: this.ready?.snapshot() ?? null,
      backup: this.backup?.short(Date.now()) ?? null,
      control: this.server?.stats() ?? null,
      vms: this.vms?.runtime?.snapshot() ?? null,
      vmBackups: this.vms?.backups?.status() ?? null,
      wall: Date.now(),
    };
  }

  writeStatus(): void {
    try {
      writeStatusFile(this.ctx.config.stateDir, this.statusBody());
      this.statusFileFailing = false;
    } catch (e) {
      if (!this.statusFileFailing) this.ctx.log.warn("cannot write the status file", { err: e as Error });
      this.statusFileFailing = true;
    }
  }

  private handlers(): ControlHandlers {
    const self = this.ctx.config.cluster.node;
    return {
      status: () => this.statusBody(),
      routes: this.routes,
      logs: async (p: FetchParams) => {
        const node = p.node ?? self;
        const r = await this.cluster.fetcher!.get(node, { what: "logs", ...p });
        return { node, lines: r.items, truncated: r.truncated };
      },
      events: async (p: FetchParams) => {
        const node = p.node ?? self;
        const r = await this.cluster.fetcher!.get(node, { what: "events", ...p });
        return { node, events: r.items, truncated: r.truncated };
      },
      command: (cmd: Command) =>
        new Promise<CommandResult>((resolve) => {
          const node = this.cluster.node;
          if (!node || !this.cluster.running) return resolve({ status: "error", error: "the agent is starting or stopping" });
          const timer = setTimeout(
            () => resolve({ status: "error", error: `no answer from the leader within ${COMMAND_TIMEOUT_MS / 1000} s` }),
            COMMAND_TIMEOUT_MS,
          );
          node.command(cmd, (r) => {
            clearTimeout(timer);
            resolve(r);
          });
        }),
    };
  }
}
