// The agent's own samples for the web console's charts (issue 24 item 3): CPU, memory, the
// fullest filesystem, each NIC's receive and transmit rate, and this node's MySQL and Redis
// replication lag, for the last hour. A sample is taken when the hardware watch has read the
// host (hw.host_every_ms, 10 s): no timer of its own. Kept in memory, columnar (one array per
// series, 360 points ~ 20 KB), served as one item of the bus's fetch (GET /samples?node=N).
import { readFileSync } from "node:fs";

export const KEEP = 360;

export interface Sample {
  /** wall ms */
  t: number;
  cpu: number | null;
  mem: number | null;
  disk: number | null;
  /** bytes/s per NIC since the previous sample */
  nics: Record<string, { rx: number; tx: number }>;
  /** MySQL: seconds behind (Seconds_Behind_Master); Redis: bytes behind (redisLagBytes); null on the primary or unknown */
  mysqlLag: number | null;
  redisLag: number | null;
}

/** The columns one node serves: t, cpu, mem, disk, mysqlLag, redisLag, and rx:<nic>, tx:<nic>. */
export type Columns = Record<string, (number | null)[]>;

/** /proc/net/dev: bytes received and sent per interface (the loopback left out). */
export function parseNetDev(text: string): Record<string, { rx: number; tx: number }> {
  const out: Record<string, { rx: number; tx: number }> = {};
  for (const line of text.split("\n").slice(2)) {
    const m = /^\s*([^:\s]+):\s*(.*)$/.exec(line);
    if (!m || m[1] === "lo") continue;
    const f = m[2]!.trim().split(/\s+/).map(Number);
    if (f.length >= 9 && Number.isFinite(f[0]) && Number.isFinite(f[8])) out[m[1]!] = { rx: f[0]!, tx: f[8]! };
  }
  return out;
}

/**
 * A Redis replica's lag in bytes: the offset its primary last reported over the bus less the
 * replica's own (INFO replication: master_repl_offset there, slave_repl_offset here), as the
 * N+1 readiness check counts it (ha/readiness.ts). Null unless both are offsets (an AOF position
 * read after a restart is not) or when this node is no replica of `holder`. Never below 0: the
 * primary's report may be older than this node's reading.
 */
export function redisLagBytes(mine: { role: string; received: string; source: string | null } | null | undefined, holder: { received: string } | null | undefined): number | null {
  if (!mine || mine.role !== "replica" || !holder || !/^\d+$/.test(mine.received) || !/^\d+$/.test(holder.received)) return null;
  return Math.max(0, Number(holder.received) - Number(mine.received));
}

const round = (v: number | null, d = 3) => (v === null || !Number.isFinite(v) ? null : Math.round(v * 10 ** d) / 10 ** d);

export class Samples {
  private readonly ring: Sample[] = [];
  private lastNet: { t: number; c: Record<string, { rx: number; tx: number }> } | null = null;

  constructor(private readonly readNetDev: () => string = () => readFileSync("/proc/net/dev", "utf8")) {}

  /** One sample at wall time `t`; NIC rates from the counters since the previous one. */
  record(t: number, s: Omit<Sample, "t" | "nics">): void {
    let nics: Sample["nics"] = {};
    try {
      const c = parseNetDev(this.readNetDev());
      const prev = this.lastNet;
      if (prev && t > prev.t) {
        const dt = (t - prev.t) / 1000;
        for (const [n, v] of Object.entries(c)) {
          const p = prev.c[n];
          // a counter that went back (a NIC re-created) gives no rate this once
          if (p && v.rx >= p.rx && v.tx >= p.tx) nics[n] = { rx: Math.round((v.rx - p.rx) / dt), tx: Math.round((v.tx - p.tx) / dt) };
        }
      }
      this.lastNet = { t, c };
    } catch {
      nics = {};
    }
    this.ring.push({ t, cpu: round(s.cpu), mem: round(s.mem), disk: round(s.disk), nics, mysqlLag: s.mysqlLag, redisLag: s.redisLag });
    if (this.ring.length > KEEP) this.ring.splice(0, this.ring.length - KEEP);
  }

  get size(): number {
    return this.ring.length;
  }

  columns(): Columns {
    const names = [...new Set(this.ring.flatMap((s) => Object.keys(s.nics)))].sort().slice(0, 8);
    const c: Columns = { t: [], cpu: [], mem: [], disk: [], mysqlLag: [], redisLag: [] };
    for (const n of names) c[`rx:${n}`] = [], c[`tx:${n}`] = [];
    for (const s of this.ring) {
      c.t!.push(s.t);
      c.cpu!.push(s.cpu);
      c.mem!.push(s.mem);
      c.disk!.push(s.disk);
      c.mysqlLag!.push(s.mysqlLag);
      c.redisLag!.push(s.redisLag);
      for (const n of names) {
        c[`rx:${n}`]!.push(s.nics[n]?.rx ?? null);
        c[`tx:${n}`]!.push(s.nics[n]?.tx ?? null);
      }
    }
    return c;
  }
}
