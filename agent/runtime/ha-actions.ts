// The local manager's actions (ha/local.ts LocalAction), carried out with this node's drivers:
// promote, demote, detach and replicate a MySQL or Redis server; fence a server that does not
// answer (kill it and confirm it gone: resources/process.ts) and start it again with the
// configured command; route the portal, restart a dead or hung nginx; take or give up the VIP.
// Each returns what it did, for the event log; a failure throws with what was tried.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import mysql from "mysql2/promise";
import type { ClusterConfig } from "../bus/messages.ts";
import type { Config } from "../config/schema.ts";
import type { LocalAction } from "../ha/local.ts";
import type { PortalDesired } from "../resources/portal-render.ts";
import { killListener } from "../resources/process.ts";
import type { LocalDrivers, LocalReader } from "./ha-facts.ts";

const readSecret = (f: string) => readFileSync(f, "utf8").trim();
/** process names of each server, for the local fence: a listener of another name is never killed */
const NAMES = { mysql: ["mariadbd", "mysqld"], redis: ["redis-server"] } as const;
/** a start command gets this long */
const START_TIMEOUT_MS = 30_000;

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

export interface ActionDeps {
  c: NonNullable<Config["ha"]>;
  self: string;
  drivers: LocalDrivers;
  reader: LocalReader;
  event(kind: string, detail: string): void;
  /** timings of the last local failover steps, reported to the leader */
  steps: Record<string, number>;
  /** what the last promotion discarded (an incomplete event group's GTID), reported to the leader */
  promoted: { discarded: string | null };
  portalDesired(mysql: string | null, redis: string | null, fenced: boolean): PortalDesired;
}

export class LocalActions {
  constructor(private readonly d: ActionDeps) {}

  /** Does `a`; returns the detail for the event log. */
  async run(a: LocalAction, cfg: ClusterConfig): Promise<string> {
    const t0 = performance.now();
    const { c, drivers } = this.d;
    const addr = (n: string) => c.ha.nodes[n]?.address ?? "";
    switch (a.res) {
      case "mysql": {
        const db = drivers.mysql!;
        if (a.do === "promote") {
          if (this.d.reader.facts.mysql?.role === "none") await db.bootstrapPrimary();
          const r = await db.promote(undefined, { readOnly: a.readOnly });
          this.d.steps.promote = Math.round(performance.now() - t0);
          this.d.steps.drain = r.drainMs;
          this.d.promoted.discarded = r.discarded;
          return `promoted${a.readOnly ? " read-only" : ""} at ${r.gtid || "-"}, relay log applied in ${r.drainMs} ms${r.discarded ? `; discarded the incomplete transaction ${r.discarded} at the end of the relay log (it never arrived whole, so it was never acknowledged)` : ""}`;
        }
        if (a.do === "demote") return `read-only, ${await db.demote(a.why)} client connections killed`;
        if (a.do === "detach") { await db.detach(a.why); return "receiver stopped; the applier goes on with the relay log"; }
        if (a.do === "replicate") {
          // Compare with what the new primary holds now, read from it directly, not from a report.
          const m = c.mysql!;
          const theirs = await primaryBinlogState(addr(a.from), m.port, m.repl_user, readSecret(m.repl_password_file), m.flavour === "mysql8");
          const check = await db.checkCanRejoin(theirs);
          if (!check.ok) { this.d.event("held-out", `mysql on ${this.d.self} has ${check.extra} that ${a.from} lacks: held out, needs re-cloning`); return `held out: has ${check.extra} that ${a.from} lacks`; }
          await db.rejoin(addr(a.from), m.port);
          return `replicating from ${a.from}`;
        }
        if (a.do === "kill") return this.fence("mysql", addr(this.d.self), c.mysql!.port);
        if (a.do === "start") return this.start("mysql", c.mysql!.start_cmd);
        break;
      }
      case "redis": {
        const db = drivers.redis!;
        if (a.do === "promote") return `promoted at offset ${await db.promote()}`;
        if (a.do === "demote") return `writes refused, ${await db.demote(a.why)} clients disconnected`;
        if (a.do === "replicate") { await db.replicateFrom(addr(a.from), c.redis!.port); return `replicating from ${a.from}`; }
        if (a.do === "kill") return this.fence("redis", addr(this.d.self), c.redis!.port);
        if (a.do === "start") return this.start("redis", c.redis!.start_cmd);
        break;
      }
      case "portal": {
        const portal = drivers.portal!;
        if (a.do === "restart") {
          const killed = await portal.kill(this.portalPorts());
          const s = await portal.start();
          return `${killed}; started pid ${s.pid} in ${Math.round(s.ms)} ms`;
        }
        const r = await portal.apply(this.d.portalDesired(a.mysql, a.redis, a.mysql === null && a.redis === null && cfg.assignments.mysql !== undefined));
        return `mysql -> ${a.mysql ?? "none"}, redis -> ${a.redis ?? "none"}${r.reloaded ? `, reloaded in ${r.reloadMs} ms` : ""}`;
      }
      case "vip": {
        if (a.do === "acquire") { const r = await drivers.vip!.acquire(); return `${c.ha.vip!.address} on ${c.ha.vip!.iface}; ${r.announce.detail}`; }
        await drivers.vip!.release();
        return "";
      }
    }
    return "";
  }

  /** The local fence of a server: its listener killed and confirmed gone; the proof is kept for reports. */
  private async fence(svc: "mysql" | "redis", addr: string, port: number): Promise<string> {
    const r = await killListener(addr, port, NAMES[svc]);
    if (!r.ok) throw new Error(`could not fence ${svc}: ${r.proof}`);
    this.d.reader.fenced[svc] = r.proof;
    this.d.event("fence", `${this.d.self}'s ${svc} fenced by its agent: ${r.proof}`);
    return r.proof;
  }

  private start(svc: "mysql" | "redis", cmd: string[] | undefined): Promise<string> {
    if (!cmd?.length) return Promise.resolve(`no ${svc}.start_cmd: the service manager starts it`);
    return new Promise((resolve, reject) => {
      execFile(cmd[0]!, cmd.slice(1), { timeout: START_TIMEOUT_MS, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
        const said = `${stdout}${stderr}`.trim().split("\n").slice(-2).join(" | ");
        if (err) reject(new Error(`${cmd.join(" ")}: ${err.message}${said ? `: ${said}` : ""}`));
        else resolve(`started with ${cmd.join(" ")}${said ? `: ${said}` : ""}`);
      });
    });
  }

  /** Every address:port the portal listens on (a wildcard listen is 0.0.0.0). */
  private portalPorts(): { addr: string; port: number }[] {
    const p = this.d.c.portal!;
    return [p.mysql_listen, p.redis_listen, p.health_listen, ...p.services.map((s) => s.listen)].map((l) => {
      const m = /^(?:(\d+\.\d+\.\d+\.\d+|\*):)?(\d+)$/.exec(l);
      return m ? { addr: !m[1] || m[1] === "*" ? "0.0.0.0" : m[1], port: Number(m[2]) } : null;
    }).filter((x): x is { addr: string; port: number } => x !== null);
  }
}
