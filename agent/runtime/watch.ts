// The hardware and alarm watch (DESIGN §6, issue 5): the component that reads what the
// alarm rules judge, steps the alarm service, and serves the results.
//
// Every poll_ms (1 s) it starts, each on its own so a silent device delays nothing else:
//  - this node's own BMC (ha.nodes.<self>.bmc): sensors; every sel_every_ms also the SEL
//    entries new since the last read. An unanswered call is "BMC unreachable".
//  - every switch in ha.switches (IF-MIB walk). Every node walks both switches: a port or
//    switch alarm has the same id on every node, so the cluster-wide list shows it once
//    with every reporter, and it does not depend on who leads (a leader-only walk would
//    re-raise it under a new reporter at each election). Ports are named after the node
//    and NIC in ha.nodes.<n>.ports.
//  - the bonds (a file each); every host_every_ms CPU, memory, filesystems and time sync.
// and after each reading arrives, one step of the rules: those readings, the cluster view
// (after a start-up grace, so peers not yet heard are not "lost"), the HA runtime's MySQL
// and Redis facts, and the events of the event log (fence failed/done, failover done).
// Transitions go to history, to the bus (retained alarm topics) and to the webhooks.
// Every node's retained alarms arrive over the bus: with this node's own they make the
// cluster-wide list of `bollard alarms`, the console and `bollard status`.
import type { BackupSnapshot } from "../backup/snapshot.ts";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { AlarmHistory, historyDir, mergeAlarms, type ClusterAlarm } from "../alarms/history.ts";
import { RemoteAck } from "../alarms/remote-ack.ts";
import { AlarmService } from "../alarms/service.ts";
import type { Alarm, EventInput, Readings, ReadyInput, SitesInput, SwitchInput, WritesDownInput } from "../alarms/types.ts";
import type { Message } from "../bus/messages.ts";
import type { AlarmCb, BusStats } from "../bus/mqtt.ts";
import type { NodeView } from "../cluster/view.ts";
import type { Config } from "../config/schema.ts";
import type { ClusterEvent, Logger, TimerHandle, Timers } from "../env/env.ts";
import { atomicWrite } from "../env/store.ts";
import type { DbFacts } from "../ha/local.ts";
import type { VmAlarmInput } from "../ha/vm-types.ts";
import type { BackupAlarmInput } from "../alarms/types.ts";
import type { VmMetrics } from "./vm-metrics.ts";
import { bondAlarmInputs, hostAlarmInput, hostSource, readBondStates, readHost, type HostOptions, type HostReading, type HostSource } from "../hw/host.ts";
import type { SelEntry } from "../hw/ipmi-parse.ts";
import { alarmRoutes } from "./alarm-routes.ts";
import type { Route } from "./control.ts";
import { busMetrics, clusterMetrics, createMetricsServer, hostMetrics, type MetricsServer, type MetricsSnapshot } from "./metrics.ts";
import { Notifier, httpPost } from "./notify-webhook.ts";
import { bmcInput, eventInput, mysqlInput, portMap, portMetrics, redisInput, sensorMetrics, switchInput, type PortMap } from "./watch-inputs.ts";
import { HwPoller, bmcConfig, ipmitoolHome, switchConfig, type BmcPoll, type SwitchPoll } from "./watch-poll.ts";

/** What the watch needs of bus/mqtt.ts MqttBus. */
export interface WatchBus {
  publishAlarm(id: string, payload: string): void;
  onAlarm(cb: AlarmCb): () => void;
  stats(): BusStats;
  /** acks of alarms other nodes raised go to them (alarms/remote-ack.ts); without these they are refused */
  send?(to: string, msg: Message): void;
  onMessage?(cb: (from: string, msg: Message) => void): () => void;
}

export interface WatchDeps {
  config: Config;
  log: Logger;
  bus: WatchBus;
  view(): NodeView | null;
  /** HaRuntime.snapshot().facts; null without HA */
  facts(): { mysql: DbFacts | null; redis: DbFacts | null } | null;
  /** the leader's "writes are down" list (HaRuntime.writesInput()); null without HA */
  writes?(): WritesDownInput | null;
  /** the remote sites' judgements (SiteRuntime.alarms()); null without sites */
  sites?(): SitesInput | null;
  /** the remote sites for the metrics; null without sites */
  siteMetrics?(): MetricsSnapshot["sites"] | null;
  /** subscribes to the event log (env/real.ts EventLog.onRecord); returns the removal */
  onEvent(fn: (e: ClusterEvent) => void): () => void;
  build: { version: string; rev: string };
  uptimeS(): number;
  timers: Timers;
  /** monotonic ms */
  now(): number;
  /** wall-clock ms */
  wall(): number;
  /** N+1 readiness as judged now (runtime/readiness.ts); absent or null: not judged */
  readiness?(): ReadyInput | null;
  /** the VMs' alarm input and metrics (runtime/vm-runtime.ts); absent without VMs */
  /** alarms() is called once per alarm step: it hands over what the VM manager found since the last one */
  vms?(): { alarms(): VmAlarmInput; metrics: VmMetrics | null } | null;
  /** the backups' alarm input and snapshot (backup/runtime.ts); absent without backups */
  backups?(): { alarms: BackupAlarmInput | null; snap: BackupSnapshot | null } | null;
  /** tests: fakes of the hardware, host and bond readers */
  poller?: HwPoller;
  readHost?(o: HostOptions): Promise<HostReading>;
  readBonds?(): HostReading["bonds"];
  /** each host reading as it comes in (the web console's chart samples, web/samples.ts) */
  onHost?(h: HostReading, wall: number): void;
}

export interface WatchSnapshot {
  /** cluster-wide, as this node sees them */
  alarms: ClusterAlarm[];
  bmc: { node: string; up: boolean; error?: string; ms: number; sensors: { name: string; value: number | null; unit: string; status: string }[] } | null;
  switches: { switch: string; up: boolean; error?: string; ms: number; ports: { port: string; node: string; nic: string | null; oper: string | null; admin: string | null }[] }[];
  host: { cpuUsedRatio: number | null; memUsedRatio: number | null; load1: number; timeSync: string; bonds: { name: string; active: string | null; slaves: { name: string; mii: string }[]; error?: string }[] } | null;
  /** ms the last alarm step took */
  stepMs: number | null;
}

const SEL_FILE = "sel.json";
/** chrony or timedatectl is a process (~5 ms of the agent's CPU and ~8 ms in it): time sync
 *  is asked at most this often, the rest of the host every hw.host_every_ms. A clock that
 *  lost its sync raises a minor alarm (time-unsynced); a minute more does not matter. */
export const TIME_SYNC_EVERY_MS = 60_000;
/** switch port counters (metrics only) are walked this often; oper and admin status, which
 *  the alarms judge, every poll (watch-poll.ts pollSwitch) */
export const PORT_COUNTERS_EVERY_MS = 10_000;

export class Watch {
  private readonly log: Logger;
  private readonly self: string;
  private readonly history: AlarmHistory;
  private readonly notifier: Notifier;
  private readonly service: AlarmService;
  private readonly remoteAck: RemoteAck | null;
  private readonly poller: HwPoller;
  private readonly ports: PortMap;
  private readonly metrics: MetricsServer | null;
  private bmc: BmcPoll | null = null;
  private readonly switches = new Map<string, SwitchPoll>();
  private host: HostReading | null = null;
  /** kept across readings: it asks for the filesystems (df) at most once a minute */
  private readonly hostSource: HostSource = hostSource();
  private bonds: HostReading["bonds"] = [];
  private sel: SelEntry[] = [];
  private events: EventInput[] = [];
  private readonly remote = new Map<string, Map<string, Alarm>>();
  private readonly inflight = new Map<string, Promise<void>>();
  private lastSelAt = -Infinity;
  private lastHostAt = -Infinity;
  private lastTimeSyncAt = -Infinity;
  private startedAt = 0;
  private stepMs: number | null = null;
  private stepFailures = 0;
  private timer: TimerHandle | null = null;
  private unsubscribe: (() => void)[] = [];
  private running = false;

  constructor(private readonly d: WatchDeps) {
    const c = d.config;
    this.log = d.log.child("alarms");
    this.self = c.cluster.node;
    this.history = new AlarmHistory(historyDir(c.stateDir), c.alarms.history, this.log);
    this.notifier = new Notifier(c.notify, c.stateDir, { now: d.now, wall: d.wall, random: Math.random, timers: d.timers, post: httpPost, log: d.log.child("notify") });
    this.service = new AlarmService(c.alarms, this.self, this.history, { publish: (id, p) => d.bus.publishAlarm(id, p), notify: (ts) => this.notifier.notify(ts) }, this.log);
    const send = d.bus.send?.bind(d.bus);
    this.remoteAck = send && d.bus.onMessage ? new RemoteAck({
      self: this.self, send, ack: (id, who) => this.service.ack(id, who, d.wall()), timers: d.timers, newId: () => randomBytes(8).toString("hex"), log: this.log,
    }) : null;
    const ha = c.ha?.ha ?? null;
    const own = ha?.nodes[this.self]?.bmc;
    this.poller = d.poller ?? new HwPoller(own ? [{ node: this.self, cfg: bmcConfig(own) }] : [], Object.entries(ha?.switches ?? {}).map(([n, s]) => switchConfig(n, s)), {
      log: d.log, now: d.now, ipmitoolHome: own ? join(c.stateDir, "ipmitool") : undefined,
    });
    this.ports = portMap(ha);
    this.metrics = c.metrics.enabled ? createMetricsServer({ host: c.metrics.host, port: c.metrics.port, collect: () => this.metricsSnapshot(), log: d.log.child("metrics") }) : null;
  }

  async start(): Promise<void> {
    this.startedAt = this.d.now();
    this.loadSel();
    // without it ipmitool falls back to the system's registry: slower, same answers
    if (this.poller.ipmitoolHome) ipmitoolHome(this.poller.ipmitoolHome, this.log);
    try {
      this.notifier.start();
    } catch (e) {
      this.log.error("webhook queues unreadable: notifications are kept in memory only", { err: e as Error });
    }
    this.service.start();
    this.unsubscribe.push(this.d.bus.onAlarm((from, id, a) => this.onAlarm(from, id, a)));
    const ra = this.remoteAck;
    if (ra) this.unsubscribe.push(this.d.bus.onMessage!((from, m) => ra.receive(from, m)));
    this.unsubscribe.push(this.d.onEvent((e) => this.onEvent(e)));
    if (this.metrics) {
      try {
        await this.metrics.start();
      } catch (e) {
        // the watch and its alarms matter more than the endpoint: carry on without it
        this.log.error(`metrics endpoint not started on ${this.d.config.metrics.host}:${this.d.config.metrics.port}`, { err: e as Error });
      }
    }
    this.running = true;
    this.timer = this.d.timers.every(this.d.config.hw.pollMs, () => this.cycle());
    this.cycle();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.timer?.cancel();
    this.timer = null;
    for (const u of this.unsubscribe.splice(0)) u();
    this.remoteAck?.stop();
    await Promise.allSettled([...this.inflight.values()]);
    await this.metrics?.stop();
    await this.notifier.stop();
    this.poller.close();
  }

  /** The control socket's GET /alarms and POST /alarms/ack (alarm-routes.ts). */
  routes(): Record<string, Route> {
    return alarmRoutes({
      node: this.self,
      engine: this.service.engine,
      history: this.history,
      retained: () => this.remoteAlarms(),
      wall: this.d.wall,
      onTransitions: (ts) => this.service.emit(ts),
      forwardAck: this.remoteAck ? (id, who, reporters) => this.remoteAck!.forward(id, who, reporters) : undefined,
      unreachableFor: (n) => this.unreachableFor(n),
    });
  }

  /** ms since `node` was last heard, when this node does not hear it now; null when it does (or is it). */
  private unreachableFor(node: string): number | null {
    if (node === this.self) return null;
    const p = this.d.view()?.peers.find((x) => x.name === node);
    if (!p || p.alive) return null;
    return p.lastHeardMs ?? Infinity;
  }

  /** One row per alarm id, across every node. */
  clusterAlarms(): ClusterAlarm[] {
    return mergeAlarms([...this.service.engine.active(), ...this.remoteAlarms()], (n) => this.unreachableFor(n));
  }

  // ---- polling -----------------------------------------------------------------------

  private cycle(): void {
    if (!this.running) return;
    const now = this.d.now();
    const c = this.d.config.hw;
    if (this.poller.bmcNodes().includes(this.self)) {
      const withSel = now - this.lastSelAt >= c.selEveryMs;
      this.read("bmc", () => this.poller.pollBmc(this.self, withSel), (r) => {
        const before = this.poller.selLast.get(this.self);
        this.bmc = r;
        if (withSel && r.sensors.ok && !r.selError) this.lastSelAt = now;
        this.sel.push(...r.sel);
        if (this.poller.selLast.get(this.self) !== before) this.saveSel();
      });
    }
    for (const s of this.poller.switchNames()) this.read(`switch:${s}`, () => this.poller.pollSwitch(s, PORT_COUNTERS_EVERY_MS), (r) => this.switches.set(s, r));
    this.bonds = this.d.readBonds ? this.d.readBonds() : readBondStates(this.d.config.hw.host);
    if (now - this.lastHostAt >= c.hostEveryMs) {
      this.lastHostAt = now;
      const again = this.host && now - this.lastTimeSyncAt < TIME_SYNC_EVERY_MS ? this.host.timeSync : undefined;
      if (!again) this.lastTimeSyncAt = now;
      const o: HostOptions = { ...this.d.config.hw.host, source: this.hostSource, timeSync: again };
      this.read("host", () => (this.d.readHost ? this.d.readHost(o) : readHost(o)), (h) => {
        this.host = h;
        this.d.onHost?.(h, this.d.wall());
      });
    }
    this.step();
  }

  /** Starts `f` unless the same source is still being read; steps the rules when it is in. */
  private read<T>(key: string, f: () => Promise<T>, done: (v: T) => void): void {
    if (this.inflight.has(key)) return;
    const p = f()
      .then((v) => {
        if (!this.running) return;
        done(v);
        this.step();
      })
      .catch((e: unknown) => this.log.error(`reading ${key} failed`, { err: e as Error }))
      .finally(() => this.inflight.delete(key));
    this.inflight.set(key, p);
  }

  /** The readings as they are now, through the rules and the engine. */
  step(): void {
    if (!this.running) return;
    const t0 = this.d.now();
    const r: Readings = { node: this.self, events: this.events.splice(0) };
    const sel = this.sel.splice(0);
    const b = bmcInput(this.self, this.bmc?.sensors ?? null, sel);
    if (b) r.bmcs = [b];
    r.switches = [...this.switches.values()].map((s) => switchInput(s.switch, s.ports, this.ports)).filter((s): s is SwitchInput => s !== null);
    // the switch each slave is cabled to, from the config: named even while that switch is dark
    r.bonds = bondAlarmInputs(this.self, { bonds: this.bonds }).map((b) => ({ ...b, slaves: b.slaves.map((x) => ({ ...x, switch: x.switch ?? this.switchOf(x.name) })) }));
    if (this.host) r.host = hostAlarmInput(this.self, this.host);
    const t = this.d.config.timing;
    const view = this.d.view();
    if (view && t0 - this.startedAt >= 2 * t.peerDeadMs + 2000) r.cluster = view; // peers not yet heard are not lost
    const facts = this.d.facts();
    if (facts && this.d.config.ha?.mysql) r.mysql = mysqlInput(facts.mysql);
    if (facts && this.d.config.ha?.redis) r.redis = redisInput(facts.redis);
    // like the cluster's: peers not yet heard are not "would be left without"
    if (this.d.readiness && t0 - this.startedAt >= 2 * t.peerDeadMs + 2000) r.readiness = this.d.readiness();
    const vms = this.d.vms?.();
    if (vms) r.vms = vms.alarms();
    const backups = this.d.backups?.()?.alarms;
    if (backups) r.backups = backups;
    const writes = this.d.writes?.();
    if (writes) r.writes = writes;
    const sites = this.d.sites?.();
    if (sites) r.sites = sites;
    try {
      this.service.step(this.d.wall(), r);
      this.stepFailures = 0;
    } catch (e) {
      if (this.stepFailures++ % 60 === 0) this.log.error("alarm step failed", { failures: this.stepFailures, err: e as Error });
    }
    this.stepMs = Math.round((this.d.now() - t0) * 100) / 100;
  }

  // ---- the bus and the event log ---------------------------------------------------------

  private onAlarm(from: string, id: string | null, a: Alarm | null): void {
    if (from === this.self) {
      // retained under our own prefix from before a restart, and no longer active here
      if (id && a && !this.service.engine.get(id)) {
        this.log.info("clearing a stale retained alarm", { id });
        this.d.bus.publishAlarm(id, "");
      }
      return;
    }
    if (id === null) return void this.remote.delete(from);
    let m = this.remote.get(from);
    if (!m) this.remote.set(from, (m = new Map()));
    if (a) m.set(id, a);
    else m.delete(id);
  }

  private onEvent(e: ClusterEvent): void {
    const x = eventInput(e);
    if (x) this.events.push(x);
  }

  private switchOf(nic: string): string | null {
    for (const [sw, ports] of this.ports) for (const p of ports.values()) if (p.node === this.self && p.nic === nic) return sw;
    return null;
  }

  private remoteAlarms(): Alarm[] {
    return [...this.remote.values()].flatMap((m) => [...m.values()]);
  }

  // ---- the SEL position, kept across restarts --------------------------------------------

  private selFile(): string {
    return join(historyDir(this.d.config.stateDir), SEL_FILE);
  }

  private loadSel(): void {
    try {
      mkdirSync(historyDir(this.d.config.stateDir), { recursive: true, mode: 0o750 });
      const j = JSON.parse(readFileSync(this.selFile(), "utf8")) as Record<string, unknown>;
      for (const [n, v] of Object.entries(j)) if (typeof v === "number" || v === null) this.poller.selLast.set(n, v);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") this.log.warn("SEL position unreadable: the next SEL read sets it again", { file: this.selFile(), err: e as Error });
    }
  }

  private saveSel(): void {
    try {
      atomicWrite(this.selFile(), JSON.stringify(Object.fromEntries(this.poller.selLast)), { durable: false, mode: 0o640 });
    } catch (e) {
      this.log.warn("cannot save the SEL position", { file: this.selFile(), err: e as Error });
    }
  }

  // ---- what status and metrics show ------------------------------------------------------

  snapshot(): WatchSnapshot {
    const b = this.bmc;
    const h = this.host;
    return {
      alarms: this.clusterAlarms(),
      bmc: b && {
        node: b.node, up: b.sensors.ok, ms: b.ms, ...(b.sensors.ok ? {} : { error: b.sensors.error }),
        sensors: b.sensors.ok ? b.sensors.value.map((s) => ({ name: s.name, value: s.value, unit: s.unit, status: s.status })) : [],
      },
      switches: [...this.switches.values()].map((s) => {
        const inp = switchInput(s.switch, s.ports, this.ports)!;
        return {
          switch: s.switch, up: inp.reachable, ms: s.ms, ...(inp.error ? { error: inp.error } : {}),
          ports: (inp.ports ?? []).filter((p) => p.node).map((p) => ({ port: p.port, node: p.node!, nic: p.nic ?? null, oper: p.oper, admin: p.admin })),
        };
      }),
      host: h && {
        cpuUsedRatio: h.cpu.ok ? h.cpu.value.usedRatio : null,
        memUsedRatio: h.memory.ok ? h.memory.value.usedRatio : null,
        load1: h.load.avg1,
        timeSync: h.timeSync.state,
        bonds: this.bonds.map((x) => (x.state.ok ? { name: x.name, active: x.state.value.activeSlave, slaves: x.state.value.slaves.map((s) => ({ name: s.name, mii: s.mii })) } : { name: x.name, active: null, slaves: [], error: x.state.error })),
      },
      stepMs: this.stepMs,
    };
  }

  metricsSnapshot(): MetricsSnapshot {
    const s: MetricsSnapshot = { node: this.self, agent: { ...this.d.build, uptimeSeconds: this.d.uptimeS() } };
    const b = this.bmc;
    if (b) {
      s.bmcs = [{ node: b.node, up: b.sensors.ok }];
      if (b.sensors.ok) s.sensors = sensorMetrics(b.node, b.sensors.value);
    }
    s.switches = [...this.switches.values()].map((x) => ({ switch: x.switch, up: x.ports.ok }));
    s.ports = [...this.switches.values()].flatMap((x) => (x.ports.ok ? portMetrics(x.switch, x.ports.value, this.ports) : []));
    if (this.host) s.host = hostMetrics({ ...this.host, bonds: this.bonds });
    const v = this.d.view();
    if (v) s.cluster = clusterMetrics(v);
    const f = this.d.facts();
    if (f) {
      s.resources = (["mysql", "redis"] as const).flatMap((r) => {
        const x = f[r];
        return x ? [{ resource: r, role: x.role, up: x.up, replicationLagSeconds: null }] : [];
      });
    }
    const sites = this.d.siteMetrics?.();
    if (sites?.length) s.sites = sites;
    s.alarms = this.service.counts();
    s.bus = busMetrics(this.d.bus.stats());
    s.vms = this.d.vms?.()?.metrics ?? undefined;
    const bsnap = this.d.backups?.()?.snap;
    if (bsnap) s.backups = { snap: bsnap, wall: this.d.wall() };
    return s;
  }
}
