// The HA manager (DESIGN §5): run by the leader, within its lease. It places MySQL, Redis
// and the VIP, and when the node holding one is lost it fails the service over as a named
// list of steps, each logged with its duration (STYLE "Multi-step procedures"). It decides
// only: fencing, commits and queries are actions the runtime carries out, and what the
// nodes did comes back as their resource reports. Pure: no clock, no I/O.
import type { ClusterConfig, Command, DbReport } from "../bus/messages.ts";
import type { FenceProof } from "../resources/types.ts";
import { SERVICES, armed, fencedProof, flapHold, inMaintenance, switchoverTarget, type Svc } from "./flags.ts";
import { STEPS, type Proc, type StepCtx } from "./steps.ts";
import type { HaInput } from "./types.ts";

export type { HaInput, Report } from "./types.ts";

export interface HaTiming {
  /** no second automatic failover of a service within this period unless acknowledged */
  antiFlapMs: number;
  /** a step that takes longer fails the procedure (the fence step gets fenceTimeoutMs) */
  stepTimeoutMs: number;
  fenceTimeoutMs: number;
}

/** a failed failover or switchover is not started again sooner than this */
const RETRY_MS = 5000;

export const DEFAULT_HA_TIMING: HaTiming = { antiFlapMs: 600_000, stepTimeoutMs: 15_000, fenceTimeoutMs: 60_000 };

export type HaAction =
  | { kind: "fence"; node: string; lastContactAgoMs: number; id: number }
  /** call off a fence still running: its failover was abandoned (the node is heard again) */
  | { kind: "abort-fence"; node: string; why: string }
  | { kind: "unfence"; node: string }
  | { kind: "commit"; cmd: Command; own: boolean }
  | { kind: "query" };

export interface HaEvents {
  event(kind: string, detail: string, fields?: Record<string, unknown>): void;
}

interface FenceState {
  /** which fence action this is (an abandoned one may report after a new one started) */
  id: number;
  state: "running" | "done" | "failed";
  at: number;
  proofs: FenceProof[];
}

export class HaManager {
  private readonly procs = new Map<Svc, Proc>();
  private readonly fences = new Map<string, FenceState>();
  private readonly said = new Set<string>();
  /** after a failed procedure, not again before this (local ms) */
  private readonly retryAt = new Map<Svc, number>();
  private pendingCommit = false;
  private fenceSeq = 0;
  private actions: HaAction[] = [];

  constructor(
    private readonly self: string,
    private readonly t: HaTiming,
    private readonly ev: HaEvents,
  ) {}

  /** One step of the manager; returns what the runtime must do now. Only on the acting leader. */
  tick(inp: HaInput): HaAction[] {
    this.actions = [];
    const cfg = inp.view.committed;
    for (const svc of SERVICES) {
      const p = this.procs.get(svc);
      if (p) this.advance(p, inp);
      else if (inp.now >= (this.retryAt.get(svc) ?? -Infinity)) this.watch(svc, cfg, inp);
    }
    this.clearReturnedFences(cfg, inp);
    return this.actions;
  }

  /** The leader lost its lease or leadership: forget procedures; the register holds what was decided. */
  reset(why: string): void {
    for (const p of this.procs.values()) this.ev.event("failover", `${p.kind} of ${p.svc} from ${p.from} interrupted at step ${p.steps[p.i]}: ${why}; the next leader resumes from the register`);
    this.procs.clear();
    this.fences.clear();
    this.pendingCommit = false;
  }

  fenceDone(node: string, fenced: boolean, proofs: FenceProof[], now: number, id?: number): void {
    const f = this.fences.get(node);
    if (!f || f.state !== "running" || (id !== undefined && f.id !== id)) return; // called off, or an older fence
    this.fences.set(node, { id: f.id, state: fenced ? "done" : "failed", at: now, proofs });
  }

  commitDone(ok: boolean, error?: string, own = false): void {
    if (!own) this.pendingCommit = false;
    if (ok) return;
    for (const p of this.procs.values()) if (p.commitSent) { p.commitSent = false; p.note = `commit refused: ${error}`; }
  }

  busy(): string[] {
    return [...this.procs.values()].map((p) => `${p.kind} of ${p.svc}: ${p.steps[p.i]}`);
  }

  // ---- watching for work ----------------------------------------------------------------

  private watch(svc: Svc, cfg: ClusterConfig, inp: HaInput): void {
    const holder = cfg.assignments[svc];
    if (!holder) return this.place(svc, cfg, inp);
    const alive = holder === this.self || inp.view.peers.some((x) => x.name === holder && x.alive);
    const target = switchoverTarget(cfg.flags, svc);
    if (target === holder) {
      this.ev.event("failover", `switchover of ${svc} to ${target}: it already holds it; nothing to do`);
      return this.commit({ op: "apply", why: `switchover of ${svc}: already on ${target}`, flags: { [`switchover:${svc}`]: null } });
    }
    if (alive && (target || inMaintenance(cfg.flags, holder))) {
      return this.start(svc, "switchover", holder, inp, target && target !== "any" ? target : undefined);
    }
    if (alive) return this.forget(`lost:${svc}`);
    if (!armed(cfg.flags)) return this.once(`lost:${svc}`, "failover", `${holder}, holding ${svc}, is lost, but HA is disarmed: no failover`);
    if (inMaintenance(cfg.flags, holder)) return this.once(`lost:${svc}`, "failover", `${holder}, holding ${svc}, is lost while in maintenance: not fenced, no failover`);
    const hold = flapHold(cfg.flags, svc, inp.wall, this.t.antiFlapMs);
    if (hold) return this.once(`lost:${svc}`, "failover", `${holder}, holding ${svc}, is lost; no automatic failover: ${hold}`);
    this.start(svc, "failover", holder, inp);
  }

  /** A fresh cluster: the most advanced node that reports the service up, by priority. */
  private place(svc: Svc, cfg: ClusterConfig, inp: HaInput): void {
    const up = cfg.members.filter((m) => this.report(inp, m.name, svc)?.up && this.alive(inp, m.name));
    if (up.length < Math.floor(cfg.members.length / 2) + 1 || this.pendingCommit) return;
    let best = up[0].name;
    for (const m of up.slice(1)) if ((inp.cmp(svc, this.report(inp, m.name, svc)!.received, this.report(inp, best, svc)!.received) ?? 0) > 0) best = m.name;
    const assign: Record<string, string> = { [svc]: best };
    if (svc === "mysql" && !cfg.assignments.vip) assign.vip = best;
    this.ev.event("placement", `placing ${svc} on ${best} (most advanced of ${up.map((m) => m.name).join(",")})`);
    this.commit({ op: "apply", why: `initial placement of ${svc}`, assign });
  }

  private start(svc: Svc, kind: Proc["kind"], from: string, inp: HaInput, target?: string): void {
    const steps = STEPS[kind].filter((s) => svc === "mysql" || s !== "moveVip");
    const p: Proc = { svc, kind, from, target, steps, i: 0, startedAt: inp.now, stepAt: inp.now, commitSent: false };
    this.procs.set(svc, p);
    const why = kind === "failover" ? `${from} is lost (no heartbeat for ${this.silence(inp, from)} ms)` : target ? `to ${target}` : inMaintenance(inp.view.committed.flags, from) ? `${from} is going into maintenance` : "requested";
    this.ev.event("failover", `${kind} of ${svc} from ${from} started: ${why}; steps ${steps.join(", ")}`, { svc, from, kind });
    this.advance(p, inp);
  }

  // ---- running a procedure --------------------------------------------------------------

  private advance(p: Proc, inp: HaInput): void {
    for (let guard = 0; guard < p.steps.length; guard++) {
      const name = p.steps[p.i];
      const limit = name === "confirmFence" ? this.t.fenceTimeoutMs : this.t.stepTimeoutMs;
      const r = STEPS.run[name](p, this.ctx(inp));
      if (r.fail || (!r.done && inp.now - p.stepAt > limit)) {
        const why = r.fail ?? `no progress for ${Math.round(inp.now - p.stepAt)} ms${p.note ? ` (${p.note})` : ""}`;
        this.ev.event("failover", `${p.kind} of ${p.svc} from ${p.from} FAILED at step ${name}: ${why}`, { svc: p.svc, step: name, failed: true });
        this.procs.delete(p.svc);
        const f = this.fences.get(p.from);
        if (f?.state === "running" && ![...this.procs.values()].some((o) => o.from === p.from)) {
          this.actions.push({ kind: "abort-fence", node: p.from, why: `${p.kind} of ${p.svc} failed: ${why}` });
        }
        this.fences.delete(p.from);
        this.retryAt.set(p.svc, inp.now + RETRY_MS);
        if (r.cleanup) { this.pendingCommit = false; this.commit(r.cleanup); }
        return;
      }
      if (!r.done) return;
      this.ev.event("step", `${p.kind} ${p.svc} step ${name} done in ${Math.round(inp.now - p.stepAt)} ms${r.detail ? `: ${r.detail}` : ""}`, { svc: p.svc, step: name, ms: Math.round(inp.now - p.stepAt) });
      p.i += 1;
      p.stepAt = inp.now;
      p.commitSent = false;
      p.note = undefined;
      if (p.i === p.steps.length) {
        this.ev.event("failover", `${p.kind} of ${p.svc} from ${p.from} to ${p.candidate} done in ${Math.round(inp.now - p.startedAt)} ms`, { svc: p.svc, to: p.candidate, ms: Math.round(inp.now - p.startedAt), done: true });
        this.procs.delete(p.svc);
        this.forget(`lost:${p.svc}`);
        return;
      }
    }
  }

  private ctx(inp: HaInput): StepCtx {
    return {
      inp,
      self: this.self,
      report: (node, svc) => this.report(inp, node, svc),
      fresh: (node, since) => (inp.reports.get(node)?.at ?? -Infinity) >= since,
      alive: (node) => this.alive(inp, node),
      fence: (node) => this.fence(node, inp),
      commit: (cmd) => this.commit(cmd, true),
      query: () => this.actions.push({ kind: "query" }),
      portal: (node) => inp.reports.get(node)?.r.portal ?? null,
      vip: (node) => inp.reports.get(node)?.r.vip ?? false,
    };
  }

  private fence(node: string, inp: HaInput): FenceState | null {
    const already = fencedProof(inp.view.committed.flags, node);
    if (already) return { id: 0, state: "done", at: inp.now, proofs: [{ level: "ipmi", ok: true, detail: `already fenced: ${already}`, ms: 0 }] };
    const f = this.fences.get(node);
    if (f) return f;
    // Never two nodes fenced at once: a majority must stay to commit the promotion, and a
    // second node silent at the same time is more likely a loaded machine than a second
    // failure (the lab: two abandoned fences cut two live nodes off; the cluster was lost).
    const other = [...this.fences].find(([n, x]) => n !== node && x.state === "running")?.[0] ??
      inp.view.committed.members.map((m) => m.name).find((n) => n !== node && `fencing:${n}` in inp.view.committed.flags);
    if (other) {
      this.once(`fence-wait:${node}`, "fence", `not fencing ${node} while ${other} is being fenced: at most one node at a time`);
      return null;
    }
    this.forget(`fence-wait:${node}`);
    const id = ++this.fenceSeq;
    this.fences.set(node, { id, state: "running", at: inp.now, proofs: [] });
    this.actions.push({ kind: "fence", node, lastContactAgoMs: this.silence(inp, node), id });
    return this.fences.get(node)!;
  }

  /** Procedures guard their own commits (Proc.commitSent); placement and flag clean-ups take turns. */
  private commit(cmd: Command, own = false): void {
    if (!own) {
      if (this.pendingCommit) return;
      this.pendingCommit = true;
    }
    this.actions.push({ kind: "commit", cmd, own });
  }

  /** A fenced node that is heard again, and holds nothing writable, gets its flag cleared. */
  private clearReturnedFences(cfg: ClusterConfig, inp: HaInput): void {
    for (const m of cfg.members) {
      if (!(fencedProof(cfg.flags, m.name) || `fencing:${m.name}` in cfg.flags) || !this.alive(inp, m.name) || this.procs.size) continue;
      const r = inp.reports.get(m.name)?.r;
      if (!r || r.mysql?.writable || r.redis?.writable) continue;
      this.fences.delete(m.name);
      this.ev.event("rejoin", `${m.name} is back and holds nothing writable; clearing its fence flag`);
      this.commit({ op: "apply", why: `${m.name} is back`, flags: { [`fenced:${m.name}`]: null, [`fencing:${m.name}`]: null, [`rejoin:${m.name}`]: null } });
      return;
    }
    for (const [k, v] of Object.entries(cfg.flags)) {
      if (!k.startsWith("rejoin:") || v !== "requested") continue;
      const node = k.slice("rejoin:".length);
      if (this.said.has(k)) continue;
      this.said.add(k);
      this.actions.push({ kind: "unfence", node });
    }
  }

  private report(inp: HaInput, node: string, svc: Svc): DbReport | null {
    return inp.reports.get(node)?.r[svc] ?? null;
  }

  private alive(inp: HaInput, node: string): boolean {
    return node === this.self || inp.view.peers.some((x) => x.name === node && x.alive);
  }

  private silence(inp: HaInput, node: string): number {
    return inp.view.peers.find((x) => x.name === node)?.lastHeardMs ?? -1;
  }

  private once(key: string, kind: string, detail: string): void {
    if (this.said.has(key)) return;
    this.said.add(key);
    this.ev.event(kind, detail);
  }

  private forget(key: string): void {
    this.said.delete(key);
  }
}


