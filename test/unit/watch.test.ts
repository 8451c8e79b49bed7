// The watch (runtime/watch.ts) with fakes for the BMC, the switches, the host, the bus and the
// timers: readings in, alarms out (retained payloads, the cluster-wide list, the routes,
// metrics); and the pure conversions it is built on (runtime/watch-inputs.ts).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { parseAlarmPayload } from "../../agent/alarms/history.ts";
import { evaluate } from "../../agent/alarms/rules.ts";
import { defaultAlarmsConfig } from "../../agent/alarms/config.ts";
import type { Alarm } from "../../agent/alarms/types.ts";
import type { AlarmCb, BusStats } from "../../agent/bus/mqtt.ts";
import type { NodeView } from "../../agent/cluster/view.ts";
import { parseConfig } from "../../agent/config/load.ts";
import type { Config } from "../../agent/config/schema.ts";
import type { ClusterEvent, Logger, Timers } from "../../agent/env/env.ts";
import type { HostOptions, HostReading } from "../../agent/hw/host.ts";
import { parseSensorList, type SelEntry } from "../../agent/hw/ipmi-parse.ts";
import type { Port } from "../../agent/hw/snmp.ts";
import { renderMetrics } from "../../agent/runtime/metrics.ts";
import { Watch } from "../../agent/runtime/watch.ts";
import { eventInput, mysqlInput, portMap, sensorOk, switchInput } from "../../agent/runtime/watch-inputs.ts";
import { Ipmi } from "../../agent/hw/ipmi.ts";
import { HwPoller, ipmitoolHome } from "../../agent/runtime/watch-poll.ts";

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

const SENSORS = (temp: number, fan1 = 6000, psu2 = "0x0100") =>
  `Temp             | ${temp}.000 | degrees C  | ${temp >= 80 ? "cr" : temp >= 70 ? "nc" : "ok"} | na | na | na | 70.000 | 80.000 | 90.000\n` +
  `Fan1             | ${fan1}.000 | RPM | ${fan1 < 1000 ? "cr" : "ok"} | 500.000 | 1000.000 | 2000.000 | na | na | na\n` +
  `PSU2 Status      | 0x1 | discrete | ${psu2}| na | na | na | na | na | na\n`;

const port = (ifIndex: number, descr: string, oper: "up" | "down", admin: "up" | "down" = "up"): Port => ({
  ifIndex, descr, name: descr, alias: null, admin, oper, speedMbps: 10000, inOctets: 100n, outOctets: 200n, octetBits: 64, inErrors: 0, outErrors: 0, inDiscards: 0, outDiscards: 0,
});

const YAML = (dir: string) => `
cluster: { name: lab, node: node1, members: [{ name: node1, address: "10.0.0.1:1883" }, { name: node2, address: "10.0.0.2:1883" }, { name: node3, address: "10.0.0.3:1883" }] }
bus: { password: x }
state_dir: ${dir}
metrics: { enabled: false }
alarms: { clear_after_ms: 2000 }
hw: { host: { bonds: [{ name: bond0, file: ${dir}/bond0.status }] } }
ha:
  nodes:
    node1: { address: 10.0.0.1, bmc: { host: 10.0.1.21, user: admin, password_file: /x }, ports: [{ switch: switchA, port: swp1, nic: eth0 }, { switch: switchB, port: swp1, nic: eth1 }] }
    node2: { address: 10.0.0.2, ports: [{ switch: switchA, port: swp2, nic: eth0 }, { switch: switchB, port: swp2, nic: eth1 }] }
    node3: { address: 10.0.0.3 }
  switches: { switchA: { host: 10.0.1.31 }, switchB: { host: 10.0.1.32 } }
`;

const BOND = (eth1: "up" | "down") =>
  `Bonding Mode: fault-tolerance (active-backup)\nCurrently Active Slave: eth0\nMII Status: up\nMII Polling Interval (ms): 100\n\n` +
  `Slave Interface: eth0\nMII Status: up\nLink Failure Count: 0\n\nSlave Interface: eth1\nMII Status: ${eth1}\nLink Failure Count: 1\n`;

interface World {
  dir: string;
  watch: Watch;
  temp: number;
  fan1: number;
  psu2: string;
  bmcUp: boolean;
  sel: SelEntry[];
  swB: { up: boolean; swp1: "up" | "down" };
  eth1: "up" | "down";
  published: [string, string][];
  alarmCb: AlarmCb | null;
  eventFn: ((e: ClusterEvent) => void) | null;
  tick: () => void;
  /** what the watch asked readHost for, each time */
  hostAsked: HostOptions[];
  wall: number;
  mono: number;
}

async function world(): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), "bollard-watch-"));
  const parsed = parseConfig(YAML(dir), "t", { secrets: false });
  if (!parsed.ok) throw new Error(parsed.errors.join("\n"));
  const config: Config = parsed.config;
  const w = { dir, temp: 40, fan1: 6000, psu2: "0x0100", bmcUp: true, sel: [], swB: { up: true, swp1: "up" }, eth1: "up", published: [], hostAsked: [], alarmCb: null, eventFn: null, wall: 1_700_000_000_000, mono: 0 } as unknown as World;
  let cycle: (() => void) | null = null;
  const timers: Timers = {
    every: (_ms, fn) => ((cycle = fn), { cancel: () => (cycle = null) }),
    after: () => ({ cancel() {} }),
  };
  w.tick = () => cycle?.();
  let lastSel = 0;
  const poller = new HwPoller([{ node: "node1", cfg: { host: "10.0.1.21", user: "admin" } }], [{ name: "switchA", host: "a", version: "2c" }, { name: "switchB", host: "b", version: "2c" }], {
    log: quiet,
    now: () => performance.now(),
    ipmi: () => ({
      sensors: async () => (w.bmcUp ? parseSensorList(SENSORS(w.temp, w.fan1, w.psu2)) : { ok: false, error: "ipmitool sensor on 10.0.1.21:623: no answer within 2.0 s (BMC unreachable or down?)" }),
      selSince: async (last) => {
        const entries = w.sel.filter((e) => last === null || e.id > last);
        lastSel = w.sel.length ? w.sel[w.sel.length - 1]!.id : lastSel;
        return { ok: true, value: { entries, lastId: lastSel || null, reset: false } };
      },
    }),
    snmp: (cfg) => ({
      ports: async () =>
        cfg.name === "switchB" && !w.swB.up
          ? { ok: false, error: "no answer after 2 x 500 ms (switch unreachable, or wrong community?)" }
          : { ok: true, value: { switch: cfg.name, at: 0, ports: [port(1, "swp1", cfg.name === "switchB" ? w.swB.swp1 : "up"), port(2, "swp2", "up"), port(9, "swp9", "down")] } },
      close() {},
    }),
  });
  const host: HostReading = {
    cpu: { ok: true, value: { usedRatio: 0.1, cores: 2 } }, load: { avg1: 0.5, avg5: 0.4, avg15: 0.3 },
    memory: { ok: true, value: { totalBytes: 8e9, usedBytes: 2e9, availableBytes: 6e9, usedRatio: 0.25 } },
    filesystems: { ok: true, value: [{ mount: "/", device: "/dev/vda", type: "ext4", sizeBytes: 1e11, usedBytes: 3e10, usedRatio: 0.3 }] },
    nics: { ok: true, value: [{ name: "eth0", operstate: "up", carrier: true, speedMbps: 10000 }] }, bonds: [],
    timeSync: { state: "synced", source: "chrony", offsetSeconds: 0, detail: "" },
  };
  const view = { node: "node1", role: "leader", term: 3, leader: "node1", quorum: true, lease: true, member: true, config: { epoch: 4, members: [1, 2, 3] }, committed: { epoch: 4 }, peers: [{ name: "node2", alive: true, skewMs: 3 }, { name: "node3", alive: true, skewMs: -2 }] } as unknown as NodeView;
  const stats = { received: 10, sent: 5, rejects: { schema: 1 } } as unknown as BusStats;
  w.watch = new Watch({
    config, log: quiet, view: () => view, facts: () => null, build: { version: "0.1.0", rev: "test" }, uptimeS: () => 12, timers,
    now: () => w.mono, wall: () => w.wall,
    bus: { publishAlarm: (id, p) => void w.published.push([id, p]), onAlarm: (cb) => ((w.alarmCb = cb), () => (w.alarmCb = null)), stats: () => stats },
    onEvent: (fn) => ((w.eventFn = fn), () => (w.eventFn = null)),
    poller, readHost: async (o) => (w.hostAsked.push(o), host),
    readBonds: () => [{ name: "bond0", state: { ok: true, value: { modeText: "x", mode: "active-backup", primary: null, activeSlave: "eth0", mii: "up", miimonMs: 100, slaves: [{ name: "eth0", mii: "up", speedMbps: null, duplex: null, linkFailures: 0, permanentMac: null }, { name: "eth1", mii: w.eth1, speedMbps: null, duplex: null, linkFailures: 1, permanentMac: null }] } } }],
  });
  await w.watch.start();
  await settle();
  return w;
}

const settle = () => new Promise((r) => setTimeout(r, 5));
async function poll(w: World, ms = 1000): Promise<void> {
  w.wall += ms;
  w.mono += ms;
  w.tick();
  await settle();
}
const ids = (w: World) => w.watch.clusterAlarms().map((a) => a.id).sort();
const live = (w: World) => {
  const m = new Map<string, string>();
  for (const [id, p] of w.published) (p ? m.set(id, p) : m.delete(id));
  return [...m.keys()].sort();
};

const W = suite("watch: readings to alarms");
let w: World;
W.before.each(async () => void (w = await world()));
W.after.each(async () => {
  await w.watch.stop();
  rmSync(w.dir, { recursive: true, force: true });
});

W("a healthy appliance raises nothing", async () => {
  await poll(w);
  assert.equal(ids(w), []);
  assert.equal(w.published, []);
});

W("temperature 85: an alarm naming node and sensor, retained on the bus; 40 clears it after the hold", async () => {
  w.temp = 85;
  await poll(w);
  const a = w.watch.clusterAlarms().find((x) => x.rule === "temperature")!;
  assert.is(a.text, "node1 Temp over threshold");
  assert.is(a.severity, "major");
  assert.equal(live(w), [a.id]);
  const back = parseAlarmPayload(w.published[0]![1], "node1", a.id);
  assert.ok(back.ok && back.value?.id === a.id);
  w.temp = 40;
  await poll(w);
  assert.equal(live(w), [a.id], "held for clear_after_ms");
  await poll(w, 2500);
  assert.equal(live(w), []);
});

W("fan 0 RPM, PSU failure, BMC unreachable (which holds the sensor alarms)", async () => {
  w.fan1 = 0;
  w.psu2 = "0x0300";
  await poll(w);
  const texts = w.watch.clusterAlarms().map((a) => a.text).sort();
  assert.equal(texts, ["node1 Fan1 stopped", "node1 PSU2 failed"]);
  w.bmcUp = false;
  w.fan1 = 6000;
  await poll(w, 5000);
  await poll(w, 5000);
  assert.equal(w.watch.clusterAlarms().map((a) => a.text).sort(), ["node1 BMC unreachable", "node1 Fan1 stopped", "node1 PSU2 failed"]);
});

W("a port down names switch, port, node and NIC; the bond names the switch; switch unreachable", async () => {
  w.swB.swp1 = "down";
  w.eth1 = "down";
  await poll(w);
  const texts = w.watch.clusterAlarms().map((a) => a.text).sort();
  assert.equal(texts, ["node1 bond0 degraded: eth1 (switchB) down", "switchB port swp1 to node1 eth1 down"]);
  assert.ok(!texts.some((t) => t.includes("swp9")), "an unmapped port raises nothing");
  w.swB.up = false;
  await poll(w);
  assert.ok(ids(w).includes("switch-unreachable:switchB"));
  assert.ok(w.watch.clusterAlarms().some((a) => a.text === "node1 bond0 degraded: eth1 (switchB) down"), "the bond still names the dark switch (from the config)");
});

W("SEL: read every sel_every_ms, entries new since the last read are info alarms", async () => {
  w.sel = [{ id: 1, date: "Pre-Init", time: "1", sensor: "Temperature Temp", event: "Upper Critical going high", direction: "asserted" }];
  await poll(w, 1000);
  assert.equal(ids(w), [], "not yet due");
  await poll(w, 10_000);
  w.sel.push({ id: 2, date: "Pre-Init", time: "2", sensor: "Power Supply PSU2 Status", event: "Failure detected", direction: "asserted" });
  await poll(w, 10_000);
  const sel = w.watch.clusterAlarms().filter((a) => a.rule === "sel");
  assert.equal(sel.map((a) => a.text), ["node1 SEL 1: Temperature Temp Upper Critical going high", "node1 SEL 2: Power Supply PSU2 Status Failure detected"]);
  assert.ok(sel.every((a) => a.severity === "info"));
});

W("peers' retained alarms join the list; a broker's reset drops them; own stale ones are cleared", async () => {
  const theirs: Alarm = { ...(w.watch.clusterAlarms()[0] ?? {}), id: "psu:node2:PSU2", rule: "psu", severity: "major", node: "node2", reporter: "node2", text: "node2 PSU2 failed", detail: null, state: "raised", occurrence: 1, raisedAt: 1, updatedAt: 1, ackedBy: null, ackedAt: null, clearedAt: null, flaps: 0, flapping: false, until: null };
  w.alarmCb!("node2", theirs.id, theirs);
  assert.equal(ids(w), ["psu:node2:PSU2"]);
  const routes = w.watch.routes();
  const r = await routes["GET /alarms"]!(new URLSearchParams(), null);
  assert.equal((r.body as { active: Alarm[] }).active.map((a) => a.id), ["psu:node2:PSU2"]);
  const ack = await routes["POST /alarms/ack"]!(new URLSearchParams(), { id: theirs.id, who: "ops@node1" });
  assert.is(ack.code, 409, "raised elsewhere: refused with where to run it");
  w.alarmCb!("node2", null, null);
  assert.equal(ids(w), []);
  w.alarmCb!("node1", "fan:node1:Fan1", { ...theirs, id: "fan:node1:Fan1", reporter: "node1" });
  assert.equal(w.published, [["fan:node1:Fan1", ""]]);
});

W("events: failover done and fence failed become alarms; fence done settles the failure", async () => {
  w.eventFn!({ kind: "failover", node: "node1", term: 3, detail: "failover of mysql from node2 to node3 done in 2100 ms", fields: { svc: "mysql", to: "node3", ms: 2100, done: true } });
  w.eventFn!({ kind: "failover", node: "node1", term: 3, detail: "failover of redis from node2 FAILED at step confirmFence: every fence level failed", fields: { svc: "redis", step: "confirmFence", failed: true } });
  await poll(w);
  assert.equal(w.watch.clusterAlarms().map((a) => a.text).sort(), ["fencing node2 failed", "mysql failed over from node2 to node3"]);
  w.eventFn!({ kind: "fence", node: "node1", term: 3, detail: "node2 level ipmi CONFIRMED in 300 ms: off", fields: { node: "node2", level: "ipmi", ok: true, ms: 300 } });
  await poll(w);
  assert.equal(w.watch.clusterAlarms().map((a) => a.text), ["mysql failed over from node2 to node3"]);
});

W("host every hw.host_every_ms (10 s), time sync only every minute: the reading in between is the last one", async () => {
  for (let i = 0; i < 13; i++) await poll(w, 10_000); // up to t = 130 s
  const asked = w.hostAsked.map((o) => o.timeSync === undefined);
  assert.is(asked.length, 14, "a host reading every 10 s (t = 0 ... 130 s)");
  assert.equal(asked.map((fresh, i) => (fresh ? i * 10 : null)).filter((t) => t !== null), [0, 60, 120], "time sync asked at 0, 60 and 120 s");
  assert.equal(w.hostAsked[1]!.timeSync, { state: "synced", source: "chrony", offsetSeconds: 0, detail: "" }, "in between: the last reading's");
  assert.ok(w.hostAsked.every((o) => o.source === w.hostAsked[0]!.source && o.source), "one host source kept across readings");
});

W("metrics: sensors, ports, host, cluster, alarms and bus, all bollard_", async () => {
  w.temp = 85;
  await poll(w);
  const { text } = await renderMetrics(w.watch.metricsSnapshot());
  for (const m of [
    'bollard_sensor_temperature_celsius{node="node1",sensor="Temp"} 85', 'bollard_sensor_ok{node="node1",sensor="PSU2 Status"} 1', 'bollard_bmc_up{node="node1"} 1',
    'bollard_switch_port_oper_up{switch="switchB",port="swp1",node="node1"} 1', 'bollard_host_bond_slave_up{bond="bond0",slave="eth1"} 1',
    "bollard_cluster_is_leader 1", 'bollard_alarms_active{severity="major"} 1', "bollard_bus_messages_published_total 5",
  ]) assert.ok(text.includes(m), `missing ${m}`);
  const names = [...text.matchAll(/^(\w+)[{ ]/gm)].map((m) => m[1]!);
  assert.ok(names.every((n) => /^bollard_[a-z_]+$/.test(n)));
});

W.run();

const I = suite("watch inputs");

I("ports are named from ha.nodes.<n>.ports; the rules then name switch, port, node and NIC", () => {
  const map = portMap({ nodes: { node1: { address: "x", ports: [{ switch: "switchB", port: "swp1", nic: "eth1" }] } }, switches: {} } as never);
  const s = switchInput("switchB", { ok: true, value: { switch: "switchB", at: 0, ports: [port(1, "swp1", "down")] } }, map)!;
  assert.equal(s.ports![0], { port: "swp1", node: "node1", nic: "eth1", oper: "down", admin: "up" });
  const ev = evaluate({ node: "node2", switches: [s] }, defaultAlarmsConfig().rules);
  assert.equal(ev.conditions.map((c) => c.text), ["switchB port swp1 to node1 eth1 down"]);
});

I("facts: a replica without a source is broken; lag is unknown (not judged)", () => {
  assert.equal(mysqlInput({ up: true, role: "replica", writable: false, received: "", applied: "", source: null })!.ioRunning, false);
  assert.equal(mysqlInput({ up: true, role: "replica", writable: false, received: "", applied: "", source: "node1" })!.lagSeconds, null);
  assert.is(mysqlInput(null), null);
});

I("events that are not alarm events are ignored", () => {
  assert.is(eventInput({ kind: "step", node: "n", term: 1, detail: "x", fields: {} }), null);
  assert.is(eventInput({ kind: "failover", node: "n", term: 1, detail: "switchover of mysql from node1 to node2 done in 800 ms", fields: { svc: "mysql", to: "node2", ms: 800, done: true } }), null);
  assert.is(eventInput({ kind: "fence", node: "n", term: 1, detail: "node2 level ipmi not confirmed", fields: { node: "node2", ok: false } }), null);
});

I("a discrete PSU is ok while no fault offset is asserted", () => {
  const r = parseSensorList(SENSORS(40, 6000, "0x0300"));
  const ok = parseSensorList(SENSORS(40));
  assert.ok(r.ok && ok.ok);
  assert.is(sensorOk(r.value[2]!), false);
  assert.is(sensorOk(ok.value[2]!), true);
});

I("ipmitool gets a HOME with a one-entry IANA registry (not the system's 4.7 MB one); the password stays off argv", () => {
  const dir = mkdtempSync(join(tmpdir(), "bollard-ipmihome-"));
  try {
    assert.is(ipmitoolHome(dir, quiet), dir);
    assert.match(readFileSync(join(dir, ".local/usr/share/misc/enterprise-numbers.txt"), "utf8"), /^0\n  Reserved\n/);
    writeFileSync(join(dir, "pw"), "secret", { mode: 0o600 });
    const inv = new Ipmi({ host: "10.0.1.21", user: "admin", passwordFile: join(dir, "pw"), cipher: 3 }, { log: quiet, home: dir }).invocation(["sensor"]);
    assert.ok(inv.ok);
    assert.is(inv.value.env.HOME, dir);
    assert.ok(!inv.value.args.includes("secret"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

I.run();
