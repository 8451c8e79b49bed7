// The agent's part in upgrades (agent/upgrade/, docs/upgrade.md), as a component:
// - on the bus: a node asked to (`upg`) stages a bundle it fetches from the node that
//   offers it (upgrade/transfer.ts), starts its trial and restarts into it, blesses it or
//   rolls it back; it serves the pieces of what it offers (`bundle-get`);
// - in the retained state: the sha256 of the bundle it runs, its upgrade step, and the
//   rollout an operator's `bollard upgrade` runs from this node; it keeps every peer's;
// - on the control socket: GET /upgrade (every node's version and step), POST
//   /upgrade/offer (a bundle file to serve), /upgrade/op (an `upg` to a node, this one
//   included), /upgrade/report (the rollout's progress; an event, which the alarm watch
//   turns into the upgrade-failed alarm when it says so).
// When a trial starts, a guard (`bollard upgrade guard`, run from the bundle that was
// running) is left behind: if the trial is neither blessed nor rolled back by its deadline,
// it puts the old bundle back and stops the agent, which systemd starts again on it.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, openSync, readFileSync, realpathSync } from "node:fs";
import { join } from "node:path";
import type { Message, UpgradeReq, UpgradeResp } from "../bus/messages.ts";
import { PROTOCOL_VERSION } from "../bus/messages.ts";
import { BundleStore, inspectBundle, sha256 } from "../upgrade/bundle.ts";
import { imageState, type ImageState } from "../upgrade/image-state.ts";
import { dbReport } from "./ha-facts.ts";
import { BundleTransfer } from "../upgrade/transfer.ts";
import type { ClusterComponents } from "./cluster-component.ts";
import type { AgentContext, Component } from "./component.ts";
import type { Route } from "./control.ts";
import type { HaComponent } from "./ha-component.ts";

const STAGE_TIMEOUT_MS = 120_000;
const OP_TIMEOUT_MS = 10_000;
/** a rolled-back trial is reported as the node's step for this long */
const ROLLED_BACK_SHOWN_MS = 24 * 3600_000;

export interface UpgradeStep {
  step: "idle" | "staging" | "staged" | "trial" | "blessed" | "rolled-back" | "error";
  sha?: string;
  version?: string;
  until?: number;
  why?: string;
  at: number;
}

interface PeerState {
  body: Record<string, unknown>;
  at: number;
}

export const bundlesDir = (stateDir: string) => join(stateDir, "bundles");

export class UpgradeComponent implements Component {
  readonly name = "upgrade";
  /** sha256 of the bundle this agent runs (null when it is not run from a file: tests) */
  bundle: string | null = null;
  private bundlePath: string | null = null;
  private store!: BundleStore;
  private transfer!: BundleTransfer;
  private step: UpgradeStep = { step: "idle", at: Date.now() };
  private rollout: Record<string, unknown> | null = null;
  /** the root slot and image version this node runs, and its last image upgrade (null: not an image node) */
  private image: ImageState | null = null;
  private imageAt = 0;
  private readonly offers = new Map<string, Buffer>();
  private readonly peers = new Map<string, PeerState>();
  private readonly waiting = new Map<string, (r: UpgradeResp) => void>();
  private readonly counters = { rejected: 0, staged: 0, trials: 0, blessed: 0, rolledBack: 0 };
  private offs: (() => void)[] = [];

  constructor(
    private readonly ctx: AgentContext,
    private readonly cluster: ClusterComponents,
    private readonly ha: HaComponent,
    private readonly routes: Record<string, Route>,
  ) {}

  private get self(): string {
    return this.ctx.config.cluster.node;
  }

  private get log() {
    return this.ctx.log.child("upgrade");
  }

  start(): void {
    const { config } = this.ctx;
    this.store = new BundleStore(bundlesDir(config.stateDir));
    try {
      this.bundlePath = realpathSync(process.argv[1] ?? "");
      this.bundle = this.bundlePath.endsWith(".js") ? sha256(readFileSync(this.bundlePath)) : null;
    } catch {
      this.bundle = null;
    }
    this.step = this.stepAtStart();
    this.image = imageState(config.stateDir);
    this.imageAt = Date.now();
    if (this.image?.last) this.log.info(`image: slot ${this.image.slot.toUpperCase()} ${this.image.version ?? "?"}; last image upgrade: ${this.image.last.step} ${this.image.last.version} (slot ${this.image.last.slot.toUpperCase()}): ${this.image.last.why}`);
    if (this.step.step !== "idle") this.log.info(`upgrade step at start: ${this.step.step}${this.step.version ? ` ${this.step.version}` : ""}${this.step.why ? `: ${this.step.why}` : ""}`);
    const bus = this.cluster.bus!;
    this.transfer = new BundleTransfer((to, m) => bus.send(to, m), (sha) => this.offer(sha));
    this.offs.push(bus.onMessage((from, msg) => this.receive(from, msg)));
    this.offs.push(bus.onRetained((from, kind, body) => {
      if (kind !== "state") return;
      if (body && typeof body === "object") this.peers.set(from, { body: body as Record<string, unknown>, at: Date.now() });
      else this.peers.delete(from);
    }));
    this.cluster.stateExtra = () => this.retained();
    Object.assign(this.routes, this.ownRoutes());
  }

  stop(): void {
    for (const off of this.offs.splice(0)) off();
    for (const k of Object.keys(this.ownRoutes())) delete this.routes[k];
    this.cluster.stateExtra = null;
  }

  /** What this node's retained state carries about upgrades. */
  retained(): Record<string, unknown> {
    const image = this.imageNow();
    return { bundle: this.bundle, upgrade: this.step, ...(image ? { image } : {}), ...(this.rollout ? { rollout: this.rollout } : {}) };
  }

  /** The image state, read again every few seconds: the boot gate writes its verdict while the agent runs. */
  private imageNow(): ImageState | null {
    if (this.image && Date.now() - this.imageAt > 5000) {
      this.image = imageState(this.ctx.config.stateDir) ?? this.image;
      this.imageAt = Date.now();
    }
    return this.image;
  }

  private stepAtStart(): UpgradeStep {
    const now = Date.now();
    const t = this.store.trial();
    if (t) {
      if (t.sha === this.bundle) return { step: "trial", sha: t.sha, version: t.version, until: t.until, at: t.startedAt };
      // the trial's bundle is not what runs: it did not start (agent-exec fell back), or this is a CLI
      return { step: "trial", sha: t.sha, version: t.version, until: t.until, at: t.startedAt, why: "the bundle on trial is not the one running" };
    }
    const rb = this.store.rolledBack();
    if (rb && now - rb.at < ROLLED_BACK_SHOWN_MS) return { step: "rolled-back", sha: rb.sha, version: rb.version, why: rb.why, at: rb.at };
    return { step: "idle", at: now };
  }

  private setStep(s: Omit<UpgradeStep, "at">): void {
    this.step = { ...s, at: Date.now() };
  }

  private offer(sha: string): Buffer | null {
    const o = this.offers.get(sha);
    if (o) return o;
    if (sha === this.bundle && this.bundlePath) {
      try { return readFileSync(this.bundlePath); } catch { return null; }
    }
    const staged = this.store.staged(sha);
    if (staged) {
      try { return readFileSync(staged); } catch { return null; }
    }
    return null;
  }

  // ---- the bus ---------------------------------------------------------------------------

  private receive(from: string, msg: Message): void {
    if (msg.t === "bundle-get" || msg.t === "bundle-part") return this.transfer.receive(from, msg);
    if (msg.t === "upg-result") {
      this.waiting.get(msg.id)?.(msg);
      this.waiting.delete(msg.id);
      return;
    }
    if (msg.t !== "upg") return;
    void this.handle(msg, from).then((r) => this.cluster.bus?.send(from, { v: PROTOCOL_VERSION, t: "upg-result", id: msg.id, ...r }));
  }

  /** One `upg` request, from a peer or from this node's own control socket. */
  private async handle(m: Pick<UpgradeReq, "op" | "sha" | "from" | "deadlineMs" | "why" | "path">, by: string): Promise<Omit<UpgradeResp, "v" | "t" | "id">> {
    const err = (error: string) => {
      this.counters.rejected++;
      this.log.warn(`upgrade ${m.op} of ${m.sha.slice(0, 12)} asked by ${by} refused: ${error}`);
      return { status: "error" as const, error: error.slice(0, 500) };
    };
    const okr = (detail: string) => ({ status: "ok" as const, detail: detail.slice(0, 300) });
    try {
      switch (m.op) {
        case "stage": {
          if (this.store.staged(m.sha)) return okr("already staged");
          const from = m.from ?? by;
          this.setStep({ step: "staging", sha: m.sha });
          const t0 = Date.now();
          const data = from === this.self ? this.offer(m.sha) : await this.transfer.fetch(from, m.sha);
          if (!data) return this.stageFailed(err(`bundle ${m.sha.slice(0, 12)} is not offered on ${from}`));
          const r = this.store.stage(data, m.sha);
          if (!r.ok) return this.stageFailed(err(r.error));
          this.counters.staged++;
          this.setStep({ step: "staged", sha: m.sha, version: r.value.version });
          this.log.info(`staged bundle ${r.value.version} (${m.sha.slice(0, 12)}, ${data.length} bytes from ${from} in ${Date.now() - t0} ms) in ${r.value.path}`);
          return okr(`staged ${r.value.version} in ${Date.now() - t0} ms`);
        }
        case "switch": {
          const staged = this.store.staged(m.sha);
          if (!staged) return err(`bundle ${m.sha.slice(0, 12)} is not staged here`);
          const info = inspectBundle(staged);
          if (!info.ok) return err(info.error);
          const until = Date.now() + (m.deadlineMs ?? 120_000);
          const t = this.store.startTrial(m.sha, info.value.version, until, Date.now());
          if (!t.ok) return err(t.error);
          this.counters.trials++;
          this.spawnGuard(m.sha);
          this.setStep({ step: "trial", sha: m.sha, version: info.value.version, until });
          this.ctx.log.warn(`restarting on bundle ${info.value.version} (${m.sha.slice(0, 12)}), on trial until ${new Date(until).toISOString()}`);
          // answer first, then stop: systemd (the lab's supervisor) starts the agent again,
          // through agent-exec, on `current`
          setTimeout(() => process.kill(process.pid, "SIGTERM"), 300).unref?.();
          return okr(`restarting on ${info.value.version}`);
        }
        case "bless": {
          if (m.sha !== this.bundle) return err(`this agent runs ${this.bundle?.slice(0, 12) ?? "an unknown bundle"}, not ${m.sha.slice(0, 12)}`);
          const r = this.store.bless(m.sha);
          if (!r.ok) return err(r.error);
          this.counters.blessed++;
          this.setStep({ step: "blessed", sha: m.sha, version: this.ctx.build.version });
          this.log.info(r.value);
          return okr(r.value);
        }
        case "image": {
          // the A/B image upgrade of this node, by itself: it writes the other root slot and
          // reboots the node; the boot gate there blesses it and takes maintenance off
          if (!m.path || !this.bundlePath) return err(!m.path ? "image: no path" : "this agent does not run from a bundle file");
          const log = openSync(join(this.ctx.config.stateDir, "image-upgrade.log"), "a");
          try {
            const args = [this.bundlePath, "upgrade", m.path, "--this-node", "--sha", m.sha, "--undrain", ...(m.deadlineMs ? ["--deadline", String(Math.round(m.deadlineMs / 1000))] : [])];
            spawn(process.execPath, args, { detached: true, stdio: ["ignore", log, log] }).unref();
          } finally {
            closeSync(log);
          }
          this.ctx.log.warn(`image upgrade of this node from ${m.path} (root ${m.sha.slice(0, 12)}) asked by ${by}: started (${join(this.ctx.config.stateDir, "image-upgrade.log")})`);
          return okr(`image upgrade started from ${m.path}`);
        }
        case "rollback": {
          const why = m.why ?? `rolled back by ${by}`;
          const r = this.store.undo(why, Date.now());
          if (!r.ok) return err(r.error);
          this.counters.rolledBack++;
          this.setStep({ step: "rolled-back", sha: r.value.sha, version: r.value.version, why });
          this.ctx.log.warn(`rolled back from bundle ${r.value.version} (${why}); restarting on the previous one`);
          if (r.value.sha === this.bundle) setTimeout(() => process.kill(process.pid, "SIGTERM"), 300).unref?.();
          return okr(`rolled back from ${r.value.version}`);
        }
      }
    } catch (e) {
      return err((e as Error).message);
    }
  }

  private stageFailed<T>(r: T): T {
    this.setStep({ step: "error", why: (r as { error?: string }).error });
    return r;
  }

  /** The guard: the bundle running now, detached, watching the trial's deadline. */
  private spawnGuard(sha: string): void {
    if (!this.bundlePath) return;
    const dir = this.store.dir;
    const out = openSync(join(dir, "guard.log"), "a");
    try {
      const child = spawn(process.execPath, [this.bundlePath, "upgrade", "guard", "--dir", dir, "--sha", sha], { detached: true, stdio: ["ignore", out, out] });
      child.unref();
      this.log.info(`trial guard started (pid ${child.pid}) from ${this.bundlePath}`);
    } finally {
      closeSync(out);
    }
  }

  /** Sends `upg` to `node` (a peer) and waits for its answer. */
  private ask(node: string, m: Pick<UpgradeReq, "op" | "sha" | "from" | "deadlineMs" | "why" | "path">): Promise<Omit<UpgradeResp, "v" | "t" | "id">> {
    const id = randomBytes(8).toString("hex");
    const timeout = m.op === "stage" ? STAGE_TIMEOUT_MS : OP_TIMEOUT_MS;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        resolve({ status: "error", error: `${node} did not answer within ${timeout / 1000} s` });
      }, timeout);
      this.waiting.set(id, (r) => {
        clearTimeout(timer);
        resolve({ status: r.status, detail: r.detail, error: r.error });
      });
      const req: UpgradeReq = { v: PROTOCOL_VERSION, t: "upg", id, op: m.op, sha: m.sha };
      if (m.from) req.from = m.from;
      if (m.deadlineMs) req.deadlineMs = m.deadlineMs;
      if (m.why) req.why = m.why.slice(0, 300);
      if (m.path) req.path = m.path;
      this.cluster.bus!.send(node, req);
    });
  }

  // ---- the control socket ----------------------------------------------------------------

  /** Every member: heard, version, bundle, step; and the rollouts the nodes report. */
  info(): Record<string, unknown> {
    const view = this.cluster.node?.view();
    const alive = new Map((view?.peers ?? []).map((p) => [p.name, p.alive]));
    const members = (view?.committed.members ?? []).map((m) => m.name);
    const nodes = members.map((n) => {
      if (n === this.self) {
        return { node: n, heard: true, version: this.ctx.build.version, rev: this.ctx.build.rev, bundle: this.bundle, quorum: view?.quorum ?? null, leader: view?.leader ?? null, upgrade: this.step, image: this.imageNow(), ageMs: 0 };
      }
      const p = this.peers.get(n);
      const b = p?.body ?? {};
      const out: Record<string, unknown> = {
        node: n, heard: alive.get(n) ?? false, version: b.version ?? null, rev: b.rev ?? null, bundle: b.bundle ?? null,
        quorum: b.quorum ?? null, leader: b.leader ?? null, image: b.image ?? null, ageMs: p ? Date.now() - Number(b.wall ?? p.at) : null,
      };
      if ("upgrade" in b) out.upgrade = b.upgrade; // absent: an agent older than upgrades
      return out;
    });
    const rollouts = [...this.peers].map(([n, p]) => ({ node: n, rollout: p.body.rollout })).filter((r) => r.rollout);
    if (this.rollout) rollouts.push({ node: this.self, rollout: this.rollout });
    const snap = this.ha.runtime?.snapshot();
    const reports = snap?.peers ?? {};
    // this node's own entry there is refreshed only while it leads: its fresh facts instead
    const own = (svc: "mysql" | "redis") => {
      const f = snap?.facts[svc];
      return f ? dbReport(f, (snap?.heldOut as Record<string, string | undefined>)[svc] ?? null) : null;
    };
    const replicas = Object.fromEntries(members.map((n) => [n, n === this.self ? { mysql: own("mysql"), redis: own("redis") } : { mysql: reports[n]?.mysql ?? null, redis: reports[n]?.redis ?? null }]));
    return {
      self: this.self, leader: view?.leader ?? null, members, nodes, rollouts, replicas,
      assignments: view?.committed.assignments ?? {}, procedures: snap?.procedures ?? [],
      transfer: this.transfer.counters, counters: this.counters, offers: [...this.offers.keys()],
    };
  }

  private ownRoutes(): Record<string, Route> {
    return {
      "GET /upgrade": async () => ({ code: 200, body: this.info() }),
      "POST /upgrade/offer": async (_q, body) => {
        const path = (body as { path?: unknown } | null)?.path;
        if (typeof path !== "string" || !path.startsWith("/")) return { code: 400, body: { status: "error", error: "path: expected an absolute file path" } };
        const r = inspectBundle(path);
        if (!r.ok) {
          this.counters.rejected++;
          this.log.warn(`bundle offer refused: ${r.error}`);
          return { code: 400, body: { status: "error", error: r.error } };
        }
        this.offers.clear(); // one offer at a time: the newest
        this.offers.set(r.value.sha, readFileSync(path));
        return { code: 200, body: { status: "ok", ...r.value } };
      },
      "POST /upgrade/op": async (_q, body) => {
        const b = (body ?? {}) as Partial<UpgradeReq> & { node?: string };
        if (typeof b.node !== "string" || !["stage", "switch", "bless", "rollback", "image"].includes(String(b.op)) || !/^[0-9a-f]{64}$/.test(String(b.sha))) {
          return { code: 400, body: { status: "error", error: "expected {node, op: stage|switch|bless|rollback|image, sha}" } };
        }
        if (b.path !== undefined && (typeof b.path !== "string" || !b.path.startsWith("/"))) return { code: 400, body: { status: "error", error: "path: expected an absolute file path" } };
        const m = { op: b.op!, sha: b.sha!, from: b.from, deadlineMs: b.deadlineMs, why: b.why, path: b.path };
        const r = b.node === this.self ? await this.handle(m, this.self) : await this.ask(b.node, m);
        return { code: 200, body: r };
      },
      "POST /upgrade/report": async (_q, body) => {
        const b = (body ?? {}) as { rollout?: Record<string, unknown>; event?: { detail?: string; fields?: Record<string, unknown> } };
        if (b.rollout && typeof b.rollout === "object") this.rollout = b.rollout;
        if (b.event && typeof b.event.detail === "string") {
          const view = this.cluster.node?.view();
          this.cluster.events.record({ kind: "upgrade", node: this.self, term: view?.term ?? 0, detail: b.event.detail.slice(0, 500), fields: b.event.fields });
          this.log[b.event.fields?.failed ? "error" : "info"](b.event.detail.slice(0, 500));
        }
        return { code: 200, body: { status: "ok" } };
      },
    };
  }
}
