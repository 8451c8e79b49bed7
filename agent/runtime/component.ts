// agent/runtime/: the I/O loops around the pure cores (cluster/, ha/, alarms/): the cluster
// node on the bus, the HA runtime, the hardware and alarm watch, the control socket, the
// metrics endpoint, webhook notifications and the status file. Each part the agent runs is
// a Component, wired in a *-component.ts here; agent.ts lists them in start-up order.
//
import type { Config } from "../config/schema.ts";
import type { Timers } from "../env/env.ts";
import type { JsonLogger } from "../env/log.ts";

/**
 * A part of the agent (STYLE, zigbee2mqtt controller.ts): the constructor only assigns,
 * start() does the work and stop() undoes it. agent.ts starts each in its own try/catch and
 * stops, in reverse, those that started.
 */
export interface Component {
  /** as the agent's log names it: "started watch", "start-up failed: credentials" */
  readonly name: string;
  /** `signal` is aborted when the agent is stopped before its start-up has finished */
  start(signal: AbortSignal): void | Promise<void>;
  stop?(): void | Promise<void>;
}

/** What every component is made from. */
export interface AgentContext {
  config: Config;
  log: JsonLogger;
  timers: Timers;
  build: { version: string; rev: string };
  /** when the agent started: performance.now() and Date.now() */
  startedMono: number;
  startedWall: number;
}
