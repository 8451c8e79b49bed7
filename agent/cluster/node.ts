// The cluster core of one node (DESIGN §4): membership and quorum from heartbeats, a
// Raft-style election with pre-vote and leader stickiness, the leader lease, the replicated
// config register, TILT and self-fence. It is a step machine: `tick()` on a timer and
// `receive()` per message. All I/O goes through the CoreEnv, so the simulator runs it as is.
import type { Ack, CfgId, ClusterConfig, CmdReq, CmdResp, Command, Hb, JoinHello, JoinProof, Message, VoteReq, VoteResp } from "../bus/messages.ts";
import { PROTOCOL_VERSION } from "../bus/messages.ts";
import type { CoreEnv, PersistedState } from "../env/env.ts";
import { JoinDesk } from "./join.ts";
import { LeaseTracker } from "./lease.ts";
import { applyCommand, cmpId, idOf, isMember, majority, sameId } from "./register.ts";
import type { Timing } from "./timing.ts";
import type { NodeView, PeerView, Role } from "./view.ts";

export type CommandResult = { status: "ok" | "error"; epoch?: number; error?: string };
type Done = (r: CommandResult) => void;

interface Peer {
  lastHeard: number;
  term: number;
  role: Role;
  leader: string | null;
  skewMs: number;
}

const FORWARD_TIMEOUT_MS = 5000;

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

export class ClusterNode {
  private role: Role = "follower";
  private term = 0;
  private votedFor: string | null = null;
  private leader: string | null = null;
  private config: ClusterConfig;
  private committed: ClusterConfig;

  private readonly peers = new Map<string, Peer>();
  private lastLeaderHb: number | null = null;
  /** the commit the current leader last announced: a follower is up to date when it holds it */
  private leaderCommit: CfgId | null = null;
  private electionAt = 0;
  private lastHbSent = -Infinity;
  /** last time this node acked a leader round; a restart counts as one (it may have, just before) */
  private lastAck = 0;

  private preVotes: Set<string> | null = null;
  private votes = new Map<string, number>();
  private readonly lease: LeaseTracker;
  private readonly cfgAcks = new Map<string, CfgId>();
  private queue: { cmd: Command; done: Done }[] = [];
  private inFlight: Done[] = [];
  private readonly forwarded = new Map<string, { done: Done; deadline: number }>();
  private cmdSeq = 0;

  private lastTick: number | null = null;
  private lastWall = 0;
  private tilt = false;
  private tiltUntil = 0;
  private quorumLostSince: number | null = null;
  private selfFenced = false;
  private hadQuorum = false;
  private voteFloor: number | null;
  private readonly desk: JoinDesk;
  readonly counters: Record<string, number> = {};

  constructor(
    private readonly env: CoreEnv,
    readonly id: string,
    private readonly t: Timing,
    bootstrap: ClusterConfig,
    opts: NodeOptions = { cluster: "sim", joinToken: null, cautiousVotes: false },
  ) {
    this.config = bootstrap;
    this.committed = bootstrap;
    this.lease = new LeaseTracker(t.leaseMs, t.maxDrift);
    this.voteFloor = opts.cautiousVotes ? Infinity : null;
    this.desk = new JoinDesk(opts.cluster, opts.joinToken, id);
  }

  start(): void {
    const saved = this.env.store.load();
    if (saved) {
      this.term = saved.term;
      this.votedFor = saved.votedFor;
      this.config = saved.config;
      this.committed = saved.committed;
    }
    const now = this.env.now();
    this.lastAck = now;
    this.resetElectionTimer(now);
    this.emit("start", `started in term ${this.term}, config epoch ${this.config.epoch} (committed ${this.committed.epoch})`);
  }

  // ---- the step -------------------------------------------------------------------------

  tick(): void {
    const now = this.env.now();
    const wall = this.env.wall();
    this.detectTilt(now, wall);
    this.updateQuorum(now);
    this.expireForwarded(now);
    if (this.role === "leader") this.leaderTick(now);
    else if (now - this.lastHbSent >= this.t.heartbeatMs) this.sendHb(now);
    if (this.role !== "leader" && now >= this.electionAt) this.campaign(now);
  }

  receive(from: string, msg: Message): void {
    if (from === this.id) return this.count("reject.self");
    this.count(`rx.${msg.t}`);
    switch (msg.t) {
      case "hb": return this.onHb(from, msg);
      case "ack": return this.onAck(from, msg);
      case "vote": return this.onVoteReq(from, msg);
      case "voted": return this.onVoteResp(from, msg);
      case "cmd": return this.onCmd(from, msg);
      case "cmd-result": return this.onCmdResult(msg);
      case "join-hello": return this.onJoinHello(from, msg);
      case "join-proof": return this.onJoinProof(from, msg);
      case "join-challenge": case "join-result": return this.count("reject.not-joining");
      case "res": case "res-query": case "fetch": case "fetched": return; // the HA layer's and the operator's, routed by the agent
    }
  }

  /** Runs a command through the leader; `done` is called once, when committed or refused. */
  command(cmd: Command, done: Done): void {
    if (this.role === "leader") {
      this.queue.push({ cmd, done });
      return this.proposeNext(this.env.now());
    }
    if (!this.leader) return done({ status: "error", error: "no leader known; try again in a few seconds" });
    const id = `${this.id}-${++this.cmdSeq}`;
    this.forwarded.set(id, { done, deadline: this.env.now() + FORWARD_TIMEOUT_MS });
    this.env.send(this.leader, { v: PROTOCOL_VERSION, t: "cmd", id, cmd });
  }

  // ---- heartbeats, membership, quorum ---------------------------------------------------

  private sendHb(now: number): void {
    this.lastHbSent = now;
    const hb: Hb = {
      v: PROTOCOL_VERSION, t: "hb", term: this.term, role: this.role, leader: this.leader,
      cfg: idOf(this.config), committed: this.committed.epoch, quorum: this.hasQuorum(now),
      tilt: this.tilt, wall: this.env.wall(),
    };
    if (this.role === "leader") {
      hb.seq = this.lease.round(now);
      hb.config = this.config;
      hb.commit = idOf(this.committed);
    }
    this.env.send("*", hb);
    if (this.role === "leader" && this.config.members.length === 1) {
      // A one-member cluster is its own majority: renew and commit without acks.
      this.lease.ack(this.id, hb.seq!, [this.id], this.id, now);
      this.tryCommit();
    }
  }

  private onHb(from: string, m: Hb): void {
    const now = this.env.now();
    if (m.role === "leader" && m.leader !== from) return this.count("reject.inconsistent");
    this.peers.set(from, { lastHeard: now, term: m.term, role: m.role, leader: m.leader, skewMs: m.wall - this.env.wall() });
    if (m.term < this.term) return;
    if (m.term > this.term) this.adoptTerm(m.term, `heartbeat from ${from}`);
    if (m.role !== "leader") return;
    if (this.role === "leader") return this.count("reject.two-leaders"); // impossible by R1; counted, never acted on
    if (this.role === "candidate") this.setRole("follower", `${from} leads term ${m.term}`);
    if (this.leader !== from) {
      this.leader = from;
      this.emit("leader", `following ${from} in term ${m.term}`);
    }
    this.lastLeaderHb = now;
    if (this.voteFloor === Infinity) this.voteFloor = m.term;
    this.preVotes = null;
    this.resetElectionTimer(now);
    if (m.config && cmpId(idOf(m.config), idOf(this.config)) > 0) {
      const wasMember = isMember(this.config, this.id);
      this.config = m.config;
      this.persist();
      if (wasMember !== isMember(this.config, this.id)) this.emit("membership", wasMember ? "removed from the cluster" : "admitted to the cluster");
    }
    if (m.commit && sameId(m.commit, idOf(this.config)) && !sameId(m.commit, idOf(this.committed))) this.commit(this.config);
    this.leaderCommit = m.commit ?? null;
    if (m.seq === undefined) return;
    this.lastAck = now;
    this.env.send(from, { v: PROTOCOL_VERSION, t: "ack", term: this.term, seq: m.seq, cfg: idOf(this.config) });
  }

  private alive(name: string, now: number): boolean {
    const p = this.peers.get(name);
    return p !== undefined && now - p.lastHeard < this.t.peerDeadMs;
  }

  private hasQuorum(now: number): boolean {
    const members = this.config.members.map((m) => m.name);
    const seen = members.filter((n) => n === this.id || this.alive(n, now)).length;
    return isMember(this.config, this.id) && seen >= majority(members.length);
  }

  private updateQuorum(now: number): void {
    const q = this.hasQuorum(now);
    if (q) {
      if (!this.hadQuorum) this.emit("quorum", `quorum: ${this.config.members.filter((m) => m.name === this.id || this.alive(m.name, now)).length} of ${this.config.members.length} members seen`);
      if (this.selfFenced) this.emit("self-fence", "self-fence lifted: quorum regained");
      this.quorumLostSince = null;
      this.selfFenced = false;
    } else {
      if (this.hadQuorum) this.emit("quorum", "quorum lost");
      this.quorumLostSince ??= now;
      if (!this.selfFenced && isMember(this.config, this.id) && now - this.quorumLostSince >= this.t.quorumLossMs) {
        this.selfFenced = true;
        this.emit("self-fence", `self-fenced: no majority contact for ${Math.round(now - this.quorumLostSince)} ms (R6)`);
      }
    }
    this.hadQuorum = q;
  }

  // ---- election -------------------------------------------------------------------------

  private resetElectionTimer(now: number): void {
    this.electionAt = now + this.t.peerDeadMs + this.env.random() * this.t.electionJitterMs;
  }

  /** Heard from a live leader within peer-dead: refuse to help depose it (R2). */
  private sticky(now: number): boolean {
    if (this.role === "leader") return true;
    return this.leader !== null && this.lastLeaderHb !== null && now - this.lastLeaderHb < this.t.peerDeadMs;
  }

  private campaign(now: number): void {
    this.resetElectionTimer(now);
    if (this.tilt || !isMember(this.config, this.id)) return;
    if (this.role === "candidate") this.setRole("follower", "election timed out");
    // Pre-vote (Raft thesis §9.6): ask whether a majority would vote before raising the term.
    this.preVotes = new Set([this.id]);
    this.count("prevote.started");
    if (this.config.members.length === 1) return this.startElection(now);
    this.env.send("*", { v: PROTOCOL_VERSION, t: "vote", pre: true, term: this.term + 1, cfg: idOf(this.config) });
  }

  private startElection(now: number): void {
    this.preVotes = null;
    this.term += 1;
    this.votedFor = this.id;
    this.leader = null;
    this.persist();
    this.setRole("candidate", `pre-vote won, campaigning in term ${this.term}`);
    this.votes = new Map([[this.id, this.waitOwed(now)]]);
    // A split vote is retried after a short random back-off, not a whole failure-detection
    // period: the leader is already known to be gone.
    this.electionAt = now + this.t.heartbeatMs + this.env.random() * this.t.electionJitterMs;
    if (this.votes.size >= majority(this.config.members.length)) return this.becomeLeader(now);
    this.env.send("*", { v: PROTOCOL_VERSION, t: "vote", pre: false, term: this.term, cfg: idOf(this.config) });
  }

  private waitOwed(now: number): number {
    return LeaseTracker.waitOwed(this.t.leaseMs, this.t.maxDrift, now - this.lastAck);
  }

  private onVoteReq(from: string, m: VoteReq): void {
    const now = this.env.now();
    const reply = (granted: boolean, reason?: string) => {
      const r: VoteResp = { v: PROTOCOL_VERSION, t: "voted", pre: m.pre, term: m.pre ? m.term : this.term, granted, leaseWait: granted ? this.waitOwed(now) : 0 };
      if (reason) r.reason = reason;
      this.env.send(from, r);
    };
    if (!isMember(this.config, from)) return reply(false, "not a member");
    if (this.sticky(now)) return reply(false, `${this.leader} is alive`); // R2, and no term bump (Raft §6)
    if (m.pre) {
      if (m.term <= this.term) return reply(false, "stale term");
      if (cmpId(m.cfg, idOf(this.config)) < 0) return reply(false, "config behind");
      return reply(true);
    }
    if (m.term > this.term) this.adoptTerm(m.term, `vote request from ${from}`);
    if (m.term < this.term) return reply(false, "stale term");
    if (this.votedFor !== null && this.votedFor !== from) return reply(false, `voted for ${this.votedFor}`);
    if (this.voteFloor !== null && m.term <= this.voteFloor) return reply(false, "started without state: no vote before a later term");
    if (cmpId(m.cfg, idOf(this.config)) < 0) return reply(false, "config behind"); // R1
    this.votedFor = from;
    this.persist(); // R1: the vote is durable before it is sent
    this.resetElectionTimer(now);
    reply(true);
  }

  private onVoteResp(from: string, m: VoteResp): void {
    const now = this.env.now();
    if (m.pre) {
      if (!this.preVotes || m.term !== this.term + 1 || !m.granted || !isMember(this.config, from)) return;
      this.preVotes.add(from);
      if (this.preVotes.size >= majority(this.config.members.length)) this.startElection(now);
      return;
    }
    if (m.term > this.term) return this.adoptTerm(m.term, `vote reply from ${from}`);
    if (this.role !== "candidate" || m.term !== this.term || !m.granted || !isMember(this.config, from)) return;
    this.votes.set(from, m.leaseWait);
    if (this.votes.size >= majority(this.config.members.length)) this.becomeLeader(now);
  }

  private becomeLeader(now: number): void {
    const wait = Math.max(...this.votes.values()) * (1 + this.t.maxDrift);
    this.lease.reset(now, now + wait);
    this.cfgAcks.clear();
    this.setRole("leader", `elected in term ${this.term} by ${[...this.votes.keys()].sort().join(",")}; lease usable in ${Math.round(wait)} ms`);
    this.leader = this.id;
    // R4: commit a config of our own term before anything else.
    this.config = { ...this.config, term: this.term, epoch: this.config.epoch + 1 };
    this.persist();
    this.sendHb(now);
  }

  private adoptTerm(term: number, why: string): void {
    if (this.role === "leader") this.stepDown(`term ${term} seen (${why})`);
    else if (this.role === "candidate") this.setRole("follower", `term ${term} seen (${why})`);
    this.term = term;
    this.votedFor = null;
    this.leader = null;
    this.preVotes = null;
    this.persist();
  }

  // ---- leader: lease, commit, proposals -------------------------------------------------

  private leaderTick(now: number): void {
    if (this.tilt) return this.stepDown("TILT");
    if (now - this.lease.lastRenewal > this.t.leaseMs) return this.stepDown(`lease not renewed for ${Math.round(now - this.lease.lastRenewal)} ms`);
    if (now - this.lastHbSent >= this.t.heartbeatMs) this.sendHb(now);
    this.proposeNext(now);
  }

  private onAck(from: string, m: Ack): void {
    if (m.term > this.term) return this.adoptTerm(m.term, `ack from ${from}`);
    if (this.role !== "leader" || m.term !== this.term || !isMember(this.config, from)) return;
    const now = this.env.now();
    const voters = this.config.members.map((x) => x.name);
    this.lease.ack(from, m.seq, voters, this.id, now);
    const prev = this.cfgAcks.get(from);
    if (!prev || cmpId(m.cfg, prev) > 0) this.cfgAcks.set(from, m.cfg);
    this.tryCommit();
  }

  /** R4: the leader's config is committed once a majority of its members has persisted it. */
  private tryCommit(): void {
    const want = idOf(this.config);
    if (sameId(want, idOf(this.committed))) return;
    const have = this.config.members.filter((x) => x.name === this.id || cmpId(this.cfgAcks.get(x.name) ?? { term: 0, epoch: -1 }, want) >= 0).length;
    if (have < majority(this.config.members.length)) return;
    this.commit(this.config);
    for (const d of this.inFlight) d({ status: "ok", epoch: this.committed.epoch });
    this.inFlight = [];
    if (!isMember(this.config, this.id)) return this.stepDown("removed from the cluster");
    // Tell the followers now rather than at the next heartbeat: a failover waits for this.
    const now = this.env.now();
    if (this.queue.length) this.proposeNext(now);
    else this.sendHb(now);
  }

  private commit(c: ClusterConfig): void {
    this.committed = c;
    this.persist();
    this.emit("commit", `config epoch ${c.epoch} (term ${c.term}) committed: members ${c.members.map((m) => m.name).join(",")}${Object.keys(c.assignments).length ? "; " + Object.entries(c.assignments).map(([s, n]) => `${s}=${n}`).join(",") : ""}`);
  }

  private proposeNext(now: number): void {
    if (this.role !== "leader" || !this.lease.valid(now) || this.tilt) return;
    if (!sameId(idOf(this.config), idOf(this.committed))) return; // one change at a time
    while (this.queue.length) {
      const { cmd, done } = this.queue.shift()!;
      const next = applyCommand(this.config, cmd, this.term);
      if (typeof next === "string") { done({ status: "error", error: next }); continue; }
      this.config = next;
      this.persist();
      this.inFlight.push(done);
      this.emit("propose", `proposing epoch ${next.epoch}: ${describe(cmd)}`);
      return this.sendHb(now);
    }
  }

  private stepDown(why: string): void {
    this.setRole("follower", why);
    this.leader = null;
    this.resetElectionTimer(this.env.now());
    this.lease.reset(this.env.now(), Infinity);
    for (const d of [...this.inFlight, ...this.queue.map((q) => q.done)]) d({ status: "error", error: `leadership lost: ${why}` });
    this.inFlight = [];
    this.queue = [];
  }

  // ---- commands addressed to us ---------------------------------------------------------

  private onCmd(from: string, m: CmdReq): void {
    const answer = (r: CommandResult) => {
      const resp: CmdResp = { v: PROTOCOL_VERSION, t: "cmd-result", id: m.id, status: r.status };
      if (r.epoch !== undefined) resp.epoch = r.epoch;
      if (r.error !== undefined) resp.error = r.error;
      this.env.send(from, resp);
    };
    if (this.role !== "leader") return answer({ status: "error", error: `${this.id} is not the leader` });
    this.command(m.cmd, answer);
  }

  private onCmdResult(m: CmdResp): void {
    const f = this.forwarded.get(m.id);
    if (!f) return;
    this.forwarded.delete(m.id);
    f.done({ status: m.status, epoch: m.epoch, error: m.error });
  }

  private expireForwarded(now: number): void {
    for (const [id, f] of this.forwarded) {
      if (now < f.deadline) continue;
      this.forwarded.delete(id);
      f.done({ status: "error", error: "no answer from the leader" });
    }
  }

  // ---- auto-join: the leader admits a node that proves it holds the token (issue 3) -----

  private onJoinHello(from: string, m: JoinHello): void {
    if (from !== m.node) return this.count("reject.inconsistent");
    if (this.role !== "leader" || !this.hasLease() || !this.desk.canAdmit) return this.count("join.not-leader");
    const c = this.desk.hello(m, this.env.now(), () => this.env.nonce());
    if (!c) return this.count("join.too-many");
    this.count("join.challenged");
    this.env.send(m.node, c);
  }

  private onJoinProof(from: string, m: JoinProof): void {
    if (from !== m.node) return this.count("reject.inconsistent");
    if (this.role !== "leader" || !this.desk.canAdmit) return this.count("join.not-leader");
    const v = this.desk.proof(m, isMember(this.config, m.node), this.env.now());
    if (!v.ok && v.duplicate) {
      this.count("join.duplicate");
      return this.env.log.debug(`join: ${m.node}: ${v.reason}`, { joiner: m.node });
    }
    if (!v.ok) {
      this.count("join.refused");
      this.env.log.warn(`join refused for ${m.node}: ${v.reason}`, { joiner: m.node });
      this.emit("join", `join refused for ${m.node}: ${v.reason}`);
      if (v.answer) this.env.send(m.node, v.answer);
      return;
    }
    this.emit("join", `${m.node} proved it holds the join token; ${v.cmd.op === "add" ? "adding it" : "readmitting it"} (broker ${m.bus})`);
    this.command(v.cmd, (r) => {
      const answer = this.desk.done(m.node, r.status === "ok" ? "ok" : "refused", r.status === "ok" ? "admitted" : r.error ?? "not committed", r.epoch);
      if (r.status === "ok") this.count("join.admitted");
      else this.emit("join", `admitting ${m.node} failed: ${r.error}`);
      if (answer) this.env.send(m.node, answer);
    });
  }

  // ---- TILT (DESIGN §4 "Clock jumps") ---------------------------------------------------

  private detectTilt(now: number, wall: number): void {
    if (this.lastTick !== null) {
      const gap = now - this.lastTick;
      const jump = wall - this.lastWall - gap;
      if (gap > this.t.leaseMs) this.enterTilt(now, `event loop stalled for ${Math.round(gap)} ms`);
      else if (Math.abs(jump) > this.t.clockJumpMs) this.enterTilt(now, `wall clock jumped ${Math.round(jump)} ms`);
    }
    this.lastTick = now;
    this.lastWall = wall;
    if (this.tilt && now >= this.tiltUntil && this.hasQuorum(now)) {
      this.tilt = false;
      this.emit("tilt", "TILT over: timers steady and a majority heard again");
    }
  }

  private enterTilt(now: number, why: string): void {
    this.tiltUntil = now + this.t.tiltHoldMs;
    if (!this.tilt) this.emit("tilt", `TILT: ${why}; not acting for at least ${this.t.tiltHoldMs} ms`);
    this.tilt = true;
    if (this.role === "leader") this.stepDown("TILT");
  }

  // ---- state, persistence, view ---------------------------------------------------------

  private setRole(next: Role, why: string): void {
    if (next === this.role) return;
    this.emit("role", `status change ${this.role} => ${next} (${why})`);
    this.role = next;
  }

  private persist(): void {
    const s: PersistedState = { term: this.term, votedFor: this.votedFor, config: this.config, committed: this.committed };
    this.env.store.save(s);
  }

  private emit(kind: string, detail: string): void {
    this.env.event({ kind, node: this.id, term: this.term, detail });
  }

  private count(key: string): void {
    this.counters[key] = (this.counters[key] ?? 0) + 1;
  }

  /** Cheap read of the core's state for the simulator's invariant checks (no copies). */
  peek(): { role: Role; term: number; config: ClusterConfig; committed: ClusterConfig } {
    return { role: this.role, term: this.term, config: this.config, committed: this.committed };
  }

  /** True while this node believes it holds a valid leader lease. */
  hasLease(): boolean {
    return this.role === "leader" && !this.tilt && this.lease.valid(this.env.now());
  }

  /** Lease window in local monotonic ms, for the simulator's I2 check. */
  leaseWindow(): { from: number; until: number } | null {
    if (this.role !== "leader" || this.tilt) return null;
    return { from: this.lease.blockedUntil, until: this.lease.until };
  }

  view(): NodeView {
    const now = this.env.now();
    const peers: PeerView[] = this.config.members.filter((m) => m.name !== this.id).map((m) => {
      const p = this.peers.get(m.name);
      return {
        name: m.name, alive: this.alive(m.name, now), lastHeardMs: p ? Math.round(now - p.lastHeard) : null,
        term: p?.term ?? 0, role: p?.role ?? "follower", leader: p?.leader ?? null, skewMs: p ? Math.round(p.skewMs) : null,
      };
    });
    const lease = this.hasLease();
    const ownCommit = this.committed.term === this.term;
    const quorum = this.hasQuorum(now);
    // Up to date: the acting leader, or a follower that hears a live leader and holds the
    // commit it announces. A node back from a partition or a restart may hold an old
    // committed config; it must not act on it (promote) until it has caught up.
    const current = this.role === "leader"
      ? lease && ownCommit
      : this.sticky(now) && this.leaderCommit !== null && sameId(this.leaderCommit, idOf(this.committed));
    return {
      node: this.id, role: this.role, term: this.term, leader: this.leader, quorum, lease, current,
      acting: !this.tilt && !this.selfFenced && (this.role === "leader" ? lease && ownCommit : quorum),
      tilt: this.tilt, selfFenced: this.selfFenced, member: isMember(this.config, this.id),
      config: this.config, committed: this.committed, peers, counters: { ...this.counters },
    };
  }
}

function describe(cmd: Command): string {
  switch (cmd.op) {
    case "assign": return `assign ${cmd.service} to ${cmd.node}`;
    case "unassign": return `unassign ${cmd.service}`;
    case "add": return `add member ${cmd.member.name} (${cmd.member.bus})`;
    case "remove": return `remove member ${cmd.node}`;
    case "apply": return `${cmd.why}: ${[...Object.entries(cmd.assign ?? {}).map(([k, v]) => `${k}=${v}`), ...Object.entries(cmd.flags ?? {}).map(([k, v]) => (v === null ? `-${k}` : `${k}=${v}`))].join(", ")}`;
    case "readmit": return `readmit member ${cmd.member.name} (${cmd.member.bus}) with new credentials`;
  }
}
