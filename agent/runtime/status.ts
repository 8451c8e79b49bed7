// What `bollard status` shows: the status body the agent serves on its control socket and
// writes to `<state_dir>/status.json` every second (so the last known state is there when
// the agent is down), the retained MQTT state summary, and the human table.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { NodeView } from "../cluster/view.ts";
import { atomicWrite } from "../env/store.ts";
import { controlRequest } from "./control.ts";

export interface StatusBody {
  agent: { version: string; rev: string; pid: number; uptimeS: number; startedAt: string };
  cluster: string;
  view: NodeView;
  /** bus counters and per-broker connection state (bus/mqtt.ts BusStats) */
  bus: object;
  /** the data path: local facts, procedures running, peers' reports (runtime/ha-runtime.ts); null without HA */
  ha?: object | null;
  /** the hardware and alarm watch (runtime/watch.ts WatchSnapshot): alarms, BMC sensors, switch ports, host */
  watch?: object | null;
  /** N+1 readiness (ha/readiness.ts Readiness): could the cluster lose each node now; null: not judged */
  ready?: object | null;
  /** the control socket's requests and what it refused, by HTTP code (runtime/control.ts) */
  control?: object | null;
  /** the VMs (runtime/vm-runtime.ts snapshot); null without VMs */
  vms?: object | null;
  /** backups in short (runtime/backup-component.ts BackupSummary); null without backups */
  backup?: object | null;
  /** the backups of the VMs this node runs (backup/vm-status.ts VmBackupStatus[]); null without vms.backup */
  vmBackups?: object[] | null;
  /** wall-clock ms when this body was made */
  wall: number;
}

export const STATUS_FILE = "status.json";

/** The retained `state` topic body: what peers and dashboards need, without timestamps. */
export function stateSummary(v: NodeView): Record<string, unknown> {
  return {
    node: v.node,
    role: v.role,
    term: v.term,
    leader: v.leader,
    quorum: v.quorum,
    lease: v.lease,
    acting: v.acting,
    tilt: v.tilt,
    selfFenced: v.selfFenced,
    member: v.member,
    cfg: { term: v.config.term, epoch: v.config.epoch },
    committed: v.committed.epoch,
    peers: Object.fromEntries(v.peers.map((p) => [p.name, p.alive])),
  };
}

/** Written with rename (atomic for readers) but without fsync: it is refreshed every second. */
export function writeStatusFile(stateDir: string, body: StatusBody): void {
  atomicWrite(join(stateDir, STATUS_FILE), JSON.stringify(body) + "\n", { durable: false, mode: 0o644 });
}

export type StatusRead =
  | { ok: true; live: true; body: StatusBody }
  | { ok: true; live: false; body: StatusBody; ageMs: number; why: string }
  | { ok: false; why: string };

/** Asks the agent; if it does not answer, falls back to the status file it last wrote. */
export async function readStatus(socket: string, stateDir: string, wallNow = Date.now()): Promise<StatusRead> {
  let why: string;
  try {
    const r = await controlRequest(socket, "GET", "/status", undefined, 3000);
    if (r.code === 200) return { ok: true, live: true, body: r.body as StatusBody };
    why = `the agent answered HTTP ${r.code}: ${JSON.stringify(r.body)}`;
  } catch (e) {
    why = `${socket}: ${(e as Error).message}`;
  }
  const file = join(stateDir, STATUS_FILE);
  try {
    const body = JSON.parse(readFileSync(file, "utf8")) as StatusBody;
    if (typeof body?.wall !== "number" || !body.view) throw new Error("not a status file");
    return { ok: true, live: false, body, ageMs: wallNow - body.wall, why };
  } catch (e) {
    return { ok: false, why: `${why}; no last known state in ${file} (${(e as Error).message})` };
  }
}

export function renderStatus(r: Exclude<StatusRead, { ok: false }>): string {
  const { body } = r;
  const v = body.view;
  const yes = (b: boolean) => (b ? "yes" : "NO");
  const lines: string[] = [];
  if (!r.live) lines.push(`agent not answering; last known state from ${age(r.ageMs)} ago`, `  (${r.why})`, "");
  const rows: [string, string][] = [
    ["cluster", body.cluster],
    ["node", `${v.node}${v.member ? "" : " (not a member)"}`],
    ["agent", `${body.agent.version} (${body.agent.rev}), pid ${body.agent.pid}, up ${age(body.agent.uptimeS * 1000)}`],
    ["role", v.role],
    ["term", String(v.term)],
    ["leader", v.leader ?? "none"],
    ["quorum", yes(v.quorum)],
    ["lease", v.role === "leader" ? (v.lease ? "held" : "NOT HELD") : "-"],
    ["acting", yes(v.acting)],
    ["tilt", v.tilt ? "YES (not acting until re-synced)" : "no"],
    ["self-fenced", v.selfFenced ? "YES (quorum lost: everything held is demoted)" : "no"],
    ["config", `epoch ${v.config.epoch} (term ${v.config.term}), committed epoch ${v.committed.epoch}`],
  ];
  const assigned = Object.entries(v.committed.assignments);
  if (assigned.length) rows.push(["assigned", assigned.map(([s, n]) => `${s}=${n}`).join(" ")]);
  const w = Math.max(...rows.map(([k]) => k.length));
  for (const [k, val] of rows) lines.push(`${k.padEnd(w)}  ${val}`);
  if (v.peers.length) {
    lines.push("", "peers:");
    const table = [["NAME", "ALIVE", "LAST HEARD", "ROLE", "TERM", "LEADER", "SKEW"]];
    for (const p of v.peers) {
      table.push([
        p.name,
        p.alive ? "yes" : "NO",
        p.lastHeardMs === null ? "never" : `${age(p.lastHeardMs)} ago`,
        p.role,
        String(p.term),
        p.leader ?? "-",
        p.skewMs === null ? "-" : `${p.skewMs >= 0 ? "+" : ""}${Math.round(p.skewMs)} ms`,
      ]);
    }
    const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
    for (const row of table) lines.push("  " + row.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd());
  }
  return lines.join("\n");
}

/** 850 ms, 4.2 s, 3m12s, 2h05m, 3d04h */
export function age(ms: number): string {
  if (!Number.isFinite(ms)) return "?";
  const neg = ms < 0 ? "-" : "";
  ms = Math.abs(ms);
  if (ms < 1000) return `${neg}${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${neg}${s.toFixed(1)} s`;
  const two = (n: number) => String(Math.floor(n)).padStart(2, "0");
  if (s < 3600) return `${neg}${Math.floor(s / 60)}m${two(s % 60)}s`;
  if (s < 86400) return `${neg}${Math.floor(s / 3600)}h${two((s % 3600) / 60)}m`;
  return `${neg}${Math.floor(s / 86400)}d${two((s % 86400) / 3600)}h`;
}
