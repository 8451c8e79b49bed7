// The main loop and systemd (STYLE: "the daemon is a thin loop around a step"): every tick_ms
// one step of the cluster node and of the HA runtime, the watchdog fed after a good one and
// the node's state published; the status file every second; the GC once a minute. READY=1
// once every component before it has started.
import { GC_EVERY_MS, collectGarbage } from "../env/gc.ts";
import type { TimerHandle } from "../env/env.ts";
import type { Notifier } from "../env/notify.ts";
import type { ClusterComponents } from "./cluster-component.ts";
import type { AgentContext, Component } from "./component.ts";
import type { ControlComponent } from "./control-component.ts";
import type { HaComponent } from "./ha-component.ts";

const STATUS_FILE_EVERY_MS = 1000;

export class MainLoop implements Component {
  readonly name = "loop";
  private loops: TimerHandle[] = [];
  private tickFailures = 0;
  private lastStatusLine = "";

  constructor(
    private readonly ctx: AgentContext,
    private readonly notifier: Notifier,
    private readonly cluster: ClusterComponents,
    private readonly ha: HaComponent,
    private readonly control: ControlComponent,
  ) {}

  start(): void {
    const { config, timers, log } = this.ctx;
    this.loops = [
      timers.every(config.timing.tickMs, () => this.tick()),
      timers.every(STATUS_FILE_EVERY_MS, () => this.control.writeStatus()),
      timers.every(GC_EVERY_MS, () => collectGarbage(log)),
    ];
    this.control.writeStatus();
  }

  stop(): void {
    this.loops.forEach((l) => l.cancel());
    this.loops = [];
    this.control.writeStatus();
  }

  /** systemd's READY=1, with the status line: the last component to start. */
  readonly ready: Component = {
    name: "notify",
    start: () => {
      this.notifier.start();
      this.lastStatusLine = this.cluster.statusLine();
      this.notifier.ready(this.lastStatusLine);
    },
  };

  /** One pass of the main loop. The watchdog is fed only after a good tick. */
  private tick(): void {
    if (!this.cluster.running) return;
    try {
      this.cluster.node!.tick();
      this.ha.runtime?.step();
    } catch (e) {
      // A throwing core is a bug. No watchdog ping: if it persists, systemd restarts us.
      if (this.tickFailures++ % 100 === 0) this.ctx.log.error("cluster tick failed", { failures: this.tickFailures, err: e as Error });
      return;
    }
    this.tickFailures = 0;
    this.notifier.watchdog();
    try {
      if (this.cluster.publish()) {
        const line = this.cluster.statusLine();
        if (line !== this.lastStatusLine) this.notifier.status(line);
        this.lastStatusLine = line;
      }
    } catch (e) {
      this.ctx.log.error("publishing the node state failed", { err: e as Error });
    }
  }
}
