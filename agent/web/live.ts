// Live updates for the web console (issue 24 item 5): server-sent events (the EventSource API,
// WHATWG HTML §9.2) from one hub per agent. The hub reads what the serial console reads, with
// the console's own data source (console/source.ts) on the control socket: the status every
// tick, the cluster-wide alarms, every member's events (another node's over the bus), the
// BMCs and switches while a nodes page is open. It runs only while at least one page listens:
// with nobody watching it has no timer and costs the agent no wake-up at all.
//
// Each stream gets, as they change: `init` (who and where), `status` (the console's
// StatusState, the status body with the accounts' hashes and the members' bus password hashes
// taken out), `alarms`, `events` (the merged timeline, newest 400), `hw` (when asked for), and
// a comment every 5 s so a page can tell a quiet stream from a dead one.
import type { ServerResponse } from "node:http";
import type { Model } from "../console/model.ts";
import type { DataSource, Wants } from "../console/source.ts";
import type { StatusBody } from "../runtime/status.ts";
import { redactFlags, redactText } from "./users.ts";

export const TICK_MS = 250;
/** the ticking figures (heard ago, uptime) are sent at least this often even when nothing else changed */
const STATUS_EVERY_MS = 2000;
const KEEPALIVE_MS = 5000;
const ALARMS_EVERY_MS = 500;
const EVENTS_SENT = 400;
/** a stream whose client does not read (a full socket buffer) is dropped rather than buffered */
const MAX_BUFFERED = 2 * 1024 * 1024;

export interface Client {
  res: ServerResponse;
  hw: boolean;
  sent: Record<string, string>;
  statusAt: number;
  lastWrite: number;
}

export interface HubTimers {
  every(ms: number, fn: () => void): { cancel(): void };
  now(): number;
}

/** The status body as the web shows it: no password hashes of any kind. */
export function redactStatus(body: StatusBody | null): StatusBody | null {
  if (!body?.view) return body;
  const cfg = (c: StatusBody["view"]["config"]) => ({ ...c, flags: redactFlags(c.flags ?? {}), members: c.members.map(({ pass: _p, ...m }) => m) });
  return { ...body, view: { ...body.view, config: cfg(body.view.config), committed: cfg(body.view.committed) } };
}

/** What changes slowly in a status: a new one of these is sent at once. */
function statusKey(m: Model): string {
  const b = m.status.body;
  if (!b) return `none ${m.status.why}`;
  const v = b.view;
  return JSON.stringify([m.status.live, v.role, v.term, v.leader, v.quorum, v.tilt, v.selfFenced, v.acting, v.committed.epoch, v.config.epoch, v.peers.map((p) => [p.name, p.alive, p.role, p.leader, p.term]), b.ha ?? null]);
}

export class LiveHub {
  private readonly clients = new Set<Client>();
  private timer: { cancel(): void } | null = null;
  private lastAlarms = -Infinity;
  private alarmsBusy = false;

  constructor(
    private readonly src: DataSource,
    private readonly init: () => Record<string, unknown>,
    private readonly t: HubTimers,
  ) {}

  get watching(): number {
    return this.clients.size;
  }

  /** A new stream: headers, then everything once; the hub ticks while any stream is open. */
  add(res: ServerResponse, hw: boolean): Client {
    res.writeHead(200, { "content-type": "text/event-stream; charset=utf-8", "cache-control": "no-store", "x-accel-buffering": "no" });
    const c: Client = { res, hw, sent: {}, statusAt: -Infinity, lastWrite: this.t.now() };
    this.clients.add(c);
    res.on("close", () => this.remove(c));
    this.write(c, "init", JSON.stringify(this.init()));
    this.push(c, this.src.model, this.t.now(), true);
    if (!this.timer) {
      this.timer = this.t.every(TICK_MS, () => this.tick());
      this.tick();
    }
    return c;
  }

  remove(c: Client): void {
    this.clients.delete(c);
    if (!c.res.destroyed) c.res.end();
    if (this.clients.size === 0) {
      this.timer?.cancel();
      this.timer = null;
    }
  }

  stop(): void {
    for (const c of [...this.clients]) this.remove(c);
  }

  private tick(): void {
    const now = this.t.now();
    const wants: Wants = { logs: null, events: true, hardware: [...this.clients].some((c) => c.hw) };
    this.src.tick(wants);
    if (now - this.lastAlarms >= ALARMS_EVERY_MS && !this.alarmsBusy) {
      this.lastAlarms = now;
      this.alarmsBusy = true;
      void this.src.pollAlarms().finally(() => (this.alarmsBusy = false));
    }
    const m = this.src.model;
    for (const c of [...this.clients]) this.push(c, m, now, false);
  }

  /** Sends `c` what changed since its last push. */
  private push(c: Client, m: Model, now: number, first: boolean): void {
    if (c.res.writableLength > MAX_BUFFERED) return void this.remove(c);
    const key = statusKey(m);
    if (first || c.sent.statusKey !== key || now - c.statusAt >= STATUS_EVERY_MS) {
      c.sent.statusKey = key;
      c.statusAt = now;
      this.write(c, "status", JSON.stringify({ ...m.status, body: redactStatus(m.status.body), now: Date.now() }));
    }
    this.send(c, "alarms", JSON.stringify(m.alarms));
    const ev = m.events.lines;
    this.send(c, "events", redactText(JSON.stringify({ lines: ev.slice(-EVENTS_SENT), errors: m.events.errors })), `${ev.length} ${ev.at(-1)?.ts} ${m.events.errors.join()}`);
    if (c.hw) this.send(c, "hw", JSON.stringify(m.hw));
    if (now - c.lastWrite >= KEEPALIVE_MS) {
      c.res.write(": keepalive\n\n");
      c.lastWrite = now;
    }
  }

  private send(c: Client, event: string, data: string, key = data): void {
    if (c.sent[event] === key) return;
    c.sent[event] = key;
    this.write(c, event, data);
  }

  private write(c: Client, event: string, data: string): void {
    // one line of data: JSON.stringify never emits a raw newline
    c.res.write(`event: ${event}\ndata: ${data}\n\n`);
    c.lastWrite = this.t.now();
  }
}
