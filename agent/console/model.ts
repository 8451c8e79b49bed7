// What the console shows, as data: the Model (what the data source last read from the agent,
// the alarms, logs, events and the hardware) and the judgement of the top line (OK / DEGRADED
// / CRITICAL and why). Pure: the renderers and the CLI views (views-cmd.ts) read the same
// Model, so what `bollard nodes` prints is what screen 1 shows.
import type { DbReport, ResReport } from "../bus/messages.ts";
import type { StatusBody } from "../runtime/status.ts";
import type { SiteView } from "../runtime/site-runtime.ts";

export type Svc = "mysql" | "redis";

/** A service's facts on one node (ha/local.ts DbFacts, or a peer's DbReport). */
export type Facts = Pick<DbReport, "up" | "role" | "writable" | "received" | "applied" | "source"> & { heldOut?: string | null };

/** StatusBody.ha as runtime/ha-runtime.ts snapshot() makes it. */
export interface HaSnapshot {
  facts: { mysql: Facts | null; redis: Facts | null; portal: { mysql: string | null; redis: string | null } | null; vip: boolean | null };
  busy: string[];
  procedures: string[];
  heldOut: Record<string, string>;
  peers: Record<string, ResReport>;
  /** remote sites (runtime/site-runtime.ts SiteView); absent from older agents */
  sites?: SiteView[];
}

/** The status as last read: live from the agent, or its status.json when it does not answer. */
export interface StatusState {
  live: boolean;
  body: StatusBody | null;
  /** wall ms the body was made (body.wall) */
  wall: number | null;
  /** why it is not live */
  why: string | null;
}

export interface AlarmRow {
  id: string;
  severity: string;
  node: string;
  text: string;
  state: string;
  raisedAt: number;
  ackedBy: string | null;
  clearedAt?: number | null;
  detail?: string;
  rule?: string;
  /** every reporter is unreachable: its last word, not a current fact (alarms/history.ts) */
  stale?: { forMs: number };
}

export interface LogLine {
  ts: string;
  level: string;
  ns: string;
  msg: string;
  [k: string]: unknown;
}

export interface EventLine {
  ts: string;
  kind: string;
  node: string;
  term: number;
  detail: string;
  fields?: Record<string, unknown>;
}

/** Hardware as the console reads it itself (hw.ts); every part optional. */
export interface HwNode {
  /** "ok", or why the BMC did not answer */
  bmc: string | null;
  power: "on" | "off" | null;
  tempC: number | null;
  fans: string | null;
  psus: string | null;
}
export interface HwPort {
  node: string;
  switch: string;
  port: string;
  oper: string | null;
  admin: string | null;
}
export interface HwSwitch {
  name: string;
  host: string;
  /** "ok" or why SNMP did not answer */
  snmp: string;
}
export interface Hardware {
  /** wall ms of the last reading; null: none yet */
  at: number | null;
  nodes: Record<string, HwNode>;
  switches: HwSwitch[];
  ports: HwPort[];
  /** this node only */
  load: [number, number, number] | null;
  bond: { name: string; mode: string; active: string | null; slaves: { name: string; mii: string; failures: number }[] } | null;
  addresses: { iface: string; cidr: string }[];
}

export interface Model {
  /** wall ms now */
  now: number;
  self: string;
  /** the configured members (the cluster config supersedes them once read) */
  members: string[];
  /** ha.vip.address from the config, e.g. 198.18.0.10/24 */
  vip: string | null;
  /** node -> data address (ha.nodes) */
  addresses: Record<string, string>;
  status: StatusState;
  alarms: { available: boolean | null; active: AlarmRow[]; error: string | null };
  logs: { node: string; lines: LogLine[]; error: string | null };
  events: { lines: EventLine[]; errors: string[] };
  hw: Hardware;
}

export const emptyHardware = (): Hardware => ({ at: null, nodes: {}, switches: [], ports: [], load: null, bond: null, addresses: [] });

// ---- reading the status --------------------------------------------------------------

export const haOf = (m: Model): HaSnapshot | null => (m.status.body?.ha as HaSnapshot | null | undefined) ?? null;

/** The members: the committed cluster config's, else the configured ones. */
export function membersOf(m: Model): string[] {
  const v = m.status.body?.view;
  const names = v?.committed.members.map((x) => x.name) ?? [];
  return names.length ? names : m.members.length ? m.members : [m.self];
}

/** A node's facts for a service: its own (this node) or its latest report (a peer). */
export function factsOf(m: Model, node: string, svc: Svc): Facts | null {
  const ha = haOf(m);
  if (!ha) return null;
  if (node === m.self) return ha.facts[svc];
  return ha.peers[node]?.[svc] ?? null;
}

export function alive(m: Model, node: string): boolean | null {
  const v = m.status.body?.view;
  if (!v) return null;
  if (node === v.node) return true; // the console runs there; the agent may not (status.live)
  return v.peers.find((p) => p.name === node)?.alive ?? false;
}

/** Whether the node's VIP is up there, from its facts or report. */
export function holdsVip(m: Model, node: string): boolean | null {
  const ha = haOf(m);
  if (!ha) return null;
  return node === m.self ? ha.facts.vip : ha.peers[node]?.vip ?? null;
}

export function flags(m: Model): Record<string, string> {
  return m.status.body?.view.committed.flags ?? {};
}

export function assignments(m: Model): Record<string, string> {
  return m.status.body?.view.committed.assignments ?? {};
}

/** Services the cluster runs: assigned ones, or ones with facts on this node. */
export function services(m: Model): Svc[] {
  const ha = haOf(m);
  const a = assignments(m);
  return (["mysql", "redis"] as Svc[]).filter((s) => s in a || !!ha?.facts[s]);
}

// ---- the top line ---------------------------------------------------------------------

export type Level = "OK" | "DEGRADED" | "CRITICAL";
export interface Assessment {
  level: Level;
  /** most serious first */
  reasons: string[];
}

/** OK / DEGRADED / CRITICAL, and why, from what the model holds. */
export function assess(m: Model): Assessment {
  const crit: string[] = [];
  const deg: string[] = [];
  const s = m.status;
  const b = s.body;
  if (!b) return { level: "CRITICAL", reasons: ["agent down, no last known state"] };
  if (!s.live) crit.push(`agent down on ${m.self}`);
  const v = b.view;
  const members = membersOf(m);
  if (v.selfFenced) crit.push(`${m.self} self-fenced`);
  if (!v.quorum) crit.push(`no quorum (sees ${1 + v.peers.filter((p) => p.alive).length} of ${members.length})`);
  else if (!v.leader) crit.push("no leader");
  if (v.tilt) deg.push("TILT: clock or stall");
  for (const n of members) if (n !== m.self && alive(m, n) === false) deg.push(`${n} down`);
  const f = flags(m);
  const a = assignments(m);
  const ha = haOf(m);
  for (const svc of services(m)) {
    const holder = a[svc];
    const busy = ha?.procedures.find((p) => p.includes(` of ${svc}`));
    if (!holder) {
      crit.push(`${svc}: no primary`);
      continue;
    }
    const hf = factsOf(m, holder, svc);
    if (busy) crit.push(`${svc}: ${busy}`);
    else if (alive(m, holder) === false) crit.push(`${svc}: primary ${holder} down`);
    else if (hf && (!hf.up || !hf.writable)) crit.push(`${svc}: ${holder} not writable`);
    for (const n of members) {
      if (n === holder || alive(m, n) === false || f[`maint:${n}`] === "on") continue;
      const x = factsOf(m, n, svc);
      if (!x) continue;
      if (x.heldOut) deg.push(`${svc}: ${n} held out`);
      else if (!x.up) deg.push(`${svc}: ${n} down`);
      else if (x.role !== "replica" || x.source !== holder) deg.push(`${svc}: ${n} not replicating`);
    }
  }
  if (a.vip && holdsVip(m, a.vip) === false && alive(m, a.vip) !== false) deg.push(`VIP not up on ${a.vip}`);
  if (f.ha === "disarmed") deg.push("HA disarmed");
  for (const k of Object.keys(f)) {
    const [what, node] = k.split(":");
    if (what === "maint" && f[k] === "on") deg.push(`${node} in maintenance`);
    if (what === "fenced") deg.push(`${node} fenced`);
    if (what === "fencing") crit.push(`fencing ${node}`);
  }
  const live = m.alarms.active.filter((x) => !x.stale);
  // writes are down: first, with what to type (issue 17 item 2)
  const down = live.filter((x) => x.rule === "writes-down").map((x) => `${x.text}${/to let bollard act: (.*)$/.exec(x.detail ?? "")?.[1] ? ` (type: ${/to let bollard act: (.*)$/.exec(x.detail!)![1]})` : ""}`);
  const serious = live.filter((x) => (x.severity === "critical" || x.severity === "major") && !x.ackedBy && x.rule !== "writes-down");
  if (serious.length) deg.push(`${serious.length} alarm${serious.length === 1 ? "" : "s"}`);
  const reasons = [...down, ...crit, ...dedupe(deg)];
  return { level: crit.length || down.length ? "CRITICAL" : deg.length ? "DEGRADED" : "OK", reasons };
}

function dedupe(xs: string[]): string[] {
  return [...new Set(xs)];
}

// ---- text ------------------------------------------------------------------------------

/** `s` cut to `w` characters, the last one `~` when cut. */
export function cut(s: string, w: number): string {
  if (w <= 0) return "";
  return s.length <= w ? s : `${s.slice(0, w - 1)}~`;
}

export const pad = (s: string, w: number) => cut(s, w).padEnd(w);
export const rpad = (s: string, w: number) => cut(s, w).padStart(w);

/** Columns of widths `ws` joined by one space; the last one takes what is left of 80. */
export function cols(values: string[], ws: number[], width = 80): string {
  let out = "";
  values.forEach((v, i) => {
    const w = i === values.length - 1 ? Math.max(0, width - out.length) : ws[i]!;
    out += (i === values.length - 1 ? cut(v, w) : pad(v, w)) + (i === values.length - 1 ? "" : " ");
  });
  return out.trimEnd();
}

/** Wraps `s` to lines of at most `w` characters, breaking at spaces where it can. */
export function wrap(s: string, w: number): string[] {
  const out: string[] = [];
  let line = "";
  for (const word of s.split(/\s+/).filter(Boolean)) {
    for (let rest = word; rest.length; ) {
      const room = line ? w - line.length - 1 : w;
      if (rest.length <= room) {
        line = line ? `${line} ${rest}` : rest;
        rest = "";
      } else if (line) {
        out.push(line);
        line = "";
      } else {
        out.push(rest.slice(0, w));
        rest = rest.slice(w);
      }
    }
  }
  if (line || out.length === 0) out.push(line);
  return out;
}

/** "12:03:04.123" of an ISO time (UTC, as the logs are). */
export const clock = (iso: string) => (iso.length >= 23 ? iso.slice(11, 23) : iso);

/** 850ms, 4.2s, 3m12s, 2h05m, 3d04h: short ages for columns. */
export function ago(ms: number | null): string {
  if (ms === null || !Number.isFinite(ms)) return "-";
  if (ms < 0) ms = 0;
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)}s`;
  const two = (n: number) => String(Math.floor(n)).padStart(2, "0");
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${two((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d${two((s % 86400) / 3600)}h`;
}
