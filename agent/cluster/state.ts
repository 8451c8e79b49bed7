// One node's cluster state (DESIGN §4) and the changes every part makes to it: role and term
// (setRole, stepDown, adoptTerm: each logged, in one place), persistence, commits, and the
// reads they share (peers alive, quorum, stickiness). The parts that step it are
// heartbeats.ts (membership, quorum, TILT), election.ts (pre-vote and vote) and leader.ts
// (lease, register, commands); node.ts routes ticks and messages to them. No I/O: it all
// goes through the CoreEnv.
import type { CfgId, ClusterConfig, Command } from "../bus/messages.ts";
import type { CoreEnv, PersistedState } from "../env/env.ts";
import { JoinDesk } from "./join.ts";
import { LeaseTracker } from "./lease.ts";
import { isMember, majority } from "./register.ts";
import type { Timing } from "./timing.ts";
import type { Role } from "./view.ts";

export type CommandResult = { status: "ok" | "error"; epoch?: number; error?: string };
export type Done = (r: CommandResult) => void;

export interface Peer {
  lastHeard: number;
  term: number;
  role: Role;
  leader: string | null;
  skewMs: number;
}

export interface NodeOptions {
  cluster: string;
  /** the join token: a node that has it can admit joiners when it leads */
  joinToken: Buffer | null;
  /**
   * Set for a node that started with no persisted state and joined an existing cluster: it may
   * have voted in the current term before it lost its state, so it grants no vote until it has
   * seen a leader, and then only for later terms.
   */
  cautiousVotes: boolean;
}

export class NodeState {
  role: Role = "follower";
  term = 0;
  votedFor: string | null = null;
  leader: string | null = null;
  config: ClusterConfig;
  committed: ClusterConfig;

  readonly peers = new Map<string, Peer>();
  lastLeaderHb: number | null = null;
  /** the commit the current leader last announced: a follower is up to date when it holds it */
  leaderCommit: CfgId | null = null;
  electionAt = 0;
  lastHbSent = -Infinity;
  /** last time this node acked a leader round; a restart counts as one (it may have, just before) */
  lastAck = 0;

  preVotes: Set<string> | null = null;
  votes = new Map<string, number>();
  readonly lease: LeaseTracker;
  readonly cfgAcks = new Map<string, CfgId>();
  queue: { cmd: Command; done: Done }[] = [];
  inFlight: Done[] = [];
  readonly forwarded = new Map<string, { done: Done; deadline: number }>();
  cmdSeq = 0;

  lastTick: number | null = null;
  lastWall = 0;
  tilt = false;
  tiltUntil = 0;
  quorumLostSince: number | null = null;
  selfFenced = false;
  hadQuorum = false;
  voteFloor: number | null;
  readonly desk: JoinDesk;
  readonly counters: Record<string, number> = {};

  constructor(
    readonly env: CoreEnv,
    readonly id: string,
    readonly t: Timing,
    bootstrap: ClusterConfig,
    opts: NodeOptions,
  ) {
    this.config = bootstrap;
    this.committed = bootstrap;
    this.lease = new LeaseTracker(t.leaseMs, t.maxDrift);
    this.voteFloor = opts.cautiousVotes ? Infinity : null;
    this.desk = new JoinDesk(opts.cluster, opts.joinToken, id);
  }

  // ---- role and term --------------------------------------------------------------------

  setRole(next: Role, why: string): void {
    if (next === this.role) return;
    this.emit("role", `status change ${this.role} => ${next} (${why})`);
    this.role = next;
  }

  stepDown(why: string): void {
    this.setRole("follower", why);
    this.leader = null;
    this.resetElectionTimer(this.env.now());
    this.lease.reset(this.env.now(), Infinity);
    for (const d of [...this.inFlight, ...this.queue.map((q) => q.done)]) d({ status: "error", error: `leadership lost: ${why}` });
    this.inFlight = [];
    this.queue = [];
  }

  adoptTerm(term: number, why: string): void {
    if (this.role === "leader") this.stepDown(`term ${term} seen (${why})`);
    else if (this.role === "candidate") this.setRole("follower", `term ${term} seen (${why})`);
    this.term = term;
    this.votedFor = null;
    this.leader = null;
    this.preVotes = null;
    this.persist();
  }

  resetElectionTimer(now: number): void {
    this.electionAt = now + this.t.peerDeadMs + this.env.random() * this.t.electionJitterMs;
  }

  // ---- reads ----------------------------------------------------------------------------

  alive(name: string, now: number): boolean {
    const p = this.peers.get(name);
    return p !== undefined && now - p.lastHeard < this.t.peerDeadMs;
  }

  hasQuorum(now: number): boolean {
    const members = this.config.members.map((m) => m.name);
    const seen = members.filter((n) => n === this.id || this.alive(n, now)).length;
    return isMember(this.config, this.id) && seen >= majority(members.length);
  }

  /** Heard from a live leader within peer-dead: refuse to help depose it (R2). */
  sticky(now: number): boolean {
    if (this.role === "leader") return true;
    return this.leader !== null && this.lastLeaderHb !== null && now - this.lastLeaderHb < this.t.peerDeadMs;
  }

  /** True while this node believes it holds a valid leader lease. */
  hasLease(): boolean {
    return this.role === "leader" && !this.tilt && this.lease.valid(this.env.now());
  }

  // ---- persistence, commits, events -----------------------------------------------------

  commit(c: ClusterConfig): void {
    this.committed = c;
    this.persist();
    this.emit("commit", `config epoch ${c.epoch} (term ${c.term}) committed: members ${c.members.map((m) => m.name).join(",")}${Object.keys(c.assignments).length ? "; " + Object.entries(c.assignments).map(([s, n]) => `${s}=${n}`).join(",") : ""}`);
  }

  persist(): void {
    const s: PersistedState = { term: this.term, votedFor: this.votedFor, config: this.config, committed: this.committed };
    this.env.store.save(s);
  }

  emit(kind: string, detail: string): void {
    this.env.event({ kind, node: this.id, term: this.term, detail });
  }

  count(key: string): void {
    this.counters[key] = (this.counters[key] ?? 0) + 1;
  }
}
