// The failover, switchover and recovery runbooks as named lists of steps (DESIGN §5; STYLE "a
// failover written as [confirmFence, pickCandidate, ...] reads as the runbook it is").
// Each step looks at the facts (register, liveness, nodes' reports, the leader's data-path
// probes) and says done, wait, or fail. The decision is committed to the register right after
// the candidate is chosen: a leader that takes over mid-failover then resumes from what was
// decided rather than guessing; the candidate's own agent drains its relay log and promotes
// once it reads the committed config (DESIGN R5), and reports back.
import type { Command, DbReport } from "../bus/messages.ts";
import type { FenceProof } from "../resources/types.ts";
import { confirmedInst, fenceHeld, frozen, inMaintenance, noFailover, restoring, type Svc } from "./flags.ts";
import type { DataPath, HaInput, HaTiming } from "./types.ts";

export type StepName =
  | "confirmLost" | "confirmFence" | "pickCandidate" | "commitConfig" | "applyRelayLog" | "promote" | "repointOthers" | "switchPortal" | "moveVip"
  | "pickTarget" | "freezeOld" | "catchUp";

/**
 * Why a procedure runs:
 * - lost: the holder's node is not heard (heartbeats): fenced at the node level
 * - service: the holder is heard, but its server does not answer; its agent fenced it (proof in
 *   its report) or, when it could not, the node is fenced
 * - restart: the holder's server restarted (another incarnation) and is read-only: the most
 *   advanced of it and the replicas becomes the primary; no fence, the restarted one cannot write
 * - stuck: the holder is read-only and cannot be made writable (its promotion keeps failing):
 *   another replica as advanced takes it over; no fence, it never was writable
 * - operator: `bollard failover SVC --to NODE`, fenced like a lost node
 * - planned: a switchover (maintenance, operator)
 */
export type Cause = "lost" | "service" | "restart" | "stuck" | "operator" | "planned";

export interface Proc {
  svc: Svc;
  kind: "failover" | "switchover" | "recover";
  cause: Cause;
  from: string;
  target?: string;
  candidate?: string;
  steps: StepName[];
  i: number;
  startedAt: number;
  stepAt: number;
  commitSent: boolean;
  proof?: string;
  /** the holder's agent fenced its server (service failures): the node is not fenced */
  localProof?: string;
  /** candidates that failed to promote twice: not picked again while another as advanced is there */
  excluded: string[];
  frozenPos?: string;
  frozenAt?: number;
  queried?: boolean;
  catchUpQueried?: boolean;
  note?: string;
  /** the fence of this procedure was issued: from then on it goes to the end (issue 20 item 1) */
  fenceIssued?: boolean;
  /** confirmLost said once that it waits for a silent node whose data path answers */
  waiting?: boolean;
  /** confirmFence said once that the node was heard while its fence was in flight */
  heardDuringFence?: boolean;
  /** while it waits on something only an operator can settle: the command (writes-down alarm) */
  command?: string;
}

export type { DataPath };

export interface StepCtx {
  inp: HaInput;
  t: HaTiming;
  self: string;
  report(node: string, svc: Svc): DbReport | null;
  fresh(node: string, since: number): boolean;
  alive(node: string): boolean;
  silence(node: string): number;
  fence(node: string): { state: "running" | "done" | "failed"; at: number; proofs: FenceProof[] } | null;
  /** whether this leader has issued a fence of `node` that has not been settled */
  fenceIssued(node: string): boolean;
  commit(cmd: Command): void;
  query(): void;
  portal(node: string): { mysql: string | null; redis: string | null } | null;
  vip(node: string): boolean;
  /** the node's latest report says it has fenced itself (no quorum) */
  selfFenced(node: string): boolean;
  event(kind: string, detail: string): void;
}

type Result = { done: boolean; fail?: string; detail?: string; cleanup?: Command };
const WAIT: Result = { done: false };
const done = (detail?: string): Result => ({ done: true, detail });

/** How long pickCandidate waits for every live replica's post-fence report before choosing. */
const REPORT_WAIT_MS = 1000;
/** confirmLost waits at most this long for a first probe result of a silent holder */
const PROBE_WAIT_MS = 1000;
/** The leader's probe counts as "the data path answers" for this long after it answered. */
export const DATA_PATH_FRESH_MS = 800;
/** repointOthers waits this long for the other replicas; then the failover is done without them. */
export const REPOINT_WAIT_MS = 10_000;

function others(p: Proc, c: StepCtx): string[] {
  return c.inp.view.committed.members.map((m) => m.name).filter((n) => n !== p.from && c.alive(n));
}

/** Why `n` cannot take the service over now, or null when it can. */
export function ineligible(svc: Svc, n: string, r: DbReport | null, flags: Record<string, string>): string | null {
  if (!r?.up) return r?.downMs !== undefined ? `its ${svc} does not answer` : `no report of its ${svc}`;
  if (r.heldOut) return `held out: ${r.heldOut}`;
  if (r.stuck) return `keeps failing: ${r.stuck}`;
  if (fenceHeld(flags, n)) return "being fenced, or fenced";
  if (inMaintenance(flags, n)) return "in maintenance";
  if (noFailover(flags, n)) return "tagged nofailover";
  return null;
}

/**
 * The node to promote: reachable, reporting the service up, eligible (above); the most advanced
 * position received (the last complete transaction: MySQL's GTID set incl. the relay log, or
 * Redis's offset); then priority (member order). A report must be newer than `since`, when the
 * old primary stopped writing. `withHolder` lets the holder itself compete (a restarted primary).
 * Excluded nodes (failed to promote) are passed over unless nothing else is at least as advanced.
 */
export function pickBest(p: Proc, c: StepCtx, since: number, exclude: string[], withHolder = false): { node: string | null; waitingFor: string[]; why: string[] } {
  const flags = c.inp.view.committed.flags;
  const pool = [...(withHolder && c.alive(p.from) ? [p.from] : []), ...others(p, c)].filter((n) => !exclude.includes(n));
  const waitingFor = pool.filter((n) => !c.fresh(n, since));
  const why: string[] = [];
  const ok = pool.filter((n) => {
    if (!c.fresh(n, since)) return false;
    const no = ineligible(p.svc, n, c.report(n, p.svc), flags);
    if (no) why.push(`${n}: ${no}`);
    return !no;
  });
  // Positions that cannot be ordered: each has what the other lacks. What a replica received was
  // acknowledged (semi-sync); what a server that was a primary has beyond a replica's position
  // was written while it was the primary and never acknowledged (a fenced old primary's tail, a
  // restarted one's): that server gives way and rejoins later as a replica (held out if it
  // conflicts). What is left apart after that (two replicas, or two former primaries with no
  // replica between them): an operator decides.
  const isReplica = (n: string) => c.report(n, p.svc)!.role === "replica";
  for (const n of [...ok]) {
    if (isReplica(n)) continue;
    const r = ok.find((m) => isReplica(m) && c.inp.cmp(p.svc, c.report(n, p.svc)!.received, c.report(m, p.svc)!.received) === null);
    if (!r) continue;
    why.push(`${n}: its position has diverged from the replica ${r}'s, with transactions only it had as a primary: not a candidate`);
    ok.splice(ok.indexOf(n), 1);
  }
  const best = mostAdvanced(p.svc, c, ok);
  const apart = diverged(p.svc, c, ok, best);
  if (best !== null && apart !== null) {
    why.push(`${best} and ${apart} have diverged (${c.report(best, p.svc)!.received || "-"} / ${c.report(apart, p.svc)!.received || "-"}): promoting either loses the other's transactions`);
    return { node: null, waitingFor, why };
  }
  // A member whose server is down or hung now (its agent restarts it) may hold more than the best
  // eligible one, acknowledged writes included: its last known position decides; wait for it.
  const ahead = best === null ? undefined : c.inp.view.committed.members.map((m) => m.name).find((n) => {
    if (n === p.from || ok.includes(n)) return false;
    const r = c.report(n, p.svc);
    return !!r && !r.up && !r.heldOut && (c.inp.cmp(p.svc, r.received, c.report(best, p.svc)!.received) ?? 0) > 0;
  });
  if (ahead) {
    why.push(`${ahead}'s ${p.svc}, which had more than ${best} (${c.report(ahead, p.svc)!.received || "-"}), does not answer: waiting for it to come back`);
    return { node: null, waitingFor, why };
  }
  if (best === null || !p.excluded.includes(best)) return { node: best, waitingFor, why };
  // the most advanced failed to promote: another only if it has everything the excluded one has
  const rest = ok.filter((n) => !p.excluded.includes(n));
  const alt = mostAdvanced(p.svc, c, rest);
  if (alt !== null && (c.inp.cmp(p.svc, c.report(alt, p.svc)!.received, c.report(best, p.svc)!.received) ?? -1) >= 0) return { node: alt, waitingFor, why };
  why.push(`${best}: failed to promote (${p.excluded.join(",")} excluded), and no other replica has everything it has`);
  return { node: null, waitingFor, why };
}

/** A node of `nodes` whose position cannot be ordered with `best`'s, or null. */
function diverged(svc: Svc, c: StepCtx, nodes: string[], best: string | null): string | null {
  if (best === null) return null;
  return nodes.find((n) => n !== best && c.inp.cmp(svc, c.report(n, svc)!.received, c.report(best, svc)!.received) === null) ?? null;
}

function mostAdvanced(svc: Svc, c: StepCtx, nodes: string[]): string | null {
  let best: string | null = null;
  for (const n of nodes) {
    if (!best) { best = n; continue; }
    const d = c.inp.cmp(svc, c.report(n, svc)!.received, c.report(best, svc)!.received);
    if (d !== null && d > 0) best = n;
  }
  return best;
}

function proofText(proofs: FenceProof[]): string {
  return proofs.map((x) => `${x.level} ${x.ok ? "confirmed" : "failed"} (${x.detail}, ${x.ms} ms)`).join("; ");
}

const run: Record<StepName, (p: Proc, c: StepCtx) => Result> = {
  /**
   * A stalled agent is not a dead node (issue 20 item 4): heartbeats alone decide too fast. While
   * the leader's probe finds the silent holder's server answering (and writable), wait, up to the
   * watchdog's timeout plus a margin from its last heartbeat: a hung agent gets its node reset by
   * the watchdog, after which the data path is down too. A node that is really gone (power,
   * kernel, network) does not answer the probe, and is fenced at once.
   */
  confirmLost(p, c) {
    if (c.alive(p.from)) return { done: false, fail: `${p.from} is heard again before it was fenced: no failover` };
    const probe = c.inp.probes?.get(p.from);
    const okAt = probe?.okAt ?? null;
    const silent = c.silence(p.from);
    const bound = c.t.watchdogMs + c.t.fenceMarginMs;
    // no probe has answered or failed yet (a new leader starts with none): wait for one, briefly
    if (c.inp.probes && okAt === null && (probe?.failAt ?? null) === null && c.inp.now - p.stepAt < PROBE_WAIT_MS) { p.note = `waiting for a first probe of ${p.from}'s data path`; return WAIT; }
    if (okAt !== null && c.inp.now - okAt < DATA_PATH_FRESH_MS && silent < bound) {
      p.note = `${p.from} silent for ${Math.round(silent)} ms, but its ${p.svc} answered ${Math.round(c.inp.now - okAt)} ms ago: a stalled agent, not a dead node; waiting up to ${bound} ms (watchdog + margin)`;
      if (!p.waiting) { c.event("failover", p.note); p.waiting = true; }
      return WAIT;
    }
    const seen = okAt === null ? "its data path did not answer the leader's probe" : silent >= bound ? `still silent after the watchdog's timeout plus margin (${bound} ms), though its ${p.svc} answered ${Math.round(c.inp.now - okAt)} ms ago` : `its data path last answered ${Math.round(c.inp.now - okAt)} ms ago`;
    return done(`${p.from} silent for ${Math.round(silent)} ms; ${seen}`);
  },

  confirmFence(p, c) {
    const flags = c.inp.view.committed.flags;
    if (p.localProof) {
      p.proof = `${p.from}'s agent fenced its ${p.svc}: ${p.localProof}`;
      return done(`fence proof for ${p.from}'s ${p.svc} (the service only; the node keeps the rest): ${p.localProof}`);
    }
    // Abandoned only before a fence action was issued: once the power-off or the port shutdown
    // is on its way the node is going down whatever it says afterwards (issue 20 item 1).
    if (c.alive(p.from) && !(`fenced:${p.from}` in flags) && !p.fenceIssued && p.cause === "lost") {
      return { done: false, fail: `${p.from} is heard again before it was fenced: no failover`, cleanup: { op: "apply", why: `failover of ${p.svc} abandoned`, flags: { [`fencing:${p.from}`]: null } } };
    }
    // First record that it is being fenced: if it comes back and catches up, it reads this
    // and stays read-only rather than resume as the primary its old config says it is.
    if (!(`fencing:${p.from}` in flags) && !(`fenced:${p.from}` in flags)) {
      if (!p.commitSent) { c.commit({ op: "apply", why: `fencing ${p.from}`, flags: { [`fencing:${p.from}`]: String(Math.round(c.inp.wall)) } }); p.commitSent = true; }
      return WAIT;
    }
    const f = c.fence(p.from);
    if (f && (f.state === "running" || f.state === "done")) p.fenceIssued = true;
    if (p.fenceIssued && c.alive(p.from) && !p.heardDuringFence && p.cause === "lost") {
      p.heardDuringFence = true;
      c.event("fence", `${p.from} is heard again, but its fence was issued: it is going down whatever it says; the failover goes on`);
    }
    if (!f || f.state === "running") return WAIT;
    if (f.state === "failed") return { done: false, fail: `could not fence ${p.from}: ${proofText(f.proofs)}` };
    const ok = f.proofs.find((x) => x.ok);
    p.proof = ok ? `${ok.level}: ${ok.detail}` : "fenced";
    return done(`fence proof for ${p.from}: ${proofText(f.proofs)}`);
  },

  pickCandidate(p, c) {
    if (!p.queried) { c.query(); p.queried = true; }
    if (p.cause !== "lost" && !p.target) {
      // The holder is heard (its server failed or restarted): a majority is there without the
      // other replicas, and the one replica that has an acknowledged write may be the one not
      // heard (a restarted primary's truncated binlog, a replica that was down a moment ago).
      // Compare with every member, or wait for an operator ('bollard failover SVC --to NODE'
      // accepts NODE as it is). A lost holder needs no such wait: with it gone, a majority is
      // every other member.
      // (a fenced node is an old primary failed over from: what it had acknowledged is on the replicas)
      const flags = c.inp.view.committed.flags;
      const missing = c.inp.view.committed.members.map((m) => m.name).filter((n) => n !== p.from && !fenceHeld(flags, n) && (!c.alive(n) || !c.report(n, p.svc)));
      if (missing.length) {
        p.note = `waiting for ${missing.join(",")}: a replica not heard may hold acknowledged writes the others lack`;
        const alt = p.kind === "recover" ? p.from : c.inp.view.committed.members.map((m) => m.name).find((n) => n !== p.from && c.alive(n) && !ineligible(p.svc, n, c.report(n, p.svc), c.inp.view.committed.flags));
        p.command = alt ? failoverCommand(p.svc, alt) : undefined;
        return WAIT;
      }
      p.command = undefined;
    }
    const { node, waitingFor, why } = pickBest(p, c, p.stepAt, [], p.kind === "recover");
    if (waitingFor.length && c.inp.now - p.stepAt < REPORT_WAIT_MS) return WAIT;
    if (p.target && node !== p.target) {
      const r = c.report(p.target, p.svc);
      const no = !c.alive(p.target) ? "not heard" : ineligible(p.svc, p.target, r, c.inp.view.committed.flags);
      if (!no && node && (c.inp.cmp(p.svc, r!.received, c.report(node, p.svc)!.received) ?? -1) < 0) {
        return { done: false, fail: `${p.target} lacks what ${node} has (${r!.received || "-"} against ${c.report(node, p.svc)!.received || "-"}): promoting it would lose acknowledged writes; choose ${node}`, cleanup: clearRequest(p) };
      }
      if (no) return { done: false, fail: `${p.target} cannot take ${p.svc} over: ${no}`, cleanup: clearRequest(p) };
    }
    const pick = p.target ?? node;
    if (!pick) { p.note = `no eligible replica${why.length ? ` (${why.join("; ")})` : ""}${waitingFor.length ? `; no fresh report from ${waitingFor.join(",")}` : ""}`; return WAIT; }
    p.candidate = pick;
    const r = c.report(pick, p.svc)!;
    if (p.kind === "recover") {
      const rest = others(p, c).filter((n) => c.report(n, p.svc)?.up).map((n) => `${n} ${c.report(n, p.svc)!.received || "-"}`);
      p.proof = p.cause === "stuck" ? `${p.from}'s ${p.svc} is read-only and was never made writable` : `${p.from}'s ${p.svc} restarted (incarnation ${c.report(p.from, p.svc)?.inst ?? "?"}) and is read-only`;
      return done(pick === p.from
        ? `${p.from} itself: its ${p.svc} restarted at ${r.received || "-"}, and no replica has more (${rest.join(", ") || "none"})`
        : `${pick} (received ${r.received || "-"}): ${p.from}'s restarted ${p.svc} has ${c.report(p.from, p.svc)?.received || "-"}, which lacks what ${pick} has; ${p.from} rejoins as a replica`);
    }
    return done(`${pick} (received ${r.received || "-"})`);
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
    const gone = candidateGone(p, c);
    if (gone) return { done: false, fail: gone };
    const r = c.report(p.from, p.svc);
    if (!r?.up && r?.downMs !== undefined) {
      return { done: false, fail: `${p.from}'s ${p.svc} does not answer: a switchover needs it; '${failoverCommand(p.svc, p.target)}' fails it over with a fence`, cleanup: { op: "apply", why: `switchover of ${p.svc} refused`, flags: { [`switchover:${p.svc}`]: null, [`freeze:${p.svc}`]: null } } };
    }
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
    const gone = candidateGone(p, c);
    if (gone) return { done: false, fail: gone };
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
    const gone = p.commitSent ? null : candidateGone(p, c);
    if (gone) return { done: false, fail: gone };
    const inst = c.report(p.candidate!, p.svc)?.inst;
    const nodeFence = p.kind === "failover" && !p.localProof;
    const settled = (nodeFence ? `fenced:${p.from}` in cfg.flags : true) && !(`freeze:${p.svc}` in cfg.flags) && !(`failover-to:${p.svc}` in cfg.flags);
    if (cfg.assignments[p.svc] === p.candidate && settled && (!inst || confirmedInst(cfg.flags, p.svc) === inst)) return done(`epoch ${cfg.epoch}: ${p.svc}=${p.candidate}${inst ? ` (incarnation ${inst})` : ""}`);
    if (p.commitSent) return WAIT;
    const moves = p.candidate !== p.from;
    const assign: Record<string, string> = moves ? { [p.svc]: p.candidate! } : {};
    if (moves && p.svc === "mysql") assign.vip = p.candidate!;
    const flags: Record<string, string | null> = { [`inst:${p.svc}`]: inst ?? null };
    if (`failover-to:${p.svc}` in cfg.flags) flags[`failover-to:${p.svc}`] = null;
    if (nodeFence) Object.assign(flags, { [`fencing:${p.from}`]: null, [`fenced:${p.from}`]: p.proof ?? "fenced" });
    if (p.kind === "switchover") Object.assign(flags, { [`freeze:${p.svc}`]: null, [`switchover:${p.svc}`]: null });
    else if (moves) flags[`failover:${p.svc}`] = String(Math.round(c.inp.wall));
    const why = moves ? `${p.kind} of ${p.svc} from ${p.from} to ${p.candidate}` : `${p.svc} on ${p.from} confirmed after its restart`;
    c.commit({ op: "apply", why, assign, flags });
    p.commitSent = true;
    return WAIT;
  },

  applyRelayLog(p, c) {
    const r = c.report(p.candidate!, p.svc);
    const gone = candidateGone(p, c);
    if (gone) return { done: false, fail: gone };
    if (r?.stuck) return { done: false, fail: `${p.candidate} cannot promote: ${r.stuck}` };
    // during a replace (restore:<svc>) the new holder is promoted read-only (ha/local.ts restoreHold)
    const held = r && restoring(c.inp.view.committed.flags, p.svc) && r.up && !r.writable && r.role === "none" && r.source === null;
    if (held) return done(`reported by ${p.candidate}: relay log applied, read-only while restore --replace ${restoring(c.inp.view.committed.flags, p.svc)!.id} is under way`);
    if (!r || !(r.role === "primary" && r.writable)) { if (r?.downMs !== undefined) p.note = `${p.candidate}'s ${p.svc} does not answer`; return WAIT; }
    const dropped = r.discarded ? `; discarded the incomplete transaction ${r.discarded} at the end of its relay log (it never arrived whole: never acknowledged)` : "";
    return done(`reported by ${p.candidate}${p.svc === "redis" ? `: master at offset ${r.applied}` : r.steps?.drain !== undefined ? `: drained in ${r.steps.drain} ms` : ": relay log applied"}${dropped}`);
  },

  promote(p, c) {
    const r = c.report(p.candidate!, p.svc)!;
    const pause = p.frozenAt !== undefined ? `; write pause ${Math.round(c.inp.now - p.frozenAt)} ms` : "";
    return done(`reported by ${p.candidate}: promoted${r.steps?.promote !== undefined ? ` in ${r.steps.promote} ms` : ""} at ${r.applied || "-"}${pause}`);
  },

  switchPortal(p, c) {
    if (!c.alive(p.candidate!)) return { done: false, fail: `${p.candidate}, the new primary, is lost` };
    // a fenced or self-fenced node's portal routes nowhere on purpose: not waited for
    const flags = c.inp.view.committed.flags;
    const nodes = c.inp.view.committed.members.map((m) => m.name).filter((n) => c.alive(n) && !fenceHeld(flags, n) && !c.selfFenced(n));
    const behind = nodes.filter((n) => c.portal(n)?.[p.svc] !== p.candidate);
    if (behind.length) { p.note = `portal of ${behind.join(",")}`; return WAIT; }
    return done(`${nodes.length} portals route ${p.svc} to ${p.candidate}`);
  },

  moveVip(p, c) {
    if (!c.alive(p.candidate!)) return { done: false, fail: `${p.candidate}, the new primary, is lost` };
    const want = c.inp.view.committed.assignments.vip;
    const holders = c.inp.view.committed.members.map((m) => m.name).filter((n) => c.alive(n) && c.vip(n));
    if (holders.length === 1 && holders[0] === want) return done(`VIP on ${want}`);
    p.note = `VIP held by ${holders.join(",") || "nobody"}`;
    return WAIT;
  },

  /**
   * The other replicas follow the new primary. Last, and bounded: clients are served once the
   * candidate is writable and reachable; a replica that cannot be re-pointed (down, diverged)
   * is said apart and does not turn a done failover into a failed one (issue 20 item 6).
   */
  repointOthers(p, c) {
    // a fenced node replicates once its flag is cleared (it is back): not waited for here
    const rest = others(p, c).filter((n) => n !== p.candidate && c.report(n, p.svc)?.up && !fenceHeld(c.inp.view.committed.flags, n));
    const behind = rest.filter((n) => { const r = c.report(n, p.svc); return !(r?.role === "replica" && r.source === p.candidate) && !r?.heldOut; });
    // during a replace the replicas attach once the new primary is writable (ha/local.ts): not waited for
    const replacing = restoring(c.inp.view.committed.flags, p.svc) !== null;
    if (behind.length && !replacing && c.inp.now - p.stepAt < REPOINT_WAIT_MS) { p.note = `waiting for ${behind.join(",")}`; return WAIT; }
    const held = rest.filter((n) => c.report(n, p.svc)?.heldOut);
    if (behind.length || held.length) c.event("failover", `${p.svc} is ${replacing ? "read-only (restore --replace under way)" : "writable"} on ${p.candidate} and served to clients; not re-pointed: ${[...behind.map((n) => `${n} (not replicating from ${p.candidate}${replacing ? ": it attaches once writes resume" : ` after ${REPOINT_WAIT_MS} ms; its agent keeps trying`})`), ...held.map((n) => `${n} (held out: ${c.report(n, p.svc)!.heldOut})`)].join("; ")}`);
    const ok = rest.filter((n) => !behind.includes(n) && !held.includes(n));
    return done(ok.length ? ok.join(",") : rest.length ? "none re-pointed" : "no other replica");
  },
};

/** Why the chosen candidate cannot become the primary any more, or null. */
function candidateGone(p: Proc, c: StepCtx): string | null {
  if (!c.alive(p.candidate!)) return `${p.candidate}, the candidate, is lost`;
  const r = c.report(p.candidate!, p.svc);
  if (r?.fenced) return `${p.candidate}'s ${p.svc} failed and was fenced by its agent: ${r.fenced}`;
  if (r && !r.up && (r.downMs ?? 0) >= c.t.serviceFailMs) return `${p.candidate}'s ${p.svc} has not answered for ${Math.round(r.downMs!)} ms`;
  return null;
}

function clearRequest(p: Proc): Command | undefined {
  return p.cause === "operator" ? { op: "apply", why: `failover of ${p.svc} refused`, flags: { [`failover-to:${p.svc}`]: null } } : undefined;
}

/** The operator's fenced failover, as a command line. */
export function failoverCommand(svc: Svc, to?: string | null): string {
  return `bollard failover ${svc}${to && to !== "any" ? ` --to ${to}` : ""}`;
}

const TAIL: StepName[] = ["commitConfig", "applyRelayLog", "promote", "switchPortal", "moveVip", "repointOthers"];

export const STEPS = {
  /** the holder's node is lost: data path, fence, candidate, commit, promote, routes, VIP, the rest */
  failover: ["confirmLost", "confirmFence", "pickCandidate", ...TAIL] as StepName[],
  switchover: ["pickTarget", "freezeOld", "catchUp", ...TAIL] as StepName[],
  recover: ["pickCandidate", ...TAIL] as StepName[],
  run,
};
