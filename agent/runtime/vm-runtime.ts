// The VM runtime (issue 14): the I/O around the pure VM managers. Every STEP_MS it plans with
// the local VM manager (ha/vm-local.ts) and carries the actions out (vm-actions.ts), one per VM at
// a time (a kill, as the node fences itself, goes at once); it reads this node's QEMUs, mirrors
// and exports (vm-facts.ts) twice a second and after each action, and sends them to every peer
// (the "vm" message); on the acting leader it steps the VM manager (ha/vm-manager.ts) and carries
// out its commits and fences (vm-leader.ts). QEMUs and the storage daemon are processes of their
// own: an agent restart finds them again and they run on.
import type { Message, ResReport } from "../bus/messages.ts";
import type { VmReport } from "../bus/vm-messages.ts";
import type { ClusterNode } from "../cluster/node.ts";
import type { Config } from "../config/schema.ts";
import type { VmsConfig } from "../config/vm-schema.ts";
import type { Logger } from "../env/env.ts";
import { cannotFence } from "../fence/node-config.ts";
import type { DbFacts } from "../ha/local.ts";
import { holderOf, migrationTo } from "../ha/vm-flags.ts";
import type { VmHere } from "../backup/vm-schedule.ts";
import type { VmDef } from "../ha/vm-types.ts";
import type { VmPaths } from "../resources/qemu-args.ts";
import type { Qmp } from "../resources/qmp.ts";
import { VmLocal, type VmLocalAction } from "../ha/vm-local.ts";
import { DEFAULT_VM_TIMING, VmManager, type VmReport as Reported } from "../ha/vm-manager.ts";
import type { VmAlarmInput, VmNodeFacts } from "../ha/vm-types.ts";
import { probeKvm } from "../resources/kvm-probe.ts";
import { StorageDaemon } from "../resources/vm-storage.ts";
import { VmProcess } from "../resources/vm.ts";
import { runVmAction } from "./vm-actions.ts";
import { readVmFacts, type VmLocalState } from "./vm-facts.ts";
import { VmLeaderIo, tcpAnswers } from "./vm-leader.ts";
import type { VmMetrics } from "./vm-metrics.ts";

export const STEP_MS = 100;
const POLL_EVERY_MS = 500;
const REPORT_EVERY_MS = 500;
/** a peer's data-path report counts as fresh this long (depends_on mysql) */
const RES_FRESH_MS = 3000;

export interface VmRuntimeDeps {
  config: Config;
  node: ClusterNode;
  send(to: string, msg: Message): void;
  log: Logger;
  event(kind: string, detail: string, fields?: Record<string, unknown>): void;
  /** this node's MySQL and Redis as the HA runtime read them; null without HA */
  haFacts(): { mysql: DbFacts | null; redis: DbFacts | null } | null;
}

export class VmRuntime {
  readonly c: VmsConfig;
  private readonly self: string;
  private readonly log: Logger;
  private readonly s: VmLocalState;
  private readonly local: VmLocal;
  private readonly mgr: VmManager;
  private readonly leader: VmLeaderIo;
  private readonly busy = new Map<string, string>();
  /** VMs a scheduled backup runs on (vm-backup-jobs.ts): no stop or migration starts meanwhile */
  private readonly backingUp = new Set<string>();
  private readonly reports = new Map<string, Reported>();
  /** each peer's replica copies ("vm-copies"), merged into its reports */
  private readonly copies = new Map<string, Record<string, string>>();
  private lastCopies = "";
  private copiesTick = 0;
  private readonly res = new Map<string, { r: ResReport; at: number }>();
  private facts: VmNodeFacts | null = null;
  private polling: Promise<void> | null = null;
  private lastPoll = -Infinity;
  private lastReport = "";
  private lastReportAt = -Infinity;
  private leading = false;
  private stopped = false;
  private accel: "kvm" | "tcg" | null = null;
  private accelWhy = "";
  private readonly probing = new Set<string>();

  constructor(private readonly d: VmRuntimeDeps) {
    this.c = d.config.vms!;
    this.self = d.config.cluster.node;
    this.log = d.log.child("vm");
    const address = this.c.addresses[this.self] ?? "127.0.0.1";
    this.s = {
      procs: new Map(this.c.catalog.defs.map((def) => [def.name, new VmProcess(def, { vmsDir: this.c.dir, qemu: this.c.qemu, machine: this.c.machine, log: this.log })])),
      storage: new StorageDaemon({ vmsDir: this.c.dir, bin: this.c.storageDaemon, address, port: this.c.nbdPort, log: this.log }),
      mirrorTo: new Map(), broken: new Map(), stalledSince: new Map(), pausedForMirror: new Set(), incoming: new Map(), migrations: new Map(),
      errors: new Map(), expectedExit: new Set(), lastInst: new Map(), mirrorCopy: new Map(), marked: new Map(),
    };
    this.local = new VmLocal(this.self);
    const h = d.config.ha?.ha;
    this.mgr = new VmManager(this.self, {
      ...DEFAULT_VM_TIMING, antiFlapMs: this.c.antiFlapMs, migrateTimeoutMs: this.c.migrateTimeoutMs, degradedAlarmMs: this.c.degradedAlarmMs,
      ...(h ? { watchdogMs: h.watchdog_ms, fenceMarginMs: h.fence_margin_ms, fenceTimeoutMs: h.fence_timeout_ms } : {}),
    }, (kind, detail, fields) => d.event(kind, detail, fields));
    this.leader = new VmLeaderIo({ config: d.config, node: d.node, log: this.log, event: d.event }, this.mgr);
  }

  /** Finds the QEMUs that run on, starts (or finds) the storage daemon, decides KVM or TCG. */
  async start(): Promise<void> {
    for (const p of this.s.procs.values()) {
      try {
        if (await p.adopt()) {
          this.s.lastInst.set(p.def.name, p.inst!);
          this.d.event("vm", `${p.def.name}: QEMU ${p.inst} runs on from before the agent started; taken over`);
        }
      } catch (e) {
        this.log.warn(`${p.def.name}: its QEMU runs but does not answer on QMP: ${(e as Error).message}`);
      }
    }
    await this.s.storage.ensure().catch((e) => this.log.error("the storage daemon did not start: this node holds no replica until it does", { err: e as Error }));
    if (this.c.accel !== "auto") { this.accel = this.c.accel; this.accelWhy = `vms.accel: ${this.c.accel}`; }
    else void probeKvm({ qemu: this.c.qemu, probe: this.c.probe }).then((r) => { this.accel = r.accel; this.accelWhy = r.why; this.log.info(`VMs run under ${r.accel.toUpperCase()}: ${r.why}`); });
    await this.poll();
  }

  /** The agent stops: QMP connections closed; the QEMUs and the storage daemon run on. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.polling?.catch(() => undefined);
    for (const p of this.s.procs.values()) p.qmp?.close();
    this.s.storage.close();
  }

  receive(from: string, msg: Message): void {
    if (msg.t === "vm") {
      const { v: _v, t: _t, ...r } = msg;
      // a copy no longer served is forgotten: served again, it counts only once said again
      const copies = this.copies.get(from);
      if (copies) for (const vm of Object.keys(copies)) if (!r.exports.includes(vm)) delete copies[vm];
      this.reports.set(from, { r: copies ? { ...r, copies } : r, at: performance.now() });
    } else if (msg.t === "vm-copies") {
      this.copies.set(from, { ...msg.copies });
      const x = this.reports.get(from);
      if (x) this.reports.set(from, { ...x, r: { ...x.r, copies: msg.copies } });
    } else if (msg.t === "res") this.res.set(from, { r: msg, at: performance.now() });
  }

  /** One step, every STEP_MS. */
  step(): void {
    if (this.stopped || !this.facts) return;
    const now = performance.now();
    const view = this.d.node.view();
    const alive = (n: string) => n === this.self || view.peers.some((p) => p.name === n && p.alive);
    const facts = this.withBusy(this.facts);
    const plan = this.local.plan({ now, view, catalog: this.c.catalog, facts, peer: (n) => this.reports.get(n)?.r ?? null, alive }, new Set(this.busy.keys()));
    for (const a of plan) this.act(a);
    this.report(false);
    const lead = view.role === "leader" && view.acting;
    if (lead) {
      const silent = view.peers.filter((p) => !p.alive).map((p) => p.name);
      this.leader.probe(silent, now);
      this.reports.set(this.self, { r: facts, at: now });
      const acts = this.mgr.tick({
        now, wall: Date.now(), view, catalog: this.c.catalog, defs: this.c.digest, reports: this.reports,
        service: (svc) => this.serviceDown(svc, view.committed.assignments[svc] ?? null, now),
        probeOkAt: (n) => this.leader.probeOkAt(n), canFence: (n) => cannotFence(this.d.config.ha?.ha ?? null, n),
      });
      for (const a of acts) this.leader.act(a);
    } else if (this.leading) {
      this.mgr.reset("this node no longer leads with a lease");
      this.leader.stopLeading(`${this.self} no longer leads`);
    }
    this.leading = lead;
    if (!this.polling && now - this.lastPoll >= POLL_EVERY_MS) void this.poll();
  }

  private act(a: VmLocalAction): void {
    if (!this.accel && (a.do === "start" || a.do === "incoming")) return; // the KVM probe is not over yet
    if (this.busy.has(a.vm) && a.do !== "kill") return;
    if (this.backingUp.has(a.vm) && a.do !== "kill") return; // until the backup is over: it holds the QEMU's block jobs
    this.busy.set(a.vm, a.do);
    const t0 = performance.now();
    const ctx = { self: this.self, c: this.c, s: this.s, accel: this.accel ?? "tcg", log: this.log, def: (vm: string) => this.c.catalog.defs.find((d) => d.name === vm)! };
    const flags = this.d.node.view().committed.flags;
    void runVmAction(ctx, a)
      .then((detail) => this.d.event("vm", `${a.vm} ${a.do}${"to" in a ? ` ${a.to}` : ""} done in ${Math.round(performance.now() - t0)} ms: ${detail} (${a.why})`, { vm: a.vm, do: a.do, ms: Math.round(performance.now() - t0) }))
      .catch((e: Error) => {
        this.s.errors.set(a.vm, `${a.do}: ${e.message}`);
        if (a.do === "start") this.local.failed(a.vm, performance.now(), flags, this.self);
        this.d.event("vm", `${a.vm} ${a.do} FAILED after ${Math.round(performance.now() - t0)} ms: ${e.message} (${a.why})`, { vm: a.vm, do: a.do, failed: true });
      })
      // still busy until facts read after the action are in: a plan made on the facts from
      // before it would do it again (the data path's lesson, docs/ha.md "What the lab found")
      .finally(() => this.poll(true).finally(() => { if (this.busy.get(a.vm) === a.do) this.busy.delete(a.vm); }));
  }

  /** Reads this node's VMs. A call while a read runs waits for it and, with `fresh`, reads again. */
  private poll(fresh = false): Promise<void> {
    if (this.polling) return fresh ? this.polling.then(() => this.poll()) : this.polling;
    this.lastPoll = performance.now();
    const view = this.d.node.view();
    const now = performance.now();
    this.probeMirrors(now);
    const p = (async () => {
      await this.s.storage.ensure().catch(() => undefined);
      this.facts = await readVmFacts({
        self: this.self, catalog: this.c.catalog, s: this.s, local: this.local, now, flags: view.committed.flags,
        holder: (vm) => holderOf(view.committed, vm), epoch: view.committed.epoch, defs: this.c.digest,
      });
    })()
      .catch((e) => this.log.error("reading the VMs failed", { err: e as Error }))
      .finally(() => { this.polling = null; this.report(true); });
    this.polling = p;
    return p;
  }

  /** Each mirror's target answers a TCP connect to its NBD port, or its stall is counted. */
  private probeMirrors(now: number): void {
    for (const [vm, to] of this.s.mirrorTo) {
      const addr = this.c.addresses[to];
      if (!addr || this.probing.has(vm)) continue;
      this.probing.add(vm);
      void tcpAnswers(addr, this.c.nbdPort, 800).then((ok) => {
        this.probing.delete(vm);
        if (ok) this.s.stalledSince.delete(vm);
        else if (!this.s.stalledSince.has(vm)) this.s.stalledSince.set(vm, now);
      });
    }
  }

  private withBusy(f: VmNodeFacts): VmNodeFacts {
    if (!this.busy.size) return f;
    const vms = f.vms.map((x) => (this.busy.has(x.name) ? { ...x, busy: this.busy.get(x.name) } : x));
    for (const [vm, what] of this.busy) if (!vms.some((x) => x.name === vm)) vms.push({ name: vm, state: "stopped", mirror: null, fails: 0, busy: what });
    return { ...f, vms };
  }

  private report(force: boolean): void {
    if (!this.facts || this.stopped) return;
    const f = this.withBusy(this.facts);
    const { copies, ...rest } = f;
    const msg: VmReport = { v: 1, t: "vm", ...rest, vms: f.vms.slice(0, 64), exports: f.exports.slice(0, 64) };
    const key = JSON.stringify(msg);
    const now = performance.now();
    if (!force && key === this.lastReport && now - this.lastReportAt < REPORT_EVERY_MS) return;
    if (key === this.lastReport && now - this.lastReportAt < 100) return;
    // the copies travel apart (vm-copies), before the report they complete, when they change and
    // every 10th report (a peer that started later hears them)
    const ck = JSON.stringify(copies ?? {});
    if (copies && (ck !== this.lastCopies || ++this.copiesTick % 10 === 0)) this.d.send("*", { v: 1, t: "vm-copies", copies });
    this.lastCopies = ck;
    this.lastReport = key;
    this.lastReportAt = now;
    this.d.send("*", msg);
  }

  /** Why clients cannot write `svc` now, from the data path's reports, or null (a VM's depends_on). */
  private serviceDown(svc: "mysql" | "redis", holder: string | null, now: number): string | null {
    if (!holder) return `no ${svc} primary is placed`;
    const r = holder === this.self ? this.d.haFacts()?.[svc] ?? null : (() => {
      const x = this.res.get(holder);
      return x && now - x.at < RES_FRESH_MS ? x.r[svc] : null;
    })();
    if (!r) return `no fresh report of ${svc} from ${holder}`;
    if (!r.up) return `${svc} on ${holder} does not answer`;
    if (!r.writable || r.role !== "primary") return `${svc} on ${holder} is not a writable primary`;
    return null;
  }

  /** What the alarm rules judge (alarms/rules-vm.ts): the leader's problems; another node clears its own. */
  alarmInput(): VmAlarmInput {
    const v = this.d.node.view();
    const other = v.leader !== null && v.leader !== this.self && v.peers.some((p) => p.name === v.leader && p.alive);
    return { vms: this.c.catalog.defs.map((d) => d.name), judge: this.leading || other, problems: this.leading ? this.mgr.judged() : [] };
  }

  metrics(): VmMetrics | null {
    if (!this.facts) return null;
    return { node: this.self, facts: this.withBusy(this.facts), memoryMb: Object.fromEntries(this.c.catalog.defs.map((d) => [d.name, d.memoryMb])), problems: this.leading ? this.mgr.problems() : null };
  }

  leads(): boolean {
    return this.leading;
  }

  /** For status, `bollard vm list` and the console. */
  snapshot() {
    const view = this.d.node.view();
    return {
      node: this.self, accel: this.accel, accelWhy: this.accelWhy, defs: this.c.digest, leader: this.leading,
      facts: this.facts ? this.withBusy(this.facts) : null,
      peers: Object.fromEntries([...this.reports].filter(([n]) => n !== this.self).map(([n, x]) => [n, { ...x.r, ageMs: Math.round(performance.now() - x.at) }])),
      catalog: this.c.catalog, problems: this.leading ? this.mgr.problems() : null, fencing: this.leading ? this.mgr.fencing() : null,
      committed: { epoch: view.committed.epoch, assignments: view.committed.assignments, flags: Object.fromEntries(Object.entries(view.committed.flags).filter(([k]) => k.startsWith("vm-") || k.startsWith("maint:") || k.startsWith("fenc"))) },
    };
  }

  /** The VMs as a scheduled backup sees them (vm-backup-jobs.ts): run state here, placement,
   *  actions and migrations under way, the QEMU's QMP connection. */
  backupView(): (VmHere & { def: VmDef; paths: VmPaths; qmp: Qmp | null })[] {
    const view = this.d.node.view();
    return this.c.catalog.defs.map((def) => {
      const p = this.s.procs.get(def.name)!;
      const x = this.facts?.vms.find((v) => v.name === def.name);
      const mig = migrationTo(view.committed.flags, def.name) ?? (x?.migration && !["completed", "failed", "cancelled"].includes(x.migration.status) ? `to ${x.migration.to}, ${x.migration.status}` : null);
      return {
        name: def.name, def, paths: p.paths, qmp: p.running() ? p.qmp : null, state: x && p.running() ? (x.pausedForMirror ? "paused" : x.state) : null,
        placedHere: holderOf(view.committed, def.name) === this.self, busy: this.busy.get(def.name) ?? null, migration: mig,
      };
    });
  }

  /** A scheduled backup of `vm` begins: false when an action on it is under way. */
  claimForBackup(vm: string): boolean {
    if (this.busy.has(vm) || this.backingUp.has(vm)) return false;
    this.backingUp.add(vm);
    return true;
  }

  releaseBackup(vm: string): void {
    this.backingUp.delete(vm);
  }

  /** A VM's serial console socket on this node, if its QEMU runs here. */
  consoleSocket(vm: string): string | null {
    const p = this.s.procs.get(vm);
    return p && p.running() ? p.paths.serial : null;
  }
}
