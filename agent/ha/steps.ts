// The failover and switchover runbooks as named lists of steps (DESIGN §5; STYLE "a
// failover written as [confirmFence, pickCandidate, ...] reads as the runbook it is").
// Each step looks at the facts (register, liveness, nodes' reports) and says done, wait, or
// fail. The decision is committed to the register right after the candidate is chosen:
// a leader that takes over mid-failover then resumes from what was decided rather than
// guessing; the candidate's own agent drains its relay log and promotes once it reads the
// committed config (DESIGN R5), and reports back.
import type { Command, DbReport } from "../bus/messages.ts";
import type { FenceProof } from "../resources/types.ts";
import { frozen, inMaintenance, noFailover, type Svc } from "./flags.ts";
import type { HaInput } from "./types.ts";

export type StepName =
  | "confirmFence" | "pickCandidate" | "commitConfig" | "applyRelayLog" | "promote" | "repointOthers" | "switchPortal" | "moveVip"
  | "pickTarget" | "freezeOld" | "catchUp";

export interface Proc {
  svc: Svc;
  kind: "failover" | "switchover";
  from: string;
  target?: string;
  candidate?: string;
  steps: StepName[];
  i: number;
  startedAt: number;
  stepAt: number;
  commitSent: boolean;
  proof?: string;
  frozenPos?: string;
  frozenAt?: number;
  queried?: boolean;
  catchUpQueried?: boolean;
  note?: string;
}

export interface StepCtx {
  inp: HaInput;
  self: string;
  report(node: string, svc: Svc): DbReport | null;
  fresh(node: string, since: number): boolean;
  alive(node: string): boolean;
  fence(node: string): { state: "running" | "done" | "failed"; at: number; proofs: FenceProof[] } | null;
  commit(cmd: Command): void;
  query(): void;
  portal(node: string): { mysql: string | null; redis: string | null } | null;
  vip(node: string): boolean;
}

type Result = { done: boolean; fail?: string; detail?: string; cleanup?: Command };
const WAIT: Result = { done: false };
const done = (detail?: string): Result => ({ done: true, detail });

/** How long pickCandidate waits for every live replica's post-fence report before choosing. */
const REPORT_WAIT_MS = 1000;

function others(p: Proc, c: StepCtx): string[] {
  return c.inp.view.committed.members.map((m) => m.name).filter((n) => n !== p.from && c.alive(n));
}

/**
 * The replica to promote: reachable, reporting the service up and not held out, not in
 * maintenance, not tagged nofailover; the most advanced position received; then priority
 * (member order). A report must be newer than `since`, when the old primary stopped writing.
 */
export function pickBest(p: Proc, c: StepCtx, since: number, exclude: string[]): { node: string | null; waitingFor: string[] } {
  const flags = c.inp.view.committed.flags;
  const pool = others(p, c).filter((n) => !exclude.includes(n));
  const waitingFor = pool.filter((n) => !c.fresh(n, since));
  const ok = pool.filter((n) => {
    const r = c.report(n, p.svc);
    return c.fresh(n, since) && r?.up && !r.heldOut && !inMaintenance(flags, n) && !noFailover(flags, n);
  });
  let best: string | null = null;
  for (const n of ok) {
    if (!best) { best = n; continue; }
    const d = c.inp.cmp(p.svc, c.report(n, p.svc)!.received, c.report(best, p.svc)!.received);
    if (d !== null && d > 0) best = n;
  }
  return { node: best, waitingFor };
}

function proofText(proofs: FenceProof[]): string {
  return proofs.map((x) => `${x.level} ${x.ok ? "confirmed" : "failed"} (${x.detail}, ${x.ms} ms)`).join("; ");
}

const run: Record<StepName, (p: Proc, c: StepCtx) => Result> = {
  confirmFence(p, c) {
    const flags = c.inp.view.committed.flags;
    if (c.alive(p.from) && !(`fenced:${p.from}` in flags)) {
      return { done: false, fail: `${p.from} is heard again before it was fenced: no failover`, cleanup: { op: "apply", why: `failover of ${p.svc} abandoned`, flags: { [`fencing:${p.from}`]: null } } };
    }
    // First record that it is being fenced: if it comes back and catches up, it reads this
    // and stays read-only rather than resume as the primary its old config says it is.
    if (!(`fencing:${p.from}` in flags) && !(`fenced:${p.from}` in flags)) {
      if (!p.commitSent) { c.commit({ op: "apply", why: `fencing ${p.from}`, flags: { [`fencing:${p.from}`]: String(Math.round(c.inp.wall)) } }); p.commitSent = true; }
      return WAIT;
    }
    const f = c.fence(p.from);
    if (!f || f.state === "running") return WAIT;
    if (f.state === "failed") return { done: false, fail: `could not fence ${p.from}: ${proofText(f.proofs)}` };
    const ok = f.proofs.find((x) => x.ok);
    p.proof = ok ? `${ok.level}: ${ok.detail}` : "fenced";
    return done(`fence proof for ${p.from}: ${proofText(f.proofs)}`);
  },

  pickCandidate(p, c) {
    if (!p.queried) { c.query(); p.queried = true; }
    const { node, waitingFor } = pickBest(p, c, p.stepAt, []);
    if (waitingFor.length && c.inp.now - p.stepAt < REPORT_WAIT_MS) return WAIT;
    if (!node) { p.note = `no eligible replica${waitingFor.length ? `; no fresh report from ${waitingFor.join(",")}` : ""}`; return WAIT; }
    p.candidate = node;
    return done(`${node} (received ${c.report(node, p.svc)!.received || "-"})`);
  },

  pickTarget(p, c) {
    if (!p.queried) { c.query(); p.queried = true; }
    if (p.target) {
      const r = c.report(p.target, p.svc);
      if (!c.alive(p.target) || !r?.up || r.heldOut) {
        return { done: false, fail: `target ${p.target} is not a healthy replica${r?.heldOut ? ` (${r.heldOut})` : ""}`, cleanup: { op: "apply", why: `switchover of ${p.svc} refused`, flags: { [`switchover:${p.svc}`]: null } } };
      }
      p.candidate = p.target;
      return done(p.target);
    }
    const { node, waitingFor } = pickBest(p, c, p.stepAt, [p.from]);
    if (waitingFor.length && c.inp.now - p.stepAt < REPORT_WAIT_MS) return WAIT;
    if (!node) return WAIT;
    p.candidate = node;
    return done(node);
  },

  freezeOld(p, c) {
    const r = c.report(p.from, p.svc);
    // up: a report of a server that could not be read says "not writable" with its last known
    // position, which may be behind: the target would catch up to too little
    if (frozen(c.inp.view.committed.flags, p.svc) === p.from && r?.up && !r.writable && c.fresh(p.from, p.stepAt)) {
      p.frozenPos = r.applied;
      p.frozenAt = c.inp.now;
      return done(`${p.from} read-only at ${r.applied || "-"}`);
    }
    if (!p.commitSent && frozen(c.inp.view.committed.flags, p.svc) !== p.from) {
      c.commit({ op: "apply", why: `switchover of ${p.svc}: freeze ${p.from}`, flags: { [`freeze:${p.svc}`]: p.from } });
      p.commitSent = true;
    }
    return WAIT;
  },

  catchUp(p, c) {
    // the target's last report may predate the freeze by a poll period: ask for a fresh one
    if (!p.catchUpQueried) { c.query(); p.catchUpQueried = true; }
    const r = c.report(p.candidate!, p.svc);
    if (!r || p.frozenPos === undefined) return WAIT;
    const d = c.inp.cmp(p.svc, r.applied, p.frozenPos);
    if (d === null) return { done: false, fail: `${p.candidate} has diverged from ${p.from}` };
    return d >= 0 ? done(`${p.candidate} applied ${r.applied || "-"}`) : WAIT;
  },

  commitConfig(p, c) {
    const cfg = c.inp.view.committed;
    const settled = p.kind === "failover" ? `fenced:${p.from}` in cfg.flags : !(`freeze:${p.svc}` in cfg.flags);
    if (cfg.assignments[p.svc] === p.candidate && settled) return done(`epoch ${cfg.epoch}: ${p.svc}=${p.candidate}`);
    if (p.commitSent) return WAIT;
    const assign: Record<string, string> = { [p.svc]: p.candidate! };
    if (p.svc === "mysql") assign.vip = p.candidate!;
    const flags: Record<string, string | null> =
      p.kind === "failover"
        ? { [`fencing:${p.from}`]: null, [`fenced:${p.from}`]: p.proof ?? "fenced", [`failover:${p.svc}`]: String(Math.round(c.inp.wall)) }
        : { [`freeze:${p.svc}`]: null, [`switchover:${p.svc}`]: null };
    c.commit({ op: "apply", why: `${p.kind} of ${p.svc} from ${p.from} to ${p.candidate}`, assign, flags });
    p.commitSent = true;
    return WAIT;
  },

  applyRelayLog(p, c) {
    const r = c.report(p.candidate!, p.svc);
    if (!r || !(r.role === "primary" && r.writable)) return WAIT;
    return done(`reported by ${p.candidate}${r.steps?.drain !== undefined ? `: drained in ${r.steps.drain} ms` : ": relay log applied"}`);
  },

  promote(p, c) {
    const r = c.report(p.candidate!, p.svc)!;
    const pause = p.frozenAt !== undefined ? `; write pause ${Math.round(c.inp.now - p.frozenAt)} ms` : "";
    return done(`reported by ${p.candidate}: promoted in ${r.steps?.promote ?? "?"} ms at ${r.applied || "-"}${pause}`);
  },

  repointOthers(p, c) {
    const rest = others(p, c).filter((n) => n !== p.candidate && c.report(n, p.svc)?.up);
    const behind = rest.filter((n) => { const r = c.report(n, p.svc); return !(r?.role === "replica" && r.source === p.candidate) && !r?.heldOut; });
    if (behind.length) { p.note = `waiting for ${behind.join(",")}`; return WAIT; }
    return done(rest.length ? rest.map((n) => `${n}${c.report(n, p.svc)?.heldOut ? " (held out)" : ""}`).join(",") : "no other replica");
  },

  switchPortal(p, c) {
    const nodes = c.inp.view.committed.members.map((m) => m.name).filter((n) => c.alive(n));
    const behind = nodes.filter((n) => c.portal(n)?.[p.svc] !== p.candidate);
    if (behind.length) { p.note = `portal of ${behind.join(",")}`; return WAIT; }
    return done(`${nodes.length} portals route ${p.svc} to ${p.candidate}`);
  },

  moveVip(p, c) {
    const holders = c.inp.view.committed.members.map((m) => m.name).filter((n) => c.alive(n) && c.vip(n));
    if (holders.length === 1 && holders[0] === p.candidate) return done(`VIP on ${p.candidate}`);
    p.note = `VIP held by ${holders.join(",") || "nobody"}`;
    return WAIT;
  },
};

export const STEPS = {
  failover: ["confirmFence", "pickCandidate", "commitConfig", "applyRelayLog", "promote", "repointOthers", "switchPortal", "moveVip"] as StepName[],
  switchover: ["pickTarget", "freezeOld", "catchUp", "commitConfig", "applyRelayLog", "promote", "repointOthers", "switchPortal", "moveVip"] as StepName[],
  run,
};
