// A Model of a healthy three-node cluster seen from node1 (the leader, MySQL primary and VIP
// holder; node2 holds Redis), as the console and the CLI views get it. Tests change parts.
import type { ResReport } from "../../agent/bus/messages.ts";
import type { NodeView } from "../../agent/cluster/view.ts";
import type { EventLine, LogLine, Model } from "../../agent/console/model.ts";
import type { StatusBody } from "../../agent/runtime/status.ts";

export const NOW = Date.parse("2026-11-22T10:00:00.000Z");
const G = (n: number) => `0-1-${n}`;

export function view(over: Partial<NodeView> = {}): NodeView {
  const cfg = {
    epoch: 12, term: 3,
    members: [{ name: "node1", bus: "198.18.0.11:1883" }, { name: "node2", bus: "198.18.0.12:1883" }, { name: "node3", bus: "198.18.0.13:1883" }],
    assignments: { mysql: "node1", vip: "node1", redis: "node2" },
    flags: {},
  };
  return {
    node: "node1", role: "leader", term: 3, leader: "node1", quorum: true, lease: true, acting: true, current: true, tilt: false, selfFenced: false, member: true,
    config: cfg, committed: structuredClone(cfg),
    peers: [
      { name: "node2", alive: true, lastHeardMs: 120, term: 3, role: "follower", leader: "node1", skewMs: 2 },
      { name: "node3", alive: true, lastHeardMs: 80, term: 3, role: "follower", leader: "node1", skewMs: -1 },
    ],
    counters: {},
    ...over,
  };
}

const report = (mysql: "primary" | "replica", redis: "primary" | "replica", vip: boolean, lagTx = 0): ResReport => ({
  v: 1, t: "res", vip, selfFenced: false,
  mysql: { up: true, role: mysql, writable: mysql === "primary", received: G(1234 - lagTx), applied: G(1234 - lagTx), source: mysql === "primary" ? null : "node1", heldOut: null },
  redis: { up: true, role: redis, writable: redis === "primary", received: String(88000 - lagTx), applied: String(88000 - lagTx), source: redis === "primary" ? null : "node2", heldOut: null },
  portal: { mysql: "node1", redis: "node2" },
});

export function body(over: Partial<NodeView> = {}): StatusBody {
  const self = report("primary", "replica", true);
  return {
    agent: { version: "0.1.0", rev: "abc", pid: 4242, uptimeS: 3600, startedAt: new Date(NOW - 3_600_000).toISOString() },
    cluster: "lab",
    view: view(over),
    bus: { brokers: [{ name: "node1", connected: true, reconnects: 0 }, { name: "node2", connected: true, reconnects: 1 }, { name: "node3", connected: true, reconnects: 0 }] },
    ha: {
      facts: { mysql: self.mysql, redis: self.redis, portal: self.portal, vip: true },
      busy: [], procedures: [], heldOut: {},
      peers: { node2: report("replica", "primary", false), node3: report("replica", "replica", false, 2) },
    },
    wall: NOW - 300,
  };
}

export const events: EventLine[] = [
  { ts: "2026-11-22T09:58:01.100Z", kind: "failover", node: "node1", term: 3, detail: "failover of mysql from node3 started: node3 is lost (no heartbeat for 2045 ms); steps confirmFence, pickCandidate, commitConfig, applyRelayLog, promote, repointOthers, switchPortal, moveVip" },
  { ts: "2026-11-22T09:58:01.450Z", kind: "step", node: "node1", term: 3, detail: "failover mysql step confirmFence done in 350 ms: fence proof for node3: ipmi confirmed (chassis power off; power status: off, 300 ms)", fields: { ms: 350 } },
  { ts: "2026-11-22T09:58:01.500Z", kind: "step", node: "node1", term: 3, detail: "failover mysql step pickCandidate done in 50 ms: node1 (received 0-1-1230)" },
  { ts: "2026-11-22T09:58:01.520Z", kind: "commit", node: "node1", term: 3, detail: "config epoch 11 (term 3) committed" },
  { ts: "2026-11-22T09:58:01.560Z", kind: "lrm", node: "node1", term: 3, detail: "mysql promote done in 10 ms: promoted at 0-1-1230 (assigned mysql in epoch 11)" },
  { ts: "2026-11-22T09:58:01.800Z", kind: "failover", node: "node1", term: 3, detail: "failover of mysql from node3 to node1 done in 700 ms" },
];

export const logs: LogLine[] = [
  { ts: "2026-11-22T09:59:58.000Z", level: "info", ns: "cluster", msg: "following node1 in term 3" },
  { ts: "2026-11-22T09:59:59.000Z", level: "warn", ns: "bus", msg: "broker node3 disconnected", broker: "198.18.0.13:1883" },
];

export function model(over: Partial<Model> = {}): Model {
  return {
    now: NOW, self: "node1", members: ["node1", "node2", "node3"], vip: "198.18.0.10/24",
    addresses: { node1: "198.18.0.11", node2: "198.18.0.12", node3: "198.18.0.13" },
    status: { live: true, body: body(), wall: NOW - 300, why: null },
    alarms: { available: true, active: [], error: null },
    logs: { node: "node1", lines: logs, error: null },
    events: { lines: events, errors: [] },
    hw: {
      at: NOW - 4000,
      nodes: {
        node1: { bmc: "ok", power: "on", tempC: 41, fans: "6000/6000", psus: "ok/ok" },
        node2: { bmc: "ok", power: "on", tempC: 40, fans: "6000/6000", psus: "ok/ok" },
        node3: { bmc: "ok", power: "on", tempC: 39, fans: "6000/6000", psus: "ok/ok" },
      },
      switches: [{ name: "switchA", host: "198.18.1.31", snmp: "ok" }, { name: "switchB", host: "198.18.1.32", snmp: "ok" }],
      ports: ["node1", "node2", "node3"].flatMap((n, i) => ["switchA", "switchB"].map((s) => ({ node: n, switch: s, port: `swp${i + 1}`, oper: "up", admin: "up" }))),
      load: [0.52, 0.4, 0.3],
      bond: { name: "bond0", mode: "active-backup", active: "eth0", slaves: [{ name: "eth0", mii: "up", failures: 0 }, { name: "eth1", mii: "up", failures: 1 }] },
      addresses: [{ iface: "bond0", cidr: "198.18.0.11/24" }, { iface: "mgmt", cidr: "198.18.1.11/24" }],
    },
    ...over,
  };
}
