// The cluster node on the MQTT bus (cluster/node.ts, bus/mqtt.ts), as the agent's first
// components, in start-up order: the state directory (store, event log); the own broker's
// users; this node's bus login; the bus and the node made; then, once the control socket is
// up (agent.ts), the node loads its state and the bus connects. After each good tick the
// main loop (loop-component.ts) calls publish().
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { BrokerAuth } from "../bus/broker-auth.ts";
import { Fetcher } from "../bus/fetch.ts";
import { resolveBusIdentity, type BusIdentity } from "../bus/identity.ts";
import type { Member } from "../bus/messages.ts";
import { MqttBus } from "../bus/mqtt.ts";
import { ClusterNode } from "../cluster/node.ts";
import { bootstrapConfig } from "../config/schema.ts";
import { EventLog, realEnv } from "../env/real.ts";
import { FileStore } from "../env/store.ts";
import type { AgentContext, Component } from "./component.ts";
import { stateSummary } from "./status.ts";

/** The retained state is re-published at least this often, and at once when it changes. */
const STATE_EVERY_MS = 5000;

type StepName = "state" | "brokerAuth" | "credentials" | "cluster" | "node" | "bus";

export class ClusterComponents {
  store!: FileStore;
  events!: EventLog;
  bus: MqttBus | null = null;
  node: ClusterNode | null = null;
  /** logs and events of any node, over the bus (for the control socket) */
  fetcher: Fetcher | null = null;
  /** from the node's start to its stop: ticks and control requests are served only then */
  running = false;
  private brokerAuth: BrokerAuth | null = null;
  private id!: BusIdentity;
  private lastState = "";
  private lastStateAt = -Infinity;
  private lastConfig = "";
  private brokersKey = "";
  private authEpoch = -1;
  /** more for the retained state, from components started later (the upgrade's step) */
  stateExtra: (() => Record<string, unknown>) | null = null;

  constructor(private readonly ctx: AgentContext) {}

  readonly steps: Record<StepName, Component> = {
    state: {
      name: "state",
      start: () => {
        const c = this.ctx.config;
        mkdirSync(c.stateDir, { recursive: true, mode: 0o750 });
        this.store = new FileStore(c.stateDir);
        this.events = new EventLog(c.stateDir, this.ctx.log.child("event"));
      },
    },
    brokerAuth: {
      // the own broker must know the members before anyone can log in to it
      name: "broker-auth",
      start: () => {
        const c = this.ctx.config;
        if (!c.bus.broker) return;
        this.brokerAuth = new BrokerAuth(c.bus.broker, c.cluster.name, c.cluster.join?.token ?? null, this.ctx.log.child("broker"));
        // Only a config this node has committed: a blank node learns the members from the
        // leader, and must not overwrite its broker's users with an unverified token's.
        const saved = this.store.load();
        if (saved) this.brokerAuth.apply(saved.committed);
      },
    },
    credentials: {
      name: "credentials",
      start: async (signal) => {
        const { config: c, log } = this.ctx;
        this.id = await resolveBusIdentity(c, this.store, log.child("cluster"), signal);
        log.info(`bus login ${c.bus.username}: ${this.id.how}`);
        if (this.id.forming) this.brokerAuth?.apply(bootstrapConfig(c)); // the founders, before anyone logs in
      },
    },
    cluster: {
      name: "cluster",
      start: () => {
        const { config: c, log } = this.ctx;
        const bus = new MqttBus({
          cluster: c.cluster.name,
          node: c.cluster.node,
          username: c.bus.username,
          password: this.id.password,
          brokers: bootstrapConfig(c).members,
          log, // the bus names its own namespace ("bus")
          now: () => performance.now(),
        });
        const env = realEnv({ send: (to, msg) => bus.send(to, msg), store: this.store, log: log.child("cluster"), events: this.events });
        this.bus = bus;
        this.node = new ClusterNode(env, c.cluster.node, c.timing, bootstrapConfig(c), {
          cluster: c.cluster.name,
          joinToken: c.cluster.join?.token ?? null,
          cautiousVotes: this.id.cautiousVotes,
        });
      },
    },
    node: {
      // loads the persisted state: a corrupt state file stops the start-up here (store.ts)
      name: "node",
      start: () => {
        const { config: c, log } = this.ctx;
        const node = this.node!;
        const bus = this.bus!;
        node.start();
        bus.onMessage((from, msg) => node.receive(from, msg));
        const fetcher = new Fetcher(c.cluster.node, (to, msg) => bus.send(to, msg), (n) => log.recent(n), join(c.stateDir, "events.jsonl"));
        bus.onMessage((from, msg) => fetcher.receive(from, msg));
        this.fetcher = fetcher;
        this.syncBrokers();
        this.running = true;
      },
      stop: () => {
        this.running = false;
      },
    },
    bus: { name: "bus", start: () => this.bus!.start(), stop: () => this.bus!.stop() },
  };

  /**
   * Retained `state` when it changes and every 5 s, retained `config` when it changes; the
   * broker list and the own broker's users follow the config. True when the state changed.
   */
  publish(): boolean {
    const view = this.node!.view();
    const summary = stateSummary(view);
    const extra = this.stateExtra?.() ?? {};
    const key = JSON.stringify([summary, extra]);
    const now = performance.now();
    const changed = key !== this.lastState;
    if (changed || now - this.lastStateAt >= STATE_EVERY_MS) {
      this.bus!.publishRetained("state", { ...summary, ...extra, version: this.ctx.build.version, rev: this.ctx.build.rev, wall: Date.now() });
      // the bus re-publishes retained bodies itself when the own broker reconnects
      const cfgKey = JSON.stringify(view.config);
      if (cfgKey !== this.lastConfig) this.bus!.publishRetained("config", view.config);
      this.lastConfig = cfgKey;
      this.lastState = key;
      this.lastStateAt = now;
      if (changed) this.syncBrokers();
    }
    if (this.brokerAuth && view.committed.epoch !== this.authEpoch) {
      this.authEpoch = view.committed.epoch;
      this.brokerAuth.apply(view.committed);
    }
    return changed;
  }

  /** systemd's STATUS= line: role, term, leader, quorum, config epoch. */
  statusLine(): string {
    const v = this.node?.view();
    if (!v) return "starting";
    return `${v.role}, term ${v.term}, leader ${v.leader ?? "none"}, quorum ${v.quorum ? "yes" : "NO"}` +
      `${v.tilt ? ", TILT" : ""}${v.selfFenced ? ", SELF-FENCED" : ""}, config epoch ${v.committed.epoch}`;
  }

  /** Connect to the brokers of every member of the accepted and the committed config. */
  private syncBrokers(): void {
    const v = this.node!.view();
    const byName = new Map<string, Member>();
    for (const m of [...v.committed.members, ...v.config.members]) byName.set(m.name, m);
    const list = [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
    const key = JSON.stringify(list);
    if (key === this.brokersKey) return;
    if (this.brokersKey) this.ctx.log.info("broker list changed", { brokers: list.map((m) => `${m.name}@${m.bus}`) });
    this.brokersKey = key;
    this.bus!.setBrokers(list);
  }
}
