// The VMs in the simulator (issue 14): every node runs the real VmLocal and, while it leads and
// acts, the real VmManager and HaManager (which clears the fence flags of nodes that come back).
// Below them: simulated QEMUs whose guests write an increasing counter to their disk every
// 100 ms, each disk copy per node, replica exports served by a storage daemon that dies with its
// node, QEMU's active mirror (write-blocking: a guest write is acknowledged once both copies have
// it; with an unreachable target it hangs, as an NBD client in reconnect does, until the target
// is back or the mirror is yanked), live migration, BMCs, the watchdog, MySQL for depends_on.
// Checked after every step:
//   V1 never two instances of a VM whose guests run (on nodes that are up; a stalled agent's and
//      a partitioned node's QEMUs run on);
//   V2 never a VM started (booted, or continued after a migration) while another instance of it
//      could still run (running or paused);
//   V3 a guest that boots finds every write it acknowledged before (no acknowledged write lost);
//   V4 never two running VMs of a hard anti-affinity group on one node;
//   V5 a VM is placed or restarted only once what it depends on runs (MySQL writable).
import type { Command, Message, ResReport } from "../../agent/bus/messages.ts";
import type { VmReport } from "../../agent/bus/vm-messages.ts";
import { HaManager, type Report } from "../../agent/ha/manager.ts";
import { holderOf } from "../../agent/ha/vm-flags.ts";
import { VmLocal, type VmLocalAction } from "../../agent/ha/vm-local.ts";
import { DEFAULT_VM_TIMING, VmManager, type VmAction, type VmTiming } from "../../agent/ha/vm-manager.ts";
import { isServiceDep, type VmCatalog, type VmDef, type VmFacts, type VmNodeFacts } from "../../agent/ha/vm-types.ts";
import { SIM_HA_TIMING } from "./ha-world.ts";
import type { App, SimNode, World } from "./world.ts";

export const WATCHDOG_MS = 3000;
const FENCE_MARGIN_MS = 1000;
export const SIM_VM_TIMING: VmTiming = { ...DEFAULT_VM_TIMING, watchdogMs: WATCHDOG_MS, fenceMarginMs: FENCE_MARGIN_MS, antiFlapMs: 60_000, migrateTimeoutMs: 20_000, degradedAlarmMs: 5000 };
const DIGEST = "0123456789abcdef";
/** the runtime's probe of a mirror target: no answer for this long and the mirror is "stalled" */
const STALL_MS = 2000;
const WRITE_EVERY_MS = 100;
/** how long each local action takes (ms of virtual time) */
const TOOK: Record<VmLocalAction["do"], number> = { start: 300, incoming: 100, cont: 10, pause: 10, stop: 200, kill: 10, quit: 10, export: 20, unexport: 20, mirror: 50, unmirror: 20, migrate: 600 };

export function simCatalog(): VmCatalog {
  const d = (name: string, o: Partial<VmDef> = {}): VmDef => ({ name, vcpus: 1, memoryMb: 128, disks: [{ name: `${name}-d`, sizeMb: 16, image: null }], nics: [], group: null, priority: 0, dependsOn: [], autostart: true, kernel: null, ...o });
  return {
    defs: [
      d("cp1", { group: "cp", priority: 100 }), d("cp2", { group: "cp", priority: 100 }), d("cp3", { group: "cp", priority: 100 }),
      d("db", { priority: 50, dependsOn: ["mysql"] }), d("app", { dependsOn: ["db"] }),
      d("web1", { group: "web" }), d("web2", { group: "web" }),
    ],
    groups: { cp: { antiAffinity: "hard" }, web: { antiAffinity: "soft" } },
    capacity: { node1: 640, node2: 640, node3: 640 },
  };
}

/** A disk copy: every counter value up to `upTo` is on it, and values up to `top` may be (a
 *  target's first copy is complete only once the mirror's sync is done: before, writes that went
 *  through the mirror sit above a gap). */
interface Copy {
  upTo: number;
  top: number;
}
const put = (c: Copy | undefined, v: number): Copy => {
  const x = c ?? { upTo: 0, top: 0 };
  return { upTo: v === x.upTo + 1 ? v : x.upTo, top: Math.max(x.top, v) };
};

interface Qemu {
  vm: string;
  state: "running" | "paused" | "incoming" | "migrated";
  inst: number;
  startedAt: number;
  /** the guest's counter: the last value it wrote */
  counter: number;
  mirror: { to: string; state: "syncing" | "ready" | "broken"; done: number; error?: string; at: number } | null;
  /** a guest write that hangs in the mirror (real ms since) */
  pending: { value: number; since: number } | null;
  pausedForMirror: boolean;
  incoming?: { port: number; done: boolean };
  migration?: { to: string; status: string; ms?: number; downtimeMs?: number };
}

class VmNode {
  local: VmLocal;
  mgr: VmManager;
  ha: HaManager;
  qemu = new Map<string, Qemu>();
  /** each VM's disk copy on this node (files survive a crash) */
  disks = new Map<string, Copy>();
  exports = new Set<string>();
  storageUp = true;
  busy = new Map<string, string>();
  vmReports = new Map<string, { r: VmNodeFacts; at: number }>();
  resReports = new Map<string, Report>();
  leading = false;
  lastSent = "";
  lastSentAt = -Infinity;
  fencing = new Map<string, number>();
  constructor(name: string, w: World) {
    const ev = (kind: string, detail: string) => w.log(name, kind, detail);
    this.local = new VmLocal(name);
    this.mgr = new VmManager(name, SIM_VM_TIMING, ev);
    this.ha = new HaManager(name, SIM_HA_TIMING, { event: ev });
  }
}

export class VmSim implements App {
  readonly n = new Map<string, VmNode>();
  readonly catalog = simCatalog();
  readonly bmcDown = new Set<string>();
  readonly violations: string[] = [];
  /** per VM: the largest value a guest had acknowledged */
  readonly acked = new Map<string, number>();
  mysqlUp = true;
  private mysqlUpAt = 0;
  /** when (real ms) each VM last ran on some node (V5) */
  private readonly ranAt = new Map<string, number>();
  private inst = 0;
  writes = 0;
  boots = 0;
  migrations = 0;

  constructor(private readonly w: World) {
    w.app = this;
    const write = () => { this.guestWrites(); w.at(w.now + WRITE_EVERY_MS, write); };
    w.at(w.now + WRITE_EVERY_MS, write);
  }

  private node(n: SimNode | string): VmNode {
    const name = typeof n === "string" ? n : n.name;
    let x = this.n.get(name);
    if (!x) { x = new VmNode(name, this.w); this.n.set(name, x); }
    return x;
  }

  started(n: SimNode): void {
    const x = this.node(n);
    x.busy.clear(); x.vmReports.clear(); x.resReports.clear(); x.leading = false; x.fencing.clear();
    // after a power-off the storage daemon starts empty (the agent exports again); after an
    // agent restart the new agent finds the QEMUs and exports that ran on (it adopts them)
    x.local = new VmLocal(n.name);
    x.mgr.reset("restart");
    x.ha.reset("restart");
  }

  /** nodes whose agent alone restarts (kill -9 of the agent): their QEMUs and storage daemon run on */
  readonly agentOnly = new Set<string>();
  /** nodes without power: their QEMUs and storage daemon are gone (a dead agent's are not) */
  readonly unpowered = new Set<string>();

  powered(name: string): boolean {
    return !this.unpowered.has(name);
  }

  /** The node loses power (a BMC power-off, a cut): everything on it stops, the agent included. */
  powerOff(name: string): void {
    this.unpowered.add(name);
    this.agentOnly.delete(name);
    const x = this.n.get(name);
    if (x) {
      for (const q of x.qemu.values()) this.log(name, `qemu ${q.vm} dies with its node (${q.state})`);
      x.qemu.clear();
      x.exports.clear();
      x.busy.clear();
    }
    this.w.crash(name);
  }

  powerOn(name: string): void {
    this.unpowered.delete(name);
    this.w.start(name);
  }

  crashed(n: SimNode): void {
    const x = this.node(n);
    x.busy.clear();
    if (this.agentOnly.delete(n.name)) return this.log(n.name, `the agent dies; ${x.qemu.size} QEMUs and the storage daemon run on`);
    if (this.powered(n.name)) this.powerOff(n.name);
  }

  message(n: SimNode, from: string, msg: Message): boolean {
    const x = this.node(n);
    if (msg.t === "vm") { x.vmReports.set(from, { r: msg, at: this.w.local(n) }); return true; }
    if (msg.t === "res") { x.resReports.set(from, { r: msg, at: this.w.local(n) }); return true; }
    return msg.t === "res-query";
  }

  ticked(n: SimNode): void {
    const x = this.node(n);
    const view = n.core!.view();
    const now = this.w.local(n);
    const facts = this.facts(n.name, x, view.committed.epoch);
    const alive = (node: string) => node === n.name || view.peers.some((p) => p.name === node && p.alive);
    const plan = x.local.plan({ now, view, catalog: this.catalog, facts, peer: (p) => x.vmReports.get(p)?.r ?? null, alive }, new Set(x.busy.keys()));
    for (const a of plan) this.act(n, x, a);
    this.report(n, x, false);
    const lead = view.role === "leader" && view.acting;
    if (lead) {
      x.vmReports.set(n.name, { r: this.facts(n.name, x, view.committed.epoch), at: now });
      x.resReports.set(n.name, { r: this.res(n), at: now });
      const acts = x.mgr.tick({
        now, wall: this.wall(), view, catalog: this.catalog, defs: DIGEST, reports: x.vmReports,
        service: () => (this.mysqlUp && this.w.now - this.mysqlUpAt > 500 ? null : "mysql is down"),
        // the leader's probe of a silent node: its storage daemon answers while it has power and is not cut off
        probeOkAt: (t) => (this.powered(t) && !this.w.blocked.has(`${n.name}>${t}`) && !this.w.blocked.has(`${t}>${n.name}`) ? now : null), canFence: () => null,
      });
      for (const a of acts) this.leaderAct(n, x, a);
      for (const a of x.ha.tick({ now, wall: this.wall(), view, reports: x.resReports, cmp: () => 0 })) {
        if (a.kind === "commit") n.core!.command(a.cmd, (r) => x.ha.commitDone(r.status === "ok", r.error, a.own));
      }
    } else if (x.leading) {
      x.mgr.reset("no longer the acting leader");
      x.ha.reset("no longer the acting leader");
      x.fencing.clear();
    }
    x.leading = lead;
  }

  private wall(): number {
    return 1.7e12 + this.w.now;
  }

  private res(n: SimNode): ResReport {
    return { v: 1, t: "res", mysql: null, redis: null, portal: { mysql: null, redis: null }, vip: false, selfFenced: n.core!.view().selfFenced };
  }

  private facts(name: string, x: VmNode, epoch: number): VmNodeFacts {
    const vms: VmFacts[] = [];
    for (const d of this.catalog.defs) {
      const q = x.qemu.get(d.name);
      const busy = x.busy.get(d.name);
      const holder = this.w.node(name).core ? holderOf(this.w.node(name).core!.view().committed, d.name) : null;
      const flags = this.w.node(name).core?.view().committed.flags ?? {};
      if (!q) {
        const failed = x.local.gaveUp(d.name, this.w.local(this.w.node(name)), flags, holder);
        if (failed || busy || holder === name) vms.push({ name: d.name, state: failed ? "failed" : "stopped", mirror: null, fails: x.local.failures(d.name, this.w.local(this.w.node(name)), flags, holder), ...(busy ? { busy } : {}) });
        continue;
      }
      vms.push({
        name: d.name, state: q.state, inst: `${q.inst}`, startedAt: q.startedAt, fails: 0,
        mirror: q.mirror ? { to: q.mirror.to, state: q.mirror.state, done: q.mirror.done, ...(q.mirror.error ? { error: q.mirror.error } : {}) } : null,
        ...(q.pausedForMirror ? { pausedForMirror: true } : {}), ...(q.incoming ? { incoming: { ...q.incoming } } : {}), ...(q.migration ? { migration: { ...q.migration } } : {}), ...(busy ? { busy } : {}),
      });
    }
    return { epoch, defs: DIGEST, storage: x.storageUp, exports: [...x.exports], vms };
  }

  private report(n: SimNode, x: VmNode, force: boolean): void {
    const v = n.core!.view();
    const r: VmReport = { v: 1, t: "vm", ...this.facts(n.name, x, v.committed.epoch) };
    const key = JSON.stringify(r);
    if (!force && key === x.lastSent && this.w.now - x.lastSentAt < 500) return;
    x.lastSent = key; x.lastSentAt = this.w.now;
    this.w.send(n, "*", r);
    this.w.send(n, "*", this.res(n));
  }

  // ---- the local actions (the drivers, simulated) ---------------------------------------

  private act(n: SimNode, x: VmNode, a: VmLocalAction): void {
    x.busy.set(a.vm, a.do);
    const gen = this.w.node(n.name).tickTimer;
    const took = TOOK[a.do];
    this.w.at(this.w.now + took, () => {
      // the action died with the node, or the node restarted meanwhile
      if (!n.up || this.w.node(n.name).tickTimer !== gen) return void x.busy.delete(a.vm);
      const held = this.run(n, x, a);
      if (!held) x.busy.delete(a.vm);
      if (this.w.now >= n.stalledUntil) this.report(n, x, true);
    });
  }

  /** Carries out `a`; true when the action goes on (a start waiting for its mirror), busy until it ends. */
  private run(n: SimNode, x: VmNode, a: VmLocalAction): boolean | void {
    const q = x.qemu.get(a.vm);
    const did = (what: string) => this.log(n.name, `${a.vm} ${what} (${a.why})`);
    switch (a.do) {
      case "start": {
        if (q) return did("start: already running");
        const m = (a as { mirror?: string }).mirror;
        if (m && !this.reachable(n.name, m, a.vm)) { x.local.failed(a.vm, this.w.local(n), n.core?.view().committed.flags ?? {}, n.name); return did(`start FAILED: ${m} does not answer`); }
        this.boot(n.name, x, a.vm, "boot");
        // -S, blockdev-mirror to the synced replica, its first copy done (what the last instance
        // wrote here alone is on both), then cont: no write the guest sees is on one disk alone
        if (!m) return did("start");
        const q2 = x.qemu.get(a.vm)!;
        q2.state = "paused";
        q2.mirror = { to: m, state: "syncing", done: 0, at: this.w.now };
        this.w.at(this.w.now + 500 + Math.floor(this.w.random() * 3000), () => this.syncDone(n.name, a.vm, q2.inst, m, true));
        // the runtime gives up after START_SYNC_MS: QEMU killed, a failure counted
        const gen = this.w.node(n.name).tickTimer;
        this.w.at(this.w.now + 10_000, () => {
          if (x.qemu.get(a.vm) !== q2 || q2.state !== "paused") return;
          x.qemu.delete(a.vm);
          if (this.w.node(n.name).tickTimer === gen) { x.busy.delete(a.vm); x.local.failed(a.vm, this.w.local(n), n.core?.view().committed.flags ?? {}, n.name); }
          this.log(n.name, `${a.vm} start FAILED: its mirror to ${m} did not get in sync within 10 s`);
        });
        did("start (held until its mirror is in sync)");
        return true;
      }
      case "incoming": {
        if (q) return;
        x.qemu.set(a.vm, { vm: a.vm, state: "incoming", inst: ++this.inst, startedAt: this.wall(), counter: 0, mirror: null, pending: null, pausedForMirror: false, incoming: { port: 49152, done: false } });
        return did("incoming: waiting for the migration");
      }
      case "cont": {
        if (!q) return;
        if (q.state === "incoming" && q.incoming?.done) { this.checkSingle(n.name, a.vm, "continued after its migration"); q.state = "running"; q.incoming = undefined; q.startedAt = this.wall(); return did("cont (migrated guest)"); }
        if (q.state === "migrated") { this.checkSingle(n.name, a.vm, "resumed at the source"); q.state = "running"; q.migration = undefined; return did("cont (migration abandoned)"); }
        if (q.state === "paused") { q.state = "running"; q.pausedForMirror = false; return did("cont"); }
        return;
      }
      case "pause": if (q?.state === "running") { q.state = "paused"; q.pausedForMirror = true; did("pause"); } return;
      case "stop": case "kill": case "quit": {
        if (!q) return;
        this.dropPending(q);
        x.qemu.delete(a.vm);
        return did(a.do);
      }
      case "export": if (x.storageUp) { x.exports.add(a.vm); if (!x.disks.has(a.vm)) x.disks.set(a.vm, { upTo: 0, top: 0 }); did("export"); } return;
      case "unexport": x.exports.delete(a.vm); return did("unexport");
      case "mirror": {
        if (!q || q.state === "incoming" || q.state === "migrated") return;
        q.mirror = { to: a.to, state: "syncing", done: 0, at: this.w.now };
        did(`mirror to ${a.to}`);
        // the first copy takes a while (a disk of some size over the network)
        return this.w.at(this.w.now + 500 + Math.floor(this.w.random() * 3000), () => this.syncDone(n.name, a.vm, q.inst, a.to));
      }
      case "unmirror": {
        if (!q) return;
        // yank: a write hanging in the mirror completes on the local disk
        if (q.pending) { this.ack(q.vm, q.pending.value); q.pending = null; }
        q.mirror = null;
        return did("unmirror");
      }
      case "migrate": return this.migrate(n, x, a as Extract<VmLocalAction, { do: "migrate" }>);
    }
  }

  /** A fresh boot on `node`: the guest reads its disk copy (V3) and goes on from the largest value. */
  private boot(node: string, x: VmNode, vm: string, how: string): void {
    this.checkSingle(node, vm, how);
    const have = x.disks.get(vm) ?? { upTo: 0, top: 0 };
    const acked = this.acked.get(vm) ?? 0;
    if (have.upTo < acked) this.fail(`V3 ${vm} booted on ${node} from a disk complete up to ${have.upTo} (top ${have.top}), but ${acked} was acknowledged: acknowledged writes lost`);
    // what the guest finds is what it continues from; a gap it cannot see stays a gap
    x.disks.set(vm, { upTo: have.top, top: have.top });
    x.qemu.set(vm, { vm, state: "running", inst: ++this.inst, startedAt: this.wall(), counter: have.top, mirror: null, pending: null, pausedForMirror: false });
    this.boots++;
  }

  private syncDone(node: string, vm: string, inst: number, to: string, starting = false): void {
    const q = this.n.get(node)?.qemu.get(vm);
    if (!q || q.inst !== inst || q.mirror?.to !== to || q.mirror.state !== "syncing" || !this.powered(node)) return;
    if (!this.reachable(node, to, vm)) return void this.w.at(this.w.now + 100, () => this.syncDone(node, vm, inst, to, starting));
    const t = this.n.get(to)!;
    t.disks.set(vm, { ...(this.n.get(node)!.disks.get(vm) ?? { upTo: 0, top: 0 }) });
    q.mirror = { to, state: "ready", done: 1, at: this.w.now };
    if (starting && q.state === "paused" && !q.pausedForMirror) {
      q.state = "running";
      this.n.get(node)!.busy.delete(vm);
      this.log(node, `${vm} in sync with ${to}: the guest runs`);
    }
  }

  /** The source migrates: RAM copied, at switchover its mirror is complete (write-blocking), the target holds the guest. */
  private migrate(n: SimNode, x: VmNode, a: Extract<VmLocalAction, { do: "migrate" }>): void {
    const q = x.qemu.get(a.vm);
    const t = this.n.get(a.to);
    const tq = t?.qemu.get(a.vm);
    if (!q || q.state !== "running" || q.pending || !t || !this.powered(a.to) || tq?.state !== "incoming" || !this.reachable(n.name, a.to, a.vm)) {
      if (q) q.migration = { to: a.to, status: "failed" };
      return this.log(n.name, `${a.vm} migration to ${a.to} failed`);
    }
    t.disks.set(a.vm, { ...(x.disks.get(a.vm) ?? { upTo: 0, top: 0 }) });
    tq.counter = q.counter;
    tq.incoming = { port: 49152, done: true };
    q.state = "migrated";
    q.mirror = null;
    q.migration = { to: a.to, status: "completed", ms: 600, downtimeMs: 30 };
    this.migrations++;
    this.log(n.name, `${a.vm} migrated to ${a.to}`);
  }

  private dropPending(q: Qemu): void {
    q.pending = null; // a write in flight when the QEMU dies was never acknowledged
  }

  private leaderAct(n: SimNode, x: VmNode, a: VmAction): void {
    if (a.kind === "commit") { this.checkCommit(a.cmd); return n.core!.command(a.cmd, (r) => x.mgr.commitDone(r.status === "ok", r.error)); }
    if (a.kind === "abort-fence") { x.fencing.delete(a.node); return; }
    this.fence(n, x, a.node, a.lastContactAgoMs, a.id);
  }

  /** IPMI power off (300 ms); with the BMC down, the self-fence deadline (no power-off). */
  private fence(n: SimNode, x: VmNode, target: string, agoMs: number, id: number): void {
    x.fencing.set(target, id);
    const done = (ok: boolean, level: "ipmi" | "deadline", detail: string, ms: number) => {
      if (x.fencing.get(target) !== id) return;
      x.fencing.delete(target);
      x.mgr.fenceDone(target, ok, [{ level, ok, detail, ms }], this.w.local(n), id);
    };
    if (!this.bmcDown.has(target)) {
      return this.w.at(this.w.now + 300, () => { this.powerOff(target); done(true, "ipmi", "chassis power off; power status: off", 300); });
    }
    const wait = Math.max(1000, this.w.timing.quorumLossMs + WATCHDOG_MS + FENCE_MARGIN_MS - agoMs);
    this.w.at(this.w.now + wait, () => done(true, "deadline", "self-fence deadline passed", wait));
  }

  // ---- the guests -------------------------------------------------------------------------

  /** `from` reaches `to`'s export of `vm` over the network (NBD over TCP). */
  private reachable(from: string, to: string, vm: string): boolean {
    const t = this.n.get(to);
    return !!t && this.powered(to) && t.storageUp && t.exports.has(vm) && !this.w.blocked.has(`${from}>${to}`) && !this.w.blocked.has(`${to}>${from}`);
  }

  private ack(vm: string, value: number): void {
    this.acked.set(vm, Math.max(this.acked.get(vm) ?? 0, value));
    this.writes++;
  }

  guestWrites(): void {
    for (const [name, x] of this.n) {
      if (!this.powered(name)) continue;
      for (const q of x.qemu.values()) {
        if (q.state !== "running") continue;
        this.ranAt.set(q.vm, this.w.now);
        const m = q.mirror;
        if (q.pending) {
          // hanging in the mirror: the NBD client reconnects and resends once the target is back
          if (m && m.state !== "broken" && this.reachable(name, m.to, q.vm)) {
            this.n.get(m.to)!.disks.set(q.vm, put(this.n.get(m.to)!.disks.get(q.vm), q.pending.value));
            this.ack(q.vm, q.pending.value);
            q.pending = null;
          } else if (m && this.w.now - q.pending.since > STALL_MS && m.state !== "broken") {
            m.state = "broken"; m.error = `stalled: ${m.to} does not answer`;
          }
          continue;
        }
        const v = q.counter + 1;
        q.counter = v;
        x.disks.set(q.vm, put(x.disks.get(q.vm), v));
        if (m && m.state !== "broken") {
          if (this.reachable(name, m.to, q.vm)) {
            this.n.get(m.to)!.disks.set(q.vm, put(this.n.get(m.to)!.disks.get(q.vm), v));
            this.ack(q.vm, v);
          } else q.pending = { value: v, since: this.w.now };
        } else this.ack(q.vm, v);
      }
    }
  }

  // ---- invariants -------------------------------------------------------------------------

  /** V2: nothing else of `vm` could run anywhere when one starts or continues. */
  private checkSingle(node: string, vm: string, how: string): void {
    for (const [o, x] of this.n) {
      if (o === node || !this.powered(o)) continue;
      const q = x.qemu.get(vm);
      if (q && (q.state === "running" || q.state === "paused")) this.fail(`V2 ${vm} ${how} on ${node} while ${o} still has it ${q.state}`);
    }
  }

  afterStep(): void {
    const running = new Map<string, string[]>();
    for (const [name, x] of this.n) {
      if (!this.powered(name)) continue;
      const groups = new Map<string, string[]>();
      for (const q of x.qemu.values()) {
        if (q.state !== "running") continue;
        running.set(q.vm, [...(running.get(q.vm) ?? []), name]);
        const d = this.catalog.defs.find((y) => y.name === q.vm)!;
        if (d.group && this.catalog.groups[d.group]?.antiAffinity === "hard") groups.set(d.group, [...(groups.get(d.group) ?? []), q.vm]);
      }
      for (const [g, vms] of groups) if (vms.length > 1) this.fail(`V4 ${vms.join(" and ")} of hard group ${g} both run on ${name}`);
    }
    for (const [vm, ns] of running) if (ns.length > 1) this.fail(`V1 ${vm} runs on ${ns.join(" and ")}`);
  }

  /** V5, at each commit a leader makes that places a VM on a node. */
  checkCommit(cmd: Command): void {
    if (cmd.op !== "apply") return;
    for (const k of Object.keys(cmd.assign ?? {})) {
      if (!k.startsWith("vm:")) continue;
      const d = this.catalog.defs.find((x) => x.name === k.slice(3));
      if (!d) continue;
      for (const dep of d.dependsOn) {
        const runs = [...this.n].some(([name, x]) => this.powered(name) && x.qemu.get(dep)?.state === "running");
        const ok = isServiceDep(dep) ? this.mysqlUp || this.w.now - this.mysqlDownAt < 1000 : runs || this.w.now - (this.ranAt.get(dep) ?? -Infinity) < 1000;
        if (!ok) this.fail(`V5 ${d.name} placed on ${cmd.assign![k]} while ${dep}, which it depends on, does not run`);
      }
    }
  }

  private mysqlDownAt = -Infinity;
  setMysql(up: boolean): void {
    if (up && !this.mysqlUp) this.mysqlUpAt = this.w.now;
    if (!up && this.mysqlUp) this.mysqlDownAt = this.w.now;
    this.mysqlUp = up;
  }

  /** Faults of the simulated pieces. */
  guestCrash(node: string, vm: string): void {
    const x = this.n.get(node);
    const q = x?.qemu.get(vm);
    if (!x || !q || !this.powered(node)) return;
    x.qemu.delete(vm);
    this.log(node, `qemu ${vm} crashed (${q.state})`);
    const core = this.w.node(node).core;
    if (core && q.state === "running") x.local.failed(vm, this.w.local(this.w.node(node)), core.view().committed.flags, holderOf(core.view().committed, vm));
  }

  storage(node: string, up: boolean): void {
    const x = this.n.get(node);
    if (!x) return;
    x.storageUp = up;
    if (!up) x.exports.clear();
  }

  /** A stalled agent stops feeding the watchdog: the supervisor resets the node. Its QEMUs run on meanwhile. */
  watchdog(name: string, stallMs: number): void {
    if (stallMs <= WATCHDOG_MS) return;
    this.w.at(this.w.now + WATCHDOG_MS, () => {
      this.log(name, `no WATCHDOG=1 for ${WATCHDOG_MS} ms: node reset`);
      this.powerOff(name);
      this.w.at(this.w.now + 2000, () => this.powerOn(name));
    });
  }

  /** At the end, with everything healed: each VM runs exactly once, where the register says, with every acknowledged write. */
  expectSettled(): void {
    const leader = [...this.n].find(([name, x]) => x.leading && this.w.node(name).up)?.[0];
    if (!leader) return this.fail("E no acting leader at the end");
    const cfg = this.w.node(leader).core!.view().committed;
    for (const d of this.catalog.defs) {
      const where = [...this.n].filter(([name, x]) => this.powered(name) && x.qemu.get(d.name)?.state === "running").map(([name]) => name);
      const h = holderOf(cfg, d.name);
      if (d.name === "cp1" || d.name === "cp2" || d.name === "cp3" || where.length || h) {
        if (where.length !== 1 || where[0] !== h) this.fail(`E ${d.name} runs on [${where.join(",")}], the register says ${h ?? "nowhere"}`);
      }
    }
  }

  private fail(what: string): void {
    const line = `t=${(this.w.now / 1000).toFixed(3)} ${what}`;
    if (this.violations.length < 10 && !this.violations.includes(line)) this.violations.push(line);
    this.w.inv.violations.push(line);
    this.w.log("---", "VIOLATION", what);
  }

  private log(node: string, text: string): void {
    this.w.log(node, "vm-sim", text);
  }
}
