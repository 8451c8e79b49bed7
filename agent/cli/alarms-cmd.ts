// `bollard alarms [--all] [--json]` and `bollard alarms ack ID [--by WHO]`, and the control
// socket routes they talk to:
//   GET  /alarms[?all=1]   {status:"ok", node, active: ClusterAlarm[], cleared?: Alarm[]}
//   POST /alarms/ack       {id, who} -> {status:"ok", alarm, forwarded, acked, warnings} | {status:"error", error}
// The active list is cluster-wide: every node's retained alarms merged with this node's own.
// An ack applies to this node's own alarm, and is forwarded to every other node that raised
// it (alarms/remote-ack.ts): each applies it to its own engine and answers.
// When the agent does not answer, the CLI reads this node's alarm history instead and says
// that the list may be stale (exit 1, as `bollard status` does).
import { hostname, userInfo } from "node:os";
import { parseArgs } from "node:util";
import type { AlarmEngine } from "../alarms/engine.ts";
import type { ForwardResult } from "../alarms/remote-ack.ts";
import { AlarmHistory, historyDir, lastActive, mergeAlarms, occurrences, type ClusterAlarm } from "../alarms/history.ts";
import { ACKED_BY_RE, ALARM_ID_RE, type Alarm, type Severity, type Transition } from "../alarms/types.ts";
import { loadConfig } from "../config/load.ts";
import { DEFAULT_STATE_DIR } from "../config/schema.ts";
import type { SubCommand } from "./types.ts";
import { controlRequest, type Route } from "../runtime/control.ts";
import { age } from "../runtime/status.ts";

export interface AlarmRouteDeps {
  node: string;
  engine: AlarmEngine;
  history: AlarmHistory;
  /** every node's retained alarms as received over MQTT (this node's may be among them) */
  retained(): Iterable<Alarm>;
  /** wall-clock ms */
  wall(): number;
  /** an ack's transition: publish the retained alarm, append it to history, notify */
  onTransitions(ts: Transition[]): void;
  /** acks on other nodes for an alarm they raised (RemoteAck.forward); without it such an ack is refused */
  forwardAck?(id: string, who: string, reporters: string[]): Promise<ForwardResult>;
}

const RECENT = 100;

/** For ControlHandlers.routes: {"GET /alarms": ..., "POST /alarms/ack": ...}. */
export function alarmRoutes(d: AlarmRouteDeps): Record<string, Route> {
  const cluster = (): ClusterAlarm[] => {
    const local = d.engine.active();
    const others = [...d.retained()].filter((a) => a.reporter !== d.node);
    return mergeAlarms([...local, ...others]);
  };
  return {
    "GET /alarms": async (q) => {
      const body: Record<string, unknown> = { status: "ok", node: d.node, active: cluster() };
      if (q.get("all") === "1") body.cleared = occurrences(d.history.read(RECENT * 4).records).filter((a) => a.state === "cleared").slice(0, RECENT);
      return { code: 200, body };
    },
    "POST /alarms/ack": async (_q, raw) => {
      const b = raw as { id?: unknown; who?: unknown } | null;
      if (typeof b?.id !== "string" || !ALARM_ID_RE.test(b.id)) return { code: 400, body: { status: "error", error: "id: expected an alarm id ([A-Za-z0-9._:-], 1-128)" } };
      if (typeof b.who !== "string" || !ACKED_BY_RE.test(b.who)) return { code: 400, body: { status: "error", error: "who: expected 1-100 printable characters" } };
      const id = b.id;
      const local = d.engine.ack(id, b.who, d.wall());
      if (local.ok && local.transition) d.onTransitions([local.transition]);
      const remote = [...new Set([...d.retained()].filter((a) => a.id === id && a.reporter !== d.node && a.state !== "cleared").map((a) => a.reporter))].sort();
      if (!local.ok && remote.length === 0) return { code: 404, body: { status: "error", error: local.error } };
      const r: ForwardResult = { acked: [], errors: [] };
      if (remote.length && d.forwardAck) Object.assign(r, await d.forwardAck(id, b.who, remote));
      else if (remote.length && !local.ok) r.errors.push(`alarm ${id} is raised by ${remote.join(", ")}: run "bollard alarms ack ${id}" there`);
      // acknowledged somewhere: ok, with what failed elsewhere as warnings; nowhere: an error
      if (!local.ok && r.acked.length === 0) return { code: 409, body: { status: "error", error: r.errors.join("; ") } };
      const alarm = local.ok ? local.alarm : null;
      return { code: 200, body: { status: "ok", alarm, forwarded: r.acked.map((a) => a.node), acked: r.acked, warnings: r.errors } };
    },
  };
}

// ---- the CLI -------------------------------------------------------------------------

const SEV: Record<Severity, string> = { critical: "CRIT", major: "MAJ", minor: "MIN", info: "INFO" };
const W = { sev: 4, node: 8, since: 7, acked: 10 };
const TEXT_W = 80 - W.sev - W.node - W.since - W.acked - 8;

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

const cut = (s: string, w: number) => (s.length <= w ? s : `${s.slice(0, w - 1)}~`);

/** The 80-column table: severity, node, text (wrapped, id below), since, acked by. */
export function renderTable(rows: Alarm[], wallNow: number, sinceHead = "SINCE", sinceOf: (a: Alarm) => number = (a) => a.raisedAt): string[] {
  const lines = [["SEV".padEnd(W.sev), "NODE".padEnd(W.node), "ALARM".padEnd(TEXT_W), sinceHead.padEnd(W.since), "ACKED BY"].join("  ")];
  for (const a of rows) {
    const text = wrap(`${a.text}${a.flapping ? " (flapping)" : ""}`, TEXT_W);
    const id = wrap(`id ${a.id}`, TEXT_W);
    const first = [SEV[a.severity].padEnd(W.sev), cut(a.node, W.node).padEnd(W.node), text[0]!.padEnd(TEXT_W), cut(age(wallNow - sinceOf(a)), W.since).padEnd(W.since), cut(a.ackedBy ?? "-", W.acked)];
    lines.push(first.join("  ").trimEnd());
    for (const l of [...text.slice(1), ...id]) lines.push(`${" ".repeat(W.sev + W.node + 4)}${l}`.trimEnd());
  }
  return lines;
}

function whoAmI(): string {
  let user = process.env.SUDO_USER || process.env.USER || "";
  try {
    user ||= userInfo().username;
  } catch {
    user ||= "unknown";
  }
  return `${user}@${hostname()}`;
}

function paths(ctx: Parameters<SubCommand["run"]>[1]): { socket: string; stateDir: string } | string[] {
  const r = loadConfig(ctx.configPath, { secrets: false });
  if (r.ok) return { socket: r.config.control.socket, stateDir: r.config.stateDir };
  if (ctx.configGiven) return r.errors;
  return { socket: `${DEFAULT_STATE_DIR}/agent.sock`, stateDir: DEFAULT_STATE_DIR };
}

export const alarmsCommand: SubCommand = {
  name: "alarms",
  usage: [
    "alarms [--all] [--json]      active alarms, cluster-wide (--all: and recently cleared)",
    "alarms ack ID [--by WHO]     acknowledge alarm ID (WHO default: user@host)",
  ],
  async run(args, ctx) {
    const { io } = ctx;
    let o: { all?: boolean; json?: boolean; by?: string };
    let pos: string[];
    try {
      const p = parseArgs({ args, allowPositionals: true, strict: true, options: { all: { type: "boolean" }, json: { type: "boolean" }, by: { type: "string" } } });
      o = p.values;
      pos = p.positionals;
    } catch (e) {
      io.err(`bollard: alarms: ${(e as Error).message}\nrun "bollard --help" for usage`);
      return 2;
    }
    const p = paths(ctx);
    if (Array.isArray(p)) {
      io.err(`${ctx.configPath}: ${p.length} error${p.length === 1 ? "" : "s"}:\n${p.map((e) => `  ${e}`).join("\n")}`);
      return 2;
    }
    if (pos[0] === "ack") {
      if (pos.length !== 2 || !ALARM_ID_RE.test(pos[1]!)) return io.err('bollard: expected: alarms ack ID (an id as "bollard alarms" shows it)'), 2;
      return ack(p.socket, pos[1]!, o.by ?? whoAmI(), o.json ?? false, io);
    }
    if (pos.length) return io.err(`bollard: alarms: unexpected "${pos[0]}"\nrun "bollard --help" for usage`), 2;
    return list(p, o.all ?? false, o.json ?? false, io);
  },
};

type Io = Parameters<SubCommand["run"]>[1]["io"];

async function ack(socket: string, id: string, who: string, json: boolean, io: Io): Promise<number> {
  try {
    const r = await controlRequest(socket, "POST", "/alarms/ack", { id, who }, 10_000);
    const b = r.body as { status?: string; error?: string; alarm?: Alarm | null; forwarded?: string[]; acked?: { ackedBy: string }[]; warnings?: string[] };
    if (json) io.out(JSON.stringify(b));
    if (r.code === 200 && b.status === "ok") {
      if (!json) {
        // an alarm acknowledged before keeps its first who
        const by = b.alarm?.ackedBy ?? b.acked?.[0]?.ackedBy ?? who;
        const on = b.forwarded?.length ? (b.alarm ? ` (also on ${b.forwarded.join(", ")})` : ` on ${b.forwarded.join(", ")}`) : "";
        io.out(`acknowledged ${id} by ${by}${on}`);
        for (const w of b.warnings ?? []) io.err(`bollard: warning: ${w}`);
      }
      return 0;
    }
    if (!json) io.err(`bollard: refused: ${b.error ?? `HTTP ${r.code}`}`);
    return 1;
  } catch (e) {
    io.err(`bollard: cannot acknowledge: the agent is not answering on ${socket}: ${(e as Error).message}`);
    return 1;
  }
}

async function list(p: { socket: string; stateDir: string }, all: boolean, json: boolean, io: Io): Promise<number> {
  const now = Date.now();
  let why: string;
  try {
    const r = await controlRequest(p.socket, "GET", all ? "/alarms?all=1" : "/alarms", undefined, 3000);
    const b = r.body as { status?: string; node?: string; active?: ClusterAlarm[]; cleared?: Alarm[] };
    if (r.code === 200 && Array.isArray(b.active)) {
      if (json) io.out(JSON.stringify({ live: true, node: b.node, active: b.active, ...(all ? { cleared: b.cleared ?? [] } : {}) }));
      else io.out(render(b.active, all ? (b.cleared ?? []) : null, now, `cluster-wide, as ${b.node ?? "this node"} sees them`).join("\n"));
      return 0;
    }
    why = `the agent answered HTTP ${r.code}: ${JSON.stringify(r.body).slice(0, 200)}`;
  } catch (e) {
    why = `${p.socket}: ${(e as Error).message}`;
  }
  const dir = historyDir(p.stateDir);
  const h = new AlarmHistory(dir, { maxBytes: Infinity, keep: 100 }).read();
  const active = lastActive(h.records);
  const cleared = all ? occurrences(h.records).filter((a) => a.state === "cleared").slice(0, RECENT) : null;
  if (json) {
    io.out(JSON.stringify({ live: false, why, source: dir, active, ...(cleared ? { cleared } : {}) }));
  } else {
    io.err(`bollard: the agent is not answering (${why});\nthis node's alarms from its history in ${dir}: the list may be stale and shows no other node's alarms`);
    if (h.errors.length) io.err(h.errors.map((e) => `  ${e}`).join("\n"));
    io.out(render(active, cleared, now, "from history, may be stale").join("\n"));
  }
  return 1;
}

function render(active: Alarm[], cleared: Alarm[] | null, now: number, what: string): string[] {
  const out = [active.length ? `${active.length} active alarm${active.length === 1 ? "" : "s"} (${what})` : `no active alarms (${what})`];
  if (active.length) out.push(...renderTable(active, now));
  if (cleared) {
    out.push("", cleared.length ? `recently cleared (${cleared.length}, newest first)` : "nothing cleared recently");
    if (cleared.length) out.push(...renderTable(cleared, now, "CLEARED", (a) => a.clearedAt ?? a.updatedAt));
  }
  return out;
}
