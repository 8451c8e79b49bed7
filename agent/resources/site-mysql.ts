// The MySQL replica of a remote site (issue 18, docs/site.md), over mysql2. It decides nothing
// (ha/site.ts does): it reads the remote's replication state, points it at a primary
// (asynchronously: the semi-sync replica side is switched OFF, so the remote's acknowledgement
// never counts for a commit of this room), records the primary's position there, and promotes it.
//
// Bookkeeping lives in the remote's own `bollard_site` database, written with sql_log_bin=0
// (MariaDB https://mariadb.com/kb/en/set-sql_log_bin/): never in its binlog, so its GTID
// position stays a pure copy of the primary's. `seen` is the primary's position as the primary
// room's leader last recorded it (what a promote compares against); `promoted` is the marker
// `bollard site promote` leaves, which the old room reads when it returns.
import mysql from "mysql2/promise";
import type { RemoteFacts } from "../ha/site.ts";
import type { Flavour, Sql } from "./mysql-flavour.ts";
import { formatGtid, parseGtid, union } from "./gtid.ts";
import { DriverError } from "./types.ts";

export interface SiteDriverOpts {
  flavour: Flavour;
  host: string;
  port: number;
  user: string;
  password: string;
  replUser: string;
  replPassword: string;
  callTimeoutMs?: number;
}

const SCHEMA = [
  "CREATE DATABASE IF NOT EXISTS bollard_site",
  "CREATE TABLE IF NOT EXISTS bollard_site.seen (id TINYINT PRIMARY KEY, gtid TEXT NOT NULL, at BIGINT NOT NULL, holder VARCHAR(64) NOT NULL)",
  "CREATE TABLE IF NOT EXISTS bollard_site.promoted (id TINYINT PRIMARY KEY, at BIGINT NOT NULL, by_name VARCHAR(64) NOT NULL, lost TEXT NOT NULL)",
];
/** errno: unknown database / table: nothing recorded yet */
const MISSING = new Set([1049, 1146]);

export class SiteMysqlDriver {
  private conn: mysql.Connection | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  readonly where: string;

  constructor(private readonly o: SiteDriverOpts) {
    this.where = `${o.host}:${o.port}`;
  }

  /** Never throws: an unreachable remote is `up: false` with the reason. */
  async status(): Promise<RemoteFacts> {
    try {
      return await this.call("status", async (c) => {
        const f = this.o.flavour;
        const [vars] = await c.query(f.gtidKind === "mariadb" ? "SELECT @@GLOBAL.read_only AS ro, @@GLOBAL.gtid_current_pos AS gtid" : "SELECT @@GLOBAL.read_only AS ro, @@GLOBAL.gtid_executed AS gtid");
        const v = (vars as Record<string, unknown>[])[0] ?? {};
        const executed = String(v.gtid ?? "");
        const rows = (await c.query(f.showReplicaStatus().sql))[0] as Record<string, unknown>[];
        const r = rows[0] ? f.parseReplicaStatus(rows[0]) : null;
        const configured = r !== null && r.source !== ":" && !r.source.startsWith(":");
        const received = r && r.gtidReceived ? this.union(r.gtidReceived, executed) : executed;
        return {
          up: true, readOnly: Number(v.ro) === 1, source: configured ? r!.source : null,
          // "Connecting" counts as running: it retries by itself (MASTER_CONNECT_RETRY); re-pointing
          // it to the same source would only start it again
          ioRunning: !!r?.receiverOn, sqlRunning: !!r?.sqlRunning, lagSeconds: r?.lagSeconds ?? null, lastError: r?.lastError ?? null,
          executed, received, promoted: await this.promotedMark(c), seen: await this.seenMark(c),
        } satisfies RemoteFacts;
      });
    } catch (e) {
      return { up: false, error: (e as Error).message, readOnly: true, source: null, ioRunning: false, sqlRunning: false, lagSeconds: null, lastError: null, executed: "", received: "", promoted: null, seen: null };
    }
  }

  /** Replicate from host:port, asynchronously, with GTID auto-positioning. */
  async repoint(host: string, port: number): Promise<void> {
    const f = this.o.flavour;
    await this.call(`repoint to ${host}:${port}`, async (c) => {
      for (const s of f.readOnly(true)) await c.query(s.sql);
      await c.query(f.stopReplica().sql);
      // the remote never acknowledges a semi-sync commit: only the room's own replicas do
      await c.query(`SET GLOBAL ${f.gtidKind === "mariadb" ? "rpl_semi_sync_slave_enabled" : "rpl_semi_sync_replica_enabled"} = OFF`).catch((e) => { if ((e as { errno?: number }).errno !== 1193) throw e; });
      await this.run(c, f.changeSource({ host, port, user: this.o.replUser, password: this.o.replPassword }));
      await c.query(f.startReplica().sql);
    });
  }

  /** The primary's position as this room's leader sees it now (what a promote will compare). */
  async record(gtid: string, holder: string, wallMs: number): Promise<void> {
    await this.call("record", async (c) => {
      await c.query("SET SESSION sql_log_bin = 0");
      try {
        await c.query("REPLACE INTO bollard_site.seen (id, gtid, at, holder) VALUES (1, ?, ?, ?)", [gtid, wallMs, holder]);
      } catch (e) {
        if (!MISSING.has((e as { errno?: number }).errno ?? 0)) throw e;
        for (const s of SCHEMA) await c.query(s);
        await c.query("REPLACE INTO bollard_site.seen (id, gtid, at, holder) VALUES (1, ?, ?, ?)", [gtid, wallMs, holder]);
      } finally {
        await c.query("SET SESSION sql_log_bin = 1");
      }
    });
  }

  /**
   * Make the remote the primary: stop receiving, apply what was received (up to drainMs), drop
   * the replication config, writable, and leave the marker the old room will read.
   */
  async promote(by: string, lost: string, wallMs: number, drainMs = 30_000): Promise<string> {
    const f = this.o.flavour;
    return this.call("promote", async (c) => {
      const rows = (await c.query(f.showReplicaStatus().sql))[0] as Record<string, unknown>[];
      const r = rows[0] ? f.parseReplicaStatus(rows[0]) : null;
      if (r) {
        await c.query(f.stopReplicaIo().sql);
        if (r.gtidReceived) {
          const w = f.waitForGtid(r.gtidReceived, drainMs);
          const [res] = await c.query(w.sql, w.params as (string | number)[]);
          const out = f.waitResult((res as Record<string, unknown>[])[0]?.r);
          if (out !== "reached") throw new Error(`the relay log was not applied within ${drainMs} ms (${out}): nothing changed but the receiver, which is stopped`);
        }
        await c.query(f.stopReplica().sql);
        await c.query(f.resetReplicaAll().sql);
      }
      for (const s of f.readOnly(false)) await c.query(s.sql);
      await c.query("SET SESSION sql_log_bin = 0");
      for (const s of SCHEMA) await c.query(s);
      await c.query("REPLACE INTO bollard_site.promoted (id, at, by_name, lost) VALUES (1, ?, ?, ?)", [wallMs, by, lost]);
      await c.query("SET SESSION sql_log_bin = 1");
      const [g] = await c.query(f.gtidKind === "mariadb" ? "SELECT @@GLOBAL.gtid_current_pos AS gtid" : "SELECT @@GLOBAL.gtid_executed AS gtid");
      return String((g as Record<string, unknown>[])[0]?.gtid ?? "");
    }, drainMs + 5000);
  }

  async close(): Promise<void> {
    const c = this.conn;
    this.conn = null;
    await c?.end().catch(() => c.destroy());
  }

  private async promotedMark(c: mysql.Connection): Promise<RemoteFacts["promoted"]> {
    try {
      const [rows] = await c.query("SELECT at, by_name, lost FROM bollard_site.promoted WHERE id = 1");
      const r = (rows as Record<string, unknown>[])[0];
      return r ? { at: Number(r.at), by: String(r.by_name), lost: String(r.lost) } : null;
    } catch (e) {
      if (MISSING.has((e as { errno?: number }).errno ?? 0)) return null;
      throw e;
    }
  }

  private async seenMark(c: mysql.Connection): Promise<RemoteFacts["seen"]> {
    try {
      const [rows] = await c.query("SELECT gtid, at, holder FROM bollard_site.seen WHERE id = 1");
      const r = (rows as Record<string, unknown>[])[0];
      return r ? { gtid: String(r.gtid), at: Number(r.at), holder: String(r.holder) } : null;
    } catch (e) {
      if (MISSING.has((e as { errno?: number }).errno ?? 0)) return null;
      throw e;
    }
  }

  private union(a: string, b: string): string {
    const x = parseGtid(this.o.flavour.gtidKind, a), y = parseGtid(this.o.flavour.gtidKind, b);
    return x.ok && y.ok ? formatGtid(union(x.value, y.value)) : b;
  }

  private async run(c: mysql.Connection, s: Sql): Promise<void> {
    await c.query(s.sql, s.params as (string | number)[]);
  }

  /** Serialized, bounded: on a timeout or error the connection is dropped and the next call reconnects. */
  private call<T>(what: string, fn: (c: mysql.Connection) => Promise<T>, timeoutMs = this.o.callTimeoutMs ?? 2000): Promise<T> {
    const run = async (): Promise<T> => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, rej) => { timer = setTimeout(() => rej(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs); });
      try {
        return await Promise.race([(async () => {
          if (!this.conn) {
            this.conn = await mysql.createConnection({ host: this.o.host, port: this.o.port, user: this.o.user, password: this.o.password, connectTimeout: Math.min(timeoutMs, 2000), supportBigNumbers: true, bigNumberStrings: true });
            this.conn.on("error", () => { this.conn = null; });
          }
          return fn(this.conn);
        })(), timeout]);
      } catch (e) {
        const c = this.conn;
        this.conn = null;
        c?.destroy();
        // a mysql2 error can carry the SQL with its parameters (the replication password): keep the message only
        const msg = String((e as Error).message ?? e).replace(/MASTER_PASSWORD\s*=\s*'[^']*'/gi, "MASTER_PASSWORD=<redacted>");
        throw new DriverError("site", `${this.where}: ${what}: ${msg}`);
      } finally {
        clearTimeout(timer);
      }
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }
}
