// The real Env (DESIGN §2): the monotonic clock, the wall clock, Math.random, the MQTT bus,
// the file store, the logger and the on-disk event log. test/sim wires the virtual one.
import { randomBytes } from "node:crypto";
import { appendFileSync, renameSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Message } from "../bus/messages.ts";
import type { ClusterEvent, CoreEnv, Logger, Store, TimerHandle, Timers } from "./env.ts";

export interface RealEnvDeps {
  /** the bus: send(to, msg), to a node or "*" */
  send(to: string, msg: Message): void;
  store: Store;
  log: Logger;
  events: EventLog;
}

export function realEnv(deps: RealEnvDeps): CoreEnv {
  return {
    // performance.now() is monotonic (CLOCK_MONOTONIC under libuv): it never steps with NTP.
    now: () => performance.now(),
    wall: () => Date.now(),
    random: () => Math.random(),
    nonce: () => randomBytes(16).toString("hex"),
    send: (to, msg) => deps.send(to, msg),
    store: deps.store,
    log: deps.log,
    event: (e) => deps.events.record(e),
  };
}

export function realTimers(): Timers {
  return {
    every(ms: number, fn: () => void): TimerHandle {
      const t = setInterval(fn, ms);
      return { cancel: () => clearInterval(t) };
    },
    after(ms: number, fn: () => void): TimerHandle {
      const t = setTimeout(fn, ms);
      return { cancel: () => clearTimeout(t) };
    },
  };
}

export interface EventLogOptions {
  /** rotate to events.jsonl.1 beyond this size; default 5 MB */
  maxBytes?: number;
  wall?: () => number;
}

/**
 * The HA event log (DESIGN §6): each cluster event is a log line at info with ns "event"
 * and a line in `<state_dir>/events.jsonl`, rotated to `events.jsonl.1` at ~5 MB (one
 * old file is kept, so the log holds between 5 and 10 MB of the latest events).
 * A write failure is logged, never thrown: the event log must not stop the cluster core.
 */
export class EventLog {
  readonly file: string;
  private size: number | null = null;
  private readonly maxBytes: number;
  private readonly wall: () => number;
  private failing = false;
  private readonly listeners = new Set<(e: ClusterEvent) => void>();

  constructor(
    stateDir: string,
    private readonly log: Logger,
    opts: EventLogOptions = {},
  ) {
    this.file = join(stateDir, "events.jsonl");
    this.maxBytes = opts.maxBytes ?? 5 * 1024 * 1024;
    this.wall = opts.wall ?? Date.now;
  }

  /** Calls `fn` with every event recorded from now on (the alarm watch); returns its removal. */
  onRecord(fn: (e: ClusterEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  record(e: ClusterEvent): void {
    for (const fn of this.listeners) {
      try {
        fn(e);
      } catch (err) {
        this.log.error("an event listener failed", { err: err as Error });
      }
    }
    this.log.info(e.detail, { kind: e.kind, node: e.node, term: e.term, ...e.fields });
    const line = JSON.stringify({ ts: new Date(this.wall()).toISOString(), ...e }) + "\n";
    try {
      if (this.size === null) this.size = sizeOf(this.file);
      if (this.size + line.length > this.maxBytes && this.size > 0) {
        renameSync(this.file, `${this.file}.1`);
        this.size = 0;
      }
      appendFileSync(this.file, line, { mode: 0o640 });
      this.size += Buffer.byteLength(line);
      this.failing = false;
    } catch (err) {
      this.size = null;
      if (!this.failing) this.log.error("cannot write the event log", { file: this.file, err: err as Error });
      this.failing = true;
    }
  }
}

function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}
