// The HA manager (DESIGN §5): run by the leader, within its lease. It places MySQL, Redis
// and the VIP, and when the node holding one is lost, or its server dies, hangs or restarts,
// it fails the service over as a named list of steps, each logged with its duration (STYLE
// "Multi-step procedures"). It decides only: fencing, commits and queries are actions the
// runtime carries out, and what the nodes did comes back as their resource reports. It also
// says, for the alarms, when a service has had no writable primary that clients can reach, why,
// and the command that would let it act (issue 20 item 3, issue 17 item 2). Pure: no clock, no I/O.
import { mergeOwnCommits } from "./commits.ts";
import { Unjudged } from "./unjudged.ts";
import type { ClusterConfig, Command, DbReport } from "../bus/messages.ts";
import type { NodeView } from "../cluster/view.ts";
import type { FenceProof } from "../resources/types.ts";
import { SERVICES, armed, confirmedInst, failoverRequest, fenceHeld, fencedProof, flapHold, frozen, inMaintenance, restoring, switchoverTarget, type Svc } from "./flags.ts";
import { STEPS, failoverCommand, ineligible, type Cause, type Proc, type StepCtx } from "./steps.ts";
import type { HaInput, HaTiming, Report } from "./types.ts";

export type { DataPath, HaInput, HaTiming, Report } from "./types.ts";


/** a failed failover or switchover is not started again sooner than this */
const RETRY_MS = 5000;
/** a candidate that failed to promote this many times is passed over (issue 20 item 3) */
const CANDIDATE_TRIES = 2;
/** the holder's agent gets this long beyond service_fail_ms to fence its server itself */
const LOCAL_FENCE_GRACE_MS = 3000;
/** a portal that does not answer on the VIP holder for this long makes the VIP move */
const PORTAL_MOVE_MS = 3000;
/** a confirmed holder read-only this long, with nothing under way, is passed over */
const STUCK_HOLDER_MS = 10_000;
/** the leader probes a holder's data path once it has been silent this long (issue 20 item 4) */
export const PROBE_AFTER_MS = 500;

export const DEFAULT_HA_TIMING: HaTiming = {
  antiFlapMs: 600_000, stepTimeoutMs: 15_000, fenceTimeoutMs: 60_000, serviceFailMs: 2000, watchdogMs: 5000, fenceMarginMs: 2000, writesDownAlarmMs: 5000,
};


export type HaAction =
  | { kind: "fence"; node: string; lastContactAgoMs: number; id: number }
  /** call off a fence still running: only when this leader stops leading */
  | { kind: "abort-fence"; node: string; why: string }
  | { kind: "unfence"; node: string }
  | { kind: "commit"; cmd: Command; own: boolean }
  | { kind: "query" };

export interface HaEvents {
  event(kind: string, detail: string, fields?: Record<string, unknown>): void;
}

/** A service without a writable primary that clients can reach (the "writes down" alarm). */
export interface WritesDown {
  svc: Svc;
  /** wall ms since when */
  since: number;
  forMs: number;
  why: string;
  /** what an operator can type to let bollard act, or null when nothing is to be typed (it is acting) */
  command: string | null;
}

interface FenceState {
  /** which fence action this is */
  id: number;
  state: "running" | "done" | "failed";
  at: number;
  proofs: FenceProof[];
}

/** Per service, across procedures: tries, candidates that failed, why the last one ended. */
interface Attempts {
  failures: number;
  byCandidate: Map<string, number>;
  last: string | null;
}

/** Nodes whose data path the leader should probe now: holders not heard for PROBE_AFTER_MS. */
export function probeTargets(view: NodeView): string[] {
  const holders = new Set(SERVICES.map((s) => view.committed.assignments[s]).filter((x): x is string => !!x));
  return view.peers.filter((p) => holders.has(p.name) && (p.lastHeardMs === null || p.lastHeardMs >= PROBE_AFTER_MS)).map((p) => p.name);
}

export class HaManager {
  private readonly procs = new Map<Svc, Proc>();
  private readonly fences = new Map<string, FenceState>();
  private readonly said = new Set<string>();
  /** after a failed procedure, not again before this (local ms) */
  private readonly retryAt = new Map<Svc, number>();
  private readonly attempts = new Map<Svc, Attempts>();
  /** local ms since when each service has had no writable primary clients can reach */
  private readonly downSince = new Map<Svc, { at: number; wall: number }>();
  /** outages long enough for the alarm that ended since the alarms last judged (judgedWritesDown) */
  private readonly endedDown = new Unjudged<WritesDown>((w) => w.svc);
  /** local ms since when a node's portal has not answered (its reports say portalOk false) */
  private readonly portalBadSince = new Map<string, number>();
  private readonly holds = new Map<Svc, { why: string; command: string | null }>();
  /** local ms since when the confirmed holder of a service has been read-only with nothing under way */
  private readonly readOnlySince = new Map<Svc, { holder: string; at: number }>();
  private pendingCommit = false;
  private fenceSeq = 0;
  private actions: HaAction[] = [];
  /** this step's commits of failover procedures: the ones merged into one epoch (ha/commits.ts) */
  private failoverCommits = new WeakSet<object>();
  private lastInput: HaInput | null = null;

  constructor(
    private readonly self: string,
    private readonly t: HaTiming,
    private readonly ev: HaEvents,
  ) {}

  /** One step of the manager; returns what the runtime must do now. Only on the acting leader. */
  tick(inp: HaInput): HaAction[] {
    this.actions = [];
    this.lastInput = inp;
    const cfg = inp.view.committed;
    for (const svc of SERVICES) {
      this.holds.delete(svc);
      const p = this.procs.get(svc);
      // a remote site (ha/site.ts) may hold MySQL: promoted there, or not read yet after a start
      const siteHold = svc === "mysql" && !p ? inp.siteHold?.() ?? null : null;
      if (siteHold) this.hold(svc, siteHold, null);
      else if (p) this.advance(p, inp);
      else if (inp.now >= (this.retryAt.get(svc) ?? -Infinity)) this.watch(svc, cfg, inp);
      else this.hold(svc, `the last try failed (${this.attempts.get(svc)?.last ?? "?"}); trying again in ${Math.round((this.retryAt.get(svc)! - inp.now) / 1000)} s`, null);
    }
    this.watchPortals(cfg, inp);
    this.clearReturnedFences(cfg, inp);
    this.trackWrites(cfg, inp);
    return mergeOwnCommits(this.actions, (a) => this.failoverCommits.has(a));
  }

  /** The leader lost its lease or leadership: forget procedures; the register holds what was decided. */
  reset(why: string): void {
    for (const p of this.procs.values()) this.ev.event("failover", `${p.kind} of ${p.svc} from ${p.from} interrupted at step ${p.steps[p.i]}: ${why}; the next leader resumes from the register`);
    this.procs.clear();
    this.fences.clear();
    this.downSince.clear();
    this.endedDown.clear();
    this.portalBadSince.clear();
    this.pendingCommit = false;
    this.lastInput = null;
  }

  fenceDone(node: string, fenced: boolean, proofs: FenceProof[], now: number, id?: number): void {
    const f = this.fences.get(node);
    if (!f || f.state !== "running" || (id !== undefined && f.id !== id)) return; // an older fence
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

  /** Services without a writable primary clients can reach for longer than writesDownAlarmMs. */
  writesDown(): WritesDown[] {
    const inp = this.lastInput;
    if (!inp) return [];
    const out: WritesDown[] = [];
    for (const [svc, d] of this.downSince) {
      const forMs = inp.now - d.at;
      if (forMs < this.t.writesDownAlarmMs) continue;
      const p = this.procs.get(svc);
      const h = this.holds.get(svc);
      const rs = restoring(inp.view.committed.flags, svc);
      const why = rs ? `writes stopped: restore --replace ${rs.id} under way (since ${new Date(rs.at).toISOString()})${p ? `; ${p.kind} from ${p.from} at step ${p.steps[p.i]}` : ""}` : p ? `${p.kind} from ${p.from} at step ${p.steps[p.i]} for ${Math.round((inp.now - p.stepAt) / 1000)} s${p.note ? ` (${p.note})` : ""}` : h?.why ?? this.attempts.get(svc)?.last ?? "no writable primary";
      out.push({ svc, since: d.wall, forMs, why, command: rs ? `bollard restore ${svc} --replace --abort (only if the restore command died)` : p ? p.command ?? null : h?.command ?? null });
    }
    return out;
  }

  /**
   * What the writes-down alarm judges: writesDown(), and the outages long enough for it that
   * ended since the last judgement (one that ended between two alarm steps is still an alarm).
   */
  judgedWritesDown(): WritesDown[] {
    return this.endedDown.take(this.writesDown());
  }

  // ---- watching for work ----------------------------------------------------------------

  private watch(svc: Svc, cfg: ClusterConfig, inp: HaInput): void {
    const holder = cfg.assignments[svc];
    if (!holder) return this.place(svc, cfg, inp);
    const alive = this.alive(inp, holder);
    const r = this.report(inp, holder, svc);
    const target = switchoverTarget(cfg.flags, svc);
    const forced = failoverRequest(cfg.flags, svc);
    if (target === holder) {
      this.ev.event("failover", `switchover of ${svc} to ${target}: it already holds it; nothing to do`);
      return this.commit({ op: "apply", why: `switchover of ${svc}: already on ${target}`, flags: { [`switchover:${svc}`]: null } });
    }
    if (forced) return this.forcedFailover(svc, holder, forced, alive, r, inp);
    const serviceDown = alive && r !== null && !r.up && r.downMs !== undefined;
    if (alive && (target || inMaintenance(cfg.flags, holder)) && !serviceDown) {
      return this.start(svc, "switchover", "planned", holder, inp, target && target !== "any" ? target : undefined);
    }
    if (alive && target && serviceDown) {
      this.once(`refused:${svc}`, "failover", `switchover of ${svc} from ${holder} refused: its ${svc} has not answered for ${Math.round(r!.downMs! / 1000)} s; '${failoverCommand(svc, target)}' fails it over with a fence`);
      this.commit({ op: "apply", why: `switchover of ${svc} refused`, flags: { [`switchover:${svc}`]: null } });
    }
    if (alive) {
      // the holder is heard: is its server serving, failed, or restarted?
      if (r?.fenced) return this.failoverIfAllowed(svc, holder, "service", inp, `${holder}'s ${svc} did not answer for ${this.t.serviceFailMs} ms; its agent fenced it: ${r.fenced}`, r.fenced);
      if (serviceDown && r!.downMs! >= this.t.serviceFailMs + LOCAL_FENCE_GRACE_MS) {
        return this.failoverIfAllowed(svc, holder, "service", inp, `${holder}'s ${svc} has not answered for ${Math.round(r!.downMs!)} ms and its agent has not fenced it: the node is fenced`);
      }
      if (r?.up && !r.writable && !frozen(cfg.flags, svc) && !fenceHeld(cfg.flags, holder)) {
        if (r.inst && r.inst !== confirmedInst(cfg.flags, svc)) return this.start(svc, "recover", "restart", holder, inp);
        // read-only on purpose while `restore --replace` runs: not a stuck holder
        if (restoring(cfg.flags, svc)) { this.readOnlySince.delete(svc); this.forget(`lost:${svc}`); return; }
        // confirmed, yet not writable: its promotion fails (stuck), or nothing makes it writable
        const since = this.readOnlySince.get(svc);
        if (!since || since.holder !== holder) this.readOnlySince.set(svc, { holder, at: inp.now });
        else if (r.stuck || inp.now - since.at > STUCK_HOLDER_MS) {
          this.readOnlySince.delete(svc);
          return this.start(svc, "recover", "stuck", holder, inp, undefined,
            `${holder}'s ${svc} is the confirmed primary but ${r.stuck ? `cannot be made writable (${r.stuck})` : `read-only for ${Math.round((inp.now - since.at) / 1000)} s`}: another replica as advanced takes it over`);
        }
      } else this.readOnlySince.delete(svc);
      this.forget(`lost:${svc}`);
      return;
    }
    this.failoverIfAllowed(svc, holder, "lost", inp, `${holder} is lost (no heartbeat for ${this.silence(inp, holder)} ms)`);
  }

  /** A failover unless HA is disarmed, the holder is in maintenance, or anti-flapping holds it. */
  private failoverIfAllowed(svc: Svc, holder: string, cause: Cause, inp: HaInput, why: string, localProof?: string): void {
    const flags = inp.view.committed.flags;
    const what = cause === "lost" ? `${holder}, holding ${svc}, is lost` : why;
    // a leader never fences its own node: its agent's local fence is the only way from here
    if (holder === this.self && !localProof) return this.hold(svc, `${what}: the node to fence is the leader's own; its agent could not fence its ${svc}`, null, true);
    if (!armed(flags)) return this.hold(svc, `${what}, but HA is disarmed: no failover`, "bollard ha arm", true);
    if (inMaintenance(flags, holder) && !localProof) return this.hold(svc, `${what} while in maintenance: not fenced, no failover`, `bollard maintenance ${holder} off`, true);
    const hold = flapHold(flags, svc, inp.wall, this.t.antiFlapMs);
    if (hold) return this.hold(svc, `${what}; no automatic failover: ${hold}`, `bollard ha ack ${svc}`, true);
    this.start(svc, "failover", cause, holder, inp, undefined, why, localProof);
  }

  /** `bollard failover SVC --to NODE`: fenced like a lost node; refused when the holder is healthy. */
  private forcedFailover(svc: Svc, holder: string, to: string, alive: boolean, r: DbReport | null, inp: HaInput): void {
    const refuse = (why: string) => {
      this.ev.event("failover", `failover of ${svc} to ${to} refused: ${why}`);
      this.commit({ op: "apply", why: `failover of ${svc} refused`, flags: { [`failover-to:${svc}`]: null } });
    };
    if (to === holder) {
      // accept a restarted holder as it is, without waiting for a replica that is not heard
      if (alive && r?.up && !r.writable) return this.start(svc, "recover", "operator", holder, inp, holder, `${holder}'s restarted ${svc} accepted by an operator`);
      return refuse(`${holder} already holds it${r?.writable ? " and is writable" : ""}`);
    }
    if (alive && r?.up && r.writable) return refuse(`${svc} on ${holder} is healthy and writable: 'bollard switchover ${svc} --to ${to}' moves it without a fence and without loss`);
    if (holder === this.self && !r?.fenced) return refuse(`${holder} leads the cluster: it does not fence its own node`);
    const why = `requested by an operator (${alive ? `${holder}'s ${svc} ${r?.up ? "is not writable" : "does not answer"}` : `${holder} is not heard`})`;
    this.start(svc, "failover", "operator", holder, inp, to === "any" ? undefined : to, why, alive && r?.fenced ? r.fenced : undefined);
  }

  /** A fresh cluster: the most advanced node that reports the service up, by priority. */
  private place(svc: Svc, cfg: ClusterConfig, inp: HaInput): void {
    const up = cfg.members.filter((m) => this.report(inp, m.name, svc)?.up && this.alive(inp, m.name));
    if (up.length < Math.floor(cfg.members.length / 2) + 1 || this.pendingCommit) return this.hold(svc, `no primary placed yet: ${up.length} of ${cfg.members.length} nodes report ${svc} up`, null);
    let best = up[0].name;
    for (const m of up.slice(1)) if ((inp.cmp(svc, this.report(inp, m.name, svc)!.received, this.report(inp, best, svc)!.received) ?? 0) > 0) best = m.name;
    const assign: Record<string, string> = { [svc]: best };
    if (svc === "mysql" && !cfg.assignments.vip) assign.vip = best;
    const inst = this.report(inp, best, svc)?.inst;
    this.ev.event("placement", `placing ${svc} on ${best} (most advanced of ${up.map((m) => `${m.name} ${this.report(inp, m.name, svc)!.received || "-"}`).join(", ")})`);
    this.commit({ op: "apply", why: `initial placement of ${svc}`, assign, flags: inst ? { [`inst:${svc}`]: inst } : undefined });
  }

  private start(svc: Svc, kind: Proc["kind"], cause: Cause, from: string, inp: HaInput, target?: string, why?: string, localProof?: string): void {
    const steps = STEPS[kind].filter((s) => (svc === "mysql" || s !== "moveVip") && (cause === "lost" || s !== "confirmLost"));
    const excluded = [...(this.attempts.get(svc)?.byCandidate ?? [])].filter(([, n]) => n >= CANDIDATE_TRIES).map(([c]) => c);
    const p: Proc = { svc, kind, cause, from, target, steps, i: 0, startedAt: inp.now, stepAt: inp.now, commitSent: false, localProof, excluded };
    this.procs.set(svc, p);
    const reason = why ?? (kind === "recover" ? `${from}'s ${svc} restarted (incarnation ${this.report(inp, from, svc)?.inst ?? "?"}, confirmed ${confirmedInst(inp.view.committed.flags, svc) ?? "none"}): compare its position with the replicas' before anything is writable`
      : target ? `to ${target}` : inMaintenance(inp.view.committed.flags, from) ? `${from} is going into maintenance` : "requested");
    this.ev.event("failover", `${kind} of ${svc} from ${from} started: ${reason}; steps ${steps.join(", ")}${excluded.length ? `; passing over ${excluded.join(",")} (failed to promote)` : ""}`, { svc, from, kind, cause });
    this.forget(`lost:${svc}`);
    this.advance(p, inp);
  }

  // ---- running a procedure --------------------------------------------------------------

  private advance(p: Proc, inp: HaInput): void {
    for (let guard = 0; guard < p.steps.length; guard++) {
      const name = p.steps[p.i];
      const limit = name === "confirmFence" ? this.t.fenceTimeoutMs : this.t.stepTimeoutMs;
      const r = STEPS.run[name](p, this.ctx(inp, p));
      if (r.fail || (!r.done && inp.now - p.stepAt > limit)) {
        const why = r.fail ?? `no progress for ${Math.round(inp.now - p.stepAt)} ms${p.note ? ` (${p.note})` : ""}`;
        this.ev.event("failover", `${p.kind} of ${p.svc} from ${p.from} FAILED at step ${name}: ${why}`, { svc: p.svc, step: name, failed: true });
        this.procs.delete(p.svc);
        this.failed(p, name, why, inp);
        // a switchover that failed before its commit leaves the old primary as it was: thawed
        const thaw: Command | undefined = p.kind === "switchover" && p.i < p.steps.indexOf("commitConfig") && `freeze:${p.svc}` in inp.view.committed.flags
          ? { op: "apply", why: `switchover of ${p.svc} failed: ${p.from} takes writes again`, flags: { [`freeze:${p.svc}`]: null, [`switchover:${p.svc}`]: null } } : undefined;
        const cleanup = r.cleanup && thaw ? { ...thaw, flags: { ...thaw.flags, ...(r.cleanup as { flags?: Record<string, string | null> }).flags } } as Command : r.cleanup ?? thaw;
        if (cleanup) { this.pendingCommit = false; this.commit(cleanup); }
        return;
      }
      if (!r.done) return;
      this.ev.event("step", `${p.kind} ${p.svc} step ${name} done in ${Math.round(inp.now - p.stepAt)} ms${r.detail ? `: ${r.detail}` : ""}`, { svc: p.svc, step: name, ms: Math.round(inp.now - p.stepAt) });
      p.i += 1;
      p.stepAt = inp.now;
      p.commitSent = false;
      p.note = undefined;
      if (p.i === p.steps.length) {
        const moved = p.candidate !== p.from;
        this.ev.event("failover", moved
          ? `${p.kind} of ${p.svc} from ${p.from} to ${p.candidate} done in ${Math.round(inp.now - p.startedAt)} ms${p.proof ? ` (${p.proof})` : ""}`
          : `${p.svc} on ${p.from} confirmed as primary after its restart in ${Math.round(inp.now - p.startedAt)} ms`,
          { svc: p.svc, to: p.candidate, ms: Math.round(inp.now - p.startedAt), done: moved });
        this.procs.delete(p.svc);
        this.attempts.delete(p.svc);
        this.forget(`lost:${p.svc}`);
        return;
      }
    }
  }

  /** Bookkeeping of a failed procedure: a candidate that could not promote counts against it. */
  private failed(p: Proc, step: string, why: string, inp: HaInput): void {
    if (step === "confirmLost") { this.retryAt.set(p.svc, inp.now + 1000); return; } // nothing was done: watch again soon
    const a = this.attempts.get(p.svc) ?? { failures: 0, byCandidate: new Map<string, number>(), last: null };
    a.failures += 1;
    a.last = `${p.kind} from ${p.from} failed at step ${step}: ${why}`;
    if (p.candidate && p.candidate !== p.from && (step === "applyRelayLog" || step === "promote")) {
      const n = (a.byCandidate.get(p.candidate) ?? 0) + 1;
      a.byCandidate.set(p.candidate, n);
      if (n === CANDIDATE_TRIES) this.ev.event("failover", `${p.candidate} failed to promote ${p.svc} ${n} times: passed over from now on, unless no other replica has everything it has`);
    }
    this.attempts.set(p.svc, a);
    // a fence of the holder that was issued goes on to its end: the node is going down anyway
    if (!(p.fenceIssued && this.fences.get(p.from)?.state === "running")) this.fences.delete(p.from);
    this.retryAt.set(p.svc, inp.now + RETRY_MS);
  }

  private ctx(inp: HaInput, p: Proc): StepCtx {
    return {
      inp,
      t: this.t,
      self: this.self,
      report: (node, svc) => this.report(inp, node, svc),
      fresh: (node, since) => (inp.reports.get(node)?.at ?? -Infinity) >= since,
      alive: (node) => this.alive(inp, node),
      silence: (node) => this.silence(inp, node),
      fence: (node) => this.fence(node, inp),
      fenceIssued: (node) => this.fences.has(node),
      commit: (cmd) => {
        this.commit(cmd, true);
        if (p.kind === "failover") this.failoverCommits.add(this.actions[this.actions.length - 1]!);
      },
      query: () => this.actions.push({ kind: "query" }),
      portal: (node) => inp.reports.get(node)?.r.portal ?? null,
      vip: (node) => inp.reports.get(node)?.r.vip ?? false,
      selfFenced: (node) => inp.reports.get(node)?.r.selfFenced ?? false,
      event: (kind, detail) => this.ev.event(kind, detail),
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
      if (!(fencedProof(cfg.flags, m.name) || `fencing:${m.name}` in cfg.flags) || !this.alive(inp, m.name)) continue;
      if ([...this.procs.values()].some((p) => p.from === m.name)) continue; // its own failover decides
      const f = this.fences.get(m.name);
      if (f?.state === "running") continue; // issued: it is going down
      // fenced by this leader: back only once heard after the fence was done (not on a heartbeat
      // from just before it, still within peer-dead)
      if (f?.state === "done" && m.name !== this.self && (this.silence(inp, m.name) < 0 || inp.now - this.silence(inp, m.name) < f.at)) continue;
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

  /**
   * nginx is part of the data path (issue 22 item 3): when the VIP holder's portal has not
   * answered for PORTAL_MOVE_MS (its agent restarts a dead nginx at once, so this is a portal
   * that stays broken), the VIP moves to a live node whose portal answers, the primary's first.
   */
  private watchPortals(cfg: ClusterConfig, inp: HaInput): void {
    for (const m of cfg.members) {
      const ok = inp.reports.get(m.name)?.r.portalOk;
      if (ok === false && this.alive(inp, m.name)) { if (!this.portalBadSince.has(m.name)) this.portalBadSince.set(m.name, inp.now); }
      else this.portalBadSince.delete(m.name);
    }
    const vip = cfg.assignments.vip;
    if (!vip || this.procs.size || this.pendingCommit) return;
    const bad = this.portalBadSince.get(vip);
    if (bad === undefined || inp.now - bad < PORTAL_MOVE_MS) return;
    const good = [cfg.assignments.mysql, ...cfg.members.map((m) => m.name)].filter((n): n is string => !!n && n !== vip && this.alive(inp, n) && inp.reports.get(n)?.r.portalOk !== false && !inMaintenance(cfg.flags, n));
    if (!good.length) return this.once(`portal:${vip}`, "portal", `the portal on ${vip}, the VIP holder, has not answered for ${Math.round((inp.now - bad) / 1000)} s, and no other node's portal answers: the VIP stays`);
    this.forget(`portal:${vip}`);
    this.ev.event("portal", `the portal on ${vip}, the VIP holder, has not answered for ${Math.round(inp.now - bad)} ms: moving the VIP to ${good[0]}`);
    this.commit({ op: "apply", why: `portal on ${vip} does not answer`, assign: { vip: good[0] } });
  }

  /** Whether clients can write each service now: a writable holder, routed to by the VIP's portal. */
  private trackWrites(cfg: ClusterConfig, inp: HaInput): void {
    for (const svc of SERVICES) {
      const holder = cfg.assignments[svc];
      const why = this.unwritable(svc, holder, cfg, inp);
      if (why === null) {
        const d = this.downSince.get(svc);
        if (d && inp.now - d.at >= this.t.writesDownAlarmMs) {
          this.endedDown.note({ svc, since: d.wall, forMs: inp.now - d.at, why: `writable again at ${new Date(inp.wall).toISOString().slice(11, 23)} UTC`, command: null });
        }
        this.downSince.delete(svc);
        continue;
      }
      if (!this.downSince.has(svc)) this.downSince.set(svc, { at: inp.now, wall: inp.wall });
      if (!this.procs.has(svc) && !this.holds.has(svc)) this.hold(svc, why, this.suggest(svc, holder, cfg, inp));
    }
  }

  /** Why clients cannot write `svc` now, or null when they can. */
  private unwritable(svc: Svc, holder: string | undefined, cfg: ClusterConfig, inp: HaInput): string | null {
    if (!cfg.members.some((m) => this.report(inp, m.name, svc))) return null; // the service is not run here
    if (!holder) return "no primary placed";
    const rs = restoring(cfg.flags, svc);
    if (rs) return `writes stopped: restore --replace ${rs.id} under way (since ${new Date(rs.at).toISOString()})`;
    if (!this.alive(inp, holder)) return `${holder}, the primary, is not heard`;
    const r = this.report(inp, holder, svc);
    if (!r?.up) return `${svc} on ${holder} does not answer`;
    if (!r.writable) return `${svc} on ${holder} is not writable`;
    const vip = cfg.assignments.vip;
    if (!vip) return null;
    if (!this.alive(inp, vip) || !inp.reports.get(vip)?.r.vip) return `the VIP is not held (assigned to ${vip})`;
    const rr = inp.reports.get(vip)!.r;
    if (rr.portalOk === false) return `the portal on ${vip}, the VIP holder, does not answer`;
    if (rr.portal[svc] !== holder) return `the portal on ${vip} routes ${svc} to ${rr.portal[svc] ?? "nowhere"}, not ${holder}`;
    return null;
  }

  /** The command that lets bollard act when nothing is under way. */
  private suggest(svc: Svc, holder: string | undefined, cfg: ClusterConfig, inp: HaInput): string | null {
    if (restoring(cfg.flags, svc)) return `bollard restore ${svc} --replace --abort (only if the restore command died)`;
    if (!holder) return null;
    const r = this.report(inp, holder, svc);
    if (this.alive(inp, holder) && r?.up && !r.writable && !r.stuck && r.inst !== confirmedInst(cfg.flags, svc)) return failoverCommand(svc, holder);
    const live = cfg.members.map((m) => m.name).filter((n) => n !== holder && this.alive(inp, n));
    const best = live.find((n) => !ineligible(svc, n, this.report(inp, n, svc), cfg.flags));
    if (best) return failoverCommand(svc, best);
    const fenced = cfg.members.map((m) => m.name).find((n) => n !== holder && !this.alive(inp, n));
    return fenced ? `bollard rejoin ${fenced}` : null;
  }

  private hold(svc: Svc, why: string, command: string | null, event = false): void {
    this.holds.set(svc, { why, command });
    if (event) this.once(`lost:${svc}`, "failover", why);
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
