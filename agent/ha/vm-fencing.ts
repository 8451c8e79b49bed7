// The leader fences a lost node that runs VMs and holds no data-path service (DESIGN §5,
// §5b): a VM is restarted elsewhere only with a fence proof, and the data path's failover
// (manager.ts) fences only the holders of MySQL, Redis and the VIP. The same steps and the same
// register flags: confirm the node is lost (a silent agent whose node still answers the leader's
// probe is a stalled agent, waited for up to the watchdog's timeout plus a margin), commit
// `fencing:<node>`, fence it (IPMI, switch ports, self-fence deadline: runtime/vm-leader.ts),
// commit `fenced:<node>` with the proof. One node at a time, as the data path does. Pure.
import type { ClusterConfig, Command } from "../bus/messages.ts";
import type { FenceProof } from "../resources/types.ts";
import { armed, fencedProof, inMaintenance } from "./flags.ts";

export interface FenceInput {
  now: number;
  wall: number;
  cfg: ClusterConfig;
  self: string;
  alive(node: string): boolean;
  /** ms since the node was last heard; -1 never */
  silence(node: string): number;
  /** local ms the node last answered the leader's probe, or null */
  probeOkAt(node: string): number | null;
  /** why the leader cannot fence `node` (nothing configured), or null */
  canFence(node: string): string | null;
}

export interface FenceTiming {
  watchdogMs: number;
  fenceMarginMs: number;
  fenceTimeoutMs: number;
}

export type FenceAction =
  | { kind: "fence"; node: string; lastContactAgoMs: number; id: number }
  | { kind: "abort-fence"; node: string; why: string };

interface Running {
  id: number;
  state: "running" | "done" | "failed";
  at: number;
  proofs: FenceProof[];
}

/** the leader's probe counts as "the node answers" for this long (ha/steps.ts DATA_PATH_FRESH_MS) */
const PROBE_FRESH_MS = 800;
const RETRY_MS = 5000;

const proofText = (ps: FenceProof[]) => ps.map((x) => `${x.level} ${x.ok ? "confirmed" : "failed"} (${x.detail}, ${x.ms} ms)`).join("; ");

export class VmFencer {
  private readonly fences = new Map<string, Running>();
  private readonly retryAt = new Map<string, number>();
  private seq = 0;
  /** what each node waits on, for the alarms and `vm list` */
  readonly waiting = new Map<string, string>();

  constructor(
    private readonly t: FenceTiming,
    private readonly ev: (kind: string, detail: string, fields?: Record<string, unknown>) => void,
  ) {}

  reset(): void {
    this.fences.clear();
    this.retryAt.clear();
    this.waiting.clear();
  }

  done(node: string, ok: boolean, proofs: FenceProof[], now: number, id: number): void {
    const f = this.fences.get(node);
    if (!f || f.id !== id || f.state !== "running") return;
    this.fences.set(node, { id, state: ok ? "done" : "failed", at: now, proofs });
  }

  /**
   * One step for the nodes in `lost` (silent members that run VMs and hold no data-path
   * service): at most one command to commit, and fence actions to carry out.
   */
  step(inp: FenceInput, lost: readonly string[], commit: (cmd: Command) => boolean): FenceAction[] {
    const out: FenceAction[] = [];
    const f = inp.cfg.flags;
    this.waiting.clear();
    // a fence of a node that is no longer ours to fence (heard again, the data path fences it)
    for (const [n, x] of this.fences) {
      if (x.state === "running") continue;
      if (!lost.includes(n) || `fenced:${n}` in f) this.fences.delete(n);
    }
    for (const node of lost) {
      if (fencedProof(f, node)) continue;
      const why = this.blocked(inp, node);
      if (why) { this.waiting.set(node, why); continue; }
      const mine = this.fences.get(node);
      if (!(`fencing:${node}` in f)) {
        if (mine) continue; // our fencing: commit is on its way
        if ([...this.fences.values()].some((x) => x.state === "running")) continue;
        const wait = this.confirmLost(inp, node);
        if (wait) { this.waiting.set(node, wait); continue; }
        if (commit({ op: "apply", why: `fencing ${node} (it runs VMs)`, flags: { [`fencing:${node}`]: String(Math.round(inp.wall)) } })) {
          this.ev("vm-fence", `${node} is lost (silent ${Math.round(inp.silence(node))} ms) and runs VMs: fencing it before they run elsewhere`, { node });
        }
        this.waiting.set(node, "committing fencing:" + node);
        continue;
      }
      if (!mine) {
        // fencing:node is committed: ours (after a leader change), or the data path's in flight
        const other = [...this.fences].find(([n, x]) => n !== node && x.state === "running");
        if (other) { this.waiting.set(node, `waiting for the fence of ${other[0]}`); continue; }
        const id = ++this.seq;
        this.fences.set(node, { id, state: "running", at: inp.now, proofs: [] });
        out.push({ kind: "fence", node, lastContactAgoMs: inp.silence(node), id });
        this.waiting.set(node, "fencing");
        continue;
      }
      if (mine.state === "running") {
        this.waiting.set(node, "fencing");
        if (inp.now - mine.at > this.t.fenceTimeoutMs) {
          out.push({ kind: "abort-fence", node, why: `no fence proof after ${this.t.fenceTimeoutMs} ms` });
          this.fences.set(node, { ...mine, state: "failed", proofs: [{ level: "deadline", ok: false, detail: "timed out", ms: Math.round(inp.now - mine.at) }] });
        }
        continue;
      }
      if (mine.state === "failed") {
        this.ev("vm-fence", `could not fence ${node}: ${proofText(mine.proofs)}; its VMs stay down; trying again in ${RETRY_MS / 1000} s`, { node, failed: true });
        this.fences.delete(node);
        this.retryAt.set(node, inp.now + RETRY_MS);
        this.waiting.set(node, `fence failed: ${proofText(mine.proofs)}`);
        continue;
      }
      const ok = mine.proofs.find((p) => p.ok);
      const proof = ok ? `${ok.level}: ${ok.detail}` : "fenced";
      if (commit({ op: "apply", why: `${node} fenced`, flags: { [`fencing:${node}`]: null, [`fenced:${node}`]: proof } })) {
        this.ev("vm-fence", `${node} fenced: ${proofText(mine.proofs)}`, { node, proof });
      }
    }
    return out;
  }

  /** Why `node` is not to be fenced now, or null. */
  private blocked(inp: FenceInput, node: string): string | null {
    const f = inp.cfg.flags;
    if (!armed(f)) return "HA is disarmed (bollard ha arm)";
    if (inMaintenance(f, node)) return `${node} is in maintenance: never fenced`;
    const cannot = inp.canFence(node);
    if (cannot) return `cannot fence ${node}: ${cannot}`;
    if (inp.now < (this.retryAt.get(node) ?? -Infinity)) return "the last fence failed; trying again soon";
    // one node at a time (manager.ts fence()): a majority must stay to commit the restarts
    const other = inp.cfg.members.map((m) => m.name).find((n) => n !== node && `fencing:${n}` in f);
    if (other && !this.fences.has(node)) return `not fencing ${node} while ${other} is being fenced: one node at a time`;
    return null;
  }

  /** A stalled agent is not a dead node (ha/steps.ts confirmLost): wait while its node still answers. */
  private confirmLost(inp: FenceInput, node: string): string | null {
    const okAt = inp.probeOkAt(node);
    const silent = inp.silence(node);
    const bound = this.t.watchdogMs + this.t.fenceMarginMs;
    if (okAt !== null && inp.now - okAt < PROBE_FRESH_MS && silent < bound) return `${node} silent for ${Math.round(silent)} ms but its node answers the leader's probe: a stalled agent; waiting up to ${bound} ms`;
    return null;
  }
}
