// The I/O of N+1 readiness (docs/readiness.md): proving another node's fence paths without
// using them, this node's MySQL semi-sync status, its memory. Each returns a value, never
// throws, and is bounded (the adapters' timeouts). runtime/readiness.ts schedules them.
//   - IPMI: `chassis power status` of the node's BMC: the session authenticates (RMCP+ with the
//     configured user and password) and the BMC answers what fence level 1 reads back.
//   - switch ports: for each of the node's ports, write access to its ifAdminStatus, proven
//     by a SET the agent refuses for its type (hw/snmp.ts checkWriteAccess): nothing changes.
//   - semi-sync: SHOW GLOBAL STATUS Rpl_semi_sync_master_status / _clients (MariaDB; MySQL 8:
//     Rpl_semi_sync_source_*), on this node's server while it is the primary.
import { readFileSync } from "node:fs";
import mysql from "mysql2/promise";
import type { FenceCheck } from "../bus/messages.ts";
import type { Config } from "../config/schema.ts";
import type { Logger } from "../env/env.ts";
import { Ipmi } from "../hw/ipmi.ts";
import { SnmpSwitch } from "../hw/snmp.ts";
import { bmcConfig, switchConfig } from "./watch-poll.ts";

type Ha = NonNullable<Config["ha"]>;

/** The fence levels a node has configured (ha.nodes.<n>.bmc, .ports). */
export function fencingOf(ha: Ha | null, node: string): { bmc: boolean; ports: boolean } {
  const n = ha?.ha.nodes[node];
  return { bmc: !!n?.bmc, ports: !!n?.ports.length };
}

export class FenceChecker {
  private readonly switches = new Map<string, SnmpSwitch>();

  constructor(
    private readonly ha: Ha,
    private readonly log: Logger,
    private readonly now: () => number = () => performance.now(),
    private readonly wall: () => number = Date.now,
  ) {}

  /** Fence level 1's read: chassis power status of `node`'s BMC. */
  async ipmi(node: string): Promise<FenceCheck> {
    const b = this.ha.ha.nodes[node]?.bmc;
    if (!b) return { ok: false, at: this.wall(), detail: "no BMC configured" };
    const t0 = this.now();
    try {
      const r = await new Ipmi(bmcConfig(b), { log: this.log.child("hw.ipmi"), now: this.now }).powerStatus();
      const ms = Math.round(this.now() - t0);
      return r.ok
        ? { ok: true, at: this.wall(), detail: `${b.host}: power status ${r.value} (${ms} ms)` }
        : { ok: false, at: this.wall(), detail: r.error.slice(0, 380) };
    } catch (e) { // the adapter promises no throw; a broken promise is still a failed check
      return { ok: false, at: this.wall(), detail: `${b.host}: ${(e as Error).message}`.slice(0, 380) };
    }
  }

  /** Fence level 2's right: write access to every one of `node`'s ports' ifAdminStatus. */
  async ports(node: string): Promise<FenceCheck> {
    const ports = this.ha.ha.nodes[node]?.ports ?? [];
    if (!ports.length) return { ok: false, at: this.wall(), detail: "no switch port configured" };
    const t0 = this.now();
    const results = await Promise.all(ports.map(async (p) => {
      const sw = this.switch(p.switch);
      if (!sw) return { ok: false, text: `${p.switch}: not in ha.switches` };
      try {
        const idx = await sw.ifIndexOf(p.port);
        if (!idx.ok) return { ok: false, text: idx.error };
        const w = await sw.checkWriteAccess(idx.value);
        return w.ok ? { ok: true, text: `${p.switch} ${p.port}` } : { ok: false, text: w.error };
      } catch (e) {
        return { ok: false, text: `${p.switch} ${p.port}: ${(e as Error).message}` };
      }
    }));
    const ok = results.every((r) => r.ok);
    const ms = Math.round(this.now() - t0);
    const detail = ok ? `write access to ${results.map((r) => r.text).join(", ")} (${ms} ms)` : results.filter((r) => !r.ok).map((r) => r.text).join("; ");
    return { ok, at: this.wall(), detail: detail.slice(0, 380) };
  }

  close(): void {
    for (const s of this.switches.values()) s.close();
    this.switches.clear();
  }

  private switch(name: string): SnmpSwitch | null {
    let s = this.switches.get(name);
    const cfg = this.ha.ha.switches[name];
    if (!s && cfg) this.switches.set(name, (s = new SnmpSwitch(switchConfig(name, cfg), { log: this.log.child("hw.snmp"), now: this.now })));
    return s ?? null;
  }
}

/** MemTotal and MemAvailable of /proc/meminfo, bytes; null when unreadable. */
export function readMem(text?: string): { total: number; available: number } | null {
  try {
    const t = text ?? readFileSync("/proc/meminfo", "utf8");
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(t)?.[1] ?? NaN) * 1024;
    const total = kb("MemTotal");
    const available = kb("MemAvailable");
    return Number.isFinite(total) && Number.isFinite(available) ? { total, available } : null;
  } catch {
    return null;
  }
}

/** This node's MySQL semi-sync master side, on a connection of its own made per read (every
 *  few seconds, while it is the primary): the driver's connections are the data path's. */
export async function readSemiSync(ha: Ha, self: string, timeoutMs = 2000): Promise<{ on: boolean; clients: number } | string> {
  const m = ha.mysql;
  if (!m) return "no mysql section";
  const h: { late: boolean; c?: mysql.Connection } = { late: false };
  const work = (async () => {
    const c = await mysql.createConnection({
      ...(m.socket ? { socketPath: m.socket } : { host: ha.ha.nodes[self]?.address ?? "127.0.0.1", port: m.port }),
      user: m.user, password: readFileSync(m.password_file, "utf8").trim(), connectTimeout: timeoutMs,
    });
    h.c = c;
    try {
      if (h.late) throw new Error("timed out");
      const [rows] = await c.query("SHOW GLOBAL STATUS WHERE Variable_name IN ('Rpl_semi_sync_master_status', 'Rpl_semi_sync_master_clients', 'Rpl_semi_sync_source_status', 'Rpl_semi_sync_source_clients')");
      const v = new Map((rows as { Variable_name: string; Value: unknown }[]).map((r) => [String(r.Variable_name).replace("_source_", "_master_"), String(r.Value)]));
      return { on: (v.get("Rpl_semi_sync_master_status") ?? "").toUpperCase() === "ON", clients: Number(v.get("Rpl_semi_sync_master_clients") ?? 0) || 0 };
    } finally {
      c.destroy();
    }
  })();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<string>((r) => { timer = setTimeout(() => { h.late = true; h.c?.destroy(); r(`no answer within ${timeoutMs} ms`); }, timeoutMs); });
  try {
    return await Promise.race([work, deadline]);
  } catch (e) {
    return (e as Error).message;
  } finally {
    clearTimeout(timer);
    work.catch(() => undefined);
  }
}
