// What the watch (runtime/watch.ts) hands the alarm rules and the metrics endpoint, made from
// the adapters' readings: pure functions, no I/O, so each is unit-tested on its own.
//  - switch ports are named after the node and NIC cabled to them (ha.nodes.<n>.ports);
//  - BMC sensors and SEL entries become the rules' BmcInput, and sensor samples;
//  - the HA runtime's facts become the MySQL/Redis inputs (a MySQL replica's threads and lag
//    from its SHOW SLAVE STATUS; what the facts do not carry is left unknown: not judged);
//  - the event log's records become the rules' events (fence failed/done, failover done).
import type { BmcInput, EventInput, MysqlInput, PortInput, RedisInput, SwitchInput } from "../alarms/types.ts";
import type { HaFile } from "../config/ha-schema.ts";
import type { ClusterEvent } from "../env/env.ts";
import type { DbFacts } from "../ha/local.ts";
import type { Result, SelEntry, Sensor } from "../hw/ipmi-parse.ts";
import type { Port, PortReading } from "../hw/snmp.ts";
import type { MetricsSnapshot } from "./metrics.ts";

/** switch -> port (ifDescr or ifName) -> the node and NIC cabled to it */
export type PortMap = Map<string, Map<string, { node: string; nic: string | null }>>;

export function portMap(ha: HaFile | null): PortMap {
  const m: PortMap = new Map();
  for (const [node, n] of Object.entries(ha?.nodes ?? {})) {
    for (const p of n.ports) {
      let sw = m.get(p.switch);
      if (!sw) m.set(p.switch, (sw = new Map()));
      sw.set(p.port, { node, nic: p.nic ?? null });
    }
  }
  return m;
}

const portKey = (p: Port) => p.descr || p.name || `if${p.ifIndex}`;

/** The config's name for a port: its ifDescr, else its ifName when only that is mapped. */
function mapped(map: PortMap, sw: string, p: Port) {
  const m = map.get(sw);
  return m?.get(p.descr) ?? (p.name ? m?.get(p.name) : undefined) ?? null;
}

/** One switch's walk as the rules read it; a failed walk is `reachable: false`. */
export function switchInput(sw: string, r: Result<PortReading> | null, map: PortMap): SwitchInput | null {
  if (!r) return null;
  if (!r.ok) return { switch: sw, reachable: false, error: r.error };
  return {
    switch: sw,
    reachable: true,
    ports: r.value.ports.map((p): PortInput => {
      const to = mapped(map, sw, p);
      return { port: portKey(p), node: to?.node ?? null, nic: to?.nic ?? null, oper: p.oper, admin: p.admin };
    }),
  };
}

/** One BMC poll as the rules read it: unreachable when the sensor read failed. */
export function bmcInput(node: string, sensors: Result<Sensor[]> | null, sel: SelEntry[]): BmcInput | null {
  if (!sensors) return null;
  if (!sensors.ok) return { node, reachable: false, error: sensors.error };
  return { node, reachable: true, sensors: sensors.value, sel };
}

/** PSU offsets that mean a fault: failure, predictive failure, input lost, out of range (IPMI 2.0 table 42-3). */
const PSU_FAULTS = new Set([1, 2, 3, 4]);

/** Whether the BMC judges a sensor ok; for a discrete power supply, no fault offset asserted. */
export function sensorOk(s: Sensor): boolean | null {
  if (s.severity === "ok") return true;
  if (s.severity === "warning" || s.severity === "critical") return false;
  if (s.discrete && s.offsets && /\bPSU|\bPS\s?\d|power supply/i.test(s.name)) return !s.offsets.some((o) => PSU_FAULTS.has(o));
  return null;
}

export function sensorMetrics(node: string, sensors: Sensor[]): NonNullable<MetricsSnapshot["sensors"]> {
  return sensors.map((s) => ({ node, sensor: s.name, unit: s.unit, value: s.value, ok: sensorOk(s) }));
}

const big = (v: bigint | null) => (v === null ? null : Number(v));

export function portMetrics(sw: string, r: PortReading, map: PortMap): NonNullable<MetricsSnapshot["ports"]> {
  return r.ports.map((p) => ({
    switch: sw,
    port: portKey(p),
    node: mapped(map, sw, p)?.node ?? null,
    oper: p.oper === null ? null : p.oper === "up",
    admin: p.admin === null ? null : p.admin === "up",
    inOctets: big(p.inOctets),
    outOctets: big(p.outOctets),
    inErrors: p.inErrors,
    outErrors: p.outErrors,
  }));
}

/**
 * MySQL as the HA runtime saw it last. A replica's facts carry its threads and lag (`repl`);
 * without them only whether it replicates (a source while a thread runs) is known, lag is not.
 */
export function mysqlInput(f: DbFacts | null | undefined): MysqlInput | null {
  if (!f) return null;
  // a replica's threads and lag, when the HA runtime read them (SHOW SLAVE STATUS)
  const diverged = f.diverged ? { diverged: f.diverged } : {};
  if (f.repl && f.role === "replica") return { up: f.up, role: f.role, ...f.repl, ...diverged };
  const replicating = f.role !== "replica" || f.source !== null;
  return { up: f.up, role: f.role, ioRunning: replicating, sqlRunning: replicating, lagSeconds: null, lastError: replicating ? null : "no replication source (IO and SQL threads stopped)", ...diverged };
}

export function redisInput(f: DbFacts | null | undefined): RedisInput | null {
  if (!f) return null;
  return { up: f.up, role: f.role === "primary" ? "master" : f.role, linkUp: f.role !== "replica" || f.source !== null, source: f.source };
}

/**
 * Event-log records that are alarm events (ha/manager.ts and runtime/ha-runtime.ts word them):
 *  - "failover of S from A to B done in N ms" {svc, to, ms, done}        -> failover-done
 *  - "failover of S from A FAILED at step confirmFence: why" {step, failed} -> fence-failed A
 *  - "A level L CONFIRMED in N ms: ..." (kind fence) {node, ok: true}    -> fence-done A
 */
export function eventInput(e: ClusterEvent): EventInput | null {
  const f = e.fields ?? {};
  if (e.kind === "failover" && f.done === true && /^failover of /.test(e.detail)) {
    const from = /^failover of \S+ from (\S+) to /.exec(e.detail)?.[1] ?? null;
    const ms = typeof f.ms === "number" ? f.ms : 0;
    return typeof f.svc === "string" && typeof f.to === "string" ? { kind: "failover-done", service: f.svc, from, to: f.to, ms } : null;
  }
  if (e.kind === "failover" && f.failed === true && f.step === "confirmFence") {
    const m = /^\S+ of \S+ from (\S+) FAILED at step confirmFence: (.*)$/.exec(e.detail);
    return m ? { kind: "fence-failed", target: m[1]!, detail: m[2]! } : null;
  }
  if (e.kind === "fence" && f.ok === true && typeof f.node === "string") return { kind: "fence-done", target: f.node };
  if (e.kind === "upgrade" && f.failed === true && typeof f.node === "string") return { kind: "upgrade-failed", target: f.node, detail: e.detail };
  if (e.kind === "upgrade" && f.rollout === "done") return { kind: "upgrade-done" };
  return null;
}
