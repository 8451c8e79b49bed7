// Screens 3 (Alarms), 4 (Logs) and 5 (Events): scrolling lists with a selected row (reverse
// video) and, under the list, the selected item in full. Logs and events are oldest at the
// top, newest at the bottom, and follow the newest until the operator scrolls up.
import { ago, clock, cols, cut, wrap, type AlarmRow, type EventLine, type LogLine, type Model } from "./model.ts";
import type { Ui } from "./ui.ts";
import type { Line } from "./vt100.ts";

/** Rows under a list that show the selected item in full. */
const DETAIL = 3;

/** The slice of `n` items a list of `rows` shows, with item `sel` (an index) in view. */
export function windowOf(n: number, sel: number, rows: number): { start: number; end: number } {
  if (n <= rows) return { start: 0, end: n };
  const start = Math.max(0, Math.min(n - rows, sel - Math.floor(rows / 2)));
  return { start, end: start + rows };
}

/** Index of the selected item when `fromEnd` counts back from the newest (0). */
export const selectedIndex = (n: number, fromEnd: number) => Math.max(0, n - 1 - Math.min(fromEnd, n - 1));

function list(title: string, items: string[], detail: string[], sel: number, rows: number, head?: string): Line[] {
  const out: Line[] = head ? [title, head] : [title];
  const room = rows - out.length - DETAIL;
  const w = windowOf(items.length, sel, room);
  for (let i = w.start; i < w.end; i++) out.push(i === sel ? { text: items[i]!.padEnd(80), rev: true } : items[i]!);
  while (out.length < rows - DETAIL) out.push("");
  const d = detail.slice(0, DETAIL);
  return [...out, ...d.map((l) => `> ${l}`)];
}

// ---- alarms ----------------------------------------------------------------------------

const SEV: Record<string, string> = { critical: "CRIT", major: "MAJ", minor: "MIN", info: "INFO" };
const RANK: Record<string, number> = { critical: 0, major: 1, minor: 2, info: 3 };

/** Active first (unacknowledged, most severe, newest), then acknowledged. */
export function sortAlarms(xs: AlarmRow[]): AlarmRow[] {
  return [...xs].sort((a, b) => Number(!!a.ackedBy) - Number(!!b.ackedBy) || (RANK[a.severity] ?? 9) - (RANK[b.severity] ?? 9) || b.raisedAt - a.raisedAt);
}

export function alarmsScreen(m: Model, ui: Ui, rows: number): Line[] {
  const al = m.alarms;
  if (al.available === false) return ["alarms: not available (this agent serves no /alarms)", "", "Hardware and cluster problems still show on the top line and screen 1."];
  if (al.available === null) return [al.error ? `alarms: ${al.error}` : "alarms: reading..."];
  const xs = sortAlarms(al.active);
  const title = `${xs.length ? `${xs.length} active alarm${xs.length === 1 ? "" : "s"}` : "no active alarms"} (cluster-wide)${al.error ? `; ${al.error}` : ""}`;
  if (!xs.length) return [cut(title, 80)];
  const sel = Math.min(ui.sel.alarms, xs.length - 1);
  const items = xs.map((a) => cols([SEV[a.severity] ?? a.severity, a.node, a.text, ago(m.now - a.raisedAt), a.ackedBy ? `ack ${a.ackedBy}` : "NOT ACKED"], [4, 8, 42, 7]));
  const s = xs[sel]!;
  const detail = wrap(`${s.id}: ${s.text}${s.ackedBy ? ` (acknowledged by ${s.ackedBy})` : " (a: acknowledge)"}`, 78);
  const head = cols(["SEV", "NODE", "ALARM", "SINCE", "ACKED"], [4, 8, 42, 7]);
  return list(cut(title, 80), items, detail, sel, rows, head);
}

// ---- logs ------------------------------------------------------------------------------

const LEVEL_CHAR: Record<string, string> = { debug: "D", info: "I", warn: "W", error: "E" };
const RESERVED = new Set(["ts", "level", "ns", "msg"]);

export function logFields(l: LogLine): string {
  return Object.entries(l)
    .filter(([k]) => !RESERVED.has(k))
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
}

export function logText(l: LogLine): string {
  const f = logFields(l);
  return `${clock(String(l.ts ?? ""))} ${LEVEL_CHAR[String(l.level)] ?? "?"} ${String(l.ns ?? "").padEnd(9)} ${String(l.msg ?? "")}${f ? ` ${f}` : ""}`;
}

export function logsScreen(m: Model, ui: Ui, rows: number): Line[] {
  const lg = m.logs;
  const title = `Logs of ${ui.logNode}, level ${ui.logLevel} and above: ${lg.lines.length} lines${lg.node !== ui.logNode ? " (reading...)" : ""}${lg.error ? `; ${lg.error}` : ""}`;
  if (!lg.lines.length) return [cut(title, 80), "", lg.error ? "" : "(no lines)"];
  const sel = selectedIndex(lg.lines.length, ui.sel.logs);
  const items = lg.lines.map((l) => cut(logText(l), 80));
  const s = lg.lines[sel]!;
  return list(cut(title, 80), items, wrap(`${s.ts} ${s.level} ${s.ns}: ${s.msg} ${logFields(s)}`, 78), sel, rows);
}

// ---- events ----------------------------------------------------------------------------

/** The kinds that make the failover timeline. */
export const TIMELINE = new Set(["failover", "step", "fence", "unfence", "lrm", "held-out", "rejoin", "placement", "role"]);

/** The duration an event carries ("done in N ms", or fields.ms), in ms. */
export function durationOf(e: EventLine): number | null {
  const m = /\bdone in (\d+) ms\b/.exec(e.detail);
  if (m) return Number(m[1]);
  const ms = e.fields?.ms;
  return typeof ms === "number" ? ms : null;
}

/** The event's text without what the columns already say. */
export function eventText(e: EventLine): string {
  return e.detail.replace(/^(failover|switchover) (mysql|redis) step (\w+) done in \d+ ms:?\s*/, "$2 $3: ").replace(/ done in \d+ ms/, "");
}

export function eventLine(e: EventLine): string {
  const d = durationOf(e);
  return cols([clock(e.ts), e.node, e.kind, d === null ? "" : `${d}ms`.padStart(7), eventText(e)], [12, 6, 9, 7]);
}

export function visibleEvents(m: Model, ui: Ui): EventLine[] {
  return m.events.lines.filter((e) => (ui.eventNode === "all" || e.node === ui.eventNode) && (ui.eventKinds === "all" || TIMELINE.has(e.kind)));
}

export function eventsScreen(m: Model, ui: Ui, rows: number): Line[] {
  const xs = visibleEvents(m, ui);
  const who = ui.eventNode === "all" ? "all nodes" : ui.eventNode;
  const title = `Events of ${who}, ${ui.eventKinds === "all" ? "every kind" : "failover timeline"}: ${xs.length}${m.events.errors.length ? `; ${m.events.errors.join("; ")}` : ""}`;
  if (!xs.length) return [cut(title, 80), "", "(no events)"];
  const sel = selectedIndex(xs.length, ui.sel.events);
  const s = xs[sel]!;
  return list(cut(title, 80), xs.map(eventLine), wrap(`${s.ts} ${s.node} ${s.kind} (term ${s.term}): ${s.detail}`, 78), sel, rows);
}
