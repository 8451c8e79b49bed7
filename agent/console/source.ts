// The console's data source: polls the agent's control socket and keeps the Model. The status
// every 500 ms (so a change is on screen within a second of the agent knowing it); alarms every
// 2 s; logs and events only while their screen shows (this node's every second, another
// node's, fetched over the bus, every 2-3 s and at once when the cluster changes); the hardware
// while screens 1 or 6 show. When the agent does not answer, the status is its status.json
// (the last known state) and the Model says how old it is.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { ControlReply } from "../runtime/control.ts";
import { STATUS_FILE, type StatusBody } from "../runtime/status.ts";
import type { HwPoller } from "./hw.ts";
import { membersOf, type AlarmRow, type EventLine, type LogLine, type Model } from "./model.ts";

export type Request = (method: "GET" | "POST", path: string, body?: unknown, timeoutMs?: number) => Promise<ControlReply>;

export interface Wants {
  logs: { node: string; level: string } | null;
  events: boolean;
  hardware: boolean;
}

export const POLL_MS = 500;
const ALARMS_MS = 2000;
const ALARMS_MISSING_MS = 30_000;
const LOCAL_LIST_MS = 1000;
const REMOTE_LIST_MS = 2500;
/** events are fetched incrementally (since the newest held), so other nodes' can be asked often */
const REMOTE_EVENTS_MS = 1000;
const KEEP_EVENTS = 300;
const HW_MS = 10_000;
const LOCAL_HW_MS = 2000;
const STATUS_TIMEOUT_MS = 1000;

export class DataSource {
  model: Model;
  private busy = new Set<string>();
  private last: Record<string, number> = {};
  private changeKey = "";
  private readonly events = new Map<string, EventLine[]>();
  private readonly eventErrors = new Map<string, string>();

  constructor(
    init: Model,
    private readonly request: Request,
    private readonly stateDir: string,
    private readonly hw: HwPoller | null,
    private readonly onChange: () => void,
    private readonly wall: () => number = Date.now,
  ) {
    this.model = init;
  }

  /** One round: whatever is due. Called every POLL_MS and after a key that needs fresh data. */
  tick(w: Wants): void {
    const now = this.wall();
    this.model = { ...this.model, now };
    this.once("status", () => this.pollStatus());
    const alarmsEvery = this.model.alarms.available === false ? ALARMS_MISSING_MS : ALARMS_MS;
    if (this.due("alarms", alarmsEvery, now)) this.once("alarms", () => this.pollAlarms());
    if (w.logs) {
      const every = w.logs.node === this.model.self ? LOCAL_LIST_MS : REMOTE_LIST_MS;
      const key = `${w.logs.node}/${w.logs.level}`;
      if (this.model.logs.node !== key.split("/")[0] || this.due(`logs ${key}`, every, now)) this.once("logs", () => this.pollLogs(w.logs!.node, w.logs!.level));
    }
    if (w.events) this.pollEventsDue(now);
    if (w.hardware && this.hw) {
      if (this.due("local hw", LOCAL_HW_MS, now)) {
        this.hw.readLocal();
        this.model = { ...this.model, hw: this.hw.hw };
      }
      if (this.due("hw", HW_MS, now)) this.once("hw", async () => {
        await this.hw!.readRemote(this.wall);
        this.model = { ...this.model, hw: this.hw!.hw };
      });
    }
  }

  /** Forget when lists were read, so the next tick reads them (a screen or filter changed). */
  refresh(): void {
    for (const k of Object.keys(this.last)) if (k.startsWith("logs") || k.startsWith("events")) delete this.last[k];
  }

  private due(what: string, every: number, now: number): boolean {
    if (now - (this.last[what] ?? -Infinity) < every) return false;
    this.last[what] = now;
    return true;
  }

  private once(what: string, f: () => Promise<void>): void {
    if (this.busy.has(what)) return;
    this.busy.add(what);
    void f()
      .catch(() => undefined)
      .finally(() => {
        this.busy.delete(what);
        this.onChange();
      });
  }

  async pollStatus(): Promise<void> {
    let why: string;
    try {
      const r = await this.request("GET", "/status", undefined, STATUS_TIMEOUT_MS);
      if (r.code === 200) {
        const body = r.body as StatusBody;
        this.model = { ...this.model, now: this.wall(), status: { live: true, body, wall: body.wall, why: null } };
        return;
      }
      why = `the agent answered HTTP ${r.code}`;
    } catch (e) {
      why = (e as Error).message;
    }
    const old = this.model.status;
    let body: StatusBody | null = null;
    try {
      const b = JSON.parse(readFileSync(join(this.stateDir, STATUS_FILE), "utf8")) as StatusBody;
      if (typeof b?.wall === "number" && b.view) body = b;
    } catch {
      /* none */
    }
    // the newer of what we last had live and the file (the agent writes it every second)
    if (old.body && (!body || old.body.wall > body.wall)) body = old.body;
    this.model = { ...this.model, now: this.wall(), status: { live: false, body, wall: body?.wall ?? null, why } };
  }

  async pollAlarms(): Promise<void> {
    try {
      const r = await this.request("GET", "/alarms", undefined, 2000);
      const b = r.body as { active?: AlarmRow[]; error?: string };
      if (r.code === 404) this.model = { ...this.model, alarms: { available: false, active: [], error: null } };
      else if (r.code === 200 && Array.isArray(b.active)) this.model = { ...this.model, alarms: { available: true, active: b.active, error: null } };
      else this.model = { ...this.model, alarms: { ...this.model.alarms, error: `HTTP ${r.code}: ${b.error ?? "unexpected answer"}` } };
    } catch (e) {
      this.model = { ...this.model, alarms: { ...this.model.alarms, error: `not answering (${(e as Error).message})` } };
    }
  }

  async pollLogs(node: string, level: string): Promise<void> {
    const q = new URLSearchParams({ n: "300", level, node });
    try {
      const r = await this.request("GET", `/logs?${q}`, undefined, 4000);
      const b = r.body as { lines?: unknown[]; error?: string } | unknown[];
      const raw = Array.isArray(b) ? b : b.lines;
      if (r.code === 200 && Array.isArray(raw)) this.model = { ...this.model, logs: { node, lines: raw.map(toObject).filter(isLog), error: null } };
      else this.model = { ...this.model, logs: { node, lines: this.model.logs.node === node ? this.model.logs.lines : [], error: (b as { error?: string }).error ?? `HTTP ${r.code}` } };
    } catch (e) {
      this.model = { ...this.model, logs: { node, lines: this.model.logs.node === node ? this.model.logs.lines : [], error: `agent not answering (${(e as Error).message})` } };
    }
  }

  /** Every member's events (merged: the cluster's timeline); another node's less often. */
  private pollEventsDue(now: number): void {
    const v = this.model.status.body?.view;
    const key = v ? `${v.term}|${v.leader}|${v.committed.epoch}|${v.peers.map((p) => p.alive).join()}|${JSON.stringify((this.model.status.body?.ha as { procedures?: string[] } | null)?.procedures ?? [])}` : "";
    const changed = key !== this.changeKey;
    this.changeKey = key;
    for (const n of membersOf(this.model)) {
      const local = n === this.model.self;
      if (!local && v && !v.peers.find((p) => p.name === n)?.alive && this.events.has(n)) continue;
      if (changed) delete this.last[`events ${n}`];
      if (this.due(`events ${n}`, local ? POLL_MS : REMOTE_EVENTS_MS, now)) this.once(`events ${n}`, () => this.pollEvents(n));
    }
  }

  /** One node's events: all of the last 150 the first time, then only the newer ones. */
  async pollEvents(node: string): Promise<void> {
    const have = this.events.get(node) ?? [];
    const q = new URLSearchParams({ n: "150", node });
    const last = have.at(-1)?.ts;
    if (last) q.set("since", last);
    try {
      const r = await this.request("GET", `/events?${q}`, undefined, 4000);
      const b = r.body as { events?: unknown[]; error?: string };
      if (r.code === 200 && Array.isArray(b.events)) {
        const seen = new Set(have.filter((e) => e.ts === last).map((e) => JSON.stringify(e)));
        const fresh = b.events.map(toObject).filter(isEvent).filter((e) => !seen.has(JSON.stringify(e)));
        this.events.set(node, [...have, ...fresh].slice(-KEEP_EVENTS));
        this.eventErrors.delete(node);
      } else this.eventErrors.set(node, `${node}: ${b.error ?? `HTTP ${r.code}`}`);
    } catch {
      if (node === this.model.self) this.events.set(node, readEventsFile(this.stateDir, KEEP_EVENTS));
      this.eventErrors.set(node, `${node}: agent not answering${node === this.model.self ? ", from events.jsonl" : ""}`);
    }
    const lines = [...this.events.values()].flat().sort((a, b) => (a.ts < b.ts ? -1 : a.ts > b.ts ? 1 : 0));
    this.model = { ...this.model, events: { lines, errors: [...this.eventErrors.values()] } };
  }
}

function toObject(x: unknown): Record<string, unknown> | null {
  if (typeof x === "string") {
    try {
      return JSON.parse(x) as Record<string, unknown>;
    } catch {
      return null;
    }
  }
  return x && typeof x === "object" ? (x as Record<string, unknown>) : null;
}

const isLog = (x: Record<string, unknown> | null): x is Record<string, unknown> & LogLine => !!x && typeof x.ts === "string" && typeof x.msg === "string";
const isEvent = (x: Record<string, unknown> | null): x is Record<string, unknown> & EventLine => !!x && typeof x.ts === "string" && typeof x.kind === "string" && typeof x.detail === "string";

/** The last `n` events of this node from its events.jsonl (the agent is down). */
export function readEventsFile(stateDir: string, n: number): EventLine[] {
  try {
    const lines = readFileSync(join(stateDir, "events.jsonl"), "utf8").split("\n").filter(Boolean).slice(-n);
    return lines.map(toObject).filter(isEvent);
  } catch {
    return [];
  }
}
