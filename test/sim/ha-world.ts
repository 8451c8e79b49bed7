// The HA layer in the simulator: each node runs the real LocalManager and, while it leads
// and acts, the real HaManager. Below them: a simulated MySQL per node (a write history,
// replicated by prefix, semi-synchronous acks), a portal, the VIP, BMCs and switch ports
// for fencing, the watchdog, and a client writing through the VIP. Checked after every step:
//   I5 at most one MySQL primary a client can write to;
//   I6 no acknowledged write is missing from a node when it becomes writable primary.
import type { Message, ResReport } from "../../agent/bus/messages.ts";
import type { Svc } from "../../agent/ha/flags.ts";
import { LocalManager, type DbFacts, type LocalAction } from "../../agent/ha/local.ts";
import { DEFAULT_HA_TIMING, HaManager, type HaAction, type Report } from "../../agent/ha/manager.ts";
import type { FenceProof } from "../../agent/resources/types.ts";
import type { App, SimNode, World } from "./world.ts";

const WATCHDOG_MS = 3000;
const FENCE_MARGIN_MS = 1000;

class Db {
  up = true;
  role: "primary" | "replica" | "none" = "none";
  writable = false;
  hist: number[] = [];
  applied = 0;
  source: string | null = null;
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
  /** fences in flight by target node: the fence action's id */
  fencing = new Map<string, number>();
  constructor(name: string, w: World, h: HaSim) {
    this.mgr = new HaManager(name, DEFAULT_HA_TIMING, { event: (kind, detail) => w.log(name, kind, detail) });
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
  readonly bmcDown = new Set<string>();
  readonly portsDown = new Set<string>();
  switchMgmtDown = false;
  readonly heldOut: string[] = [];
  readonly violations: string[] = [];
  writes = 0;
  private nextId = 1;

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
    // A booting node's MySQL comes up read-only (my.cnf read_only=1); the agent decides.
    h.db.up = true; h.db.writable = false; h.db.role = h.db.role === "primary" ? "primary" : h.db.role;
    h.portal = { mysql: null, redis: null }; h.vip = false; h.busy.clear(); h.reports.clear(); h.leading = false;
    h.mgr.reset("restart");
  }

  crashed(n: SimNode): void {
    const h = this.ha(n);
    h.vip = false; h.db.writable = false;
    this.dropPending(n.name);
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
    const facts = {
      now: this.w.local(n), view, mysql: this.facts(h), redis: null, portal: h.portal, vip: h.vip,
      alive: (node: string) => node === n.name || view.peers.some((p) => p.name === node && p.alive),
      peerApplied: (node: string, svc: Svc) => (svc === "mysql" ? h.reports.get(node)?.r.mysql?.applied ?? null : null),
      peerVip: (node: string) => h.reports.get(node)?.r.vip ?? false,
      extra: (svc: Svc, mine: string, theirs: string) => (cmpPos(svc, mine, theirs) ?? 1) <= 0 ? null : `writes ${dec(mine).filter((x) => !dec(theirs).includes(x)).join(",")}`,
    };
    for (const a of h.local.plan(facts, h.busy)) this.act(n, h, a);
    this.report(n, false);
    const lead = view.role === "leader" && view.acting;
    if (lead) {
      h.reports.set(n.name, { r: this.resOf(n, h), at: this.w.local(n) });
      const acts = h.mgr.tick({ now: this.w.local(n), wall: 1.7e12 + this.w.now, view, reports: h.reports, cmp: cmpPos });
      for (const a of acts) this.leaderAct(n, h, a);
    } else if (h.leading) { h.mgr.reset("no longer the acting leader"); h.fencing.clear(); }
    h.leading = lead;
  }

  private facts(h: HaNode): DbFacts | null {
    const d = h.db;
    return { up: d.up, role: d.role, writable: d.writable, received: enc(d.hist), applied: enc(d.hist.slice(0, d.applied)), source: d.source };
  }

  private resOf(n: SimNode, h: HaNode): ResReport {
    const f = this.facts(h)!;
    return {
      v: 1, t: "res", redis: null, portal: { ...h.portal }, vip: h.vip, selfFenced: n.core!.view().selfFenced,
      mysql: { ...f, heldOut: h.local.heldOut.get("mysql") ?? null, steps: { ...h.steps } },
    };
  }

  private report(n: SimNode, force: boolean): void {
    const h = this.ha(n);
    const r = this.resOf(n, h);
    const key = JSON.stringify(r);
    if (!force && key === h.lastSent && this.w.now - h.lastSentAt < 500) return;
    h.lastSent = key; h.lastSentAt = this.w.now;
    this.w.send(n, "*", r);
  }

  // ---- the local resource actions (the drivers, simulated) ------------------------------

  private act(n: SimNode, h: HaNode, a: LocalAction): void {
    h.busy.add(a.res);
    const took = a.res === "portal" ? 20 : a.do === "promote" ? 10 : 5;
    this.w.at(this.w.now + took, () => {
      h.busy.delete(a.res);
      if (!n.up || this.w.now < n.stalledUntil) return; // the action died with the node
      const d = h.db;
      switch (a.do) {
        case "promote":
          d.applied = d.hist.length; // drain the relay log first
          d.role = "primary"; d.writable = true; d.source = null;
          h.steps = { drain: 0, promote: took };
          this.checkPromoted(n.name, h);
          break;
        case "demote": d.writable = false; if (d.role === "primary") d.role = "replica"; this.dropPending(n.name); break;
        case "detach": d.source = null; break;
        case "replicate": d.role = "replica"; d.writable = false; d.source = a.from; break;
        case "route": h.portal = { mysql: a.mysql, redis: a.redis }; break;
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

  /** Fence levels as DESIGN §5, with BMCs and switch management that can be down. */
  private fence(n: SimNode, h: HaNode, target: string, agoMs: number, id: number): void {
    const proofs: FenceProof[] = [];
    const t0 = this.w.now;
    h.fencing.set(target, id);
    const done = (fenced: boolean) => { if (h.fencing.get(target) === id) h.fencing.delete(target); h.mgr.fenceDone(target, fenced, proofs, this.w.local(n), id); };
    // a fence called off (its failover abandoned, or leadership lost) does nothing more
    const off = () => h.fencing.get(target) !== id;
    if (!this.bmcDown.has(target)) {
      return this.w.at(this.w.now + 300, () => {
        if (off()) return;
        this.w.crash(target);
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

  // ---- the world around: replication, the client, the watchdog, the invariants ---------

  /** Replication and semi-sync acks, every 20 ms of virtual time. */
  pump(): void {
    for (const [name, h] of this.n) {
      const n = this.w.node(name);
      if (!n.up || h.db.role !== "replica" || !h.db.source) continue;
      const s = this.n.get(h.db.source);
      const sn = this.w.nodes.get(h.db.source);
      if (!s || !sn?.up || this.w.blocked.has(`${h.db.source}>${name}`)) continue;
      if (!isPrefix(h.db.hist, s.db.hist)) continue; // diverged: replication stops with an error
      h.db.hist = [...s.db.hist];
      h.db.applied = h.db.hist.length;
      for (const id of h.db.hist) if (this.pending.get(id) === h.db.source) { this.pending.delete(id); this.acked.add(id); }
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
    if (!to || !p || !pn?.up || !p.db.writable || (to !== via && this.w.blocked.has(`${via}>${to}`))) return;
    const id = this.nextId++;
    p.db.hist.push(id);
    p.db.applied = p.db.hist.length;
    this.pending.set(id, to);
    this.writes++;
  }

  afterStep(): void {
    const writable = [...this.n].filter(([name, h]) => h.db.writable && this.w.node(name).up && !this.portsDown.has(name)).map(([name]) => name);
    if (writable.length > 1) this.fail(`I5 two writable primaries a client can reach: ${writable.join(", ")}`);
  }

  private checkPromoted(name: string, h: HaNode): void {
    const have = new Set(h.db.hist);
    const lost = [...this.acked].filter((id) => !have.has(id));
    if (lost.length) this.fail(`I6 ${name} promoted without ${lost.length} acknowledged writes (${lost.slice(0, 5).join(",")})`);
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
