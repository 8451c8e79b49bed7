// The HA runtime: the I/O around the pure managers. It reads the local MySQL, Redis, portal
// and VIP (ha-facts.ts); feeds LocalManager and, on the acting leader, HaManager; carries out
// their actions (ha-actions.ts, ha-leader.ts); and exchanges resource reports with the peers
// over the bus. Every action and its outcome is an event (the failover timeline). An action
// that keeps failing is tried a bounded number of times, then again only after a back-off,
// and reported as stuck so that the leader passes the node over (issue 20 item 3).
import { readFileSync } from "node:fs";
import type { WritesDownInput } from "../alarms/types.ts";
import type { ClusterConfig, DbReport, Message, ResReport } from "../bus/messages.ts";
import { PROTOCOL_VERSION } from "../bus/messages.ts";
import type { ClusterNode } from "../cluster/node.ts";
import type { Config } from "../config/schema.ts";
import type { Logger } from "../env/env.ts";
import { realTimers } from "../env/real.ts";
import type { Svc } from "../ha/flags.ts";
import { LocalManager, type LocalAction } from "../ha/local.ts";
import { HaManager, type Report, type WritesDown } from "../ha/manager.ts";
import { PollRate, factsShape } from "../ha/poll-rate.ts";
import { cmpGtid, subsetOf } from "../resources/gtid.ts";
import { HealthChecker, type HealthTransition } from "../resources/health.ts";
import { flavourByName } from "../resources/mysql-flavour.ts";
import { MysqlDriver } from "../resources/mysql.ts";
import type { PortalDesired } from "../resources/portal-render.ts";
import { PortalDriver } from "../resources/portal.ts";
import { RedisDriver } from "../resources/redis.ts";
import { STAMP_EVERY_MS, cmpRedisPositions } from "../resources/redis-aof.ts";
import { VipDriver } from "../resources/vip.ts";
import { LocalActions } from "./ha-actions.ts";
import { LocalReader, dbReport, type LocalDrivers } from "./ha-facts.ts";
import { LeaderIo } from "./ha-leader.ts";
import { DataCheck } from "./ha-verify.ts";
import { SiteRuntime, type SitePrimary } from "./site-runtime.ts";

export { dbReport, mysqlFacts } from "./ha-facts.ts";

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
/** an action that failed this many times in a row is stuck: reported, and tried again only after STUCK_RETRY_MS */
const STUCK_AFTER = 3;
const STUCK_RETRY_MS = 30_000;
/** a server the agent started is given this long to answer before it is started again */
const START_SETTLE_MS = 5000;
const readSecret = (f: string) => readFileSync(f, "utf8").trim();

export class HaRuntime {
  private readonly c: NonNullable<Config["ha"]>;
  private readonly self: string;
  private readonly log: Logger;
  private readonly drivers: LocalDrivers = { mysql: null, redis: null, portal: null, vip: null };
  private health: HealthChecker | null = null;
  private reader!: LocalReader;
  private actions!: LocalActions;
  private readonly leader: LeaderIo;
  private check: DataCheck | null = null;
  /** the remote sites' replicas (issue 18), null without `sites:` */
  private site: SiteRuntime | null = null;
  private readonly busy = new Set<string>();
  private readonly reports = new Map<string, Report>();
  private readonly local: LocalManager;
  private readonly mgr: HaManager;
  private readonly steps: Record<string, number> = {};
  private readonly promoted: { discarded: string | null } = { discarded: null };
  /** the last action done per resource, and when */
  private readonly lastDone = new Map<string, { do: string; at: number }>();
  /** consecutive failures of the last action per resource */
  private readonly failures = new Map<string, { do: string; n: number; at: number; error: string }>();
  private leading = false;
  private polling: Promise<void> | null = null;
  /** 250 ms while anything moves, 1 s when calm (ha/poll-rate.ts); step() starts the reads */
  private readonly rate = new PollRate(performance.now());
  private lastReport = "";
  private lastReportAt = -Infinity;
  /** when the read that gave the facts started (monotonic ms) */
  private factsAt = -Infinity;
  /** a leader's res-query waits for a fresh read (its number), 0 when none does */
  private querySeq = 0;
  private stopped = false;
  /** the Redis stamps: when the last was sent, the offset after it, its number */
  private readonly stamps: { at: number; offset: number; n: number; busy: boolean; inst?: string } = { at: -Infinity, offset: -1, n: 0, busy: false };

  constructor(private readonly d: HaRuntimeDeps) {
    this.c = d.config.ha!;
    this.self = d.config.cluster.node;
    this.log = d.log.child("ha");
    const h = this.c.ha;
    this.local = new LocalManager(this.self, (kind, detail) => d.event(kind, detail), { serviceFailMs: h.service_fail_ms, restartHolderAfterMs: 10_000 });
    this.mgr = new HaManager(this.self, {
      antiFlapMs: h.anti_flap_ms, stepTimeoutMs: h.step_timeout_ms, fenceTimeoutMs: h.fence_timeout_ms, serviceFailMs: h.service_fail_ms,
      watchdogMs: h.watchdog_ms, fenceMarginMs: h.fence_margin_ms, writesDownAlarmMs: h.writes_down_alarm_ms,
    }, { event: d.event });
    this.leader = new LeaderIo({ config: d.config, node: d.node, send: d.send, log: this.log, event: d.event }, this.mgr);
  }

  async start(): Promise<void> {
    const { mysql, redis, portal, ha } = this.c;
    const me = ha.nodes[this.self];
    if (!me) throw new Error(`ha.nodes has no entry for this node (${this.self})`);
    const dr = this.drivers;
    if (mysql) {
      const flavour = flavourByName(mysql.flavour)!;
      dr.mysql = new MysqlDriver({
        flavour, host: mysql.socket ? undefined : me.address, port: mysql.port, socketPath: mysql.socket, user: mysql.user,
        password: readSecret(mysql.password_file), replUser: mysql.repl_user, replPassword: readSecret(mysql.repl_password_file),
        replHost: mysql.repl_host, log: this.log, semiSyncTimeoutMs: mysql.semi_sync_timeout_ms,
        // a hung server fails its status read within a second: the LRM fences it after service_fail_ms
        callTimeoutMs: 1000,
      });
    }
    if (mysql && this.d.config.sites?.length) this.site = new SiteRuntime({ config: this.d.config, log: this.log.child("site"), command: (c, done) => this.d.node.command(c, done), event: this.d.event });
    if (dr.mysql) this.check = new DataCheck(dr.mysql, mysql!, this.self, this.d.event, this.log, (what) => { this.reader.diverged.mysql = what; });
    if (redis) {
      dr.redis = new RedisDriver({ host: me.address, port: redis.port, password: redis.password_file ? readSecret(redis.password_file) : undefined, announceIp: me.address, log: this.log, minReplicasMaxLagS: redis.min_replicas_max_lag_s });
    }
    if (ha.vip) dr.vip = new VipDriver({ address: ha.vip.address, iface: ha.vip.iface, log: this.log });
    this.reader = new LocalReader(dr, this.c, this.self, this.log, (hp) => this.nodeOf(hp), performance.now());
    this.actions = new LocalActions({ c: this.c, self: this.self, drivers: dr, reader: this.reader, event: this.d.event, steps: this.steps, promoted: this.promoted, portalDesired: (m, r, f) => this.portalDesired(m, r, f) });
    if (portal) {
      dr.portal = new PortalDriver({ prefix: portal.prefix, log: this.log });
      const services = portal.services.map((s) => ({ name: s.name, listen: s.listen, backends: s.backends, health: { path: s.health.path, intervalMs: s.health.interval_ms, rise: s.health.rise, fall: s.health.fall, timeoutMs: s.health.timeout_ms } }));
      if (services.length) {
        this.health = new HealthChecker({
          services, timers: realTimers(), now: () => performance.now(), log: this.log,
          onTransition: (t: HealthTransition) => { this.d.event("health", `${t.service} backend ${t.backend} ${t.from} => ${t.to} after ${t.after}: ${t.detail}`); this.route(); },
        });
        this.health.start();
      }
      await dr.portal.apply(this.portalDesired(null, null, true));
      await dr.portal.start();
    }
    await this.poll();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.health?.stop();
    await Promise.allSettled([this.drivers.mysql?.close(), this.drivers.redis?.close(), this.site?.stop()]);
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
    const now = performance.now();
    if (this.check) {
      this.check.step(now, this.reader.facts.mysql, [...this.reports].filter(([n, x]) => n !== this.self && x.r.mysql?.source === this.self && x.r.mysql.role === "replica").map(([n]) => n));
    }
    const f = this.reader.facts;
    const plan = this.local.plan({
      now, view, mysql: f.mysql, redis: f.redis, portal: f.portal, vip: f.vip,
      alive: (n) => n === this.self || view.peers.some((p) => p.name === n && p.alive),
      peerApplied: (n, svc) => this.reports.get(n)?.r[svc]?.applied ?? null,
      peerVip: (n) => this.reports.get(n)?.r.vip ?? false,
      peerPrimary: (n, svc) => { const r = n === this.self ? f[svc] : this.reports.get(n)?.r[svc]; return !!r && r.up && r.writable && r.role === "primary"; },
      extra: (svc, mine, theirs) => this.extra(svc, mine, theirs),
    }, this.busy);
    for (const a of plan) if (!this.backingOff(a, now)) void this.act(a, view.committed);
    this.stamp(now, view.committed.assignments.redis === this.self);
    this.report(false);
    this.rate.step(now, { view, busy: this.busy.size, procedures: this.mgr.busy().length, planned: plan.length, query: this.querySeq !== 0 });
    if (!this.polling && this.rate.due(now)) void this.poll();
    const lead = view.role === "leader" && view.acting;
    this.leader.probe(view, now);
    this.site?.step(now, view, lead, this.sitePrimary(view));
    if (lead) {
      // as of when its facts were read, like a peer's answer to a query: pickCandidate wants
      // positions read after the fence
      this.reports.set(this.self, { r: this.resReport(view.selfFenced), at: this.factsAt });
      for (const a of this.mgr.tick({ now: performance.now(), wall: Date.now(), view, reports: this.reports, cmp: (svc, a, b) => this.cmp(svc, a, b), probes: this.leader.probes, siteHold: this.site ? () => this.site!.hold(performance.now()) : undefined })) void this.leader.act(a);
    } else if (this.leading) {
      this.mgr.reset("this node no longer leads with a lease");
      this.leader.stopLeading(`${this.self} no longer leads`);
    }
    this.leading = lead;
  }

  /**
   * On the Redis primary: INCR bollard:stamp when writes went by since the last stamp, at most
   * every STAMP_EVERY_MS (redis-aof.ts): what orders the servers after a whole-room power cut.
   * A refused stamp (fenced, no replica in sync) is tried again at the next step.
   */
  private stamp(now: number, holder: boolean): void {
    const f = this.reader.facts.redis;
    const s = this.stamps;
    if (f && f.inst !== s.inst) Object.assign(s, { inst: f.inst, offset: -1 }); // a restarted server's offsets start again
    if (!holder || !f?.writable || s.busy || now - s.at < STAMP_EVERY_MS || Number(f.applied) <= s.offset) return;
    s.busy = true;
    s.at = now;
    this.drivers.redis!.stamp().then((r) => { s.offset = r.offset; s.n = r.stamp; }, (e: Error) => this.log.debug("redis stamp refused", { error: e.message }))
      .finally(() => { s.busy = false; });
  }

  /** The MySQL holder as the reports say, for the remote sites. */
  private sitePrimary(view: ReturnType<ClusterNode["view"]>): SitePrimary {
    const holder = view.committed.assignments.mysql ?? null;
    const r = !holder ? null : holder === this.self ? this.db("mysql") : this.reports.get(holder)?.r.mysql ?? null;
    // a holder not heard is not a primary to point the remote at, whatever its last report said
    const heard = holder === this.self || view.peers.some((p) => p.name === holder && p.alive);
    return { holder, writable: heard && !!r && r.up && r.writable && r.role === "primary", gtid: r?.up ? r.applied : null };
  }

  /** The remote sites' alarms, as the acting leader judges them (empty elsewhere). */
  siteAlarms() {
    return this.site?.alarms() ?? null;
  }

  /** Services without a writable primary clients can reach, as the leader sees them (the alarm). */
  writesDown(): WritesDown[] {
    return this.leading ? this.mgr.writesDown() : [];
  }

  /** What the alarm rules judge of it (alarms/types.ts WritesDownInput). */
  writesInput(): WritesDownInput {
    return { leading: this.leading, services: [...(this.c.mysql ? ["mysql"] : []), ...(this.c.redis ? ["redis"] : [])], down: this.leading ? this.mgr.judgedWritesDown() : [] };
  }

  private cmp(svc: Svc, a: string, b: string): number | null {
    if (svc === "redis") return cmpRedisPositions(a, b);
    return cmpGtid(this.c.mysql?.flavour === "mysql8" ? "mysql" : "mariadb", a, b);
  }

  private extra(svc: Svc, mine: string, theirs: string): string | null {
    if (svc === "redis") return null; // Redis resyncs from its new master; loss is bounded by min-replicas
    const r = subsetOf(this.c.mysql?.flavour === "mysql8" ? "mysql" : "mariadb", mine, theirs);
    if (!r.ok) return `unreadable positions (${r.error})`;
    return r.value.subset ? null : r.value.extra;
  }

  private nodeOf(hostPort: string | null): string | null {
    if (!hostPort) return null;
    const host = hostPort.replace(/:\d+$/, "");
    return Object.entries(this.c.ha.nodes).find(([, v]) => v.address === host)?.[0] ?? null;
  }

  // ---- facts ----------------------------------------------------------------------------

  /**
   * Reads the local resources. A call while a read is in flight waits for it and, with
   * `fresh`, reads again: after an action the facts must come from a read that started after
   * it, or the next plan sees the old state and repeats the action (a promote done three
   * times, a VIP acquired twice: seen in the lab under load).
   */
  private poll(fresh = false): Promise<void> {
    if (this.stopped) return Promise.resolve();
    // a read that starts once the one in flight is over starts after the caller asked
    if (this.polling) return fresh ? this.polling.then(() => this.poll()) : this.polling;
    this.rate.started(performance.now());
    const started = performance.now();
    const p = this.reader.read(() => performance.now())
      .then(() => { this.factsAt = started; this.rate.sawFacts(factsShape(this.reader.facts)); })
      .catch((e) => this.log.error("polling the local resources failed", { err: e as Error }))
      .finally(() => { if (this.polling === p) this.polling = null; });
    this.polling = p;
    return p;
  }

  // ---- local actions --------------------------------------------------------------------

  /** An action that is stuck waits out its back-off; a different action of the resource does not. */
  private backingOff(a: LocalAction, now: number): boolean {
    const f = this.failures.get(a.res);
    if (f && f.do === a.do && f.n >= STUCK_AFTER && now - f.at < STUCK_RETRY_MS) return true;
    // a server just started takes a moment to answer: not started again meanwhile
    const d = this.lastDone.get(a.res);
    return a.do === "start" && d?.do === "start" && now - d.at < START_SETTLE_MS;
  }

  private async act(a: LocalAction, cfg: ClusterConfig): Promise<void> {
    this.busy.add(a.res);
    const t0 = performance.now();
    try {
      const detail = await this.actions.run(a, cfg);
      this.failures.delete(a.res);
      this.lastDone.set(a.res, { do: a.do, at: performance.now() });
      const ms = Math.round(performance.now() - t0);
      this.d.event("lrm", `${a.res} ${a.do}${"from" in a ? ` from ${a.from}` : ""} done in ${ms} ms: ${detail || a.why} (${a.why})`, { res: a.res, do: a.do, ms });
    } catch (e) {
      const prev = this.failures.get(a.res);
      const n = prev?.do === a.do ? prev.n + 1 : 1;
      const error = (e as Error).message;
      this.failures.set(a.res, { do: a.do, n, at: performance.now(), error });
      const more = n >= STUCK_AFTER ? `; failed ${n} times in a row: tried again in ${STUCK_RETRY_MS / 1000} s, and reported as stuck` : "";
      this.d.event("lrm", `${a.res} ${a.do} FAILED: ${error} (${a.why})${more}`, { res: a.res, do: a.do, failed: true });
    } finally {
      // still busy until facts read after the action are in: the plan must not see the old state
      await this.poll(true);
      this.busy.delete(a.res);
      this.report(true);
    }
  }

  private portalDesired(mysql: string | null, redis: string | null, fenced: boolean): PortalDesired {
    const p = this.c.portal!;
    const at = (n: string | null, port: number | undefined) => (n && port ? `${this.c.ha.nodes[n]?.address}:${port}` : null);
    return {
      fenced,
      mysql: this.c.mysql ? { listen: p.mysql_listen, primary: at(mysql, this.c.mysql.port) } : undefined,
      redis: this.c.redis ? { listen: p.redis_listen, primary: at(redis, this.c.redis.port) } : undefined,
      services: p.services.map((s) => ({ name: s.name, listen: s.listen, backends: s.backends, health: { path: s.health.path, intervalMs: s.health.interval_ms, rise: s.health.rise, fall: s.health.fall, timeoutMs: s.health.timeout_ms } })),
      healthy: this.health?.snapshot() ?? {},
      healthListen: p.health_listen,
    };
  }

  /** A health transition: re-render the portal with the same routes. */
  private route(): void {
    const f = this.reader.facts.portal;
    if (this.drivers.portal && f && !this.busy.has("portal")) void this.drivers.portal.apply(this.portalDesired(f.mysql, f.redis, false)).catch(() => undefined);
  }

  // ---- reports --------------------------------------------------------------------------

  private db(svc: Svc): DbReport | null {
    const f = this.reader.facts[svc];
    if (!f) return null;
    const fail = this.failures.get(svc);
    const stuck = fail && fail.n >= STUCK_AFTER ? `${fail.do}: ${fail.error}` : null;
    const r = dbReport(f, this.local.heldOut.get(svc) ?? null, svc === "mysql" ? { ...this.steps } : undefined, stuck);
    return svc === "mysql" && this.promoted.discarded ? { ...r, discarded: this.promoted.discarded } : r;
  }

  private resReport(selfFenced: boolean): ResReport {
    const f = this.reader.facts;
    const portal = f.portal ? { mysql: f.portal.mysql, redis: f.portal.redis } : { mysql: null, redis: null };
    return {
      v: PROTOCOL_VERSION, t: "res", mysql: this.db("mysql"), redis: this.db("redis"), portal, vip: f.vip ?? false, selfFenced,
      ...(f.portalOk === null ? {} : { portalOk: f.portalOk }),
    };
  }

  private report(force: boolean): void {
    if (this.querySeq) return; // a query's fresh read is under way: its report follows
    const r = this.resReport(this.d.node.view().selfFenced);
    // how long ago things happened changes at every read: not a change worth a report
    const key = JSON.stringify(r, (k, v) => (k === "recvAgoMs" || k === "downMs" ? undefined : v));
    const now = performance.now();
    const every = this.rate.calm ? CALM_REPORT_EVERY_MS : REPORT_EVERY_MS;
    if (!force && key === this.lastReport && now - this.lastReportAt < every) return;
    this.lastReport = key;
    this.lastReportAt = now;
    this.d.send("*", r);
  }

  /** For status and the console. */
  snapshot() {
    return {
      facts: this.reader.facts, busy: [...this.busy], procedures: this.mgr.busy(), heldOut: Object.fromEntries(this.local.heldOut),
      peers: Object.fromEntries([...this.reports].map(([n, x]) => [n, x.r])), writesDown: this.writesDown(), sites: this.site?.snapshot() ?? [],
    };
  }
}
