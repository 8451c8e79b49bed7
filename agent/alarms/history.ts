// Alarm history on disk, and the alarm payloads on MQTT (DESIGN §3, §6).
//
// History: every transition is one JSON line in `<dir>/history.jsonl` (dir is
// `<state_dir>/alarms`). When the file would pass max_bytes it is rotated: history.jsonl
// becomes history.1.jsonl, .1 becomes .2, ..., and only `keep` files are kept in all.
// Reading goes oldest file first; a line that is not a valid record is counted and skipped.
//
// MQTT: an active alarm is retained at `bollard/v1/<c>/<node>/alarm/<id>` with
// alarmPayload(alarm); a clear publishes CLEAR_PAYLOAD (empty, retained), which deletes the
// retained message [MQTT-3.3.1-6]. Every node subscribes to `+/alarm/+` on every broker and
// mergeAlarms() makes the cluster-wide list out of what it holds.
import { appendFileSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import type { Logger } from "../env/env.ts";
import { byImportance } from "./engine.ts";
import { ALARM_ID_RE, RULES, SEVERITIES, type Alarm, type Severity, type Transition, type TransitionKind } from "./types.ts";

export type Result<T> = { ok: true; value: T } | { ok: false; error: string };

export const PAYLOAD_VERSION = 1;
/** A retained publish of this (zero bytes) clears the alarm's topic. */
export const CLEAR_PAYLOAD = "";

const time = z.number().int().nonnegative();
export const AlarmSchema = z.object({
  id: z.string().regex(ALARM_ID_RE),
  rule: z.enum(RULES),
  severity: z.enum(SEVERITIES),
  node: z.string().min(1).max(64),
  reporter: z.string().min(1).max(64),
  text: z.string().max(1000),
  detail: z.string().max(2000).nullable(),
  state: z.enum(["raised", "acknowledged", "cleared"]),
  occurrence: z.number().int().positive(),
  raisedAt: time,
  updatedAt: time,
  ackedBy: z.string().max(200).nullable(),
  ackedAt: time.nullable(),
  clearedAt: time.nullable(),
  flaps: z.number().int().nonnegative(),
  flapping: z.boolean(),
  until: z.union([time, z.literal("ack"), z.null()]),
});

const Record_ = z.object({ v: z.literal(1), at: time, kind: z.enum(["raised", "updated", "acked", "cleared"]), alarm: AlarmSchema });
export interface HistoryRecord {
  v: 1;
  at: number;
  kind: TransitionKind;
  alarm: Alarm;
}

export interface HistoryOptions {
  maxBytes: number;
  keep: number;
  /** fsync after each append (default true: an alarm's record survives a power cut) */
  fsync?: boolean;
}

export interface HistoryRead {
  records: HistoryRecord[];
  /** lines that were not valid records */
  bad: number;
  /** files that could not be read, with why */
  errors: string[];
}

export const HISTORY_DIR = "alarms";
export const historyDir = (stateDir: string): string => join(stateDir, HISTORY_DIR);

export class AlarmHistory {
  constructor(
    readonly dir: string,
    private readonly opts: HistoryOptions,
    private readonly log?: Logger,
  ) {}

  /** history.jsonl, history.1.jsonl, ...: index 0 is the current file. */
  file(i: number): string {
    return join(this.dir, i === 0 ? "history.jsonl" : `history.${i}.jsonl`);
  }

  /** Appends one line per transition. An I/O error is returned (and logged), never thrown. */
  append(transitions: Transition[]): Result<number> {
    if (transitions.length === 0) return { ok: true, value: 0 };
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o750 });
      let n = 0;
      for (const t of transitions) {
        const line = JSON.stringify({ v: 1, at: t.at, kind: t.kind, alarm: t.alarm } satisfies HistoryRecord) + "\n";
        this.rotateFor(Buffer.byteLength(line));
        appendFileSync(this.file(0), line, { mode: 0o640 });
        n++;
      }
      if (this.opts.fsync ?? true) {
        const fd = openSync(this.file(0), "r");
        try {
          fsyncSync(fd);
        } finally {
          closeSync(fd);
        }
      }
      return { ok: true, value: n };
    } catch (e) {
      const error = `${this.dir}: cannot write the alarm history: ${(e as Error).message}`;
      this.log?.error("alarm history write failed", { dir: this.dir, err: e as Error });
      return { ok: false, error };
    }
  }

  private rotateFor(bytes: number): void {
    const cur = this.file(0);
    const size = existsSync(cur) ? statSync(cur).size : 0;
    if (size === 0 || size + bytes <= this.opts.maxBytes) return;
    const keep = Math.max(1, this.opts.keep);
    if (existsSync(this.file(keep - 1))) unlinkSync(this.file(keep - 1));
    for (let i = keep - 2; i >= 0; i--) if (existsSync(this.file(i))) renameSync(this.file(i), this.file(i + 1));
    this.log?.debug("alarm history rotated", { file: cur, size });
  }

  /** Every record, oldest first; `limit` keeps the newest ones. */
  read(limit = Infinity): HistoryRead {
    const out: HistoryRead = { records: [], bad: 0, errors: [] };
    for (let i = Math.max(1, this.opts.keep) - 1; i >= 0; i--) {
      const f = this.file(i);
      let text: string;
      try {
        text = readFileSync(f, "utf8");
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "ENOENT") out.errors.push(`${f}: ${(e as Error).message}`);
        continue;
      }
      for (const line of text.split("\n")) {
        if (!line.trim()) continue;
        const r = parseRecord(line);
        if (r) out.records.push(r);
        else out.bad++;
      }
    }
    if (out.records.length > limit) out.records = out.records.slice(out.records.length - limit);
    return out;
  }
}

function parseRecord(line: string): HistoryRecord | null {
  try {
    const r = Record_.safeParse(JSON.parse(line));
    return r.success ? (r.data as HistoryRecord) : null;
  } catch {
    return null; // a torn last line after a crash
  }
}

const occKey = (a: Alarm) => `${a.reporter}/${a.id}#${a.occurrence}@${a.raisedAt}`;

/** The last state of each occurrence in `records`, most recent first. */
export function occurrences(records: HistoryRecord[]): Alarm[] {
  const last = new Map<string, Alarm>();
  for (const r of records) last.set(occKey(r.alarm), r.alarm);
  return [...last.values()].sort((a, b) => b.updatedAt - a.updatedAt);
}

/** The alarms still active at the end of `records` (for AlarmEngine.restore, and for the
 * CLI when the agent does not answer), optionally only those `reporter` raised. */
export function lastActive(records: HistoryRecord[], reporter?: string): Alarm[] {
  const last = new Map<string, Alarm>();
  for (const r of records) if (!reporter || r.alarm.reporter === reporter) last.set(`${r.alarm.reporter}/${r.alarm.id}`, r.alarm);
  return [...last.values()].filter((a) => a.state !== "cleared").sort(byImportance);
}

/** The retained payload of an active alarm. */
export function alarmPayload(alarm: Alarm): string {
  return JSON.stringify({ v: PAYLOAD_VERSION, ...alarm });
}

/**
 * A retained alarm message as received from node `sender`'s broker under `id`. Empty: the
 * alarm was cleared (null). Anything else that is not a valid alarm of that sender and id
 * is an error value (count it, log it once, drop it).
 */
export function parseAlarmPayload(payload: string | Buffer, sender: string, id: string): Result<Alarm | null> {
  const text = typeof payload === "string" ? payload : payload.toString("utf8");
  if (text.length === 0) return { ok: true, value: null };
  if (text.length > 8192) return { ok: false, error: `alarm ${id} from ${sender}: payload over 8192 bytes` };
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return { ok: false, error: `alarm ${id} from ${sender}: not JSON` };
  }
  const v = (raw as { v?: unknown } | null)?.v;
  if (v !== PAYLOAD_VERSION) return { ok: false, error: `alarm ${id} from ${sender}: expected payload version ${PAYLOAD_VERSION}, got ${JSON.stringify(v)}` };
  const { v: _v, ...rest } = raw as Record<string, unknown>;
  const r = AlarmSchema.safeParse(rest);
  if (!r.success) {
    const why = r.error.issues.map((i) => `${i.path.join(".") || "alarm"}: ${i.message}`).join("; ");
    return { ok: false, error: `alarm ${id} from ${sender}: ${why}` };
  }
  if (r.data.id !== id) return { ok: false, error: `alarm ${id} from ${sender}: body id is ${r.data.id}` };
  if (r.data.reporter !== sender) return { ok: false, error: `alarm ${id} from ${sender}: body reporter is ${r.data.reporter}` };
  if (r.data.state === "cleared") return { ok: true, value: null };
  return { ok: true, value: r.data as Alarm };
}

/** One row of the cluster-wide list: the same alarm id as every node reports it. */
export interface ClusterAlarm extends Alarm {
  /** the nodes that hold it active, sorted */
  reporters: string[];
  /** every node that reports it is unreachable now (issue 20 item 5): its last word, kept as
   *  the broker retained it, not a current fact; `forMs`: how long the nearest one is not heard */
  stale?: { forMs: number };
}

/**
 * The cluster-wide list from every node's retained alarms. Alarms with the same id (node2
 * lost, as node1 and node3 both see it) are one row: the most severe report's text, the
 * earliest raise, acknowledged when any reporter's copy is.
 */
export function mergeAlarms(alarms: Iterable<Alarm>, unreachableFor?: (node: string) => number | null): ClusterAlarm[] {
  const rank = (s: Severity) => SEVERITIES.indexOf(s);
  const byId = new Map<string, ClusterAlarm>();
  for (const a of alarms) {
    if (a.state === "cleared") continue;
    const m = byId.get(a.id);
    if (!m) {
      byId.set(a.id, { ...a, reporters: [a.reporter] });
      continue;
    }
    if (!m.reporters.includes(a.reporter)) m.reporters.push(a.reporter);
    if (rank(a.severity) < rank(m.severity) || (rank(a.severity) === rank(m.severity) && a.raisedAt < m.raisedAt)) {
      Object.assign(m, { severity: a.severity, text: a.text, detail: a.detail, node: a.node, reporter: a.reporter, occurrence: a.occurrence });
    }
    m.raisedAt = Math.min(m.raisedAt, a.raisedAt);
    m.updatedAt = Math.max(m.updatedAt, a.updatedAt);
    m.flaps = Math.max(m.flaps, a.flaps);
    m.flapping ||= a.flapping;
    if (m.ackedBy === null && a.ackedBy !== null) Object.assign(m, { ackedBy: a.ackedBy, ackedAt: a.ackedAt, state: "acknowledged" });
  }
  const list = [...byId.values()];
  for (const m of list) {
    m.reporters.sort();
    const away = unreachableFor ? m.reporters.map(unreachableFor) : [null];
    if (away.every((x) => x !== null)) m.stale = { forMs: Math.min(...(away as number[])) };
  }
  // a stale row after every live one: what the cluster says now comes first
  return list.sort((a, b) => Number(!!a.stale) - Number(!!b.stale) || byImportance(a, b));
}
