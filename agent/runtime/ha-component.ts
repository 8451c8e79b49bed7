// The data path (issue 4) as a component: the HA runtime (ha-runtime.ts), started once the
// bus is connecting and only when the config has an `ha:` section. MySQL, Redis, the portal
// and the VIP then follow the register; the main loop takes its steps.
import type { ClusterComponents } from "./cluster-component.ts";
import type { AgentContext, Component } from "./component.ts";
import { HaRuntime } from "./ha-runtime.ts";

export class HaComponent implements Component {
  readonly name = "ha";
  /** null without `ha:`, and before start and after stop */
  runtime: HaRuntime | null = null;

  constructor(
    private readonly ctx: AgentContext,
    private readonly cluster: ClusterComponents,
  ) {}

  async start(): Promise<void> {
    const { config: c, log } = this.ctx;
    if (!c.ha) return;
    const { node, bus, events } = this.cluster;
    const ha = new HaRuntime({
      config: c, node: node!, send: (to, msg) => bus!.send(to, msg), log,
      event: (kind, detail, fields) => events.record({ kind, node: c.cluster.node, term: node!.view().term, detail, fields }),
    });
    bus!.onMessage((from, msg) => ha.receive(from, msg));
    await ha.start();
    this.runtime = ha;
  }

  async stop(): Promise<void> {
    await this.runtime?.stop();
    this.runtime = null;
  }
}
