// The HA runtime: the I/O around the pure managers. It polls the local MySQL, Redis, portal
// and VIP; feeds LocalManager and, on the acting leader, HaManager; carries out their
// actions with the drivers and the fence levels; and exchanges resource reports with the
// peers over the bus. Every action and its outcome is an event (the failover timeline).
import { readFileSync } from "node:fs";
import mysql from "mysql2/promise";
import type { ClusterConfig, DbReport, Message, ResReport } from "../bus/messages.ts";
import { PROTOCOL_VERSION } from "../bus/messages.ts";
import type { ClusterNode } from "../cluster/node.ts";
import type { Config } from "../config/schema.ts";
import type { Logger } from "../env/env.ts";
import { fenceNode, realFenceDeps, unfence, type NodeFenceConfig } from "../fence/fence.ts";
import { cmpGtid, subsetOf } from "../resources/gtid.ts";
import { HealthChecker, type HealthTransition } from "../resources/health.ts";
import { flavourByName } from "../resources/mysql-flavour.ts";
import { MysqlDriver, type MysqlDriverStatus } from "../resources/mysql.ts";
import { PortalDriver } from "../resources/portal.ts";
import { RedisDriver } from "../resources/redis.ts";
import { VipDriver } from "../resources/vip.ts";
import { realTimers } from "../env/real.ts";
import type { Svc } from "../ha/flags.ts";
import { LocalManager, type DbFacts, type LocalAction } from "../ha/local.ts";
import { HaManager, type HaAction, type Report } from "../ha/manager.ts";
import { PollRate, factsShape } from "../ha/poll-rate.ts";

export interface HaRuntimeDeps {
  config: Config;
  node: ClusterNode;
  send(to: string, msg: Message): void;
  log: Logger;
  event(kind: string, detail: string, fields?: Record<string, unknown>): void;
}

/** a report that has not changed is sent again this often; changes go out at once */
const REPORT_EVERY_MS = 500;
/** ... and this often while the node is calm (ha/poll-rate.ts): nothing waits for it then */
const CALM_REPORT_EVERY_MS = 2000;
const readSecret = (f: string) => readFileSync(f, "utf8").trim();

/** The executed GTID state of another node's server, read with the replication account. */
async function primaryBinlogState(host: string, port: number, user: string, password: string, mysql8: boolean): Promise<string> {
  const c = await mysql.createConnection({ host, port, user, password, connectTimeout: 1000 });
  try {
    const [rows] = await c.query(mysql8 ? "SELECT @@GLOBAL.gtid_executed AS gtid" : "SELECT @@GLOBAL.gtid_binlog_state AS gtid");
    return String((rows as { gtid?: string }[])[0]?.gtid ?? "");
  } finally {
    c.destroy();
  }
}

/**
 * The local MySQL as the managers and the alarms see it. `repl` (threads, Seconds_Behind_Master,
 * the last error) is for the alarms' replica-broken and repl-lag rules only: reports leave it out.
 */
export function mysqlFacts(m: MysqlDriverStatus, binlogState: string, nodeOf: (hostPort: string | null) => string | null): DbFacts {
  return {
    up: m.up, role: m.role, writable: m.up && !m.readOnly && m.role !== "replica", received: m.gtidReceived ?? m.gtidExecuted,
    applied: binlogState || m.gtidExecuted, source: m.ioRunning || m.sqlRunning ? nodeOf(m.source) : null,
    repl: m.role === "replica" ? { ioRunning: m.ioRunning, sqlRunning: m.sqlRunning, lagSeconds: m.lagSeconds, lastError: m.lastError } : undefined,
  };
}

/** What peers get of a resource's facts, field by field: the report's schema is strict. */
export function dbReport(f: DbFacts, heldOut: string | null, steps?: Record<string, number>): DbReport {
  const { up, role, writable, received, applied, source } = f;
  return { up, role, writable, received, applied, source, heldOut, steps };
}

export class HaRuntime {
  private readonly c: NonNullable<Config["ha"]>;
  private readonly self: string;
  private readonly log: Logger;
  private mysql: MysqlDriver | null = null;
  private redis: RedisDriver | null = null;
  private portal: PortalDriver | null = null;
  private vip: VipDriver | null = null;
  private health: HealthChecker | null = null;
  private facts: { mysql: DbFacts | null; redis: DbFacts | null; portal: { mysql: string | null; redis: string | null } | null; vip: boolean | null } =
    { mysql: null, redis: null, portal: null, vip: null };
  private binlogState = "";
  private readonly busy = new Set<string>();
  private readonly reports = new Map<string, Report>();
  private readonly local: LocalManager;
  private readonly mgr: HaManager;
  private readonly steps: Record<string, number> = {};
  private leading = false;
  /** fences in flight, by node: called off when their failover is abandoned or leadership is lost */
  private readonly fencing = new Map<string, AbortController>();
  private polling: Promise<void> | null = null;
  /** 250 ms while anything moves, 1 s when calm (ha/poll-rate.ts); step() starts the reads */
  private readonly rate = new PollRate(performance.now());
  private lastReport = "";
  private lastReportAt = -Infinity;
  /** when the read that gave `facts` started (monotonic ms) */
  private factsAt = -Infinity;
  /** a leader's res-query waits for a fresh read (its number), 0 when none does */
  private querySeq = 0;
  private stopped = false;

  constructor(private readonly d: HaRuntimeDeps) {
    this.c = d.config.ha!;
    this.self = d.config.cluster.node;
    this.log = d.log.child("ha");
    this.local = new LocalManager(this.self, (kind, detail) => d.event(kind, detail));
    this.mgr = new HaManager(this.self, { antiFlapMs: this.c.ha.anti_flap_ms, stepTimeoutMs: this.c.ha.step_timeout_ms, fenceTimeoutMs: this.c.ha.fence_timeout_ms }, { event: d.event });
  }

  async start(): Promise<void> {
    const { mysql, redis, portal, ha } = this.c;
    const me = ha.nodes[this.self];
    if (!me) throw new Error(`ha.nodes has no entry for this node (${this.self})`);
    if (mysql) {
      const flavour = flavourByName(mysql.flavour)!;
      this.mysql = new MysqlDriver({
        flavour, host: mysql.socket ? undefined : me.address, port: mysql.port, socketPath: mysql.socket, user: mysql.user,
        password: readSecret(mysql.password_file), replUser: mysql.repl_user, replPassword: readSecret(mysql.repl_password_file),
        replHost: mysql.repl_host, log: this.log, semiSyncTimeoutMs: mysql.semi_sync_timeout_ms,
      });
    }
    if (redis) {
      this.redis = new RedisDriver({ host: me.address, port: redis.port, password: redis.password_file ? readSecret(redis.password_file) : undefined, announceIp: me.address, log: this.log, minReplicasMaxLagS: redis.min_replicas_max_lag_s });
    }
    if (portal) {
      this.portal = new PortalDriver({ prefix: portal.prefix, log: this.log });
      const services = portal.services.map((s) => ({ name: s.name, listen: s.listen, backends: s.backends, health: { path: s.health.path, intervalMs: s.health.interval_ms, rise: s.health.rise, fall: s.health.fall, timeoutMs: s.health.timeout_ms } }));
      if (services.length) {
        this.health = new HealthChecker({
          services, timers: realTimers(), now: () => performance.now(), log: this.log,
          onTransition: (t: HealthTransition) => { this.d.event("health", `${t.service} backend ${t.backend} ${t.from} => ${t.to} after ${t.after}: ${t.detail}`); this.route(); },
        });
        this.health.start();
      }
      await this.portal.apply(this.portalDesired(null, null, true));
      await this.portal.start();
    }
    if (ha.vip) this.vip = new VipDriver({ address: ha.vip.address, iface: ha.vip.iface, log: this.log });
    await this.poll();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.health?.stop();
    await Promise.allSettled([this.mysql?.close(), this.redis?.close()]);
  }

  /** Messages of the HA layer: peers' resource reports and the leader's query. */
  receive(from: string, msg: Message): void {
    if (msg.t === "res") this.reports.set(from, { r: msg, at: performance.now() });
    // The leader wants facts newer than its question (a candidate's position after the fence,
    // a caught-up target): until a read started after it is in, no report goes out (one with
    // older facts, arriving after the question, would count as an answer).
    else if (msg.t === "res-query") {
      const q = ++this.querySeq;
      void this.poll(true).then(() => { if (this.querySeq === q) this.querySeq = 0; this.report(true); });
    }
  }

  /** One step, from the agent's tick: local actions, the leader's manager, the report. */
  step(): void {
    if (this.stopped) return;
    const view = this.d.node.view();
    const plan = this.local.plan({
      now: performance.now(), view, ...this.facts,
      alive: (n) => n === this.self || view.peers.some((p) => p.name === n && p.alive),
      peerApplied: (n, svc) => this.reports.get(n)?.r[svc]?.applied ?? null,
      peerVip: (n) => this.reports.get(n)?.r.vip ?? false,
      extra: (svc, mine, theirs) => this.extra(svc, mine, theirs),
    }, this.busy);
    for (const a of plan) void this.act(a, view.committed);
    this.report(false);
    const now = performance.now();
    this.rate.step(now, { view, busy: this.busy.size, procedures: this.mgr.busy().length, planned: plan.length, query: this.querySeq !== 0 });
    if (!this.polling && this.rate.due(now)) void this.poll();
    const lead = view.role === "leader" && view.acting;
    if (lead) {
      // as of when its facts were read, like a peer's answer to a query: pickCandidate wants
      // positions read after the fence
      this.reports.set(this.self, { r: this.resReport(view.selfFenced), at: this.factsAt });
      for (const a of this.mgr.tick({ now: performance.now(), wall: Date.now(), view, reports: this.reports, cmp: (svc, a, b) => this.cmp(svc, a, b) })) void this.leaderAct(a);
    } else if (this.leading) {
      this.mgr.reset("this node no longer leads with a lease");
      for (const ac of this.fencing.values()) ac.abort(new Error(`${this.self} no longer leads`));
      this.fencing.clear();
    }
    this.leading = lead;
  }

  private cmp(svc: Svc, a: string, b: string): number | null {
    if (svc === "redis") return Math.sign(Number(a) - Number(b));
    return cmpGtid(this.c.mysql?.flavour === "mysql8" ? "mysql" : "mariadb", a, b);
  }

  private extra(svc: Svc, mine: string, theirs: string): string | null {
    if (svc === "redis") return null; // Redis resyncs from its new master; loss is bounded by min-replicas
    const r = subsetOf(this.c.mysql?.flavour === "mysql8" ? "mysql" : "mariadb", mine, theirs);
    if (!r.ok) return `unreadable positions (${r.error})`;
    return r.value.subset ? null : r.value.extra;
  }

  // ---- facts ----------------------------------------------------------------------------

  private nodeOf(hostPort: string | null): string | null {
    if (!hostPort) return null;
    const host = hostPort.replace(/:\d+$/, "");
    return Object.entries(this.c.ha.nodes).find(([, v]) => v.address === host)?.[0] ?? null;
  }

  /**
   * Reads the local resources into `facts`. A call while a read is in flight waits for it and,
   * with `fresh`, reads again: after an action the facts must come from a read that started
   * after it, or the next plan sees the old state and repeats the action (a promote done
   * three times, a VIP acquired twice: seen in the lab under load).
   */
  private poll(fresh = false): Promise<void> {
    if (this.stopped) return Promise.resolve();
    // a read that starts once the one in flight is over starts after the caller asked
    if (this.polling) return fresh ? this.polling.then(() => this.poll()) : this.polling;
    this.rate.started(performance.now());
    const p = this.readFacts().finally(() => { if (this.polling === p) this.polling = null; });
    this.polling = p;
    return p;
  }

  private async readFacts(): Promise<void> {
    const started = performance.now();
    try {
      const [m, r, p, v] = await Promise.all([this.mysql?.status(), this.redis?.info().catch(() => null), this.portal?.status(), this.vip?.held().catch(() => null)]);
      if (m && this.mysql && m.up) this.binlogState = await this.mysql.gtidBinlogState("reads").catch(() => this.binlogState);
      this.facts = {
        mysql: m ? mysqlFacts(m, this.binlogState, (hp) => this.nodeOf(hp)) : null,
        // A fenced master (min-replicas-to-write INT_MAX, the way Redis starts here) is no
        // primary: it takes no writes and should become a replica. A master that refuses
        // writes only because no replica is in sync yet is still the primary.
        redis: this.redis ? (r ? {
          up: true, role: r.role === "master" ? (r.fenced ? "none" : "primary") : "replica", writable: r.role === "master" && !r.fenced,
          received: String(r.offset), applied: String(r.offset), source: r.role === "replica" ? this.nodeOf(r.masterHost ? `${r.masterHost}:${r.masterPort}` : null) : null,
        } : { up: false, role: "none", writable: false, received: "0", applied: "0", source: null }) : null,
        portal: p ? { mysql: p.fenced ? null : this.nodeOf(p.mysql), redis: p.fenced ? null : this.nodeOf(p.redis) } : null,
        vip: v ?? null,
      };
      this.factsAt = started;
      this.rate.sawFacts(factsShape(this.facts));
    } catch (e) {
      this.log.error("polling the local resources failed", { err: e as Error });
    }
  }

  // ---- local actions --------------------------------------------------------------------

  private async act(a: LocalAction, cfg: ClusterConfig): Promise<void> {
    this.busy.add(a.res);
    const t0 = performance.now();
    const addr = (n: string) => this.c.ha.nodes[n]?.address ?? "";
    try {
      let detail = "";
      switch (a.res) {
        case "mysql": {
          const db = this.mysql!;
          if (a.do === "promote") {
            if (this.facts.mysql?.role === "none") await db.bootstrapPrimary();
            const pos = await db.promote();
            this.steps.promote = Math.round(performance.now() - t0);
            detail = `promoted at ${pos || "-"}`;
          } else if (a.do === "demote") detail = `read-only, ${await db.demote(a.why)} client connections killed`;
          else if (a.do === "detach") await db.detach(a.why);
          else if (a.do === "replicate") {
            // Compare with what the new primary holds now, read from it directly, not from a report.
            const theirs = await primaryBinlogState(addr(a.from), this.c.mysql!.port, this.c.mysql!.repl_user, readSecret(this.c.mysql!.repl_password_file), this.c.mysql!.flavour === "mysql8");
            const check = await db.checkCanRejoin(theirs);
            if (!check.ok) { this.d.event("held-out", `mysql on ${this.self} has ${check.extra} that ${a.from} lacks: held out, needs re-cloning`); break; }
            await db.rejoin(addr(a.from), this.c.mysql!.port);
            detail = `replicating from ${a.from}`;
          }
          break;
        }
        case "redis": {
          const db = this.redis!;
          if (a.do === "promote") detail = `promoted at offset ${await db.promote()}`;
          else if (a.do === "demote") detail = `writes refused, ${await db.demote(a.why)} clients disconnected`;
          else if (a.do === "replicate") { await db.replicateFrom(addr(a.from), this.c.redis!.port); detail = `replicating from ${a.from}`; }
          break;
        }
        case "portal": {
          const r = await this.portal!.apply(this.portalDesired(a.mysql, a.redis, a.mysql === null && a.redis === null && cfg.assignments.mysql !== undefined));
          detail = `mysql -> ${a.mysql ?? "none"}, redis -> ${a.redis ?? "none"}${r.reloaded ? `, reloaded in ${r.reloadMs} ms` : ""}`;
          break;
        }
        case "vip": {
          if (a.do === "acquire") { const r = await this.vip!.acquire(); detail = `${this.c.ha.vip!.address} on ${this.c.ha.vip!.iface}; ${r.announce.detail}`; }
          else await this.vip!.release();
          break;
        }
      }
      const ms = Math.round(performance.now() - t0);
      this.d.event("lrm", `${a.res} ${a.do}${"from" in a ? ` from ${a.from}` : ""} done in ${ms} ms: ${detail || a.why} (${a.why})`, { res: a.res, do: a.do, ms });
    } catch (e) {
      this.d.event("lrm", `${a.res} ${a.do} FAILED: ${(e as Error).message} (${a.why})`, { res: a.res, do: a.do, failed: true });
    } finally {
      // still busy until facts read after the action are in: the plan must not see the old state
      await this.poll(true);
      this.busy.delete(a.res);
      this.report(true);
    }
  }

  private portalDesired(mysql: string | null, redis: string | null, fenced: boolean) {
    const p = this.c.portal!;
    const at = (n: string | null, port: number | undefined) => (n && port ? `${this.c.ha.nodes[n]?.address}:${port}` : null);
    return {
      fenced,
      mysql: this.c.mysql ? { listen: p.mysql_listen, primary: at(mysql, this.c.mysql.port) } : undefined,
      redis: this.c.redis ? { listen: p.redis_listen, primary: at(redis, this.c.redis.port) } : undefined,
      services: p.services.map((s) => ({ name: s.name, listen: s.listen, backends: s.backends, health: { path: s.health.path, intervalMs: s.health.interval_ms, rise: s.health.rise, fall: s.health.fall, timeoutMs: s.health.timeout_ms } })),
      healthy: this.health?.snapshot() ?? {},
    };
  }

  /** A health transition: re-render the portal with the same routes. */
  private route(): void {
    const f = this.facts.portal;
    if (this.portal && f && !this.busy.has("portal")) void this.portal.apply(this.portalDesired(f.mysql, f.redis, false)).catch(() => undefined);
  }

  // ---- the leader's actions -------------------------------------------------------------

  private async leaderAct(a: HaAction): Promise<void> {
    if (a.kind === "query") return this.d.send("*", { v: PROTOCOL_VERSION, t: "res-query" });
    if (a.kind === "commit") return this.d.node.command(a.cmd, (r) => this.mgr.commitDone(r.status === "ok", r.error, a.own));
    const cfg = this.fenceConfig(a.node);
    const deps = realFenceDeps(this.log);
    if (a.kind === "unfence") {
      const r = await unfence({ node: a.node, config: cfg }, { deps, onProof: (p) => this.d.event("unfence", `${a.node} ${p.level}: ${p.detail}`) });
      this.d.event("unfence", `${a.node} ${r.ok ? "unfenced" : "NOT unfenced"}`);
      return;
    }
    if (a.kind === "abort-fence") {
      const ac = this.fencing.get(a.node);
      if (!ac) return;
      this.fencing.delete(a.node);
      this.d.event("fence", `calling off the fence of ${a.node}: ${a.why}`);
      return ac.abort(new Error(a.why));
    }
    const t = this.d.config.timing;
    this.d.event("fence", `fencing ${a.node}: last heard ${a.lastContactAgoMs} ms ago`);
    const ac = new AbortController();
    this.fencing.get(a.node)?.abort(new Error("superseded by a new fence"));
    this.fencing.set(a.node, ac);
    const r = await fenceNode({ node: a.node, config: cfg, lastContactMs: performance.now() - Math.max(0, a.lastContactAgoMs) }, {
      deps, signal: ac.signal, timing: { quorumLossMs: t.quorumLossMs, watchdogMs: this.c.ha.watchdog_ms, marginMs: this.c.ha.fence_margin_ms, maxDrift: t.maxDrift },
      onProof: (p) => this.d.event("fence", `${a.node} level ${p.level} ${p.ok ? "CONFIRMED" : "not confirmed"} in ${p.ms} ms: ${p.detail}`, { node: a.node, level: p.level, ok: p.ok, ms: p.ms }),
    });
    if (this.fencing.get(a.node) === ac) this.fencing.delete(a.node);
    this.mgr.fenceDone(a.node, r.fenced, r.proofs, performance.now(), a.id);
  }

  private fenceConfig(node: string): NodeFenceConfig {
    const n = this.c.ha.nodes[node];
    const sw = this.c.ha.switches;
    return {
      bmc: n?.bmc ? { host: n.bmc.host, port: n.bmc.port, user: n.bmc.user, passwordFile: n.bmc.password_file, cipher: n.bmc.cipher, timeoutS: n.bmc.timeout_s, retries: n.bmc.retries } : undefined,
      switchPorts: (n?.ports ?? []).map((p) => {
        const s = sw[p.switch];
        return { port: p.port, switch: { name: p.switch, host: s.host, port: s.port, version: s.version, community: s.community, writeCommunity: s.write_community, timeoutMs: s.timeout_ms, v3: s.v3 ? { user: s.v3.user, authKey: s.v3.auth_key, privKey: s.v3.priv_key, authProtocol: s.v3.auth_protocol, privProtocol: s.v3.priv_protocol } : undefined } };
      }),
    };
  }

  // ---- reports --------------------------------------------------------------------------

  private db(svc: Svc): DbReport | null {
    const f = this.facts[svc];
    if (!f) return null;
    return dbReport(f, this.local.heldOut.get(svc) ?? null, svc === "mysql" ? { ...this.steps } : undefined);
  }

  private resReport(selfFenced: boolean): ResReport {
    return { v: PROTOCOL_VERSION, t: "res", mysql: this.db("mysql"), redis: this.db("redis"), portal: this.facts.portal ?? { mysql: null, redis: null }, vip: this.facts.vip ?? false, selfFenced };
  }

  private report(force: boolean): void {
    if (this.querySeq) return; // a query's fresh read is under way: its report follows
    const r = this.resReport(this.d.node.view().selfFenced);
    const key = JSON.stringify(r);
    const now = performance.now();
    const every = this.rate.calm ? CALM_REPORT_EVERY_MS : REPORT_EVERY_MS;
    if (!force && key === this.lastReport && now - this.lastReportAt < every) return;
    this.lastReport = key;
    this.lastReportAt = now;
    this.d.send("*", r);
  }

  /** For status and the console. */
  snapshot() {
    return { facts: this.facts, busy: [...this.busy], procedures: this.mgr.busy(), heldOut: Object.fromEntries(this.local.heldOut), peers: Object.fromEntries([...this.reports].map(([n, x]) => [n, x.r])) };
  }
}
