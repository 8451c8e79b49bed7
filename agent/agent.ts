// The daemon (`bollard agent`): wires the validated config to the state store, the MQTT bus,
// the cluster core, the control socket and systemd notify, then steps the core on a timer.
// Start-up is a named list of steps (STYLE, zigbee2mqtt controller.ts): each started and
// stopped in its own try/catch; stop() aborts an unfinished start-up and stops, in reverse,
// what had started.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { BrokerAuth } from "./bus/broker-auth.ts";
import { resolveBusIdentity, type BusIdentity } from "./bus/identity.ts";
import { MqttBus } from "./bus/mqtt.ts";
import type { Command, Member } from "./bus/messages.ts";
import { ClusterNode } from "./cluster/node.ts";
import { HaRuntime } from "./runtime/ha-runtime.ts";
import { bootstrapConfig, type Config } from "./config/schema.ts";
import type { TimerHandle, Timers } from "./env/env.ts";
import type { JsonLogger } from "./env/log.ts";
import { Notifier, type NotifyTarget } from "./env/notify.ts";
import { EventLog, realEnv, realTimers } from "./env/real.ts";
import { FileStore } from "./env/store.ts";
import { GC_EVERY_MS, collectGarbage } from "./env/gc.ts";
import { ControlServer, type CommandResult, type FetchParams, type Route } from "./runtime/control.ts";
import { Fetcher } from "./runtime/fetch.ts";
import { stateSummary, writeStatusFile, type StatusBody } from "./runtime/status.ts";
import { Watch } from "./runtime/watch.ts";

export interface AgentOptions {
  version: string;
  rev: string;
  notify: NotifyTarget | null;
  timers?: Timers;
}

interface Step {
  name: string;
  start(): void | Promise<void>;
  stop?(): void | Promise<void>;
}

/** The retained state is re-published at least this often, and at once when it changes. */
const STATE_EVERY_MS = 5000;
const STATUS_FILE_EVERY_MS = 1000;
const COMMAND_TIMEOUT_MS = 10_000;

export class Agent {
  private readonly abort = new AbortController();
  private readonly timers: Timers;
  private readonly notifier: Notifier;
  private readonly started: Step[] = [];
  private starting: Promise<void> | null = null;
  private readonly startedWall = Date.now();
  private readonly startedMono = performance.now();

  private bus: MqttBus | null = null;
  private ha: HaRuntime | null = null;
  private watch: Watch | null = null;
  /** routes other components mount on the control socket (the watch's /alarms) */
  private readonly routes: Record<string, Route> = {};
  private fetcher: Fetcher | null = null;
  private node: ClusterNode | null = null;
  private running = false;
  private loops: TimerHandle[] = [];
  private tickFailures = 0;
  private lastState = "";
  private lastStateAt = -Infinity;
  private lastConfig = "";
  private lastStatusLine = "";
  private brokersKey = "";
  private brokerAuth: BrokerAuth | null = null;
  private authEpoch = -1;
  private statusFileFailing = false;

  constructor(
    private readonly config: Config,
    private readonly log: JsonLogger,
    private readonly opts: AgentOptions,
  ) {
    this.timers = opts.timers ?? realTimers();
    this.notifier = new Notifier(opts.notify, log.child("systemd"));
  }

  /** Resolves once every step has started; rejects (after logging which) if one fails. */
  start(): Promise<void> {
    this.starting ??= this.runSteps();
    return this.starting;
  }

  /** STOPPING=1, abort an unfinished start-up, stop what started, in reverse. Never throws. */
  async stop(): Promise<void> {
    this.abort.abort();
    this.notifier.stopping();
    try {
      await this.starting;
    } catch {
      /* already logged by runSteps */
    }
    for (const step of this.started.reverse()) {
      try {
        await step.stop?.();
        this.log.debug(`stopped ${step.name}`);
      } catch (e) {
        this.log.error(`stopping ${step.name} failed`, { err: e as Error });
      }
    }
    this.started.length = 0;
    await this.notifier.stop();
    this.log.info("agent stopped");
  }

  private async runSteps(): Promise<void> {
    const c = this.config;
    this.log.info("agent starting", { version: this.opts.version, rev: this.opts.rev, cluster: c.cluster.name, node: c.cluster.node });
    for (const step of this.steps()) {
      if (this.abort.signal.aborted) throw new Error(`start-up aborted before ${step.name}`);
      try {
        await step.start();
      } catch (e) {
        this.log.error(`start-up failed: ${step.name}`, { err: e as Error });
        throw e;
      }
      this.started.push(step);
      this.log.debug(`started ${step.name}`);
    }
    this.log.info("agent started", { role: this.node?.view().role, stateDir: c.stateDir });
  }

  private steps(): Step[] {
    const c = this.config;
    let store: FileStore;
    let events: EventLog;
    let control: ControlServer;
    let id: BusIdentity;
    return [
      {
        name: "state",
        start: () => {
          mkdirSync(c.stateDir, { recursive: true, mode: 0o750 });
          store = new FileStore(c.stateDir);
          events = new EventLog(c.stateDir, this.log.child("event"));
        },
      },
      {
        // the own broker must know the members before anyone can log in to it
        name: "broker-auth",
        start: () => {
          if (!c.bus.broker) return;
          this.brokerAuth = new BrokerAuth(c.bus.broker, c.cluster.name, c.cluster.join?.token ?? null, this.log.child("broker"));
          // Only a config this node has committed: a blank node learns the members from the
          // leader, and must not overwrite its broker's users with an unverified token's.
          const saved = store.load();
          if (saved) this.brokerAuth.apply(saved.committed);
        },
      },
      {
        name: "credentials",
        start: async () => {
          id = await resolveBusIdentity(c, store, this.log.child("cluster"), this.abort.signal);
          this.log.info(`bus login ${c.bus.username}: ${id.how}`);
          if (id.forming) this.brokerAuth?.apply(bootstrapConfig(c)); // the founders, before anyone logs in
        },
      },
      {
        name: "cluster",
        start: () => {
          const bus = new MqttBus({
            cluster: c.cluster.name,
            node: c.cluster.node,
            username: c.bus.username,
            password: id.password,
            brokers: bootstrapConfig(c).members,
            log: this.log, // the bus names its own namespace ("bus")
            now: () => performance.now(),
          });
          const env = realEnv({ send: (to, msg) => bus.send(to, msg), store, log: this.log.child("cluster"), events });
          this.bus = bus;
          this.node = new ClusterNode(env, c.cluster.node, c.timing, bootstrapConfig(c), {
            cluster: c.cluster.name,
            joinToken: c.cluster.join?.token ?? null,
            cautiousVotes: id.cautiousVotes,
          });
        },
      },
      {
        name: "control",
        start: async () => {
          control = new ControlServer(c.control.socket, this.controlHandlers(), this.log.child("control"));
          await control.start();
        },
        stop: () => control.stop(),
      },
      {
        // loads the persisted state: a corrupt state file stops the start-up here (store.ts)
        name: "node",
        start: () => {
          const node = this.node!;
          node.start();
          this.bus!.onMessage((from, msg) => node.receive(from, msg));
          this.fetcher = new Fetcher(c.cluster.node, (to, msg) => this.bus!.send(to, msg), (n) => this.log.recent(n), join(c.stateDir, "events.jsonl"));
          this.bus!.onMessage((from, msg) => this.fetcher!.receive(from, msg));
          this.syncBrokers();
          this.running = true;
        },
        stop: () => {
          this.running = false;
        },
      },
      { name: "bus", start: () => this.bus!.start(), stop: () => this.bus!.stop() },
      {
        // the data path (issue 4): MySQL, Redis, the portal and the VIP follow the register
        name: "ha",
        start: async () => {
          if (!c.ha) return;
          const node = this.node!;
          const ha = new HaRuntime({
            config: c, node, send: (to, msg) => this.bus!.send(to, msg), log: this.log,
            event: (kind, detail, fields) => events.record({ kind, node: c.cluster.node, term: node.view().term, detail, fields }),
          });
          this.bus!.onMessage((from, msg) => ha.receive(from, msg));
          await ha.start();
          this.ha = ha;
        },
        stop: async () => {
          await this.ha?.stop();
          this.ha = null;
        },
      },
      {
        // hardware, host and cluster readings -> alarms (history, bus, webhooks), metrics
        name: "watch",
        start: async () => {
          const watch = new Watch({
            config: c, log: this.log, bus: this.bus!, view: () => this.node?.view() ?? null, facts: () => this.ha?.snapshot().facts ?? null,
            onEvent: (fn) => events.onRecord(fn), build: { version: this.opts.version, rev: this.opts.rev },
            uptimeS: () => (performance.now() - this.startedMono) / 1000, timers: this.timers, now: () => performance.now(), wall: () => Date.now(),
          });
          await watch.start();
          this.watch = watch;
          Object.assign(this.routes, watch.routes());
        },
        stop: async () => {
          for (const k of Object.keys(this.routes)) delete this.routes[k];
          await this.watch?.stop();
          this.watch = null;
        },
      },
      {
        name: "loop",
        start: () => {
          this.loops = [
            this.timers.every(c.timing.tickMs, () => this.tick()),
            this.timers.every(STATUS_FILE_EVERY_MS, () => this.writeStatus()),
            this.timers.every(GC_EVERY_MS, () => collectGarbage(this.log)),
          ];
          this.writeStatus();
        },
        stop: () => {
          this.loops.forEach((l) => l.cancel());
          this.loops = [];
          this.writeStatus();
        },
      },
      {
        name: "notify",
        start: () => {
          this.notifier.start();
          this.lastStatusLine = this.statusLine();
          this.notifier.ready(this.lastStatusLine);
        },
      },
    ];
  }

  /** One pass of the main loop. The watchdog is fed only after a good tick. */
  private tick(): void {
    if (!this.running) return;
    try {
      this.node!.tick();
      this.ha?.step();
    } catch (e) {
      // A throwing core is a bug. No watchdog ping: if it persists, systemd restarts us.
      if (this.tickFailures++ % 100 === 0) this.log.error("cluster tick failed", { failures: this.tickFailures, err: e as Error });
      return;
    }
    this.tickFailures = 0;
    this.notifier.watchdog();
    try {
      this.publish();
    } catch (e) {
      this.log.error("publishing the node state failed", { err: e as Error });
    }
  }

  /** Retained `state` when it changes and every 5 s, retained `config` when it changes. */
  private publish(): void {
    const view = this.node!.view();
    const summary = stateSummary(view);
    const key = JSON.stringify(summary);
    const now = performance.now();
    const changed = key !== this.lastState;
    if (changed || now - this.lastStateAt >= STATE_EVERY_MS) {
      this.bus!.publishRetained("state", { ...summary, version: this.opts.version, wall: Date.now() });
      // the bus re-publishes retained bodies itself when the own broker reconnects
      const cfgKey = JSON.stringify(view.config);
      if (cfgKey !== this.lastConfig) this.bus!.publishRetained("config", view.config);
      this.lastConfig = cfgKey;
      this.lastState = key;
      this.lastStateAt = now;
      if (changed) {
        const line = this.statusLine();
        if (line !== this.lastStatusLine) this.notifier.status(line);
        this.lastStatusLine = line;
        this.syncBrokers();
      }
    }
    if (this.brokerAuth && view.committed.epoch !== this.authEpoch) {
      this.authEpoch = view.committed.epoch;
      this.brokerAuth.apply(view.committed);
    }
  }

  /** Connect to the brokers of every member of the accepted and the committed config. */
  private syncBrokers(): void {
    const v = this.node!.view();
    const byName = new Map<string, Member>();
    for (const m of [...v.committed.members, ...v.config.members]) byName.set(m.name, m);
    const list = [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
    const key = JSON.stringify(list);
    if (key === this.brokersKey) return;
    if (this.brokersKey) this.log.info("broker list changed", { brokers: list.map((m) => `${m.name}@${m.bus}`) });
    this.brokersKey = key;
    this.bus!.setBrokers(list);
  }

  private statusLine(): string {
    const v = this.node?.view();
    if (!v) return "starting";
    return `${v.role}, term ${v.term}, leader ${v.leader ?? "none"}, quorum ${v.quorum ? "yes" : "NO"}` +
      `${v.tilt ? ", TILT" : ""}${v.selfFenced ? ", SELF-FENCED" : ""}, config epoch ${v.committed.epoch}`;
  }

  private statusBody(): StatusBody {
    if (!this.node || !this.bus || !this.running) throw new Error("the agent is starting or stopping");
    return {
      agent: {
        version: this.opts.version,
        rev: this.opts.rev,
        pid: process.pid,
        uptimeS: Math.round((performance.now() - this.startedMono) / 1000),
        startedAt: new Date(this.startedWall).toISOString(),
      },
      cluster: this.config.cluster.name,
      view: this.node.view(),
      bus: this.bus.stats(),
      ha: this.ha?.snapshot() ?? null,
      watch: this.watch?.snapshot() ?? null,
      wall: Date.now(),
    };
  }

  private writeStatus(): void {
    try {
      writeStatusFile(this.config.stateDir, this.statusBody());
      this.statusFileFailing = false;
    } catch (e) {
      if (!this.statusFileFailing) this.log.warn("cannot write the status file", { err: e as Error });
      this.statusFileFailing = true;
    }
  }

  private controlHandlers() {
    return {
      status: () => this.statusBody(),
      routes: this.routes,
      logs: async (p: FetchParams) => {
        const node = p.node ?? this.config.cluster.node;
        const r = await this.fetcher!.get(node, { what: "logs", ...p });
        return { node, lines: r.items, truncated: r.truncated };
      },
      events: async (p: FetchParams) => {
        const node = p.node ?? this.config.cluster.node;
        const r = await this.fetcher!.get(node, { what: "events", ...p });
        return { node, events: r.items, truncated: r.truncated };
      },
      command: (cmd: Command) =>
        new Promise<CommandResult>((resolve) => {
          if (!this.node || !this.running) return resolve({ status: "error", error: "the agent is starting or stopping" });
          const timer = setTimeout(
            () => resolve({ status: "error", error: `no answer from the leader within ${COMMAND_TIMEOUT_MS / 1000} s` }),
            COMMAND_TIMEOUT_MS,
          );
          this.node.command(cmd, (r) => {
            clearTimeout(timer);
            resolve(r);
          });
        }),
    };
  }
}
