// `bollard alarms [--all] [--json]` and `bollard alarms ack ID [--by WHO]`, through the
// control socket routes the agent serves (runtime/alarm-routes.ts): GET /alarms, the
// cluster-wide active list; POST /alarms/ack, which the agent forwards to every node that
// raised the alarm.
// When the agent does not answer, the CLI reads this node's alarm history instead and says
// that the list may be stale (exit 1, as `bollard status` does).
import { hostname, userInfo } from "node:os";
import { parseArgs } from "node:util";
import { AlarmHistory, historyDir, lastActive, occurrences, type ClusterAlarm } from "../alarms/history.ts";
import { ALARM_ID_RE, type Alarm, type Severity } from "../alarms/types.ts";
import { loadConfig } from "../config/load.ts";
import { DEFAULT_STATE_DIR } from "../config/schema.ts";
import type { SubCommand } from "./types.ts";
import { RECENT } from "../runtime/alarm-routes.ts";
import { controlRequest } from "../runtime/control.ts";
import { age } from "../runtime/status.ts";

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
    const st = (a as ClusterAlarm).stale;
    const text = wrap(`${a.text}${a.flapping ? " (flapping)" : ""}${st ? ` (stale: ${(a as ClusterAlarm).reporters.join(",")} not heard for ${age(st.forMs)})` : ""}`, TEXT_W);
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
      o = { ...p.values, json: p.values.json || ctx.json };
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
