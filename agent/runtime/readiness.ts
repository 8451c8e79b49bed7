// N+1 readiness as a component (issue 17 item 3, docs/readiness.md): the I/O around the pure
// judgement (ha/readiness.ts). Every second it judges, from this node's view, every node's
// resource report and every node's readiness body, whether the cluster could lose each node
// now. Around that, at a low rate:
//   - the fence paths of the other nodes, one check at a time, spread evenly over
//     readiness.fence_check_ms (60 s) per node and level: IPMI power status, the switch
//     ports' write access (readiness-checks.ts), never for a node that is not heard, in
//     maintenance, or being fenced;
//   - this node's MySQL semi-sync master status while it holds MySQL (every 5 s), its memory;
//   - the failover steps it measured (readiness-meter.ts, from its event log).
// It publishes what it measured, retained on `<node>/ready`, and reads everyone's. It serves
// GET /ready on the control socket (bollard ready), and hands its verdict to the status body
// (the console's line) and the alarm watch (not-ready alarms).
import type { ClusterConfig, FenceCheck, ReadyBody as ReadyBodyT, ResReport } from "../bus/messages.ts";
import { ReadyBody } from "../bus/messages.ts";
import type { TimerHandle } from "../env/env.ts";
import { fenceHeld, inMaintenance, type Svc } from "../ha/flags.ts";
import { readiness, type Readiness, type ReadinessInput } from "../ha/readiness.ts";
import type { ClusterComponents } from "./cluster-component.ts";
import type { AgentContext, Component } from "./component.ts";
import type { Route } from "./control.ts";
import type { HaComponent } from "./ha-component.ts";
import { dbReport } from "./ha-facts.ts";
import { FenceChecker, fencingOf, readMem, readSemiSync } from "./readiness-checks.ts";
import { FailoverMeter } from "./readiness-meter.ts";

const JUDGE_EVERY_MS = 1000;
const SEMI_SYNC_EVERY_MS = 5000;
const MEM_EVERY_MS = 10_000;
/** the retained body is published when it changes, and at least this often */
const PUBLISH_EVERY_MS = 30_000;

type Level = "ipmi" | "ports";

export class ReadinessComponent implements Component {
  readonly name = "readiness";
  private readonly meter = new FailoverMeter();
  private readonly bodies = new Map<string, ReadyBodyT>();
  private readonly fence: ReadyBodyT["fence"] = {};
  private semi: ReadyBodyT["semiSync"] = null;
  private mem: ReadyBodyT["mem"] = null;
  private checker: FenceChecker | null = null;
  private timer: TimerHandle | null = null;
  private readonly unsub: (() => void)[] = [];
  private last: Readiness | null = null;
  private rr = 0;
  private nextCheckAt = 0;
  private checking = false;
  private semiBusy = false;
  private lastSemiAt = -Infinity;
  private lastMemAt = -Infinity;
  private lastBody = "";
  private lastBodyAt = -Infinity;
  private saidLine: string | null = null;
  private readonly badBodies = new Map<string, number>();
  private running = false;

  constructor(
    private readonly ctx: AgentContext,
    private readonly cluster: ClusterComponents,
    private readonly ha: HaComponent,
    /** the control socket's extra routes, shared with the control component */
    private readonly routes: Record<string, Route>,
  ) {}

  start(): void {
    const c = this.ctx.config;
    if (!c.readiness.enabled) return;
    const log = this.ctx.log.child("readiness");
    this.meter.replayFiles(this.cluster.events.file);
    this.unsub.push(this.cluster.events.onRecord((e) => this.meter.record(e, Date.now())));
    this.unsub.push(this.cluster.bus!.onRetained((from, kind, body) => { if (kind === "ready") this.onBody(from, body); }));
    if (c.ha) this.checker = new FenceChecker(c.ha, log);
    // the first check a few seconds in, at a random point: nodes started together do not align
    this.nextCheckAt = performance.now() + 2000 + Math.random() * 3000;
    this.running = true;
    this.timer = this.ctx.timers.every(JUDGE_EVERY_MS, () => this.tick());
    this.routes["GET /ready"] = async () => ({ code: 200, body: { status: "ok", node: c.cluster.node, ready: this.last } });
  }

  stop(): void {
    this.running = false;
    this.timer?.cancel();
    this.timer = null;
    for (const u of this.unsub.splice(0)) u();
    this.checker?.close();
    delete this.routes["GET /ready"];
  }

  /** The last judgement (null before the first, or when disabled). */
  snapshot(): Readiness | null {
    return this.last;
  }

  // ---- what arrives ----------------------------------------------------------------------

  private onBody(from: string, body: unknown): void {
    if (body === null) return void this.bodies.delete(from);
    const r = ReadyBody.safeParse(body);
    if (r.success) return void this.bodies.set(from, r.data);
    // a peer's body this agent does not understand (another version, or a bug): said once a minute
    const now = performance.now();
    if (now - (this.badBodies.get(from) ?? -Infinity) >= 60_000) {
      this.badBodies.set(from, now);
      this.ctx.log.child("readiness").warn(`ignored ${from}'s readiness body: ${r.error.issues[0]?.path.join(".") ?? ""}: ${r.error.issues[0]?.message ?? "invalid"}`, { from });
    }
  }

  // ---- the step ----------------------------------------------------------------------------

  private tick(): void {
    if (!this.running) return;
    const view = this.cluster.running ? this.cluster.node?.view() : null;
    if (!view) return;
    const now = performance.now();
    if (now - this.lastMemAt >= MEM_EVERY_MS) {
      this.lastMemAt = now;
      this.mem = readMem();
    }
    this.semiSync(view.committed, now);
    this.check(view.committed, new Set(view.peers.filter((p) => p.alive).map((p) => p.name)), now);
    this.publish(now);
    this.judge();
  }

  private semiSync(cfg: ClusterConfig, now: number): void {
    const c = this.ctx.config;
    if (!c.ha?.mysql || cfg.assignments.mysql !== c.cluster.node) return void (this.semi = null);
    if (this.semiBusy || now - this.lastSemiAt < SEMI_SYNC_EVERY_MS) return;
    this.semiBusy = true;
    this.lastSemiAt = now;
    void readSemiSync(c.ha, c.cluster.node).then((r) => {
      if (typeof r === "string") this.ctx.log.child("readiness").debug(`semi-sync status not read: ${r}`);
      else this.semi = { ...r, at: Date.now() };
    }).finally(() => (this.semiBusy = false));
  }

  /** The next fence check in the round, if it is time; one at a time. */
  private check(cfg: ClusterConfig, alive: Set<string>, now: number): void {
    const c = this.ctx.config;
    if (!this.checker || this.checking || now < this.nextCheckAt) return;
    const pairs = cfg.members.map((m) => m.name).filter((n) => n !== c.cluster.node).flatMap((n) => {
      const f = fencingOf(c.ha, n);
      return [...(f.bmc ? [{ n, l: "ipmi" as Level }] : []), ...(f.ports ? [{ n, l: "ports" as Level }] : [])];
    });
    if (!pairs.length) return void (this.nextCheckAt = now + c.readiness.fenceCheckMs);
    this.nextCheckAt = now + c.readiness.fenceCheckMs / pairs.length;
    const p = pairs[this.rr++ % pairs.length]!;
    // a node being fenced (or not heard: it may be any moment), or drained, is left alone
    if (!alive.has(p.n) || fenceHeld(cfg.flags, p.n) || inMaintenance(cfg.flags, p.n)) return;
    this.checking = true;
    const checker = this.checker;
    void (p.l === "ipmi" ? checker.ipmi(p.n) : checker.ports(p.n)).then((r: FenceCheck) => {
      const before = this.fence[p.n]?.[p.l];
      this.fence[p.n] = { ...this.fence[p.n], [p.l]: r };
      if (before?.ok !== r.ok) {
        const log = this.ctx.log.child("readiness");
        if (r.ok) log.info(`fence path of ${p.n} proven: ${p.l === "ipmi" ? "IPMI" : "switch ports"}: ${r.detail}`, { node: p.n, level: p.l });
        else log.warn(`fence path of ${p.n} not proven: ${p.l === "ipmi" ? "IPMI" : "switch ports"}: ${r.detail}`, { node: p.n, level: p.l });
      }
    }).finally(() => (this.checking = false));
  }

  private ownBody(): ReadyBodyT {
    return { v: 1, at: Date.now(), fence: this.fence, semiSync: this.semi, mem: this.mem, measured: { ...this.meter.last }, leaseWaitMs: this.meter.leaseWaitMs };
  }

  private publish(now: number): void {
    const body = this.ownBody();
    this.bodies.set(this.ctx.config.cluster.node, body);
    // what changes every second (the time, free memory) alone is not worth a publish
    const key = JSON.stringify({ ...body, at: 0, mem: null, semiSync: body.semiSync && { ...body.semiSync, at: 0 } });
    if (key === this.lastBody && now - this.lastBodyAt < PUBLISH_EVERY_MS) return;
    this.lastBody = key;
    this.lastBodyAt = now;
    this.cluster.bus!.publishRetained("ready", body);
  }

  private judge(): void {
    const c = this.ctx.config;
    const view = this.cluster.node!.view();
    const snap = this.ha.runtime?.snapshot() ?? null;
    const services: Svc[] = [...(c.ha?.mysql ? ["mysql" as const] : []), ...(c.ha?.redis ? ["redis" as const] : [])];
    const reports: Record<string, ResReport | null> = { ...(snap?.peers ?? {}) };
    if (snap) {
      const f = snap.facts;
      reports[c.cluster.node] = {
        v: 1, t: "res", portal: { mysql: null, redis: null }, vip: f.vip ?? false, selfFenced: view.selfFenced,
        mysql: f.mysql ? dbReport(f.mysql, snap.heldOut.mysql ?? null) : null, redis: f.redis ? dbReport(f.redis, snap.heldOut.redis ?? null) : null,
      };
    }
    const h = c.ha?.ha;
    const inp: ReadinessInput = {
      wall: Date.now(), self: c.cluster.node, quorum: view.quorum, leader: view.leader,
      alive: Object.fromEntries([[c.cluster.node, true], ...view.peers.map((p) => [p.name, p.alive])]),
      committed: view.committed, services, reports, bodies: Object.fromEntries(this.bodies),
      fencing: Object.fromEntries(view.committed.members.map((m) => [m.name, fencingOf(c.ha, m.name)])),
      vms: c.vms?.catalog ?? null,
      t: {
        peerDeadMs: c.timing.peerDeadMs, quorumLossMs: c.timing.quorumLossMs, maxDrift: c.timing.maxDrift,
        watchdogMs: h?.watchdog_ms ?? 5000, fenceMarginMs: h?.fence_margin_ms ?? 2000, antiFlapMs: h?.anti_flap_ms ?? 600_000,
        checkMaxAgeMs: c.readiness.checkMaxAgeMs, recvStaleMs: c.readiness.recvStaleMs, redisLagBytes: c.readiness.redisLagBytes,
      },
    };
    try {
      this.last = readiness(inp);
    } catch (e) { // a bug in the judgement must not stop the agent: said once per distinct error
      const line = `readiness not judged: ${(e as Error).message}`;
      if (line !== this.saidLine) this.ctx.log.child("readiness").error(line, { err: e as Error });
      this.saidLine = line;
      return;
    }
    // logged when a verdict changes (not when only a measured value in the line does)
    const key = JSON.stringify([this.last.ok, this.last.nodes.map((n) => [n.node, n.verdict, n.blocks.map((b) => b.effect), n.slows.map((b) => b.effect)])]);
    if (key !== this.saidLine) {
      const log = this.ctx.log.child("readiness");
      (this.last.ok === false ? log.warn : log.info).call(log, this.last.line, { ok: this.last.ok });
      this.saidLine = key;
    }
  }
}
