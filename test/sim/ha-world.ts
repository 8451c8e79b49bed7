// The HA layer in the simulator: each node runs the real LocalManager and, while it leads
// and acts, the real HaManager. Below them: a simulated MySQL per node (a write history,
// replicated by prefix, semi-synchronous acks; a server process that can die, hang and restart,
// with crash recovery that truncates what was not committed), a portal, the VIP, BMCs and
// switch ports for fencing, the watchdog, the leader's data-path probes, and a client writing
// through the VIP. Checked after every step:
//   I5 at most one MySQL server that is writable and could take a write (running, or hung and
//      able to wake up) on a node a client can reach;
//   I6 no acknowledged write is missing from a node when it becomes writable primary;
//   I7 a server is never promoted while a live replica has a write it lacks (a restarted
//      primary behind a replica: issue 22);
//   I8 a service without a writable primary for longer than the bound has the leader's
//      "writes down" alarm (issue 20 item 3).
import type { Message, ResReport } from "../../agent/bus/messages.ts";
import type { Svc } from "../../agent/ha/flags.ts";
import { LocalManager, type DbFacts, type LocalAction } from "../../agent/ha/local.ts";
import { DEFAULT_HA_TIMING, HaManager, probeTargets, type HaAction, type HaTiming, type Report } from "../../agent/ha/manager.ts";
import { judgeSite, promotedFlag, type RemoteFacts } from "../../agent/ha/site.ts";
import type { DataPath } from "../../agent/ha/steps.ts";
import type { FenceProof } from "../../agent/resources/types.ts";
import type { App, SimNode, World } from "./world.ts";

const WATCHDOG_MS = 3000;
const FENCE_MARGIN_MS = 1000;
export const SIM_HA_TIMING: HaTiming = { ...DEFAULT_HA_TIMING, watchdogMs: WATCHDOG_MS, fenceMarginMs: FENCE_MARGIN_MS };
/** I8: the alarm must be up this long after the bound (the leader's tick, a new leader's lease) */
const I8_SLACK_MS = 3000;

class Db {
  /** the server process: running, hung (SIGSTOP, a stalled disk), or dead */
  proc: "running" | "hung" | "dead" = "running";
  role: "primary" | "replica" | "none" = "none";
  writable = false;
  hist: number[] = [];
  applied = 0;
  source: string | null = null;
  /** a new one on every start (the runtime's reconnect-based incarnation) */
  inst = "i1";
  /** local ms when it last answered the agent, and when its replica last received */
  okAt = 0;
  recvAt: number | null = null;
  /** the agent killed it and confirmed it gone */
  fenced: string | null = null;
  /** what crash recovery truncates: transactions a dead primary had not committed */
  inDoubt: number[] = [];
  get up(): boolean {
    return this.proc === "running";
  }
}

class HaNode {
  db = new Db();
  portal: { mysql: string | null; redis: string | null } = { mysql: null, redis: null };
  vip = false;
  vipAt = 0;
  busy = new Set<string>();
  reports = new Map<string, Report>();
  lastSent = "";
  lastSentAt = -Infinity;
  steps: Record<string, number> = {};
  mgr: HaManager;
  local: LocalManager;
  leading = false;
  /** real ms since when it leads and acts */
  leadSince = 0;
  starts = 0;
  /** fences in flight by target node: the fence action's id */
  fencing = new Map<string, number>();
  /** the leader's probes of silent holders (HaInput.probes) */
  probes = new Map<string, DataPath>();
  /** its promotions fail (a relay log that cannot be applied): `mysqld N broken` */
  broken = false;
  /** consecutive failures of the last local action, as the runtime counts them (stuck after 3) */
  failures = { do: "", n: 0, at: 0 };
  /** the leader's commit of site-promoted is in flight */
  siteFlagSent = false;
  constructor(name: string, w: World, h: HaSim) {
    this.mgr = new HaManager(name, SIM_HA_TIMING, { event: (kind, detail) => w.log(name, kind, detail) });
    this.local = new LocalManager(name, (kind, detail) => { w.log(name, kind, detail); h.heldOut.push(`${name}: ${detail}`); });
  }
}

const enc = (h: number[]) => h.join(".");
const dec = (s: string) => (s ? s.split(".").map(Number) : []);
const isPrefix = (a: number[], b: number[]) => a.length <= b.length && a.every((x, i) => b[i] === x);

export function cmpPos(_svc: Svc, a: string, b: string): number | null {
  const x = dec(a), y = dec(b);
  if (isPrefix(x, y)) return x.length === y.length ? 0 : -1;
  return isPrefix(y, x) ? 1 : null;
}

export class HaSim implements App {
  readonly n = new Map<string, HaNode>();
  readonly acked = new Set<number>();
  readonly pending = new Map<number, string>();
  /** when each write was acknowledged (real ms): the ack-to-commit window of a crash */
  private readonly ackedAt = new Map<number, number>();
  readonly bmcDown = new Set<string>();
  readonly portsDown = new Set<string>();
  switchMgmtDown = false;
  readonly heldOut: string[] = [];
  readonly violations: string[] = [];
  writes = 0;
  private nextId = 1;
  /** when (real ms) MySQL last had no writable primary clients could write to; null while it has */
  private unwritableSince: number | null = null;
  /** a remote site's replica (`site remote`), promoted by `site promote`; null: no sites */
  remote: { promoted: boolean } | null = null;

  constructor(private readonly w: World) {
    w.app = this;
    const pump = () => { this.pump(); w.at(w.now + 20, pump); };
    const write = () => { this.write(); w.at(w.now + 50, write); };
    w.at(w.now + 20, pump);
    w.at(w.now + 50, write);
  }

  private ha(n: SimNode): HaNode {
    let h = this.n.get(n.name);
    if (!h) { h = new HaNode(n.name, this.w, this); this.n.set(n.name, h); }
    return h;
  }

  started(n: SimNode): void {
    const h = this.ha(n);
    // The node boots: its MySQL comes up read-only (my.cnf read_only=1), after crash recovery;
    // the agent decides the rest.
    this.serverStart(n.name, h);
    h.portal = { mysql: null, redis: null }; h.vip = false; h.busy.clear(); h.reports.clear(); h.leading = false; h.probes.clear();
    h.mgr.reset("restart");
  }

  crashed(n: SimNode): void {
    const h = this.ha(n);
    h.vip = false;
    this.serverDies(n.name, h);
  }

  /** The server process ends (killed, or the node lost power): what waited for an ack fails. */
  private serverDies(name: string, h: HaNode): void {
    if (h.db.proc === "dead") return;
    // in doubt: written to its binlog, waiting for a replica's ack, not committed in the engine
    h.db.inDoubt = [...this.pending].filter(([, p]) => p === name).map(([id]) => id);
    const last = h.db.hist[h.db.hist.length - 1];
    if (h.db.role === "primary" && last !== undefined && this.acked.has(last) && this.w.now - (this.ackedAt.get(last) ?? -Infinity) < 30 && this.w.random() < 0.5) h.db.inDoubt.push(last);
    h.db.proc = "dead";
    h.db.writable = false;
    this.dropPending(name);
  }

  /**
   * The server starts: crash recovery with the semi-sync replica's crash safety truncates what
   * a primary wrote to its binlog but had not committed (waiting for an ack), and the last
   * acknowledged transaction too when the crash came between the ack and the engine commit
   * (half the crashes within 30 ms of an ack: the restarted primary lacks a write its replicas
   * have, as the lab saw).
   * It comes up read-only, with a new incarnation.
   */
  private serverStart(name: string, h: HaNode): void {
    const d = h.db;
    if (d.proc === "dead" && d.inDoubt.length) {
      const drop = new Set(d.inDoubt);
      const keep = d.hist.filter((id) => !drop.has(id));
      if (keep.length !== d.hist.length) this.w.log(name, "mysqld", `crash recovery truncated ${d.hist.length - keep.length} transactions from the binlog`);
      d.hist = keep;
      d.applied = d.hist.length;
    }
    d.inDoubt = [];
    d.proc = "running";
    d.writable = false;
    d.fenced = null;
    d.source = null;
    if (d.role === "primary") d.role = "none";
    h.starts += 1;
    d.inst = `i${h.starts}`;
    d.okAt = this.w.local(this.w.node(name));
  }

  /** Writes waiting for a semi-sync ack fail when their primary dies or kills its clients. */
  private dropPending(primary: string): void {
    for (const [id, p] of this.pending) if (p === primary) this.pending.delete(id);
  }

  message(n: SimNode, from: string, msg: Message): boolean {
    if (msg.t === "res") { this.ha(n).reports.set(from, { r: msg, at: this.w.local(n) }); return true; }
    if (msg.t === "res-query") { this.report(n, true); return true; }
    return false;
  }

  ticked(n: SimNode): void {
    const h = this.ha(n);
    const view = n.core!.view();
    const now = this.w.local(n);
    if (h.db.up) h.db.okAt = now;
    const facts = {
      now, view, mysql: this.facts(n, h), redis: null, portal: h.portal, vip: h.vip,
      alive: (node: string) => node === n.name || view.peers.some((p) => p.name === node && p.alive),
      peerApplied: (node: string, svc: Svc) => (svc === "mysql" ? h.reports.get(node)?.r.mysql?.applied ?? null : null),
      peerVip: (node: string) => h.reports.get(node)?.r.vip ?? false,
      peerPrimary: (node: string, svc: Svc) => { const r = h.reports.get(node)?.r[svc]; return !!r && r.up && r.writable && r.role === "primary"; },
      extra: (svc: Svc, mine: string, theirs: string) => (cmpPos(svc, mine, theirs) ?? 1) <= 0 ? null : `writes ${dec(mine).filter((x) => !dec(theirs).includes(x)).join(",")}`,
    };
    // a stuck action waits out the runtime's back-off (runtime/ha-runtime.ts STUCK_RETRY_MS)
    for (const a of h.local.plan(facts, h.busy)) if (!(h.failures.do === a.do && h.failures.n >= 3 && this.w.now - h.failures.at < 30_000)) this.act(n, h, a);
    this.report(n, false);
    const lead = view.role === "leader" && view.acting;
    this.probe(n, h, view); // every node probes, so that a leader elected meanwhile has the answers
    if (lead) {
      h.reports.set(n.name, { r: this.resOf(n, h), at: this.w.local(n) });
      const siteHold = this.site(n, h, view);
      const acts = h.mgr.tick({ now: this.w.local(n), wall: 1.7e12 + this.w.now, view, reports: h.reports, cmp: cmpPos, probes: h.probes, siteHold });
      for (const a of acts) this.leaderAct(n, h, a);
    } else if (h.leading) { h.mgr.reset("no longer the acting leader"); h.fencing.clear(); }
    if (lead && !h.leading) h.leadSince = this.w.now;
    h.leading = lead;
  }

  /**
   * The remote site as the leader's SiteRuntime judges it (ha/site.ts): the simulated remote is
   * always readable; once promoted, the leader commits site-promoted and holds MySQL.
   */
  private site(n: SimNode, h: HaNode, view: ReturnType<NonNullable<SimNode["core"]>["view"]>): (() => string | null) | undefined {
    const x = this.remote;
    if (!x) return undefined;
    const facts: RemoteFacts = {
      up: true, readOnly: !x.promoted, source: x.promoted ? null : "sim", ioRunning: !x.promoted, sqlRunning: !x.promoted, lagSeconds: 0, lastError: null,
      executed: "", received: "", promoted: x.promoted ? { at: 0, by: "sim", lost: "unknown" } : null, seen: null,
    };
    const holder = view.committed.assignments.mysql ?? null;
    const r = holder ? h.reports.get(holder)?.r.mysql : null;
    const j = judgeSite({ site: "site2", kind: "mariadb", facts, flags: view.committed.flags, holder, holderAddr: holder, holderWritable: !!r?.writable, primaryGtid: null, lagAlarmS: 30, lagAlarmTrx: 1e9 }, true);
    if (!(promotedFlag("site2") in view.committed.flags)) h.siteFlagSent = j.actions.some((a) => a.do === "flag-promoted") && h.siteFlagSent;
    for (const a of j.actions) {
      if (a.do !== "flag-promoted" || h.siteFlagSent) continue;
      h.siteFlagSent = true;
      this.w.log(n.name, "site", `remote site site2 was promoted: holding this room's MySQL read-only`);
      n.core!.command({ op: "apply", why: "remote site site2 promoted", flags: { [promotedFlag("site2")]: a.why } }, (res) => { if (res.status !== "ok") h.siteFlagSent = false; });
    }
    return () => j.hold;
  }

  /** The leader's probes of silent holders: the server answers (and is writable, if primary) over the network. */
  private probe(n: SimNode, h: HaNode, view: ReturnType<NonNullable<SimNode["core"]>["view"]>): void {
    const targets = probeTargets(view);
    for (const k of [...h.probes.keys()]) if (!targets.includes(k)) h.probes.delete(k);
    for (const t of targets) {
      const x = this.n.get(t);
      const tn = this.w.nodes.get(t);
      // the primary's server answers and is writable (a restarted one is read-only: not the primary any more)
      const ok = !!x && !!tn?.up && x.db.up && x.db.writable && !this.w.blocked.has(`${n.name}>${t}`) && !this.w.blocked.has(`${t}>${n.name}`) && !this.portsDown.has(t);
      const prev = h.probes.get(t) ?? { okAt: null, failAt: null };
      h.probes.set(t, ok ? { ...prev, okAt: this.w.local(n) } : { ...prev, failAt: this.w.local(n) });
    }
  }

  private facts(n: SimNode, h: HaNode): DbFacts | null {
    const d = h.db;
    const now = this.w.local(n);
    return {
      up: d.up, role: d.role, writable: d.up && d.writable, received: enc(d.hist), applied: enc(d.hist.slice(0, d.applied)), source: d.source,
      inst: d.inst, downMs: d.up ? 0 : now - d.okAt, fenced: d.fenced, recvAgoMs: d.role === "replica" && d.recvAt !== null ? now - d.recvAt : null,
    };
  }

  private resOf(n: SimNode, h: HaNode): ResReport {
    const f = this.facts(n, h)!;
    const { repl: _r, downMs, fenced, ...rest } = f;
    return {
      v: 1, t: "res", redis: null, portal: { ...h.portal }, vip: h.vip, selfFenced: n.core!.view().selfFenced,
      mysql: {
        ...rest, up: f.up, inst: f.inst, recvAgoMs: f.recvAgoMs ?? null, ...(f.up ? {} : { downMs }), ...(fenced ? { fenced } : {}), heldOut: h.local.heldOut.get("mysql") ?? null, steps: { ...h.steps },
        ...(h.failures.n >= 3 ? { stuck: `${h.failures.do}: relay log not applied` } : {}),
      },
    };
  }

  private report(n: SimNode, force: boolean): void {
    const h = this.ha(n);
    const r = this.resOf(n, h);
    const key = JSON.stringify({ ...r, mysql: r.mysql && { ...r.mysql, downMs: undefined, recvAgoMs: undefined } });
    if (!force && key === h.lastSent && this.w.now - h.lastSentAt < 500) return;
    h.lastSent = key; h.lastSentAt = this.w.now;
    this.w.send(n, "*", r);
  }

  // ---- the local resource actions (the drivers, simulated) ------------------------------

  private act(n: SimNode, h: HaNode, a: LocalAction): void {
    h.busy.add(a.res);
    const took = a.res === "portal" ? 20 : a.do === "promote" ? 10 : a.do === "start" ? 300 : 5;
    this.w.at(this.w.now + took, () => {
      h.busy.delete(a.res);
      if (!n.up || this.w.now < n.stalledUntil) return; // the action died with the node
      const d = h.db;
      // a hung server answers nothing: every statement of an action waits, then fails
      const failed = a.res === "mysql" && d.proc !== "running" && a.do !== "kill" && a.do !== "start" ? "the server does not answer"
        : a.res === "mysql" && a.do === "promote" && h.broken ? "relay log not applied: no progress" : null;
      if (failed) {
        h.failures = { do: a.do, n: h.failures.do === a.do ? h.failures.n + 1 : 1, at: this.w.now };
        this.w.log(n.name, "lrm", `${a.res} ${a.do} FAILED: ${failed} (${a.why})${h.failures.n >= 3 ? `; failed ${h.failures.n} times in a row: reported as stuck` : ""}`);
        return this.report(n, true);
      }
      if (a.res === "mysql") h.failures = { do: "", n: 0, at: 0 };
      switch (a.do) {
        case "promote":
          d.applied = d.hist.length; // drain the relay log first
          // read-only: during a replace (restoreHold); MySQL's status then says "none"
          d.role = a.readOnly ? "none" : "primary"; d.writable = !a.readOnly; d.source = null;
          h.steps = { drain: 0, promote: took };
          this.checkPromoted(n.name, h);
          break;
        // read-only with no replication set up: MySQL's status says "none" (mysql.ts status())
        case "demote": d.writable = false; if (d.role === "primary") d.role = "none"; this.dropPending(n.name); break;
        case "detach": d.source = null; d.recvAt = null; break;
        case "replicate": d.role = "replica"; d.writable = false; d.source = a.from; d.recvAt = null; break;
        case "kill": {
          const was = d.proc;
          this.serverDies(n.name, h);
          d.fenced = was === "dead" ? "no mysqld process (confirmed)" : `killed the ${was} mysqld; gone (confirmed)`;
          break;
        }
        case "start": this.serverStart(n.name, h); break;
        case "route": h.portal = { mysql: a.mysql, redis: a.redis }; break;
        case "restart": break;
        case "acquire": h.vip = true; h.vipAt = this.w.now; break;
        case "release": h.vip = false; break;
      }
      this.w.log(n.name, "lrm", `${a.res} ${a.do}${"from" in a ? ` from ${a.from}` : ""}${a.do === "route" ? ` mysql->${a.mysql ?? "none"}` : ""} (${a.why})`);
      this.report(n, true);
    });
  }

  private leaderAct(n: SimNode, h: HaNode, a: HaAction): void {
    if (a.kind === "query") return this.w.send(n, "*", { v: 1, t: "res-query" });
    if (a.kind === "commit") return n.core!.command(a.cmd, (r) => h.mgr.commitDone(r.status === "ok", r.error, a.own));
    if (a.kind === "unfence") return;
    if (a.kind === "abort-fence") { h.fencing.delete(a.node); return this.w.log(n.name, "fence", `calling off the fence of ${a.node}: ${a.why}`); }
    this.fence(n, h, a.node, a.lastContactAgoMs, a.id);
  }

  /**
   * Fence levels as DESIGN §5, with BMCs and switch management that can be down. An IPMI
   * power-off, once sent, lands whatever happens to the leader afterwards (the lab's incident,
   * issue 20): only the levels not started yet are called off.
   */
  private fence(n: SimNode, h: HaNode, target: string, agoMs: number, id: number): void {
    const proofs: FenceProof[] = [];
    const t0 = this.w.now;
    h.fencing.set(target, id);
    const done = (fenced: boolean) => { if (h.fencing.get(target) === id) h.fencing.delete(target); h.mgr.fenceDone(target, fenced, proofs, this.w.local(n), id); };
    const off = () => h.fencing.get(target) !== id;
    if (!this.bmcDown.has(target)) {
      return this.w.at(this.w.now + 300, () => {
        this.w.crash(target); // sent: the BMC powers the node off even if the fence was called off
        if (off()) return;
        proofs.push({ level: "ipmi", ok: true, detail: "chassis power off; power status: off", ms: 300 });
        done(true);
      });
    }
    proofs.push({ level: "ipmi", ok: false, detail: "BMC unreachable", ms: 2000 });
    this.w.at(this.w.now + 2000, () => {
      if (off()) return;
      if (!this.switchMgmtDown) {
        this.portsDown.add(target);
        for (const o of this.w.nodes.keys()) if (o !== target) { this.w.block(target, o); this.w.block(o, target); }
        proofs.push({ level: "switch-ports", ok: true, detail: "ifAdminStatus down read back on both switches", ms: 50 });
        return this.w.at(this.w.now + 50, () => done(true));
      }
      proofs.push({ level: "switch-ports", ok: false, detail: "switch management unreachable", ms: 1000 });
      const deadline = this.w.timing.quorumLossMs + WATCHDOG_MS + FENCE_MARGIN_MS - agoMs - (this.w.now - t0);
      this.w.at(this.w.now + Math.max(1000, deadline), () => {
        if (off()) return;
        proofs.push({ level: "deadline", ok: true, detail: "self-fence deadline passed", ms: Math.round(this.w.now - t0) });
        done(true);
      });
    });
  }

  // ---- faults of one server (scenario commands mysqld N kill|hang|resume|start) -----------

  mysqld(name: string, op: string): void {
    const h = this.n.get(name);
    if (!h || !this.w.node(name).up) return;
    if (op === "kill") this.serverDies(name, h);
    else if (op === "hang" && h.db.proc === "running") h.db.proc = "hung";
    else if (op === "resume" && h.db.proc === "hung") h.db.proc = "running";
    else if (op === "start" && h.db.proc === "dead") this.serverStart(name, h);
    else if (op === "broken") h.broken = true;
    else if (op === "fixed") { h.broken = false; h.failures = { do: "", n: 0, at: 0 }; }
  }

  // ---- the world around: replication, the client, the watchdog, the invariants ---------

  /** Replication and semi-sync acks, every 20 ms of virtual time. */
  pump(): void {
    for (const [name, h] of this.n) {
      const n = this.w.node(name);
      if (!n.up || !h.db.up || h.db.role !== "replica" || !h.db.source) continue;
      const s = this.n.get(h.db.source);
      const sn = this.w.nodes.get(h.db.source);
      if (!s || !sn?.up || !s.db.up || this.w.blocked.has(`${h.db.source}>${name}`)) continue;
      if (!isPrefix(h.db.hist, s.db.hist)) continue; // diverged: replication stops with an error
      h.db.recvAt = this.w.local(n); // an event or a replication heartbeat
      h.db.hist = [...s.db.hist];
      h.db.applied = h.db.hist.length;
      for (const id of h.db.hist) if (this.pending.get(id) === h.db.source) { this.pending.delete(id); this.acked.add(id); this.ackedAt.set(id, this.w.now); }
    }
  }

  /** The client writes through the VIP: the newest holder that it can reach, then its portal's route. */
  write(): void {
    const holders = [...this.n].filter(([name, h]) => h.vip && this.w.node(name).up && !this.portsDown.has(name)).sort((a, b) => b[1].vipAt - a[1].vipAt);
    if (!holders.length) return;
    const [via, vh] = holders[0];
    const to = vh.portal.mysql;
    const p = to ? this.n.get(to) : undefined;
    const pn = to ? this.w.nodes.get(to) : undefined;
    if (!to || !p || !pn?.up || !p.db.up || !p.db.writable || (to !== via && this.w.blocked.has(`${via}>${to}`))) return;
    const id = this.nextId++;
    p.db.hist.push(id);
    p.db.applied = p.db.hist.length;
    this.pending.set(id, to);
    this.writes++;
  }

  afterStep(): void {
    // I5: a hung server that is writable counts: it takes writes again when it wakes up
    const writable = [...this.n].filter(([name, h]) => h.db.writable && h.db.proc !== "dead" && this.w.node(name).up && !this.portsDown.has(name)).map(([name]) => name);
    if (writable.length > 1) this.fail(`I5 two writable primaries a client can reach: ${writable.join(", ")}`);
    this.checkWritesDown();
  }

  /** I8: MySQL unwritable for longer than the bound (+ slack) has the acting leader's alarm. */
  private checkWritesDown(): void {
    const ok = [...this.n].some(([name, h]) => h.db.up && h.db.writable && this.w.node(name).up && !this.portsDown.has(name) &&
      [...this.n].some(([v, x]) => x.vip && x.portal.mysql === name && this.w.node(v).up && !this.portsDown.has(v)));
    if (ok) { this.unwritableSince = null; return; }
    this.unwritableSince ??= this.w.now;
    if (this.w.now - this.unwritableSince < SIM_HA_TIMING.writesDownAlarmMs + I8_SLACK_MS) return;
    const leaders = [...this.n].filter(([name, h]) => h.leading && this.w.node(name).up && this.w.now >= this.w.node(name).stalledUntil);
    if (leaders.length !== 1) return; // no acting leader: quorum-lost and node-lost alarms speak
    if (this.w.now - Math.max(this.unwritableSince, leaders[0][1].leadSince) < SIM_HA_TIMING.writesDownAlarmMs + I8_SLACK_MS) return;
    if (!leaders[0][1].mgr.writesDown().some((x) => x.svc === "mysql")) {
      this.fail(`I8 mysql has had no writable primary for ${Math.round(this.w.now - this.unwritableSince)} ms, and the leader ${leaders[0][0]} raises no writes-down alarm`);
    }
  }

  private checkPromoted(name: string, h: HaNode): void {
    const have = new Set(h.db.hist);
    const lost = [...this.acked].filter((id) => !have.has(id));
    if (lost.length) this.fail(`I6 ${name} promoted without ${lost.length} acknowledged writes (${lost.slice(0, 5).join(",")})`);
    const flags = this.w.node(name).core?.view().committed.flags ?? {};
    for (const [o, x] of this.n) {
      // a fenced old primary's unacknowledged tail is not a replica's data
      if (o === name || !this.w.node(o).up || !x.db.up || x.local.heldOut.has("mysql") || this.portsDown.has(o) || `fenced:${o}` in flags || `fencing:${o}` in flags) continue;
      const extra = x.db.hist.filter((id) => !have.has(id));
      if (extra.length && x.db.role === "replica") this.fail(`I7 ${name} promoted while the replica ${o} has ${extra.length} writes it lacks (${extra.slice(0, 5).join(",")})`);
    }
  }

  private fail(what: string): void {
    const line = `t=${(this.w.now / 1000).toFixed(3)} ${what}`;
    if (this.violations.length < 10 && !this.violations.includes(line)) this.violations.push(line);
    this.w.inv.violations.push(line);
  }

  /** A stalled agent stops feeding the watchdog: the supervisor resets the node. */
  watchdog(name: string, stallMs: number): void {
    if (stallMs <= WATCHDOG_MS) return;
    this.w.at(this.w.now + WATCHDOG_MS, () => {
      this.w.log(name, "watchdog", `no WATCHDOG=1 for ${WATCHDOG_MS} ms: node reset`);
      this.w.crash(name);
      this.w.at(this.w.now + 2000, () => this.w.start(name));
    });
  }
}
