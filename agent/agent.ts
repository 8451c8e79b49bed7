// The daemon (`bollard agent`), the composition root (DESIGN §2): the agent is the ordered
// list of components below, each wired in its own file (runtime/*-component.ts). Start-up
// starts them one after the other, each in its own try/catch (STYLE, zigbee2mqtt
// controller.ts); a failure stops the start-up, and `bollard agent` exits 1 (cli/cli.ts).
// stop() aborts an unfinished start-up (the AbortSignal each start() gets) and stops, in
// reverse, what had started.
import type { Config } from "./config/schema.ts";
import type { Timers } from "./env/env.ts";
import type { JsonLogger } from "./env/log.ts";
import { Notifier, type NotifyTarget } from "./env/notify.ts";
import { realTimers } from "./env/real.ts";
import { ClusterComponents } from "./runtime/cluster-component.ts";
import type { AgentContext, Component } from "./runtime/component.ts";
import { ControlComponent } from "./runtime/control-component.ts";
import type { Route } from "./runtime/control.ts";
import { HaComponent } from "./runtime/ha-component.ts";
import { MainLoop } from "./runtime/loop-component.ts";
import { BackupComponent } from "./runtime/backup-component.ts";
import { VmComponent } from "./runtime/vm-component.ts";
import { UpgradeComponent } from "./runtime/upgrade-component.ts";
import { ReadinessComponent } from "./runtime/readiness.ts";
import { WatchComponent } from "./runtime/watch-component.ts";
import { WebComponent } from "./runtime/web-component.ts";

export interface AgentOptions {
  version: string;
  rev: string;
  notify: NotifyTarget | null;
  timers?: Timers;
}

export class Agent {
  private readonly abort = new AbortController();
  private readonly notifier: Notifier;
  private readonly cluster: ClusterComponents;
  /** in start-up order; stopped in reverse */
  private readonly components: Component[];
  private readonly started: Component[] = [];
  private starting: Promise<void> | null = null;

  constructor(
    private readonly config: Config,
    private readonly log: JsonLogger,
    private readonly opts: AgentOptions,
  ) {
    const ctx: AgentContext = {
      config, log, timers: opts.timers ?? realTimers(), build: { version: opts.version, rev: opts.rev },
      startedMono: performance.now(), startedWall: Date.now(),
    };
    this.notifier = new Notifier(opts.notify, log.child("systemd"));
    /** routes other components mount on the control socket (the watch's /alarms) */
    const routes: Record<string, Route> = {};
    const cluster = (this.cluster = new ClusterComponents(ctx));
    const ha = new HaComponent(ctx, cluster);
    const ready = new ReadinessComponent(ctx, cluster, ha, routes);
    const vms = new VmComponent(ctx, cluster, ha, routes);
    const web = new WebComponent(ctx, cluster, ha, routes);
    const backup = new BackupComponent(ctx, cluster, routes);
    const watch = new WatchComponent(ctx, cluster, ha, routes, ready, vms, (h, wall) => web.onHost(h, wall), backup);
    const control = new ControlComponent(ctx, cluster, ha, watch, routes, ready, vms, backup);
    const upgrade = new UpgradeComponent(ctx, cluster, ha, routes);
    const loop = new MainLoop(ctx, this.notifier, cluster, ha, control);
    const c = cluster.steps;
    this.components = [
      c.state, //        the state directory, the store, the event log
      c.brokerAuth, //   the own broker's users, before anyone logs in to it
      c.credentials, //  this node's bus login: configured, saved, or got by joining (bus/identity.ts)
      c.cluster, //      the MQTT bus and the cluster node, made
      control, //        the control socket ("the agent is starting" until the node runs)
      c.node, //         the node loads its state and starts
      c.bus, //          the bus connects to the brokers
      ha, //             the data path: MySQL, Redis, the portal, the VIP
      ready, //          N+1 readiness: could the cluster lose each node now (GET /ready)
      vms, //            the VMs: QEMU, their mirrored disks, placement and restarts (vms: only)
      backup, //         backups, the binlog archive, verifications (backup: only)
      watch, //          hardware, host and cluster readings -> alarms, metrics
      upgrade, //        bundles staged, on trial, blessed; the rollout's routes (upgrade/)
      loop, //           the tick, the status file, the GC
      web, //            the web console (web.enabled): HTTPS on the listen addresses
      loop.ready, //     READY=1 to systemd
    ];
  }

  /** Resolves once every component has started; rejects (after logging which) if one fails. */
  start(): Promise<void> {
    this.starting ??= this.startAll();
    return this.starting;
  }

  /** STOPPING=1, abort an unfinished start-up, stop what started, in reverse. Never throws. */
  async stop(): Promise<void> {
    this.abort.abort();
    this.notifier.stopping();
    try {
      await this.starting;
    } catch {
      /* already logged by startAll */
    }
    for (const component of this.started.reverse()) {
      try {
        await component.stop?.();
        this.log.debug(`stopped ${component.name}`);
      } catch (e) {
        this.log.error(`stopping ${component.name} failed`, { err: e as Error });
      }
    }
    this.started.length = 0;
    await this.notifier.stop();
    this.log.info("agent stopped");
  }

  private async startAll(): Promise<void> {
    const c = this.config;
    this.log.info("agent starting", { version: this.opts.version, rev: this.opts.rev, cluster: c.cluster.name, node: c.cluster.node });
    for (const component of this.components) {
      if (this.abort.signal.aborted) throw new Error(`start-up aborted before ${component.name}`);
      try {
        await component.start(this.abort.signal);
      } catch (e) {
        this.log.error(`start-up failed: ${component.name}`, { err: e as Error });
        throw e;
      }
      this.started.push(component);
      this.log.debug(`started ${component.name}`);
    }
    this.log.info("agent started", { role: this.cluster.node?.view().role, stateDir: c.stateDir });
  }
}
