// What the acting leader does for the VMs besides deciding (ha/vm-manager.ts VmAction): commits,
// fences of lost nodes that run VMs (fence/fence.ts, the data path's levels and timings), and
// probes of silent nodes: a TCP connect to their qemu-storage-daemon's NBD port, which answers
// while the node has power and network even when its agent is stalled.
import { connect } from "node:net";
import type { ClusterNode } from "../cluster/node.ts";
import type { Config } from "../config/schema.ts";
import type { Logger } from "../env/env.ts";
import { fenceNode, realFenceDeps } from "../fence/fence.ts";
import { nodeFenceConfig } from "../fence/node-config.ts";
import type { VmAction, VmManager } from "../ha/vm-manager.ts";

const PROBE_EVERY_MS = 200;
const PROBE_TIMEOUT_MS = 400;

export interface VmLeaderDeps {
  config: Config;
  node: ClusterNode;
  log: Logger;
  event(kind: string, detail: string, fields?: Record<string, unknown>): void;
}

/** A TCP connect to host:port within `ms`: whether something accepted it. */
export function tcpAnswers(host: string, port: number, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (ok: boolean) => { s.destroy(); resolve(ok); };
    s.setTimeout(ms, () => done(false));
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
  });
}

export class VmLeaderIo {
  private readonly fencing = new Map<string, AbortController>();
  /** local ms each silent node last answered the probe */
  private readonly okAt = new Map<string, number>();
  private readonly probing = new Map<string, number>();

  constructor(private readonly d: VmLeaderDeps, private readonly mgr: VmManager) {}

  act(a: VmAction): void {
    if (a.kind === "commit") return this.d.node.command(a.cmd, (r) => this.mgr.commitDone(r.status === "ok", r.error));
    if (a.kind === "abort-fence") {
      const ac = this.fencing.get(a.node);
      this.fencing.delete(a.node);
      ac?.abort(new Error(a.why));
      return;
    }
    void this.fence(a.node, a.lastContactAgoMs, a.id);
  }

  private async fence(node: string, agoMs: number, id: number): Promise<void> {
    const ha = this.d.config.ha!.ha;
    const t = this.d.config.timing;
    const ac = new AbortController();
    this.fencing.get(node)?.abort(new Error("superseded by a new fence"));
    this.fencing.set(node, ac);
    this.d.event("vm-fence", `fencing ${node}: last heard ${Math.round(agoMs)} ms ago`, { node });
    try {
      const r = await fenceNode({ node, config: nodeFenceConfig(ha, node), lastContactMs: performance.now() - Math.max(0, agoMs) }, {
        deps: realFenceDeps(this.d.log), signal: ac.signal,
        timing: { quorumLossMs: t.quorumLossMs, watchdogMs: ha.watchdog_ms, marginMs: ha.fence_margin_ms, maxDrift: t.maxDrift },
        onProof: (p) => this.d.event("vm-fence", `${node} level ${p.level} ${p.ok ? "CONFIRMED" : "not confirmed"} in ${p.ms} ms: ${p.detail}`, { node, level: p.level, ok: p.ok, ms: p.ms }),
      });
      this.mgr.fenceDone(node, r.fenced, r.proofs, performance.now(), id);
    } catch (e) {
      this.mgr.fenceDone(node, false, [{ level: "deadline", ok: false, detail: (e as Error).message, ms: 0 }], performance.now(), id);
    } finally {
      if (this.fencing.get(node) === ac) this.fencing.delete(node);
    }
  }

  /** This node stopped leading: fence levels not started yet are called off, probes forgotten. */
  stopLeading(why: string): void {
    for (const [n, ac] of this.fencing) { this.d.event("vm-fence", `the fence of ${n} stops at the level it reached: ${why}`); ac.abort(new Error(why)); }
    this.fencing.clear();
    this.okAt.clear();
  }

  /** Probes the silent nodes (`silent`) whose storage daemon may still answer. */
  probe(silent: string[], now: number): void {
    const v = this.d.config.vms!;
    for (const n of [...this.okAt.keys()]) if (!silent.includes(n)) this.okAt.delete(n);
    for (const n of silent) {
      const addr = v.addresses[n];
      if (!addr || now - (this.probing.get(n) ?? -Infinity) < PROBE_EVERY_MS) continue;
      this.probing.set(n, now);
      void tcpAnswers(addr, v.nbdPort, PROBE_TIMEOUT_MS).then((ok) => { if (ok) this.okAt.set(n, now); });
    }
  }

  probeOkAt(node: string): number | null {
    return this.okAt.get(node) ?? null;
  }
}
