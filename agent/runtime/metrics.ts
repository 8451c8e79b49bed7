// The Prometheus endpoint (DESIGN §6): `GET /metrics` in the text exposition format 0.0.4,
// made by prom-client from a snapshot the agent hands over at each scrape. Conventions
// (prometheus.io/docs/practices/naming): the `bollard_` prefix, base units in the name
// (seconds, bytes, celsius, volts; rpm for fans), `_ratio` for 0..1, `_total` counters.
// Every scrape builds its own Registry from the snapshot: no prom-client global registry,
// no state kept between scrapes. docs/metrics.md lists every metric.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Counter, Gauge } from "prom-client";
import { z } from "zod";
import type { Severity } from "../alarms/types.ts";
import { SEVERITIES } from "../alarms/types.ts";
import type { NodeView } from "../cluster/view.ts";
import type { HostReading } from "../hw/host.ts";
import { isHostPort } from "../config/host-port.ts";
import type { Logger } from "../env/env.ts";
import { renderVmMetrics, type VmMetrics } from "./vm-metrics.ts";
import { renderBackupMetrics } from "./backup-metrics.ts";
import type { BackupSnapshot } from "../backup/snapshot.ts";

export interface MetricsSnapshot {
  node: string;
  agent?: { version: string; rev: string; uptimeSeconds: number };
  /** ok: the BMC's judgement of the reading (ipmitool status ok) */
  sensors?: { node: string; sensor: string; unit: string; value: number | null; ok: boolean | null }[];
  bmcs?: { node: string; up: boolean }[];
  switches?: { switch: string; up: boolean }[];
  ports?: {
    switch: string;
    port: string;
    node: string | null;
    oper: boolean | null;
    admin: boolean | null;
    inOctets?: number | null;
    outOctets?: number | null;
    inErrors?: number | null;
    outErrors?: number | null;
  }[];
  host?: {
    cpuUsedRatio: number | null;
    load: { avg1: number; avg5: number; avg15: number };
    memoryTotalBytes: number | null;
    memoryUsedBytes: number | null;
    filesystems: { mount: string; sizeBytes: number; usedBytes: number; usedRatio: number }[];
    nics: { nic: string; up: boolean }[];
    bondSlaves: { bond: string; slave: string; up: boolean }[];
  };
  cluster?: {
    term: number;
    isLeader: boolean;
    quorum: boolean;
    lease: boolean;
    epoch: number;
    committedEpoch: number;
    members: number;
    peersAlive: number;
    peers: { peer: string; up: boolean; skewSeconds: number | null }[];
  };
  resources?: { resource: string; role: string; up: boolean; replicationLagSeconds: number | null }[];
  /** remote sites' replicas (issue 18), as this node reads them */
  sites?: { site: string; up: boolean; state: string; lagSeconds: number | null; lagTransactions: number | null }[];
  alarms?: Partial<Record<Severity, number>>;
  bus?: { received: number; published: number; rejected: Record<string, number> };
  vms?: VmMetrics;
  backups?: { snap: BackupSnapshot; wall: number };
}

/** Sensor unit (as ipmitool prints it) -> metric name suffix in base units. */
const SENSOR_UNITS: [RegExp, string, string][] = [
  [/degrees C|celsius/i, "temperature_celsius", "Temperature"],
  [/rpm/i, "fan_rpm", "Fan speed, revolutions per minute"],
  [/volts?/i, "voltage_volts", "Voltage"],
  [/amps?|amperes?/i, "current_amperes", "Current"],
  [/watts?/i, "power_watts", "Power"],
];

const b = (v: boolean) => (v ? 1 : 0);
const num = (v: number | null | undefined): v is number => typeof v === "number" && Number.isFinite(v);

/** The text exposition of one snapshot. */
export async function renderMetrics(s: MetricsSnapshot): Promise<{ text: string; contentType: string }> {
  // loaded on the first scrape: prom-client costs ~12 MB RSS, nothing when metrics are off
  const { Counter, Gauge, Registry } = await import("prom-client");
  const reg = new Registry();
  const gauges = new Map<string, Gauge>();
  const counters = new Map<string, Counter>();
  const g = (name: string, help: string, labels: Record<string, string>, v: number | null | undefined) => {
    if (!num(v)) return;
    let m = gauges.get(name);
    if (!m) gauges.set(name, (m = new Gauge({ name, help, labelNames: Object.keys(labels), registers: [reg] })));
    m.set(labels, v);
  };
  const c = (name: string, help: string, labels: Record<string, string>, v: number | null | undefined) => {
    if (!num(v) || v < 0) return;
    let m = counters.get(name);
    if (!m) counters.set(name, (m = new Counter({ name, help, labelNames: Object.keys(labels), registers: [reg] })));
    m.inc(labels, v);
  };

  if (s.agent) {
    g("bollard_agent_info", "The agent's version and git revision (always 1)", { node: s.node, version: s.agent.version, rev: s.agent.rev }, 1);
    g("bollard_agent_uptime_seconds", "Seconds since the agent started", {}, s.agent.uptimeSeconds);
  }
  for (const x of s.sensors ?? []) {
    const unit = SENSOR_UNITS.find(([re]) => re.test(x.unit));
    if (unit) g(`bollard_sensor_${unit[1]}`, `${unit[2]} reported by the node's BMC`, { node: x.node, sensor: x.sensor }, x.value);
    if (x.ok !== null) g("bollard_sensor_ok", "1 when the BMC judges the sensor's reading ok", { node: x.node, sensor: x.sensor }, b(x.ok));
  }
  for (const x of s.bmcs ?? []) g("bollard_bmc_up", "1 when the node's BMC answered the last poll", { node: x.node }, b(x.up));
  for (const x of s.switches ?? []) g("bollard_switch_up", "1 when the switch answered the last SNMP walk", { switch: x.switch }, b(x.up));
  for (const p of s.ports ?? []) {
    const l = { switch: p.switch, port: p.port, node: p.node ?? "" };
    if (p.oper !== null) g("bollard_switch_port_oper_up", "1 when IF-MIB ifOperStatus is up", l, b(p.oper));
    if (p.admin !== null) g("bollard_switch_port_admin_up", "1 when IF-MIB ifAdminStatus is up", l, b(p.admin));
    c("bollard_switch_port_receive_bytes_total", "IF-MIB ifHCInOctets", l, p.inOctets);
    c("bollard_switch_port_transmit_bytes_total", "IF-MIB ifHCOutOctets", l, p.outOctets);
    c("bollard_switch_port_receive_errors_total", "IF-MIB ifInErrors", l, p.inErrors);
    c("bollard_switch_port_transmit_errors_total", "IF-MIB ifOutErrors", l, p.outErrors);
  }
  const h = s.host;
  if (h) {
    g("bollard_host_cpu_usage_ratio", "CPU busy share since the previous reading, 0..1", {}, h.cpuUsedRatio);
    for (const [w, v] of [["1m", h.load.avg1], ["5m", h.load.avg5], ["15m", h.load.avg15]] as const) g("bollard_host_load_average", "Load average over the window", { window: w }, v);
    g("bollard_host_memory_total_bytes", "MemTotal", {}, h.memoryTotalBytes);
    g("bollard_host_memory_used_bytes", "MemTotal - MemAvailable", {}, h.memoryUsedBytes);
    for (const f of h.filesystems) {
      g("bollard_host_filesystem_size_bytes", "Filesystem size", { mount: f.mount }, f.sizeBytes);
      g("bollard_host_filesystem_used_bytes", "Filesystem space used", { mount: f.mount }, f.usedBytes);
      g("bollard_host_filesystem_used_ratio", "Filesystem space used, 0..1", { mount: f.mount }, f.usedRatio);
    }
    for (const n of h.nics) g("bollard_host_nic_up", "1 when the NIC's operstate is up", { nic: n.nic }, b(n.up));
    for (const x of h.bondSlaves) g("bollard_host_bond_slave_up", "1 when the bond slave's MII status is up", { bond: x.bond, slave: x.slave }, b(x.up));
  }
  const k = s.cluster;
  if (k) {
    g("bollard_cluster_term", "Current election term", {}, k.term);
    g("bollard_cluster_is_leader", "1 when this node is the leader", {}, b(k.isLeader));
    g("bollard_cluster_quorum", "1 when this node sees a majority of members", {}, b(k.quorum));
    g("bollard_cluster_lease", "1 when this node is leader with a valid lease", {}, b(k.lease));
    g("bollard_cluster_config_epoch", "Epoch of the latest cluster config this node accepted", {}, k.epoch);
    g("bollard_cluster_committed_epoch", "Epoch of the latest committed cluster config", {}, k.committedEpoch);
    g("bollard_cluster_members", "Configured members, this node included", {}, k.members);
    g("bollard_cluster_peers_alive", "Peers whose heartbeats arrive", {}, k.peersAlive);
    for (const p of k.peers) {
      g("bollard_cluster_peer_up", "1 while the peer's heartbeats arrive", { peer: p.peer }, b(p.up));
      g("bollard_cluster_peer_clock_skew_seconds", "The peer's wall clock minus ours", { peer: p.peer }, p.skewSeconds);
    }
  }
  for (const r of s.resources ?? []) {
    for (const role of new Set(["primary", "replica", "none", r.role])) g("bollard_resource_role", "1 for the role the local instance has", { resource: r.resource, role }, b(role === r.role));
    g("bollard_resource_up", "1 when the local instance answers", { resource: r.resource }, b(r.up));
    g("bollard_resource_replication_lag_seconds", "Replica lag behind its source", { resource: r.resource }, r.replicationLagSeconds);
  }
  for (const x of s.sites ?? []) {
    g("bollard_site_up", "1 when the remote site's MySQL answered the last read", { site: x.site }, b(x.up));
    g("bollard_site_state", "1 for the remote site's state (docs/site.md)", { site: x.site, state: x.state }, 1);
    g("bollard_site_replication_lag_seconds", "The remote site's replica behind the primary, seconds (Seconds_Behind_Master)", { site: x.site }, x.lagSeconds);
    g("bollard_site_replication_lag_transactions", "Transactions the primary has that the remote site's replica has not applied", { site: x.site }, x.lagTransactions);
  }
  if (s.alarms) for (const sev of SEVERITIES) g("bollard_alarms_active", "Active alarms raised by this node", { severity: sev }, s.alarms[sev] ?? 0);
  if (s.bus) {
    c("bollard_bus_messages_received_total", "Bus messages received and accepted", {}, s.bus.received);
    c("bollard_bus_messages_published_total", "Bus messages published", {}, s.bus.published);
    for (const [reason, n] of Object.entries(s.bus.rejected)) c("bollard_bus_messages_rejected_total", "Bus messages dropped, by reason", { reason }, n);
  }
  if (s.vms) renderVmMetrics(g, s.vms);
  if (s.backups) renderBackupMetrics(g, s.backups.snap, s.backups.wall);
  return { text: await reg.metrics(), contentType: reg.contentType };
}

// ---- snapshot parts from the agent's own types ----------------------------------------

export function clusterMetrics(v: NodeView): NonNullable<MetricsSnapshot["cluster"]> {
  return {
    term: v.term,
    isLeader: v.role === "leader",
    quorum: v.quorum,
    lease: v.lease,
    epoch: v.config.epoch,
    committedEpoch: v.committed.epoch,
    members: v.config.members.length,
    peersAlive: v.peers.filter((p) => p.alive).length,
    peers: v.peers.map((p) => ({ peer: p.name, up: p.alive, skewSeconds: p.skewMs === null ? null : p.skewMs / 1000 })),
  };
}

/** From bus/mqtt.ts BusStats: received, sent, rejects by reason. */
export function busMetrics(b: { received: number; sent: number; rejects: Record<string, number> }): NonNullable<MetricsSnapshot["bus"]> {
  return { received: b.received, published: b.sent, rejected: { ...b.rejects } };
}

export function hostMetrics(h: HostReading): NonNullable<MetricsSnapshot["host"]> {
  return {
    cpuUsedRatio: h.cpu.ok ? h.cpu.value.usedRatio : null,
    load: h.load,
    memoryTotalBytes: h.memory.ok ? h.memory.value.totalBytes : null,
    memoryUsedBytes: h.memory.ok ? h.memory.value.usedBytes : null,
    filesystems: h.filesystems.ok ? h.filesystems.value.map((f) => ({ mount: f.mount, sizeBytes: f.sizeBytes, usedBytes: f.usedBytes, usedRatio: f.usedRatio })) : [],
    nics: h.nics.ok ? h.nics.value.map((n) => ({ nic: n.name, up: n.operstate === "up" })) : [],
    bondSlaves: h.bonds.flatMap((b) => (b.state.ok ? b.state.value.slaves.map((x) => ({ bond: b.name, slave: x.name, up: x.mii === "up" })) : [])),
  };
}

export interface MetricsServerOptions {
  host: string;
  port: number;
  collect(): MetricsSnapshot | Promise<MetricsSnapshot>;
  log?: Logger;
}

export interface MetricsServer {
  /** Listens; resolves with the bound address (port 0 picks one). */
  start(): Promise<{ host: string; port: number }>;
  stop(): Promise<void>;
}

export function createMetricsServer(o: MetricsServerOptions): MetricsServer {
  let server: Server | null = null;
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") return send(res, 405, "text/plain", "GET /metrics\n");
    if (path !== "/metrics") return send(res, 404, "text/plain", "bollard: metrics are at /metrics\n");
    try {
      const m = await renderMetrics(await o.collect());
      send(res, 200, m.contentType, req.method === "HEAD" ? "" : m.text);
    } catch (e) {
      o.log?.error("metrics scrape failed", { err: e as Error });
      send(res, 500, "text/plain", `bollard: scrape failed: ${(e as Error).message}\n`);
    }
  };
  return {
    start: () =>
      new Promise((resolve, reject) => {
        const s = createServer((req, res) => void handle(req, res));
        s.once("error", reject);
        s.listen(o.port, o.host, () => {
          s.off("error", reject);
          s.on("error", (e) => o.log?.error("metrics server error", { err: e }));
          server = s;
          const a = s.address() as AddressInfo;
          o.log?.info("metrics listening", { host: a.address, port: a.port });
          resolve({ host: a.address, port: a.port });
        });
      }),
    stop: () =>
      new Promise((resolve) => {
        const s = server;
        server = null;
        if (!s) return resolve();
        s.close(() => resolve());
        s.closeAllConnections();
      }),
  };
}

function send(res: ServerResponse, code: number, type: string, body: string): void {
  res.writeHead(code, { "content-type": type, "content-length": Buffer.byteLength(body) });
  res.end(body);
}

// ---- config: the `metrics:` section -------------------------------------------------

export const MetricsSection = z
  .object(
    {
      enabled: z.boolean({ error: "true or false" }).default(true),
      listen: z.string({ error: "host:port" }).refine(isHostPort, { error: "host:port" }).default("0.0.0.0:9464"),
    },
    { error: "a mapping (enabled, listen)" },
  )
  .strict();
export type MetricsSection = z.infer<typeof MetricsSection>;

export interface MetricsConfig {
  enabled: boolean;
  host: string;
  port: number;
}

export function toMetricsConfig(f: MetricsSection): MetricsConfig {
  const i = f.listen.lastIndexOf(":");
  return { enabled: f.enabled, host: f.listen.slice(0, i).replace(/^\[|\]$/g, ""), port: Number(f.listen.slice(i + 1)) };
}
