// The Env port (DESIGN §2, STYLE "The deciding code gets an Env"). The deciding code in
// cluster/, ha/ and alarms/ does no I/O of its own: time, timers, randomness, logging,
// the bus and persistence all come through here. env/real.ts wires real I/O; test/sim
// wires a virtual clock and a simulated network.
import type { ClusterConfig, Message } from "../bus/messages.ts";

export type Level = "debug" | "info" | "warn" | "error";

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** A logger whose lines carry namespace `ns` (e.g. "cluster", "hw.ipmi"). */
  child(ns: string): Logger;
}

/** What a node keeps on disk across restarts. Written atomically (temp, fsync, rename). */
export interface PersistedState {
  term: number;
  votedFor: string | null;
  /** the latest config this node accepted (may not be committed yet) */
  config: ClusterConfig;
  /** the latest config this node knows to be committed */
  committed: ClusterConfig;
}

export interface Store {
  load(): PersistedState | null;
  /** Returns only once the state is durable. Throws if it cannot be made durable. */
  save(state: PersistedState): void;
}

/** A cluster event: a state change worth a line in the event log and the failover timeline. */
export interface ClusterEvent {
  kind: string;
  node: string;
  term: number;
  detail: string;
  fields?: Record<string, unknown>;
}

export interface CoreEnv {
  /** monotonic milliseconds (never jumps; may drift within the configured bound) */
  now(): number;
  /** wall-clock milliseconds since the epoch (may jump) */
  wall(): number;
  /** uniform in [0, 1) */
  random(): number;
  /** 32 hex digits from a cryptographic source (the sim: from its seed) */
  nonce(): string;
  /** Send to one node, or to every node when `to` is "*". Best effort, may be lost. */
  send(to: string, msg: Message): void;
  store: Store;
  log: Logger;
  event(e: ClusterEvent): void;
}

export interface TimerHandle {
  cancel(): void;
}

export interface Timers {
  every(ms: number, fn: () => void): TimerHandle;
  after(ms: number, fn: () => void): TimerHandle;
}
