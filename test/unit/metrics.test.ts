// The Prometheus endpoint: started on 127.0.0.1:0, scraped over HTTP, the text format
// parsed, names, units, labels and values checked for a given snapshot.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import type { NodeView } from "../../agent/cluster/view.ts";
import { MetricsSection, busMetrics, clusterMetrics, createMetricsServer, hostMetrics, toMetricsConfig, type MetricsSnapshot } from "../../agent/runtime/metrics.ts";

const SNAP: MetricsSnapshot = {
  node: "node1",
  agent: { version: "0.1.0", rev: "abc123", uptimeSeconds: 3600 },
  sensors: [
    { node: "node1", sensor: "CPU Temp", unit: "degrees C", value: 85, ok: false },
    { node: "node1", sensor: "FAN1", unit: "RPM", value: 0, ok: false },
    { node: "node2", sensor: "12V", unit: "Volts", value: 12.1, ok: true },
    { node: "node2", sensor: "PSU2 Status", unit: "discrete", value: null, ok: false },
  ],
  bmcs: [{ node: "node1", up: true }, { node: "node2", up: false }],
  switches: [{ switch: "switchA", up: true }],
  ports: [{ switch: "switchB", port: "swp1", node: "node1", oper: false, admin: true, inOctets: 123456789012, outOctets: 5, inErrors: 3, outErrors: 0 }],
  host: {
    cpuUsedRatio: 0.25,
    load: { avg1: 0.5, avg5: 0.4, avg15: 0.3 },
    memoryTotalBytes: 8 * 2 ** 30,
    memoryUsedBytes: 2 * 2 ** 30,
    filesystems: [{ mount: "/var/lib/mysql", sizeBytes: 1000, usedBytes: 910, usedRatio: 0.91 }],
    nics: [{ nic: "eth0", up: true }, { nic: "eth1", up: false }],
    bondSlaves: [{ bond: "bond0", slave: "eth1", up: false }],
  },
  cluster: { term: 7, isLeader: true, quorum: true, lease: true, epoch: 12, committedEpoch: 12, members: 3, peersAlive: 2, peers: [{ peer: "node2", up: true, skewSeconds: -0.012 }, { peer: "node3", up: true, skewSeconds: null }] },
  resources: [{ resource: "mysql", role: "primary", up: true, replicationLagSeconds: null }, { resource: "redis", role: "replica", up: true, replicationLagSeconds: 0 }],
  alarms: { major: 2, minor: 1 },
  bus: { received: 1000, published: 900, rejected: { schema: 4, sender: 1 } },
};

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The text exposition format 0.0.4: # HELP / # TYPE lines, then `name{l="v",...} value`. */
function parse(text: string): { types: Map<string, string>; samples: Sample[] } {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) types.set(t[1]!, t[2]!);
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of m![2]?.matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g) ?? []) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    samples.push({ name: m![1]!, labels, value: Number(m![3]) });
  }
  return { types, samples };
}

const M = suite("metrics endpoint");
let scrape: (path?: string, method?: string) => Promise<Response>;
let stop: () => Promise<void>;
let snap: () => MetricsSnapshot = () => SNAP;

M.before(async () => {
  const server = createMetricsServer({ host: "127.0.0.1", port: 0, collect: () => snap() });
  const a = await server.start();
  assert.is(a.host, "127.0.0.1");
  scrape = (path = "/metrics", method = "GET") => fetch(`http://127.0.0.1:${a.port}${path}`, { method });
  stop = () => server.stop();
});
M.after(async () => stop());

M("names, types, units, labels and values for a snapshot", async () => {
  const t0 = performance.now();
  const res = await scrape();
  const text = await res.text();
  const ms = performance.now() - t0;
  assert.is(res.status, 200);
  assert.match(res.headers.get("content-type") ?? "", "text/plain; version=0.0.4");
  const { types, samples } = parse(text);
  const get = (name: string, labels: Record<string, string> = {}) =>
    samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)).map((s) => s.value);
  assert.equal(get("bollard_sensor_temperature_celsius", { node: "node1", sensor: "CPU Temp" }), [85]);
  assert.equal(get("bollard_sensor_fan_rpm", { node: "node1", sensor: "FAN1" }), [0]);
  assert.equal(get("bollard_sensor_voltage_volts", { node: "node2", sensor: "12V" }), [12.1]);
  assert.equal(get("bollard_sensor_ok", { node: "node2", sensor: "PSU2 Status" }), [0]);
  assert.equal(get("bollard_bmc_up", { node: "node2" }), [0]);
  assert.equal(get("bollard_switch_port_oper_up", { switch: "switchB", port: "swp1", node: "node1" }), [0]);
  assert.equal(get("bollard_switch_port_admin_up", { switch: "switchB", port: "swp1", node: "node1" }), [1]);
  assert.equal(get("bollard_switch_port_receive_bytes_total", { port: "swp1" }), [123456789012]);
  assert.equal(get("bollard_switch_port_receive_errors_total", { port: "swp1" }), [3]);
  assert.equal(get("bollard_host_memory_total_bytes"), [8 * 2 ** 30]);
  assert.equal(get("bollard_host_filesystem_used_ratio", { mount: "/var/lib/mysql" }), [0.91]);
  assert.equal(get("bollard_host_load_average", { window: "5m" }), [0.4]);
  assert.equal(get("bollard_host_bond_slave_up", { bond: "bond0", slave: "eth1" }), [0]);
  assert.equal(get("bollard_cluster_term"), [7]);
  assert.equal(get("bollard_cluster_is_leader"), [1]);
  assert.equal(get("bollard_cluster_peers_alive"), [2]);
  assert.equal(get("bollard_cluster_peer_clock_skew_seconds"), [-0.012], "a null skew is left out");
  assert.equal(get("bollard_resource_role", { resource: "mysql", role: "primary" }), [1]);
  assert.equal(get("bollard_resource_role", { resource: "mysql", role: "replica" }), [0]);
  assert.equal(get("bollard_resource_replication_lag_seconds", { resource: "redis" }), [0]);
  assert.equal(get("bollard_resource_replication_lag_seconds", { resource: "mysql" }), []);
  assert.equal(get("bollard_alarms_active", { severity: "major" }), [2]);
  assert.equal(get("bollard_alarms_active", { severity: "critical" }), [0]);
  assert.equal(get("bollard_bus_messages_rejected_total", { reason: "schema" }), [4]);
  assert.equal(get("bollard_bus_messages_received_total"), [1000]);
  assert.equal(get("bollard_agent_info", { version: "0.1.0", rev: "abc123" }), [1]);
  assert.is(types.get("bollard_bus_messages_rejected_total"), "counter");
  assert.is(types.get("bollard_cluster_term"), "gauge");

  for (const [name, type] of types) {
    assert.match(name, /^bollard_[a-z_]+$/, name);
    if (type === "counter") assert.ok(name.endsWith("_total"), `counter ${name} must end with _total`);
    else assert.ok(!name.endsWith("_total"), `${type} ${name} must not end with _total`);
  }
  for (const s of samples) assert.ok(types.has(s.name), `sample ${s.name} has a # TYPE`);
  console.log(`metrics: ${types.size} metrics, ${samples.length} samples, ${text.length} bytes, first scrape ${ms.toFixed(1)} ms`);
});

M("an empty snapshot scrapes; unknown paths 404; a failing collect is a 500", async () => {
  snap = () => ({ node: "node1" });
  const r = await scrape();
  assert.is(r.status, 200);
  assert.is((await r.text()).trim(), "");
  assert.is((await scrape("/")).status, 404);
  assert.is((await scrape("/metrics", "POST")).status, 405);
  snap = () => {
    throw new Error("view not ready");
  };
  const e = await scrape();
  assert.is(e.status, 500);
  assert.match(await e.text(), "view not ready");
  snap = () => SNAP;
  let total = 0;
  for (let i = 0; i < 50; i++) {
    const t0 = performance.now();
    await (await scrape()).text();
    total += performance.now() - t0;
  }
  console.log(`metrics: 50 scrapes, ${(total / 50).toFixed(2)} ms each`);
});

const C = suite("metrics config");

C("defaults and validation", () => {
  assert.equal(toMetricsConfig(MetricsSection.parse({})), { enabled: true, host: "0.0.0.0", port: 9464 });
  assert.equal(toMetricsConfig(MetricsSection.parse({ listen: "[::1]:9100" })), { enabled: true, host: "::1", port: 9100 });
  assert.ok(!MetricsSection.safeParse({ listen: "9464" }).success);
  assert.ok(!MetricsSection.safeParse({ port: 1 }).success);
});

C("snapshot parts from a NodeView, a host reading and bus stats", () => {
  const cfg = { epoch: 5, term: 3, members: [{ name: "node1", bus: "a:1" }, { name: "node2", bus: "b:1" }, { name: "node3", bus: "c:1" }], assignments: {} };
  const peer = (name: string, alive: boolean, skewMs: number | null) => ({ name, alive, lastHeardMs: 10, term: 3, role: "follower" as const, leader: "node1", skewMs });
  const view = { node: "node1", role: "leader", term: 3, leader: "node1", quorum: true, lease: true, config: cfg, committed: { ...cfg, epoch: 4 }, peers: [peer("node2", true, 250), peer("node3", false, null)] } as unknown as NodeView;
  assert.equal(clusterMetrics(view), {
    term: 3, isLeader: true, quorum: true, lease: true, epoch: 5, committedEpoch: 4, members: 3, peersAlive: 1,
    peers: [{ peer: "node2", up: true, skewSeconds: 0.25 }, { peer: "node3", up: false, skewSeconds: null }],
  });
  assert.equal(busMetrics({ received: 9, sent: 7, rejects: { schema: 1 } }), { received: 9, published: 7, rejected: { schema: 1 } });
  const h = hostMetrics({
    cpu: { ok: false, error: "x" },
    load: { avg1: 1, avg5: 2, avg15: 3 },
    memory: { ok: true, value: { totalBytes: 100, usedBytes: 40, availableBytes: 60, usedRatio: 0.4 } },
    filesystems: { ok: true, value: [{ mount: "/", device: "/dev/vda", type: "ext4", sizeBytes: 10, usedBytes: 5, usedRatio: 0.5 }] },
    nics: { ok: true, value: [{ name: "eth0", operstate: "up", carrier: true, speedMbps: 10000 }] },
    bonds: [{ name: "bond0", state: { ok: true, value: { modeText: "", mode: "active-backup", primary: null, activeSlave: "eth0", mii: "up", miimonMs: 100, slaves: [{ name: "eth1", mii: "down", speedMbps: null, duplex: null, linkFailures: 1, permanentMac: null }] } } }],
    timeSync: { state: "unknown", source: null, offsetSeconds: null, detail: "" },
  });
  assert.equal([h.cpuUsedRatio, h.memoryUsedBytes, h.nics, h.bondSlaves], [null, 40, [{ nic: "eth0", up: true }], [{ bond: "bond0", slave: "eth1", up: false }]]);
});

M.run();
C.run();
