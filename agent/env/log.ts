// Structured logs (DESIGN §6, STYLE "Config, logs, errors"): one JSON object per line on
// stdout, which journald keeps: {"ts":ISO,"level","ns","msg",...fields}. Namespaced with
// child("cluster"), child("hw.ipmi"). An Error in the fields is logged as its message; its
// stack follows as a separate debug line. The last lines are kept in a ring buffer that
// the control socket serves (`GET /logs`). Created in main and passed down: no singleton.
import type { Level, Logger } from "./env.ts";

export const LEVELS: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };
const RESERVED = new Set(["ts", "level", "ns", "msg"]);

/** The last `capacity` lines written, oldest first. */
export class Ring {
  private readonly buf: string[] = [];
  private head = 0;
  constructor(readonly capacity = 2000) {}

  push(line: string): void {
    if (this.buf.length < this.capacity) this.buf.push(line);
    else {
      this.buf[this.head] = line;
      this.head = (this.head + 1) % this.capacity;
    }
  }

  /** The last `n` lines (all when omitted), oldest first. */
  lines(n = this.capacity): string[] {
    const all = this.buf.length < this.capacity ? this.buf.slice() : [...this.buf.slice(this.head), ...this.buf.slice(0, this.head)];
    return n >= all.length ? all : all.slice(all.length - Math.max(0, n));
  }
}

export interface LogSink {
  level: Level;
  ring: Ring;
  write(line: string): void;
  /** wall-clock ms for the `ts` field */
  wall(): number;
}

export interface JsonLoggerOptions {
  level?: Level;
  ringSize?: number;
  write?: (line: string) => void;
  wall?: () => number;
}

export class JsonLogger implements Logger {
  /** Root logger. `ns` is the namespace of lines logged on it directly. */
  static create(opts: JsonLoggerOptions = {}, ns = "agent"): JsonLogger {
    const sink: LogSink = {
      level: opts.level ?? "info",
      ring: new Ring(opts.ringSize ?? 2000),
      write: opts.write ?? ((line) => void process.stdout.write(line + "\n")),
      wall: opts.wall ?? Date.now,
    };
    return new JsonLogger(sink, ns);
  }

  constructor(
    private readonly sink: LogSink,
    readonly ns: string,
  ) {}

  debug(msg: string, fields?: Record<string, unknown>): void {
    this.log("debug", msg, fields);
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    this.log("info", msg, fields);
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.log("warn", msg, fields);
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    this.log("error", msg, fields);
  }

  /** child("bus") of "agent" logs as "bus"; child("ipmi") of "hw" logs as "hw.ipmi". */
  child(ns: string): JsonLogger {
    const full = this.ns === "agent" || !this.ns ? ns : `${this.ns}.${ns}`;
    return new JsonLogger(this.sink, full);
  }

  /** Changes the level of this logger and every logger sharing its root. */
  setLevel(level: Level): void {
    this.sink.level = level;
  }

  get level(): Level {
    return this.sink.level;
  }

  enabled(level: Level): boolean {
    return LEVELS[level] >= LEVELS[this.sink.level];
  }

  /** The last `n` lines logged through this logger's root (for the control socket). */
  recent(n?: number): string[] {
    return this.sink.ring.lines(n);
  }

  private log(level: Level, msg: string, fields?: Record<string, unknown>): void {
    if (!this.enabled(level)) return;
    const rec: Record<string, unknown> = { ts: new Date(this.sink.wall()).toISOString(), level, ns: this.ns, msg };
    const stacks: [string, string][] = [];
    for (const [k, v] of Object.entries(fields ?? {})) {
      const key = RESERVED.has(k) ? `_${k}` : k;
      if (v instanceof Error) {
        rec[key] = v.message;
        if (v.stack) stacks.push([key, v.stack]);
      } else rec[key] = v;
    }
    this.emit(rec);
    if (stacks.length && this.enabled("debug")) {
      for (const [key, stack] of stacks) {
        this.emit({ ts: rec.ts, level: "debug", ns: this.ns, msg: `stack of ${key}: ${msg}`, stack });
      }
    }
  }

  private emit(rec: Record<string, unknown>): void {
    const line = stringify(rec);
    this.sink.ring.push(line);
    try {
      this.sink.write(line);
    } catch {
      // stdout gone (EPIPE): the ring buffer still has the line; logging never throws.
    }
  }
}

/** JSON.stringify that survives BigInt and cycles (logging must never throw). */
function stringify(rec: Record<string, unknown>): string {
  try {
    return JSON.stringify(rec, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
  } catch {
    const safe: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(rec)) {
      try {
        JSON.stringify(v);
        safe[k] = v;
      } catch {
        safe[k] = String(v);
      }
    }
    return JSON.stringify(safe, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
  }
}
