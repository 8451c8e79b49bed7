// The VM manager (DESIGN §5b, issue 14): run by the leader, within its lease, beside the data
// path's HaManager. It places VMs and their replicas (vm-placement.ts), keeps each VM's replica
// in sync or outdates it, restarts the VMs of a fenced node on the node holding their complete
// replica (in depends_on and priority order, with anti-flapping), moves a VM away from a live
// node only once that node has reported it stopped under a hold, drains nodes in maintenance by
// live migration, and says what is wrong for the alarms. It decides only: every decision is a
// commit to the register (vm-flags.ts) that the nodes' local VM managers (vm-local.ts) carry out,
// and what they did comes back in their reports. Pure: no clock, no I/O.
import { Unjudged } from "./unjudged.ts";
import type { Command } from "../bus/messages.ts";
import type { NodeView } from "../cluster/view.ts";
import type { FenceProof } from "../resources/types.ts";
import { armed, fenceHeld, fencedProof, inMaintenance } from "./flags.ts";
import { heldFrom, holderOf, migrationTo, replicaOf, stoppedByOperator, syncedOn, vmFlapHold } from "./vm-flags.ts";
import { VmFencer, type FenceAction } from "./vm-fencing.ts";
import { chooseHost, chooseReplica, startOrder, type PlaceInput } from "./vm-placement.ts";
import { isServiceDep, type VmCatalog, type VmDef, type VmFacts, type VmNodeFacts, type VmProblem } from "./vm-types.ts";

export interface VmReport {
  r: VmNodeFacts;
  /** local monotonic ms it arrived */
  at: number;
}

export interface VmInput {
  now: number;
  wall: number;
  view: NodeView;
  catalog: VmCatalog;
  /** the definitions' digest the leader holds: a node holding others is not given VMs */
  defs: string;
  /** every node's latest VM report, this node's included */
  reports: ReadonlyMap<string, VmReport>;
  /** why clients cannot write `svc` now (no fresh report of a writable primary), or null when they can */
  service(svc: "mysql" | "redis"): string | null;
  /** local ms a silent node last answered the leader's probe, or null */
  probeOkAt(node: string): number | null;
  /** why the leader cannot fence `node`, or null */
  canFence(node: string): string | null;
}

export interface VmTiming {
  antiFlapMs: number;
  watchdogMs: number;
  fenceMarginMs: number;
  fenceTimeoutMs: number;
  /** a live migration (replica move included) not done in this long is abandoned */
  migrateTimeoutMs: number;
  /** a VM running without a replica in sync this long: the "mirror degraded" alarm */
  degradedAlarmMs: number;
}

export const DEFAULT_VM_TIMING: VmTiming = { antiFlapMs: 600_000, watchdogMs: 5000, fenceMarginMs: 2000, fenceTimeoutMs: 60_000, migrateTimeoutMs: 180_000, degradedAlarmMs: 10_000 };

/** a VM down this long is a problem (an alarm): a start, a restart elsewhere, a boot take a while */
export const DOWN_ALARM_MS = 10_000;

export type VmAction = { kind: "commit"; cmd: Command } | FenceAction;

type Ev = (kind: string, detail: string, fields?: Record<string, unknown>) => void;

/** One epoch's worth of changes, at most one per VM. */
class Batch {
  readonly assign: Record<string, string> = {};
  readonly flags: Record<string, string | null> = {};
  readonly why: string[] = [];
  private readonly vms = new Set<string>();
  has(vm: string): boolean { return this.vms.has(vm); }
  add(vm: string, why: string, flags: Record<string, string | null>, assign?: Record<string, string>): void {
    this.vms.add(vm);
    this.why.push(why);
    Object.assign(this.flags, flags);
    if (assign) Object.assign(this.assign, assign);
  }
  get empty(): boolean { return this.vms.size === 0; }
}

const LIVE = new Set(["running", "paused", "incoming", "migrated"]);

export class VmManager {
  private readonly fencer: VmFencer;
  private pendingCommit = false;
  private actions: VmAction[] = [];
  /** the first committed epoch this leader saw each hold in (reports must be at least as new) */
  private readonly holdEpoch = new Map<string, number>();
  /** local ms each migration (vm-mig) was first seen */
  private readonly migSince = new Map<string, number>();
  /** local ms since when each running VM has had no replica in sync */
  private readonly degradedSince = new Map<string, number>();
  /** VMs whose replica was lost or broke (not moved on purpose): degraded at once, until in sync again */
  private readonly lostReplica = new Map<string, string>();
  /** local ms since when each VM has been down (or waiting to start) */
  private readonly downSince = new Map<string, number>();
  private readonly said = new Map<string, string>();
  private problemList: VmProblem[] = [];
  /** problems found since the alarms last judged: a replica lost and rebuilt between two judgements is still an alarm */
  private readonly unjudged = new Unjudged<VmProblem>((p) => `${p.kind}:${p.vm}`);
  private last: VmInput | null = null;

  constructor(
    private readonly self: string,
    private readonly t: VmTiming,
    private readonly ev: Ev,
  ) {
    this.fencer = new VmFencer(t, ev);
  }

  /** One step; returns what the runtime must do now. Only on the acting leader. */
  tick(inp: VmInput): VmAction[] {
    this.actions = [];
    this.last = inp;
    const problems: VmProblem[] = [];
    const cfg = inp.view.committed;
    for (const vm of [...this.holdEpoch.keys()]) if (heldFrom(cfg.flags, vm) === null) this.holdEpoch.delete(vm);
    for (const d of inp.catalog.defs) if (heldFrom(cfg.flags, d.name) && !this.holdEpoch.has(d.name)) this.holdEpoch.set(d.name, cfg.epoch);
    for (const vm of [...this.migSince.keys()]) if (!migrationTo(cfg.flags, vm)) this.migSince.delete(vm);
    for (const d of inp.catalog.defs) if (migrationTo(cfg.flags, d.name) && !this.migSince.has(d.name)) this.migSince.set(d.name, inp.now);

    // nodes that run VMs, are lost, and hold no data-path service: ours to fence
    const services = new Set(["mysql", "redis", "vip"].map((s) => cfg.assignments[s]).filter(Boolean));
    const lost = cfg.members.map((m) => m.name).filter((n) => n !== this.self && !this.alive(inp, n) && !services.has(n) &&
      inp.catalog.defs.some((d) => holderOf(cfg, d.name) === n && !stoppedByOperator(cfg.flags, d.name)));
    this.actions.push(...this.fencer.step({
      now: inp.now, wall: inp.wall, cfg, self: this.self, alive: (n) => this.alive(inp, n), silence: (n) => this.silence(inp, n),
      probeOkAt: inp.probeOkAt, canFence: inp.canFence,
    }, lost, (cmd) => this.commit(cmd)));

    const batch = new Batch();
    const where = this.where(inp);
    const moving = this.migrating(inp).length > 0;
    for (const def of startOrder(inp.catalog.defs)) {
      const p = this.decide(def, inp, batch, where);
      // down (or waiting) for a moment is what a start looks like: a problem once it lasts
      if (p?.kind === "down") {
        const since = this.downSince.get(def.name) ?? inp.now;
        this.downSince.set(def.name, since);
        if (inp.now - since >= DOWN_ALARM_MS) problems.push(p);
      } else {
        this.downSince.delete(def.name);
        if (p) problems.push(p);
      }
    }
    if (!moving && batch.empty) this.rebalance(inp, batch, where);
    if (!batch.empty) this.commit({ op: "apply", why: batch.why.join("; ").slice(0, 200), assign: Object.keys(batch.assign).length ? batch.assign : undefined, flags: batch.flags });
    this.problemList = problems;
    for (const p of problems) this.unjudged.note(p);
    return this.actions;
  }

  reset(why: string): void {
    if (this.migSince.size || this.holdEpoch.size) this.ev("vm", `VM procedures interrupted: ${why}; the next leader resumes from the register`);
    this.fencer.reset();
    this.pendingCommit = false;
    this.holdEpoch.clear();
    this.migSince.clear();
    this.degradedSince.clear();
    this.downSince.clear();
    this.lostReplica.clear();
    this.problemList = [];
    this.unjudged.clear();
    this.last = null;
  }

  fenceDone(node: string, ok: boolean, proofs: FenceProof[], now: number, id: number): void {
    this.fencer.done(node, ok, proofs, now, id);
  }

  commitDone(ok: boolean, error?: string): void {
    this.pendingCommit = false;
    if (!ok && error && !/nothing to change/.test(error)) this.ev("vm", `commit refused: ${error}`);
  }

  /** What is wrong with the VMs now (the alarms), as of the last tick. */
  problems(): VmProblem[] {
    return this.problemList;
  }

  /**
   * What the alarms judge: the problems now, and those found since the last judgement that are
   * gone already (a mirror target lost and rebuilt in less than the alarm step's period).
   */
  judged(): VmProblem[] {
    return this.unjudged.take(this.problemList);
  }

  /** Nodes the fencer waits on, and why. */
  fencing(): Record<string, string> {
    return Object.fromEntries(this.fencer.waiting);
  }

  // ---- one VM -----------------------------------------------------------------------------

  private decide(def: VmDef, inp: VmInput, b: Batch, where: Map<string, string[]>): VmProblem | null {
    const vm = def.name;
    const cfg = inp.view.committed;
    const f = cfg.flags;
    const a = holderOf(cfg, vm);
    if (stoppedByOperator(f, vm)) { this.degradedSince.delete(vm); return null; }
    if (!a) return this.place(def, inp, b, where);
    if (fencedProof(f, a)) return this.restart(def, a, inp, b, where);
    if (!this.alive(inp, a)) {
      this.degradedSince.delete(vm);
      const wait = this.fencer.waiting.get(a);
      return { vm, kind: "down", node: a, why: `${a} is lost; ${wait ?? (fenceHeld(f, a) ? "being fenced" : "waiting for its fence proof")}` };
    }
    const x = this.fact(inp, a, vm);
    // a replica that cannot keep up is outdated whatever the VM does (running, starting, stopped):
    // its holder, which has every write, then goes on (or starts) without it
    const rep = replicaOf(f, vm);
    const unfit = rep ? (rep === a ? "it is the holder" : this.unfitReplica(inp, rep)) : null;
    if (rep && unfit) {
      this.once(`mirror:${vm}`, `${vm}: replica on ${rep} outdated: ${unfit}`, "vm-mirror");
      if (rep !== a) this.lostReplica.set(vm, `its replica on ${rep} was lost (${rep} ${unfit})`);
      b.add(vm, `${vm}: replica on ${rep} outdated`, { [`vm-replica:${vm}`]: null, [`vm-synced:${vm}`]: null });
      return null;
    }
    const held = heldFrom(f, vm);
    if (held === a) return this.resolveHold(def, a, x, inp, b, where);
    if (held) { b.add(vm, `${vm}: hold from ${held} cleared (runs on ${a})`, { [`vm-hold:${vm}`]: null }); return null; }
    const mig = migrationTo(f, vm);
    if (x?.state === "migrated" && x.migration?.to && mig === x.migration.to) return this.commitMigration(def, a, x, inp, b);
    if (x?.state === "failed") return this.failedHere(def, a, inp, b, where);
    if (inMaintenance(f, a) && !mig) return this.drain(def, a, inp, b, where);
    if (mig) return this.migration(def, a, mig, x, inp, b, where);
    if (x && LIVE.has(x.state) && !x.busy) return this.mirror(def, a, x, inp, b, where);
    if (x?.state === "stopped" || !x) {
      this.degradedSince.delete(vm);
      return { vm, kind: "down", node: a, why: x?.busy ? `${x.busy} on ${a}` : x ? `not running on ${a} (${x.error ?? "its agent starts it"})` : `${a} has not reported it yet` };
    }
    return null;
  }

  /** A VM not placed yet: once what it depends on runs, on the best node, with a replica. */
  private place(def: VmDef, inp: VmInput, b: Batch, where: Map<string, string[]>): VmProblem | null {
    const vm = def.name;
    if (!def.autostart && inp.view.committed.flags[`vm-start:${vm}`] === undefined) return null;
    const deps = this.depsWaiting(def, inp);
    if (deps) return { vm, kind: "down", node: null, why: `not started: waiting for ${deps}` };
    const c = chooseHost(def, this.placeInput(inp, where, "host"));
    if (c.node === null) {
      this.once(`place:${vm}`, `${vm} cannot be placed: ${c.why}`);
      return { vm, kind: c.capacity ? "no-capacity" : "down", node: null, why: `cannot be placed: ${c.why}` };
    }
    this.forget(`place:${vm}`);
    where.set(vm, [c.node]);
    const r = chooseReplica(def, c.node, this.placeInput(inp, where, "replica"), this.replicaCounts(inp));
    this.ev("vm-placement", `placing ${vm} on ${c.node}${r ? `, its replica on ${r}` : ", no node for its replica"}`, { vm, node: c.node, replica: r });
    b.add(vm, `place ${vm} on ${c.node}`, { [`vm-replica:${vm}`]: r, [`vm-synced:${vm}`]: null }, { [`vm:${vm}`]: c.node });
    return null;
  }

  /** The holder is fenced: the VM runs again where its replica is complete, after what it depends on. */
  private restart(def: VmDef, a: string, inp: VmInput, b: Batch, where: Map<string, string[]>): VmProblem | null {
    const vm = def.name;
    const f = inp.view.committed.flags;
    this.degradedSince.delete(vm);
    const down = (kind: VmProblem["kind"], why: string): VmProblem => { this.once(`restart:${vm}`, `${vm} (on fenced ${a}) stays down: ${why}`); return { vm, kind, node: a, why }; };
    if (!armed(f)) return down("down", "HA is disarmed (bollard ha arm)");
    const s = syncedOn(f, vm);
    if (!s || s === a) return down("restart-failed", `no other node holds a complete copy of its disks; it runs again when ${a} is back (bollard rejoin ${a})`);
    const flap = vmFlapHold(f, vm, inp.wall, this.t.antiFlapMs);
    if (flap) return down("restart-failed", flap);
    const deps = this.depsWaiting(def, inp);
    if (deps) return { vm, kind: "down", node: a, why: `${a} is fenced; waiting for ${deps} before starting it on ${s}` };
    const c = chooseHost(def, this.placeInput(inp, where, "host"), { only: [s] });
    if (c.node === null) return down(c.capacity ? "no-capacity" : "restart-failed", `its replica's node cannot run it: ${c.why}`);
    this.forget(`restart:${vm}`);
    where.set(vm, [s]);
    this.ev("vm-failover", `${vm}: ${a} is fenced (${fencedProof(f, a)}); starting it on ${s}, which holds every write it acknowledged`, { vm, from: a, to: s });
    b.add(vm, `restart ${vm} on ${s} (${a} fenced)`, { [`vm-replica:${vm}`]: null, [`vm-synced:${vm}`]: null, [`vm-hold:${vm}`]: null, [`vm-mig:${vm}`]: null, [`vm-moved:${vm}`]: String(Math.round(inp.wall)) }, { [`vm:${vm}`]: s });
    return null;
  }

  /** Its node gave up starting it: move it (hold, then the move) to its synced replica if allowed. */
  private failedHere(def: VmDef, a: string, inp: VmInput, b: Batch, where: Map<string, string[]>): VmProblem {
    const vm = def.name;
    const f = inp.view.committed.flags;
    const s = syncedOn(f, vm);
    const flap = vmFlapHold(f, vm, inp.wall, this.t.antiFlapMs);
    const why = `${a} gave up starting it (${this.fact(inp, a, vm)?.error ?? "?"})`;
    if (!armed(f) || !s || s === a || flap) return { vm, kind: "restart-failed", node: a, why: `${why}; ${!armed(f) ? "HA is disarmed" : flap ?? "no other node holds a complete copy"}; 'bollard vm start ${vm}' tries again` };
    if (chooseHost(def, this.placeInput(inp, where, "host"), { only: [s] }).node === null) return { vm, kind: "restart-failed", node: a, why: `${why}; ${s}, its replica, cannot run it` };
    this.ev("vm-failover", `${vm}: ${why}; holding it away from ${a} before it starts on ${s}`, { vm, from: a, to: s });
    b.add(vm, `hold ${vm} from ${a}`, { [`vm-hold:${vm}`]: a });
    return { vm, kind: "restart-failed", node: a, why: `${why}; moving it to ${s}` };
  }

  /** A hold: once the held node reports it stopped under the hold, move it to its synced replica. */
  private resolveHold(def: VmDef, a: string, x: VmFacts | null, inp: VmInput, b: Batch, where: Map<string, string[]>): VmProblem | null {
    const vm = def.name;
    const f = inp.view.committed.flags;
    const r = inp.reports.get(a)?.r;
    const maint = inMaintenance(f, a);
    const failed = x?.state === "failed";
    if (!maint && !failed && !(x && LIVE.has(x.state))) {
      // nothing holds it here any more (maintenance over, an operator's vm start): it may run here
      if (x?.state === "stopped" && !x.busy) { b.add(vm, `${vm} may run on ${a} again`, { [`vm-hold:${vm}`]: null }); this.ev("vm", `${vm}: the hold from ${a} is lifted; it starts there again`); }
      return null;
    }
    const proof = r && x && !x.busy && (x.state === "stopped" || x.state === "failed") && r.epoch >= (this.holdEpoch.get(vm) ?? Infinity);
    if (!proof) return { vm, kind: "down", node: a, why: `stopping on ${a} (held away from it)` };
    const s = syncedOn(f, vm);
    const c = s && s !== a ? chooseHost(def, this.placeInput(inp, where, "host"), { only: [s] }) : null;
    if (!c?.node) {
      const no = c && c.node === null ? c.why : "no other node holds a complete copy";
      const why = maint ? `${a} is in maintenance and no node can take it (${no}); it runs there again after maintenance` : `${a} gave up starting it and ${no}`;
      return { vm, kind: maint ? "no-capacity" : "restart-failed", node: a, why };
    }
    where.set(vm, [c.node]);
    this.ev("vm-failover", `${vm}: ${a} reported it stopped (${x!.state}, epoch ${r!.epoch}); it runs on ${c.node} now, which holds every write it acknowledged`, { vm, from: a, to: c.node });
    b.add(vm, `move ${vm} from ${a} to ${c.node}`, { [`vm-hold:${vm}`]: null, [`vm-replica:${vm}`]: null, [`vm-synced:${vm}`]: null, ...(failed ? { [`vm-moved:${vm}`]: String(Math.round(inp.wall)) } : {}) }, { [`vm:${vm}`]: c.node });
    return null;
  }

  // ---- mirrors ----------------------------------------------------------------------------

  /** A running VM's replica: choose one, mark it synced once its holder says so, outdate it when lost or broken. */
  private mirror(def: VmDef, a: string, x: VmFacts, inp: VmInput, b: Batch, where: Map<string, string[]>): VmProblem | null {
    const vm = def.name;
    const f = inp.view.committed.flags;
    const rep = replicaOf(f, vm);
    const syn = syncedOn(f, vm);
    const m = x.mirror;
    const change = (why: string, flags: Record<string, string | null>) => { this.once(`mirror:${vm}`, `${vm}: ${why}`, "vm-mirror"); b.add(vm, `${vm}: ${why}`, flags); };
    if (!rep) {
      const r = chooseReplica(def, a, this.placeInput(inp, where, "replica"), this.replicaCounts(inp));
      if (r) change(`replica on ${r}`, { [`vm-replica:${vm}`]: r, [`vm-synced:${vm}`]: null });
    } else if (syn && syn !== rep) change(`${syn} is not its replica any more`, { [`vm-synced:${vm}`]: null });
    else if (m?.to === rep && m.state === "ready" && syn !== rep) change(`in sync with ${rep}: every write is on both nodes`, { [`vm-synced:${vm}`]: rep });
    else if (m?.to === rep && m.state === "broken" && syn === rep) {
      change(`mirror to ${rep} broke (${m.error ?? "?"}): replica outdated, the guest runs on without it`, { [`vm-synced:${vm}`]: null });
      this.lostReplica.set(vm, `its mirror to ${rep} broke (${m.error ?? "?"})`);
    }
    if (syn && syn === rep && !b.has(vm)) { this.degradedSince.delete(vm); this.lostReplica.delete(vm); return null; }
    const since = this.degradedSince.get(vm) ?? inp.now;
    this.degradedSince.set(vm, since);
    // a replica lost or broken is an alarm at once; a first copy (placement, a planned move) once it lasts
    const lost = this.lostReplica.get(vm);
    if (!lost && inp.now - since < this.t.degradedAlarmMs) return null;
    const why = !rep ? "no node can hold its replica" : m?.to === rep ? `mirror to ${rep} ${m.state}${m.state === "syncing" ? ` (${Math.round(m.done * 100)} %)` : ""}` : `no mirror to ${rep} yet`;
    return { vm, kind: "mirror-degraded", node: a, why: `runs without a replica in sync for ${Math.round((inp.now - since) / 1000)} s${lost ? ` (${lost})` : ""}: ${why}` };
  }

  // ---- migrations and maintenance ------------------------------------------------------------

  /** A node in maintenance: its VMs leave by live migration, or stop where no node may take them. */
  private drain(def: VmDef, a: string, inp: VmInput, b: Batch, where: Map<string, string[]>): VmProblem | null {
    const vm = def.name;
    const x = this.fact(inp, a, vm);
    if (!x || x.busy) return null;
    if (!LIVE.has(x.state)) {
      // not running there: held, so that its node does not start it; moved if a node can take it
      b.add(vm, `hold ${vm} from ${a} (maintenance)`, { [`vm-hold:${vm}`]: a });
      return null;
    }
    if (this.migrating(inp).length) return { vm, kind: "down", node: a, why: `waiting to leave ${a} (maintenance): one migration at a time` };
    const c = this.migrationTarget(def, a, inp, where);
    if (c.node === null) {
      this.ev("vm-migrate", `${vm} cannot leave ${a} (maintenance): ${c.why}; stopping it there until maintenance is over`, { vm });
      b.add(vm, `stop ${vm} on ${a} (maintenance, no room elsewhere)`, { [`vm-hold:${vm}`]: a });
      return { vm, kind: "no-capacity", node: a, why: `draining ${a}: ${c.why}` };
    }
    this.ev("vm-migrate", `${a} is in maintenance: live-migrating ${vm} to ${c.node}`, { vm, from: a, to: c.node });
    b.add(vm, `migrate ${vm} to ${c.node} (maintenance of ${a})`, { [`vm-mig:${vm}`]: c.node });
    where.set(vm, [a, c.node]);
    return null;
  }

  /** A migration asked for: resolve "any", move the replica to the target, wait for the holder to migrate. */
  private migration(def: VmDef, a: string, mig: string, x: VmFacts | null, inp: VmInput, b: Batch, where: Map<string, string[]>): VmProblem | null {
    const vm = def.name;
    const f = inp.view.committed.flags;
    const refuse = (why: string): null => { this.ev("vm-migrate", `migration of ${vm} to ${mig} refused: ${why}`, { vm, failed: true }); b.add(vm, `migration of ${vm} refused`, { [`vm-mig:${vm}`]: null }); return null; };
    const abandon = (why: string): null => {
      this.ev("vm-migrate", `migration of ${vm} from ${a} to ${mig} abandoned: ${why}`, { vm, failed: true });
      const migrated = x?.state === "migrated";
      // a source that completed keeps no mirror: its replica is not in sync any more
      b.add(vm, `migration of ${vm} abandoned`, { [`vm-mig:${vm}`]: null, ...(migrated ? { [`vm-synced:${vm}`]: null, [`vm-replica:${vm}`]: null } : {}) });
      return null;
    };
    if (mig === "any" || mig === a) {
      if (mig === a) return refuse(`${vm} already runs on ${a}`);
      const c = this.migrationTarget(def, a, inp, where);
      if (c.node === null) return refuse(c.why);
      b.add(vm, `migrate ${vm} to ${c.node}`, { [`vm-mig:${vm}`]: c.node });
      return null;
    }
    if (!inp.view.committed.members.some((m) => m.name === mig)) return refuse(`${mig} is not a member`);
    const unfit = this.unfitHost(inp, mig);
    if (unfit && x?.state !== "migrated") return abandon(`${mig} ${unfit}`);
    if (x?.state === "migrated") return unfit ? abandon(`${mig} ${unfit} after the source completed`) : null;
    const ok = chooseHost(def, this.placeInput(inp, where, "host"), { only: [mig] });
    if (ok.node === null) return refuse(ok.why);
    if (x?.migration?.status === "failed" && x.migration.to === mig) return abandon(`the migration failed on ${a}: ${x.error ?? "?"}`);
    if (inp.now - (this.migSince.get(vm) ?? inp.now) > this.t.migrateTimeoutMs) return abandon(`not done after ${Math.round(this.t.migrateTimeoutMs / 1000)} s`);
    if (replicaOf(f, vm) !== mig) {
      this.ev("vm-migrate", `${vm}: moving its replica to ${mig} before the live migration (a full copy of its disks)`, { vm, to: mig });
      b.add(vm, `${vm}: replica to ${mig}`, { [`vm-replica:${vm}`]: mig, [`vm-synced:${vm}`]: null });
      return null;
    }
    if (x && LIVE.has(x.state) && !x.busy) this.mirror(def, a, x, inp, b, where);
    return null;
  }

  /** The source completed: the target runs the guest from now on. */
  private commitMigration(def: VmDef, a: string, x: VmFacts, inp: VmInput, b: Batch): VmProblem | null {
    const vm = def.name;
    const t = x.migration!.to;
    if (!this.alive(inp, t)) return null; // migration(): abandoned once the target is seen lost
    this.ev("vm-migrate", `${vm} live-migrated from ${a} to ${t} in ${x.migration!.ms ?? "?"} ms (guest paused ${x.migration!.downtimeMs ?? "?"} ms at the source); ${t} runs it`, { vm, from: a, to: t, ms: x.migration!.ms, downtimeMs: x.migration!.downtimeMs });
    b.add(vm, `${vm} migrated to ${t}`, { [`vm-mig:${vm}`]: null, [`vm-replica:${vm}`]: null, [`vm-synced:${vm}`]: null }, { [`vm:${vm}`]: t });
    return null;
  }

  /** Soft anti-affinity once nothing else moves: a VM sharing its node with its group goes where its group is not. */
  private rebalance(inp: VmInput, b: Batch, where: Map<string, string[]>): void {
    const cfg = inp.view.committed;
    if (inp.catalog.defs.some((d) => migrationTo(cfg.flags, d.name) || heldFrom(cfg.flags, d.name))) return;
    for (const def of [...startOrder(inp.catalog.defs)].reverse()) {
      const g = def.group;
      const a = holderOf(cfg, def.name);
      if (!g || inp.catalog.groups[g]?.antiAffinity !== "soft" || !a || inMaintenance(cfg.flags, a)) continue;
      const x = this.fact(inp, a, def.name);
      if (x?.state !== "running" || x.busy || syncedOn(cfg.flags, def.name) !== replicaOf(cfg.flags, def.name) || !replicaOf(cfg.flags, def.name)) continue;
      const mates = (n: string) => [...where].filter(([v, ns]) => v !== def.name && ns.includes(n) && inp.catalog.defs.find((d) => d.name === v)?.group === g).length;
      if (mates(a) === 0) continue;
      const c = chooseHost(def, this.placeInput(inp, where, "host"), { exclude: [a] });
      if (c.node === null || mates(c.node) >= mates(a)) continue;
      this.ev("vm-migrate", `${def.name} shares ${a} with ${mates(a)} other VM(s) of group ${g} (soft anti-affinity) and ${c.node} has fewer: migrating it there`, { vm: def.name, from: a, to: c.node });
      b.add(def.name, `rebalance ${def.name} to ${c.node}`, { [`vm-mig:${def.name}`]: c.node });
      return;
    }
  }

  /** Where to migrate a VM away from `a`: its synced replica if it fits, else the best other node. */
  private migrationTarget(def: VmDef, a: string, inp: VmInput, where: Map<string, string[]>) {
    const s = syncedOn(inp.view.committed.flags, def.name);
    const pi = this.placeInput(inp, where, "host");
    const viaReplica = s && s !== a ? chooseHost(def, pi, { only: [s] }) : null;
    return viaReplica?.node ? viaReplica : chooseHost(def, pi, { exclude: [a] });
  }

  /** VMs with a migration asked for or under way: one at a time is started automatically. */
  private migrating(inp: VmInput): string[] {
    return inp.catalog.defs.map((d) => d.name).filter((vm) => migrationTo(inp.view.committed.flags, vm));
  }

  // ---- inputs ---------------------------------------------------------------------------

  /** What `def` waits for before it may start, or null. */
  private depsWaiting(def: VmDef, inp: VmInput): string | null {
    const cfg = inp.view.committed;
    for (const d of def.dependsOn) {
      if (isServiceDep(d)) {
        const why = inp.service(d);
        if (why) return `${d} (${why})`;
        continue;
      }
      const h = holderOf(cfg, d);
      if (!h) return `${d} (not placed)`;
      if (!this.alive(inp, h) || fenceHeld(cfg.flags, h)) return `${d} (its node ${h} is lost)`;
      const x = this.fact(inp, h, d);
      if (x?.state !== "running") return `${d} (${x ? x.state : "not reported"} on ${h})`;
    }
    return null;
  }

  private where(inp: VmInput): Map<string, string[]> {
    const cfg = inp.view.committed;
    const out = new Map<string, string[]>();
    for (const d of inp.catalog.defs) {
      const a = holderOf(cfg, d.name);
      // a VM an operator stopped keeps its place (memory, anti-affinity): it starts there again
      if (!a) continue;
      const m = migrationTo(cfg.flags, d.name);
      out.set(d.name, m && m !== "any" && m !== a ? [a, m] : [a]);
    }
    return out;
  }

  private placeInput(inp: VmInput, where: Map<string, string[]>, role: "host" | "replica"): PlaceInput {
    return { catalog: inp.catalog, nodes: inp.view.committed.members.map((m) => m.name), where, unfit: (n) => (role === "host" ? this.unfitHost(inp, n) : this.unfitReplica(inp, n)) };
  }

  /** Why `n` may not run VMs now, or null. */
  private unfitHost(inp: VmInput, n: string): string | null {
    const f = inp.view.committed.flags;
    if (!this.alive(inp, n)) return "is not heard";
    if (fenceHeld(f, n)) return "is being fenced or fenced";
    if (inMaintenance(f, n)) return "is in maintenance";
    const r = inp.reports.get(n)?.r;
    if (!r) return "has sent no VM report";
    if (r.defs !== inp.defs) return `holds other VM definitions (digest ${r.defs}, the leader's ${inp.defs})`;
    return null;
  }

  /** Why `n` may not hold replicas now, or null. */
  private unfitReplica(inp: VmInput, n: string): string | null {
    const no = this.unfitHost(inp, n);
    if (no) return no;
    return inp.reports.get(n)!.r.storage ? null : "has no storage daemon answering";
  }

  private replicaCounts(inp: VmInput): Map<string, number> {
    const out = new Map<string, number>();
    for (const d of inp.catalog.defs) {
      const r = replicaOf(inp.view.committed.flags, d.name);
      if (r) out.set(r, (out.get(r) ?? 0) + 1);
    }
    return out;
  }

  private fact(inp: VmInput, node: string, vm: string): VmFacts | null {
    return inp.reports.get(node)?.r.vms.find((x) => x.name === vm) ?? null;
  }

  private alive(inp: VmInput, node: string): boolean {
    return node === this.self || inp.view.peers.some((p) => p.name === node && p.alive);
  }

  private silence(inp: VmInput, node: string): number {
    return inp.view.peers.find((p) => p.name === node)?.lastHeardMs ?? -1;
  }

  /** One commit in flight at a time; false when one already is. */
  private commit(cmd: Command): boolean {
    if (this.pendingCommit) return false;
    this.pendingCommit = true;
    this.actions.push({ kind: "commit", cmd });
    return true;
  }

  private once(key: string, detail: string, kind = "vm"): void {
    if (this.said.get(key) === detail) return;
    this.said.set(key, detail);
    this.ev(kind, detail);
  }

  private forget(key: string): void {
    this.said.delete(key);
  }

  /** For status: the last input's time, and what is under way. */
  busy(): string[] {
    const f = this.last?.view.committed.flags ?? {};
    return Object.entries(f).filter(([k]) => k.startsWith("vm-mig:") || k.startsWith("vm-hold:")).map(([k, v]) => `${k.replace(/^vm-/, "")} ${v}`);
  }
}
