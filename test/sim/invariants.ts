// The safety invariants, checked after every simulator step (issue 2 §7):
//   I1 at most one leader per term;
//   I2 no two nodes believe they hold a valid lease at the same instant (real time), given
//      the drift bound;
//   I3 a committed config epoch is never lost or forked.
// I4 (liveness) is checked by the schedule runner once the last fault has healed.
import type { ClusterConfig } from "../../agent/bus/messages.ts";
import type { ClusterEvent } from "../../agent/env/env.ts";
import { majority } from "../../agent/cluster/register.ts";
import type { SimNode, World } from "./world.ts";

export class Invariants {
  readonly violations: string[] = [];
  private readonly leaders = new Map<number, string>();
  private readonly byEpoch = new Map<number, string>();
  private readonly nodeEpoch = new Map<string, number>();
  private top: ClusterConfig | null = null;

  constructor(private readonly w: World) {}

  private fail(what: string): void {
    if (this.violations.length < 20) this.violations.push(`t=${(this.w.now / 1000).toFixed(3)} ${what}`);
  }

  started(n: SimNode): void {
    const had = this.nodeEpoch.get(n.name) ?? 0;
    const now = n.core!.peek().committed.epoch;
    if (now < had) this.fail(`I3 ${n.name} restarted with committed epoch ${now} < ${had} it had committed`);
  }

  onEvent(n: SimNode, e: ClusterEvent): void {
    if (e.kind !== "role" || !e.detail.includes("=> leader")) return;
    const other = this.leaders.get(e.term);
    if (other && other !== n.name) this.fail(`I1 two leaders in term ${e.term}: ${other} and ${n.name}`);
    this.leaders.set(e.term, n.name);
  }

  afterStep(): void {
    for (const n of this.w.nodes.values()) {
      if (!n.core) continue;
      const c = n.core.peek().committed;
      const before = this.nodeEpoch.get(n.name) ?? 0;
      if (c.epoch === before) continue;
      if (c.epoch < before) this.fail(`I3 ${n.name} committed epoch went back from ${before} to ${c.epoch}`);
      this.nodeEpoch.set(n.name, c.epoch);
      const body = JSON.stringify(c);
      const seen = this.byEpoch.get(c.epoch);
      if (seen !== undefined && seen !== body) this.fail(`I3 fork at epoch ${c.epoch}: ${n.name} committed ${body}, another node ${seen}`);
      this.byEpoch.set(c.epoch, body);
      if (!this.top || c.epoch > this.top.epoch) this.top = c;
    }
    if (this.top) this.checkDurable(this.top);
  }

  /** I3 "never lost": a majority of the members of the newest committed config hold it or a successor on disk. */
  private checkDurable(top: ClusterConfig): void {
    let holding = 0;
    for (const m of top.members) {
      const saved = this.w.nodes.get(m.name)?.store.state;
      if (saved && saved.config.epoch >= top.epoch) holding++;
    }
    if (holding < majority(top.members.length)) this.fail(`I3 committed epoch ${top.epoch} held on disk by only ${holding} of ${top.members.length} members`);
  }

  /** I2 over the slice of real time [t0, t1), during which no node changes state. */
  slice(t0: number, t1: number): void {
    if (t1 <= t0) return;
    const spans: [string, number, number][] = [];
    for (const n of this.w.nodes.values()) {
      const win = n.core?.leaseWindow();
      if (!win) continue;
      const a = Math.max(t0, this.w.real(n, win.from));
      const b = Math.min(t1, this.w.real(n, win.until));
      if (b <= a) continue;
      for (const [other, x, y] of spans) {
        if (a < y && x < b) this.fail(`I2 ${other} and ${n.name} both hold a valid lease during [${(Math.max(a, x) / 1000).toFixed(4)}, ${(Math.min(b, y) / 1000).toFixed(4)})`);
      }
      spans.push([n.name, a, b]);
    }
  }
}
