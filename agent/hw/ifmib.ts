// IF-MIB (RFC 2863) as the SNMP adapter reads it (hw/snmp.ts): the columns, the ports made
// from a walk's varbinds, counters (Counter64 Buffers become bigint) and their rates across
// wraps. Pure: no session, no I/O.

/** One variable binding as net-snmp gives it. */
export interface Varbind { oid: string; type: number; value: unknown }

export const IF_ENTRY = "1.3.6.1.2.1.2.2.1";
export const IFX_ENTRY = "1.3.6.1.2.1.31.1.1.1";
export const IF_DESCR = `${IF_ENTRY}.2`;
export const IF_ADMIN_STATUS = `${IF_ENTRY}.7`;
export const IF_NAME = `${IFX_ENTRY}.1`;
/** the columns a port reading needs, walked side by side (one GetBulk carries all of them) */
export const PORT_COLUMNS = [
  ...[2, 5, 7, 8, 10, 13, 14, 16, 19, 20].map((c) => `${IF_ENTRY}.${c}`),
  ...[1, 6, 10, 15, 18].map((c) => `${IFX_ENTRY}.${c}`),
];
/** what an alarm needs of a port: ifDescr, ifAdminStatus, ifOperStatus, ifName. A walk of
 *  these four costs a quarter of a full one (measured: 1.5 against 6.5 ms of CPU a second for
 *  two switches of 17 interfaces): the watch walks them every poll, the counters less often. */
export const STATUS_COLUMNS = [`${IF_ENTRY}.2`, `${IF_ENTRY}.7`, `${IF_ENTRY}.8`, `${IFX_ENTRY}.1`];

export type AdminStatus = "up" | "down" | "testing";
export type OperStatus = "up" | "down" | "testing" | "unknown" | "dormant" | "notPresent" | "lowerLayerDown";
export const ADMIN: (AdminStatus | null)[] = [null, "up", "down", "testing"];
export const OPER: (OperStatus | null)[] = [null, "up", "down", "testing", "unknown", "dormant", "notPresent", "lowerLayerDown"];

export interface Port {
  ifIndex: number;
  descr: string;
  name: string | null;
  alias: string | null;
  admin: AdminStatus | null;
  oper: OperStatus | null;
  /** ifHighSpeed, or ifSpeed / 10^6 when the switch has no ifXTable */
  speedMbps: number | null;
  /** ifHCIn/OutOctets (64-bit), or ifIn/OutOctets (32-bit) when the HC ones are missing */
  inOctets: bigint | null;
  outOctets: bigint | null;
  octetBits: 32 | 64;
  inErrors: number | null;
  outErrors: number | null;
  inDiscards: number | null;
  outDiscards: number | null;
}

export interface PortReading {
  switch: string;
  /** monotonic ms when the walk finished */
  at: number;
  ports: Port[];
  /** only STATUS_COLUMNS were walked: speed, alias and the counters are null (or, after
   *  withCounters(), those of an earlier full walk) */
  statusOnly?: boolean;
}

export interface PortRate {
  ifIndex: number;
  descr: string;
  seconds: number;
  /** bits per second; null when a counter is missing or was reset */
  inBps: number | null;
  outBps: number | null;
  inErrorsPerS: number | null;
  outErrorsPerS: number | null;
  inDiscardsPerS: number | null;
  outDiscardsPerS: number | null;
  /** the busier direction's share of the speed, 0..1; null when the speed is unknown */
  utilization: number | null;
}

export const str = (v: unknown): string | null => (Buffer.isBuffer(v) ? v.toString("utf8") : typeof v === "string" ? v : null);
export const int = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);

/** A Counter64 (or any counter) value as bigint: net-snmp gives Counter64 as a Buffer. */
export function counter(v: unknown): bigint | null {
  if (Buffer.isBuffer(v)) {
    if (v.length > 8) return null;
    let n = 0n;
    for (const b of v) n = (n << 8n) | BigInt(b);
    return n;
  }
  return typeof v === "number" && Number.isInteger(v) && v >= 0 ? BigInt(v) : null;
}

/** ifEntry/ifXEntry varbinds (any order, errors skipped) -> ports by ifIndex. Pure. */
export function portsFromVarbinds(vbs: Varbind[]): Port[] {
  const cols = new Map<number, Map<string, unknown>>();
  for (const vb of vbs) {
    const m = vb.oid.startsWith(`${IF_ENTRY}.`) ? "if" : vb.oid.startsWith(`${IFX_ENTRY}.`) ? "ifx" : null;
    if (!m || vb.type >= 128) continue; // noSuchObject / noSuchInstance / endOfMibView
    const [col, idx, ...rest] = vb.oid.slice((m === "if" ? IF_ENTRY : IFX_ENTRY).length + 1).split(".");
    const ifIndex = Number(idx);
    if (rest.length || !Number.isInteger(ifIndex)) continue;
    if (!cols.has(ifIndex)) cols.set(ifIndex, new Map());
    cols.get(ifIndex)!.set(`${m}.${col}`, vb.value);
  }
  const ports: Port[] = [];
  for (const [ifIndex, c] of [...cols].sort((a, b) => a[0] - b[0])) {
    const descr = str(c.get("if.2"));
    if (descr === null) continue; // a row without ifDescr is not a port we can name
    const hcIn = counter(c.get("ifx.6"));
    const hcOut = counter(c.get("ifx.10"));
    const hc = hcIn !== null && hcOut !== null;
    const high = int(c.get("ifx.15"));
    const speed = int(c.get("if.5"));
    ports.push({
      ifIndex, descr, name: str(c.get("ifx.1")), alias: str(c.get("ifx.18")),
      admin: ADMIN[int(c.get("if.7")) ?? 0] ?? null, oper: OPER[int(c.get("if.8")) ?? 0] ?? null,
      speedMbps: high ? high : speed !== null && speed !== 4294967295 ? speed / 1e6 : null,
      inOctets: hc ? hcIn : counter(c.get("if.10")), outOctets: hc ? hcOut : counter(c.get("if.16")), octetBits: hc ? 64 : 32,
      inErrors: int(c.get("if.14")), outErrors: int(c.get("if.20")), inDiscards: int(c.get("if.13")), outDiscards: int(c.get("if.19")),
    });
  }
  return ports;
}

/**
 * A status-only reading with the speed, alias and counters of an earlier full one, port by
 * port (same ifIndex and ifDescr); a port the full walk did not have keeps nulls. Pure.
 */
export function withCounters(status: PortReading, full: PortReading): PortReading {
  const byIndex = new Map(full.ports.map((p) => [p.ifIndex, p]));
  return {
    ...status,
    ports: status.ports.map((p) => {
      const f = byIndex.get(p.ifIndex);
      if (!f || f.descr !== p.descr) return p;
      const { speedMbps, alias, inOctets, outOctets, octetBits, inErrors, outErrors, inDiscards, outDiscards } = f;
      return { ...p, speedMbps, alias, inOctets, outOctets, octetBits, inErrors, outErrors, inDiscards, outDiscards };
    }),
  };
}

/**
 * cur - prev of a `bits`-wide counter. A counter that went down wrapped if the wrapped
 * delta is under half the range and under `maxDelta` (what the line could carry); otherwise
 * it was reset (agent restart, counter discontinuity, RFC 2863 §3.1.6) and the delta is unknown.
 * A counter that went up is taken as it is (ifSpeed is often wrong: lo says 10 Mb/s).
 */
export function counterDelta(prev: bigint, cur: bigint, bits: 32 | 64, maxDelta?: bigint): bigint | null {
  if (cur >= prev) return cur - prev;
  const wrapped = (1n << BigInt(bits)) - prev + cur;
  if (wrapped >= 1n << BigInt(bits - 1)) return null;
  return maxDelta !== undefined && wrapped > maxDelta ? null : wrapped;
}

/** Rates between two readings of the same switch, by ifIndex (same ifDescr). Pure. */
export function portRates(prev: PortReading, cur: PortReading): PortRate[] {
  const seconds = (cur.at - prev.at) / 1000;
  if (!(seconds > 0)) return [];
  const before = new Map(prev.ports.map((p) => [p.ifIndex, p]));
  const out: PortRate[] = [];
  for (const p of cur.ports) {
    const q = before.get(p.ifIndex);
    if (!q || q.descr !== p.descr) continue;
    // what the line could carry in the interval, 10 % slack; unknown speed: no bound
    const max = p.speedMbps ? BigInt(Math.ceil(((p.speedMbps * 1e6) / 8) * seconds * 1.1)) : undefined;
    const octets = (a: bigint | null, b: bigint | null) => {
      if (a === null || b === null || q.octetBits !== p.octetBits) return null;
      const d = counterDelta(a, b, p.octetBits, max);
      return d === null ? null : (Number(d) * 8) / seconds;
    };
    const per = (a: number | null, b: number | null) => {
      if (a === null || b === null) return null;
      const d = counterDelta(BigInt(a), BigInt(b), 32);
      return d === null ? null : Number(d) / seconds;
    };
    const inBps = octets(q.inOctets, p.inOctets);
    const outBps = octets(q.outOctets, p.outOctets);
    const busiest = Math.max(inBps ?? 0, outBps ?? 0);
    out.push({
      ifIndex: p.ifIndex, descr: p.descr, seconds, inBps, outBps,
      inErrorsPerS: per(q.inErrors, p.inErrors), outErrorsPerS: per(q.outErrors, p.outErrors),
      inDiscardsPerS: per(q.inDiscards, p.inDiscards), outDiscardsPerS: per(q.outDiscards, p.outDiscards),
      utilization: p.speedMbps && (inBps !== null || outBps !== null) ? busiest / (p.speedMbps * 1e6) : null,
    });
  }
  return out;
}
