// What the HA runtime knows of its own node's MySQL, Redis, portal and VIP: read by the
// drivers, each bounded on its own, into the facts the local manager (ha/local.ts) plans from
// and the peers get in reports. Besides roles and positions it keeps, per server:
//  - how long it has not answered (a dead or hung server: issue 22 item 1), and the last
//    positions it answered with (a down server that had more must not be passed over);
//  - its incarnation (a new status connection, or a new Redis run_id: issue 22 item 2);
//  - for a replica, how long ago something last came from its source (issue 20 item 4);
//  - the proof this agent fenced it, until it answers again;
// and whether nginx runs and answers its health check, here and (on the VIP holder) through
// the VIP as clients reach it.
import { request } from "node:http";
import type { DbReport } from "../bus/messages.ts";
import type { Config } from "../config/schema.ts";
import type { Logger } from "../env/env.ts";
import type { Svc } from "../ha/flags.ts";
import type { DbFacts, PortalFacts } from "../ha/local.ts";
import type { MysqlDriver, MysqlDriverStatus } from "../resources/mysql.ts";
import { HEALTH_PATH } from "../resources/portal-render.ts";
import type { PortalDriver } from "../resources/portal.ts";
import { formatAofPosition } from "../resources/redis-aof.ts";
import type { RedisDriver } from "../resources/redis.ts";
import type { VipDriver } from "../resources/vip.ts";

/** a connection refused: nothing listens on the port (the process is gone), not a slow server */
const REFUSED = /ECONNREFUSED/;
/** A health check of the portal waits this long for nginx's answer. */
const PORTAL_CHECK_MS = 500;

/**
 * The local MySQL as the managers and the alarms see it. `repl` (threads, Seconds_Behind_Master,
 * the last error) is for the alarms' replica-broken and repl-lag rules only: reports leave it out.
 */
export function mysqlFacts(m: MysqlDriverStatus, binlogState: string, nodeOf: (hostPort: string | null) => string | null): DbFacts {
  return {
    up: m.up, role: m.role, writable: m.up && !m.readOnly && m.role !== "replica", received: m.gtidReceived ?? m.gtidExecuted,
    applied: binlogState || m.gtidExecuted, source: m.ioRunning || m.sqlRunning ? nodeOf(m.source) : null,
    repl: m.role === "replica" ? { ioRunning: m.ioRunning, sqlRunning: m.sqlRunning, lagSeconds: m.lagSeconds, lastError: m.lastError } : undefined,
    inst: m.incarnation || undefined, receiving: m.role === "replica" ? m.receiverOn : undefined,
  };
}

/** What peers get of a resource's facts, field by field: the report's schema is strict. */
export function dbReport(f: DbFacts, heldOut: string | null, steps?: Record<string, number>, stuck?: string | null): DbReport {
  const { up, role, writable, received, applied, source } = f;
  return {
    up, role, writable, received, applied, source, heldOut, steps,
    ...(f.inst ? { inst: f.inst } : {}),
    ...(f.recvAgoMs !== undefined ? { recvAgoMs: f.recvAgoMs === null ? null : Math.round(f.recvAgoMs) } : {}),
    ...(!f.up && f.downMs !== undefined ? { downMs: Math.round(f.downMs) } : {}),
    ...(f.fenced ? { fenced: f.fenced.slice(0, 300) } : {}),
    ...(stuck ? { stuck: stuck.slice(0, 300) } : {}),
  };
}

/** When a thing last answered, to say how long it has not. */
class Answered {
  private okAt: number | null = null;
  constructor(private readonly since: number) {}
  saw(ok: boolean, at: number): void {
    if (ok) this.okAt = at;
  }
  downMs(now: number): number {
    return Math.max(0, now - (this.okAt ?? this.since));
  }
}

export interface LocalDrivers {
  mysql: MysqlDriver | null;
  redis: RedisDriver | null;
  portal: PortalDriver | null;
  vip: VipDriver | null;
}

export interface LocalFactsNow {
  mysql: DbFacts | null;
  redis: DbFacts | null;
  portal: PortalFacts | null;
  vip: boolean | null;
  /** the portal answers its health check (and through the VIP when this node holds it) */
  portalOk: boolean | null;
}

export class LocalReader {
  facts: LocalFactsNow = { mysql: null, redis: null, portal: null, vip: null, portalOk: null };
  private binlogState = "";
  private readonly answered: Record<Svc | "portal", Answered>;
  /** last positions a server answered with, kept while it does not answer */
  private readonly last: Partial<Record<Svc, { received: string; applied: string }>> = {};
  private readonly recv: Partial<Record<Svc, { mark: string; at: number }>> = {};
  /** the proof that this agent fenced the server, until it answers again */
  readonly fenced: Partial<Record<Svc, string>> = {};
  /** where the Redis incarnation `runId` stood when it started from its AOF */
  private aof: { runId: string; pos: string | null } | null = null;
  /** the server's data differs from the primary's (ha-verify.ts): sticky until re-cloned */
  readonly diverged: Partial<Record<Svc, string>> = {};

  constructor(
    private readonly dr: LocalDrivers,
    private readonly c: NonNullable<Config["ha"]>,
    private readonly self: string,
    private readonly log: Logger,
    private readonly nodeOf: (hostPort: string | null) => string | null,
    now: number,
  ) {
    this.answered = { mysql: new Answered(now), redis: new Answered(now), portal: new Answered(now) };
  }

  /** Reads everything once; each resource is bounded by its driver (a hung server costs its timeout). */
  async read(now: () => number): Promise<void> {
    const { mysql, redis, portal, vip } = this.dr;
    let redisError = "";
    const [m, r, p, v, h] = await Promise.all([
      mysql?.status(), redis?.info().catch((e: Error) => { redisError = e.message; return null; }), portal?.status(), vip?.held().catch(() => null), portal ? this.portalAnswers() : null,
    ]);
    const t = now();
    if (m && mysql && m.up) this.binlogState = await mysql.gtidBinlogState("reads").catch(() => this.binlogState);
    const mf = m ? this.track("mysql", { ...mysqlFacts(m, this.binlogState, this.nodeOf), refused: !m.up && REFUSED.test(m.lastError ?? "") }, m.recvMark, t) : null;
    // A fenced master (min-replicas-to-write INT_MAX, the way Redis starts here) is no primary: it
    // takes no writes and should become a replica. A master that refuses writes only because no
    // replica is in sync yet is still the primary. A Redis that booted as a replica of nothing
    // (the lab's and the image's boot state: a restarted empty master must not feed its replicas
    // an empty dataset, issue 22) is a replica with no source.
    const source = r?.role === "replica" ? this.nodeOf(r.masterHost ? `${r.masterHost}:${r.masterPort}` : null) : null;
    // A Redis that (re)started from its AOF and has replicated nothing since: its offset says
    // nothing, its AOF does (redis-aof.ts). Read once per incarnation, before it is reported.
    const pos = r?.role === "replica" && source === null && !r.linkUp ? await this.aofPosition(r.runId) : null;
    const rf: DbFacts | null = this.dr.redis ? this.track("redis", r ? {
      up: true, role: r.role === "master" ? (r.fenced ? "none" : "primary") : "replica", writable: r.role === "master" && !r.fenced,
      received: pos ?? String(r.offset), applied: pos ?? String(r.offset), source,
      inst: r.runId || undefined,
    } : { up: false, role: "none", writable: false, received: "0", applied: "0", source: null, refused: REFUSED.test(redisError) }, null, t) : null;
    this.answered.portal.saw(h === true, t);
    this.facts = {
      mysql: mf,
      redis: rf,
      portal: p ? { mysql: p.fenced ? null : this.nodeOf(p.mysql), redis: p.fenced ? null : this.nodeOf(p.redis), running: p.running, downMs: this.answered.portal.downMs(t) } : null,
      vip: v ?? null,
      portalOk: h,
    };
  }

  /** `aof:STAMP+N` for the Redis incarnation `runId`, read from its AOF once; null without one. */
  private async aofPosition(runId: string): Promise<string | null> {
    if (this.aof?.runId === runId) return this.aof.pos;
    let pos: string | null = null;
    try {
      const p = await this.dr.redis!.aofPosition();
      if (p) {
        pos = formatAofPosition(p);
        this.log.info(`redis restarted from its AOF at stamp ${p.stamp}, ${p.after} commands after it${p.exact ? "" : " (at least: the stamp was folded into the base by a rewrite)"}`, { runId, files: p.files, bytes: p.bytes });
      }
    } catch (e) {
      // read again next time; meanwhile the lowest position there is: never picked over another
      this.log.warn("redis: cannot read where its AOF stands", { runId, error: (e as Error).message });
      return formatAofPosition({ stamp: 0, after: 0 });
    }
    this.aof = { runId, pos };
    return pos;
  }

  /** Adds how long the server has not answered, its last positions, and its receive activity. */
  private track(svc: Svc, f: DbFacts, recvMark: string | null, now: number): DbFacts {
    this.answered[svc].saw(f.up, now);
    if (f.up) {
      this.last[svc] = { received: f.received, applied: f.applied };
      if (this.fenced[svc]) { this.log.info(`${svc} answers again after its fence`, { proof: this.fenced[svc] }); delete this.fenced[svc]; }
    }
    const last = this.last[svc];
    let recvAgoMs: number | null | undefined;
    if (f.role === "replica" && recvMark !== null) {
      const prev = this.recv[svc];
      if (!prev || prev.mark !== recvMark) this.recv[svc] = { mark: recvMark, at: now };
      recvAgoMs = prev && prev.mark === recvMark ? now - prev.at : 0;
    } else if (svc === "mysql") {
      delete this.recv[svc];
      recvAgoMs = f.role === "replica" ? null : undefined;
    }
    return {
      ...f,
      ...(f.up || !last ? {} : { received: last.received, applied: last.applied }),
      downMs: this.answered[svc].downMs(now),
      fenced: this.fenced[svc] ?? null,
      ...(this.diverged[svc] ? { diverged: this.diverged[svc] } : {}),
      ...(recvAgoMs !== undefined ? { recvAgoMs } : {}),
    };
  }

  /** GET /bollard-health from nginx here, and through the VIP when this node holds it. */
  private async portalAnswers(): Promise<boolean> {
    const p = this.c.portal!;
    const port = Number(/(\d+)$/.exec(p.health_listen)?.[1]);
    const bind = /^(\d+\.\d+\.\d+\.\d+):/.exec(p.health_listen)?.[1];
    const own = this.c.ha.nodes[this.self]?.address;
    const hosts = [bind ?? "127.0.0.1"];
    const vip = this.c.ha.vip?.address.split("/")[0];
    if (vip && !bind && this.facts.vip) hosts.push(vip);
    else if (!bind && own) hosts.push(own);
    const r = await Promise.all(hosts.map((h) => httpOk(h, port, HEALTH_PATH, PORTAL_CHECK_MS)));
    return r.every(Boolean);
  }
}

/** GET http://host:port/path answered 200 within timeoutMs. */
export function httpOk(host: string, port: number, path: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host, port, path, method: "GET", timeout: timeoutMs, agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode === 200));
      res.on("error", () => resolve(false));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(false));
    req.end();
  });
}
