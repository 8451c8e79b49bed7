// Screens 1 (Nodes) and 6 (Network), and the rows `bollard nodes` prints. What the agent does
// not report (another node's load, a BMC not configured) is '-'.
import { ago, alive, assignments, cols, cut, flags, holdsVip, membersOf, type Assessment, type Model } from "./model.ts";
import type { Line } from "./vt100.ts";

export interface NodeRow {
  node: string;
  self: boolean;
  role: string;
  state: "up" | "down" | "agent-down" | "unknown";
  heardMs: number | null;
  skewMs: number | null;
  bmc: string | null;
  power: string | null;
  tempC: number | null;
  fans: string | null;
  psus: string | null;
  /** per switch, in ha.switches order: the oper status of the node's port */
  links: { switch: string; port: string; oper: string | null }[];
  load: number | null;
  holds: string[];
  notes: string[];
}

export function nodeRows(m: Model): NodeRow[] {
  const v = m.status.body?.view;
  const f = flags(m);
  const a = assignments(m);
  return membersOf(m).map((n) => {
    const self = n === m.self;
    const peer = v?.peers.find((p) => p.name === n);
    const up = alive(m, n);
    const hw = m.hw.nodes[n];
    const notes: string[] = [];
    if (f[`maint:${n}`] === "on") notes.push("maint");
    if (`fencing:${n}` in f) notes.push("FENCING");
    if (`fenced:${n}` in f) notes.push("fenced");
    if (f[`nofailover:${n}`] === "on") notes.push("nofailover");
    if (self && v?.selfFenced) notes.push("SELF-FENCED");
    if (self && v?.tilt) notes.push("TILT");
    return {
      node: n,
      self,
      role: !v ? "?" : self ? v.role : up ? (peer?.role ?? "?") : "-",
      state: !v ? "unknown" : self ? (m.status.live ? "up" : "agent-down") : up ? "up" : "down",
      heardMs: self ? null : (peer?.lastHeardMs ?? null),
      skewMs: self ? null : (peer?.skewMs ?? null),
      bmc: hw?.bmc ?? null,
      power: hw?.power ?? null,
      tempC: hw?.tempC ?? null,
      fans: hw?.fans ?? null,
      psus: hw?.psus ?? null,
      links: m.hw.switches.map((s) => {
        const p = m.hw.ports.find((x) => x.node === n && x.switch === s.name);
        return { switch: s.name, port: p?.port ?? "-", oper: p ? p.oper : null };
      }),
      load: self && m.hw.load ? m.hw.load[0] : null,
      holds: Object.entries(a).filter(([, h]) => h === n).map(([s]) => s).sort(),
      notes,
    };
  });
}

const W = [8, 9, 6, 6, 5, 5, 5, 9, 5];
const link = (o: string | null) => (o === null ? "-" : o === "up" ? "up" : o === "down" || o === "lowerLayerDown" ? "DN" : o.slice(0, 2));
const bmcText = (b: string | null) => (b === null ? "-" : b === "ok" ? "ok" : "ERR");

/** The table of screen 1 and `bollard nodes`: a header and one row per member. */
export function nodesTable(m: Model, width = 80): string[] {
  const rows = nodeRows(m);
  const sw = m.hw.switches.map((s) => s.name.slice(-1)).join("/") || "A/B";
  const head = cols(["NODE", "ROLE", "STATE", "HEARD", "BMC", "POWER", "TEMP", `LINK ${sw}`, "LOAD", "HOLDS / NOTES"], W, width);
  return [
    head,
    ...rows.map((r) =>
      cols(
        [
          `${r.node}${r.self ? "*" : ""}`,
          r.role,
          r.state === "agent-down" ? "AGENT?" : r.state === "down" ? "DOWN" : r.state,
          r.self || r.heardMs === null ? "-" : r.heardMs < 1000 ? "<1s" : ago(r.heardMs),
          bmcText(r.bmc),
          r.power ?? "-",
          r.tempC === null ? "-" : `${Math.round(r.tempC)}C`,
          r.links.length ? r.links.map((l) => link(l.oper)).join("/") : "-",
          r.load === null ? "-" : r.load.toFixed(2),
          [...r.holds, ...r.notes].join(" ") || "-",
        ],
        W,
        width,
      ),
    ),
  ];
}

export function nodesScreen(m: Model, rows: number, a: Assessment): Line[] {
  const out: Line[] = [...nodesTable(m)];
  // N+1 readiness (runtime/readiness.ts): could the cluster lose any one node now
  const ready = (m.status.body?.ready ?? null) as { line?: unknown } | null;
  if (typeof ready?.line === "string") out.push(cut(`N+1: ${ready.line}`, 80));
  out.push("");
  if (a.reasons.length) {
    out.push(`${a.level}:`);
    const room = Math.max(1, rows - out.length - 6);
    const shown = a.reasons.slice(0, room);
    for (const r of shown) out.push(`  - ${cut(r, 74)}`);
    if (a.reasons.length > shown.length) out.push(`  ... and ${a.reasons.length - shown.length} more`);
  } else out.push("Everything is OK: all nodes up, primaries writable, replicas replicating.");
  out.push("");
  const hwRows = nodeRows(m).filter((r) => r.fans || r.psus || (r.bmc && r.bmc !== "ok"));
  for (const r of hwRows) {
    const bits = [r.fans ? `fans ${r.fans}` : "", r.psus ? `psu ${r.psus}` : "", r.bmc && r.bmc !== "ok" ? `BMC: ${r.bmc}` : ""].filter(Boolean);
    out.push(cut(`${r.node.padEnd(8)} ${bits.join("  ")}`, 80));
  }
  const b = m.hw.bond;
  if (b) out.push(cut(`${m.self.padEnd(8)} ${b.name} ${b.mode}, active ${b.active ?? "none"}: ${b.slaves.map((s) => `${s.name} ${s.mii}`).join(", ")}`, 80));
  out.push(m.hw.at === null ? "hardware: not read yet (BMCs and switches are read while screens 1 and 6 show)" : `hardware read ${ago(m.now - m.hw.at)} ago; * this node; LINK: the node's port on each switch`);
  return out;
}

export function networkScreen(m: Model, rows: number): Line[] {
  const out: Line[] = [`This node: ${m.self}`];
  const ifs = m.hw.addresses;
  if (ifs.length) for (const x of ifs) out.push(`  ${x.iface.padEnd(10)} ${x.cidr}`);
  else out.push("  addresses: -");
  const a = assignments(m);
  if (m.vip) {
    const here = holdsVip(m, m.self);
    out.push(`  ${"VIP".padEnd(10)} ${m.vip}  ${here ? "held here" : `not here${a.vip ? `; assigned to ${a.vip}` : ""}`}`);
  }
  const b = m.hw.bond;
  if (b) {
    out.push(`Bond ${b.name}: ${b.mode}, active ${b.active ?? "NONE"}`);
    out.push(`  ${b.slaves.map((s) => `${s.name} ${s.mii === "up" ? "up" : "DOWN"} (${s.failures} link failures)`).join("   ")}`);
  } else out.push("Bond: -");
  out.push("");
  if (m.hw.switches.length) {
    const nodes = membersOf(m);
    out.push(cols(["SWITCH", "ADDRESS", "SNMP", ...nodes], [8, 15, 5, ...nodes.map(() => 13)]));
    for (const s of m.hw.switches) {
      const ports = nodes.map((n) => {
        const p = m.hw.ports.find((x) => x.node === n && x.switch === s.name);
        if (!p) return "-";
        const st = p.admin === "down" ? "SHUT" : p.oper === "up" ? "up" : p.oper === null ? "?" : "DOWN";
        return `${p.port} ${st}`;
      });
      out.push(cols([s.name, s.host, s.snmp === "ok" ? "ok" : "ERR", ...ports], [8, 15, 5, ...nodes.map(() => 13)]));
    }
    for (const s of m.hw.switches.filter((x) => x.snmp !== "ok")) out.push(cut(`  ${s.name}: ${s.snmp}`, 80));
  } else out.push("Switches: - (none configured in ha.switches, or not read yet)");
  out.push("");
  const data = Object.entries(m.addresses);
  if (data.length) out.push(cut(`Data addresses: ${data.map(([n, ip]) => `${n} ${ip}`).join("  ")}`, 80));
  const bus = (m.status.body?.bus ?? {}) as { brokers?: { name: string; connected: boolean; reconnects: number }[] };
  if (bus.brokers?.length) out.push(cut(`Bus brokers: ${bus.brokers.map((x) => `${x.name} ${x.connected ? "ok" : "DOWN"}`).join("  ")}`, 80));
  return out.slice(0, rows);
}
