// The simulated world: a virtual clock, an event queue, a network that can delay, drop,
// duplicate, reorder and partition (both ways or one way), and nodes that can crash,
// restart with their persisted state, stall (as a GC pause would) and have their wall
// clock jumped. The cluster core runs in it unchanged (DESIGN §2). A run is a pure
// function of its seed.
import type { ClusterConfig, Command, Message } from "../../agent/bus/messages.ts";
import { mosquittoHash } from "../../agent/bus/credentials.ts";
import { Joiner } from "../../agent/cluster/joiner.ts";
import { ClusterNode, type CommandResult } from "../../agent/cluster/node.ts";
import { bootstrapConfig } from "../../agent/cluster/register.ts";
import { DEFAULT_TIMING, type Timing } from "../../agent/cluster/timing.ts";
import type { ClusterEvent, CoreEnv, Logger, PersistedState, Store } from "../../agent/env/env.ts";
import { Heap } from "./heap.ts";
import { Invariants } from "./invariants.ts";
import { rng, type Rng } from "./rng.ts";

export interface NetParams {
  minDelayMs: number;
  maxDelayMs: number;
  drop: number;
  dup: number;
}

export class MemStore implements Store {
  state: PersistedState | null = null;
  saves = 0;
  load(): PersistedState | null {
    return this.state ? structuredClone(this.state) : null;
  }
  save(s: PersistedState): void {
    this.state = structuredClone(s);
    this.saves++;
  }
}

const quiet: Logger = { debug() {}, info() {}, warn() {}, error() {}, child: () => quiet };

/** Every simulated member holds this join token. */
export const SIM_TOKEN = Buffer.from("sim-join-token");

export class SimNode {
  core: ClusterNode | null = null;
  joiner: Joiner | null = null;
  cautious = false;
  store = new MemStore();
  up = false;
  stalledUntil = 0;
  backlog: (() => void)[] = [];
  wallOffset = 0;
  tickTimer = 0;
  constructor(
    readonly name: string,
    readonly rate: number,
    readonly base: number,
    readonly bootstrap: ClusterConfig,
  ) {}
}

/** A layer above the cluster core (the HA simulation) plugs in here. */
export interface App {
  started(n: SimNode): void;
  crashed(n: SimNode): void;
  ticked(n: SimNode): void;
  /** true if the message was the app's */
  message(n: SimNode, from: string, msg: Message): boolean;
  afterStep(): void;
}

export class World {
  now = 0;
  app: App | null = null;
  readonly nodes = new Map<string, SimNode>();
  readonly transcript: string[] = [];
  readonly net: NetParams = { minDelayMs: 1, maxDelayMs: 15, drop: 0, dup: 0 };
  readonly blocked = new Set<string>();
  readonly inv: Invariants;
  /** deliveries scheduled (a broadcast counts once per receiver) */
  messages = 0;
  /** publishes: what a node sends to its own broker (a broadcast counts once) */
  published = 0;
  private readonly q = new Heap<{ at: number; seq: number; fn: () => void }>((a, b) => a.at - b.at || a.seq - b.seq);
  private seq = 0;
  private readonly r: Rng;

  constructor(
    readonly seed: number,
    readonly timing: Timing = DEFAULT_TIMING,
    private readonly driftOn = false,
    private readonly record = true,
  ) {
    this.r = rng(seed);
    this.inv = new Invariants(this);
  }

  // ---- the event loop -------------------------------------------------------------------

  at(t: number, fn: () => void): void {
    this.q.push({ at: Math.max(t, this.now), seq: this.seq++, fn });
  }

  runUntil(t: number): void {
    for (;;) {
      const e = this.q.peek();
      if (!e || e.at > t) break;
      this.q.pop();
      this.inv.slice(this.now, e.at);
      this.now = e.at;
      e.fn();
      this.inv.afterStep();
      this.app?.afterStep();
    }
    this.inv.slice(this.now, t);
    this.now = t;
  }

  log(who: string, kind: string, text: string): void {
    if (this.record) this.transcript.push(`${(this.now / 1000).toFixed(3).padStart(8)} ${who.padEnd(6)} ${kind.padEnd(10)} ${text}`);
  }

  // ---- nodes ----------------------------------------------------------------------------

  addNode(name: string, members: string[]): SimNode {
    const rate = this.driftOn ? 1 + (this.r() * 2 - 1) * this.timing.maxDrift : 1;
    const base = this.driftOn ? this.r() * 1e6 : 1000;
    const boot = bootstrapConfig(members.map((m) => ({ name: m, bus: `${m}:1883` })));
    const n = new SimNode(name, rate, base, boot);
    this.nodes.set(name, n);
    return n;
  }

  /** local monotonic time of node `n` at real (virtual) time `t` */
  local(n: SimNode, t = this.now): number {
    return n.base + n.rate * t;
  }

  /** real time at which node `n`'s local clock reads `l` */
  real(n: SimNode, l: number): number {
    return (l - n.base) / n.rate;
  }

  start(name: string): void {
    const n = this.node(name);
    if (n.up) return;
    n.up = true;
    n.stalledUntil = 0;
    n.backlog = [];
    n.core = new ClusterNode(this.envFor(n), name, this.timing, n.bootstrap, { cluster: "sim", joinToken: SIM_TOKEN, cautiousVotes: n.cautious });
    n.core.start();
    this.inv.started(n);
    this.app?.started(n);
    const gen = ++n.tickTimer;
    const period = this.timing.tickMs / n.rate;
    const loop = () => {
      if (!n.up || n.tickTimer !== gen) return;
      // A stalled process misses its timer; it fires once after the stall (Node coalesces).
      if (this.now >= n.stalledUntil) {
        n.core!.tick();
        this.app?.ticked(n);
      }
      this.at(this.now + period, loop);
    };
    this.at(this.now + this.r() * period, loop);
  }

  crash(name: string): void {
    const n = this.node(name);
    if (n.up) this.app?.crashed(n);
    n.up = false;
    n.core = null;
    n.backlog = [];
    n.tickTimer++;
  }

  stall(name: string, ms: number): void {
    const n = this.node(name);
    if (!n.up) return;
    n.stalledUntil = Math.max(n.stalledUntil, this.now + ms);
    this.at(n.stalledUntil, () => this.resume(n));
  }

  private resume(n: SimNode): void {
    if (this.now < n.stalledUntil || !n.up) return;
    const work = n.backlog;
    n.backlog = [];
    // After a stall, timers and queued input race: try both orders across seeds.
    if (this.r() < 0.5) n.core?.tick();
    for (const w of work) if (n.up) w();
  }

  /** Runs `fn` on node `n` now, or when its stall ends (messages and timers wait in order). */
  deliver(n: SimNode, fn: () => void): void {
    if (!n.up) return;
    if (this.now < n.stalledUntil) n.backlog.push(fn);
    else fn();
  }

  /** A node with only its seed joins: hello until the leader answers (issue 3 auto-join). */
  join(name: string, token: Buffer): void {
    const n = this.addNode(name, []);
    n.cautious = true;
    this.start(name);
    const nonce = Array.from({ length: 4 }, () => Math.floor(this.r() * 2 ** 32).toString(16).padStart(8, "0")).join("");
    n.joiner = new Joiner("sim", name, `${name}:1883`, mosquittoHash(`pw-${name}`, name), token, nonce);
    const hello = () => {
      if (!n.joiner || !n.up) return;
      this.send(n, "*", n.joiner.hello());
      this.at(this.now + 1000, hello);
    };
    hello();
  }

  private joinerReceive(n: SimNode, from: string, msg: Message): boolean {
    const j = n.joiner;
    if (!j || (msg.t !== "join-challenge" && msg.t !== "join-result")) return false;
    if (msg.t === "join-challenge") {
      const proof = j.onChallenge(from, msg);
      if (proof) this.send(n, "*", proof);
    } else {
      const out = j.onResult(from, msg);
      if (out) {
        this.log(n.name, "joined", out.ok ? `admitted by ${out.leader}, epoch ${out.epoch}` : `join failed: ${out.reason}`);
        n.joiner = null;
      }
    }
    return true;
  }

  jump(name: string, ms: number): void {
    this.node(name).wallOffset += ms;
  }

  command(name: string, cmd: Command, done: (r: CommandResult) => void): void {
    const n = this.node(name);
    if (!n.core) return done({ status: "error", error: `${name} is down` });
    this.deliver(n, () => n.core!.command(cmd, done));
  }

  node(name: string): SimNode {
    const n = this.nodes.get(name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  // ---- the network ----------------------------------------------------------------------

  block(from: string, to: string): void {
    this.blocked.add(`${from}>${to}`);
  }

  unblock(from: string, to: string): void {
    this.blocked.delete(`${from}>${to}`);
  }

  send(from: SimNode, to: string, msg: Message): void {
    this.published++;
    const targets = to === "*" ? [...this.nodes.keys()].filter((k) => k !== from.name) : [to];
    for (const t of targets) {
      const dst = this.nodes.get(t);
      if (!dst || this.blocked.has(`${from.name}>${t}`) || this.r() < this.net.drop) continue;
      const copies = this.r() < this.net.dup ? 2 : 1;
      for (let i = 0; i < copies; i++) {
        const delay = this.net.minDelayMs + this.r() * (this.net.maxDelayMs - this.net.minDelayMs);
        const body = structuredClone(msg);
        this.messages++;
        this.at(this.now + delay, () => {
          // A partition made while the message was in flight drops it too.
          if (this.blocked.has(`${from.name}>${t}`)) return;
          this.deliver(dst, () => this.joinerReceive(dst, from.name, body) || this.app?.message(dst, from.name, body) || dst.core?.receive(from.name, body));
        });
      }
    }
  }

  private envFor(n: SimNode): CoreEnv {
    const noise = rng(this.seed ^ hash(n.name) ^ (this.now * 1000) | 0);
    return {
      now: () => this.local(n),
      wall: () => 1.7e12 + this.now + n.wallOffset,
      random: noise,
      nonce: () => Array.from({ length: 4 }, () => Math.floor(noise() * 2 ** 32).toString(16).padStart(8, "0")).join(""),
      send: (to, msg) => this.send(n, to, msg),
      store: n.store,
      log: quiet,
      event: (e: ClusterEvent) => {
        this.log(e.node, e.kind, e.detail);
        this.inv.onEvent(n, e);
      },
    };
  }

  random(): number {
    return this.r();
  }
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}
