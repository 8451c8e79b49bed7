// The cluster core of one node (DESIGN §4): membership and quorum from heartbeats, a
// Raft-style election with pre-vote and leader stickiness, the leader lease, the replicated
// config register, TILT and self-fence. It is a step machine: `tick()` on a timer and
// `receive()` per message. All I/O goes through the CoreEnv, so the simulator runs it as is.
// The state and the changes every part makes to it: state.ts; the parts: membership.ts
// (heartbeats heard, quorum, TILT), election.ts, commit.ts (rounds, commits, commands).
import type { ClusterConfig, Command, JoinHello, JoinProof, Message } from "../bus/messages.ts";
import type { CoreEnv } from "../env/env.ts";
import { command, expireForwarded, leaderTick, onAck, onCmd, onCmdResult, sendHb } from "./commit.ts";
import { campaign, onVoteReq, onVoteResp } from "./election.ts";
import { detectTilt, onHb, updateQuorum } from "./membership.ts";
import { idOf, isMember, sameId } from "./register.ts";
import { NodeState, type Done, type NodeOptions } from "./state.ts";
import type { Timing } from "./timing.ts";
import type { NodeView, PeerView, Role } from "./view.ts";

export type { CommandResult, NodeOptions } from "./state.ts";

export class ClusterNode {
  private readonly n: NodeState;
  readonly counters: Record<string, number>;

  constructor(
    env: CoreEnv,
    readonly id: string,
    t: Timing,
    bootstrap: ClusterConfig,
    opts: NodeOptions = { cluster: "sim", joinToken: null, cautiousVotes: false },
  ) {
    this.n = new NodeState(env, id, t, bootstrap, opts);
    this.counters = this.n.counters;
  }

  start(): void {
    const n = this.n;
    const saved = n.env.store.load();
    if (saved) {
      n.term = saved.term;
      n.votedFor = saved.votedFor;
      n.config = saved.config;
      n.committed = saved.committed;
    }
    const now = n.env.now();
    n.lastAck = now;
    n.resetElectionTimer(now);
    n.emit("start", `started in term ${n.term}, config epoch ${n.config.epoch} (committed ${n.committed.epoch})`);
  }

  // ---- the step -------------------------------------------------------------------------

  tick(): void {
    const n = this.n;
    const now = n.env.now();
    const wall = n.env.wall();
    detectTilt(n, now, wall);
    updateQuorum(n, now);
    expireForwarded(n, now);
    if (n.role === "leader") leaderTick(n, now);
    else if (now - n.lastHbSent >= n.t.heartbeatMs) sendHb(n, now);
    if (n.role !== "leader" && now >= n.electionAt) campaign(n, now);
  }

  receive(from: string, msg: Message): void {
    const n = this.n;
    if (from === this.id) return n.count("reject.self");
    n.count(`rx.${msg.t}`);
    switch (msg.t) {
      case "hb": return onHb(n, from, msg);
      case "ack": return onAck(n, from, msg);
      case "vote": return onVoteReq(n, from, msg);
      case "voted": return onVoteResp(n, from, msg);
      case "cmd": return onCmd(n, from, msg);
      case "cmd-result": return onCmdResult(n, msg);
      case "join-hello": return this.onJoinHello(from, msg);
      case "join-proof": return this.onJoinProof(from, msg);
      case "join-challenge": case "join-result": return n.count("reject.not-joining");
      case "res": case "res-query": case "fetch": case "fetched": case "alarm-ack": case "alarm-acked":
      case "upg": case "upg-result": case "bundle-get": case "bundle-part":
        return; // the HA layer's, the operator's, the alarms' and the upgrade's, routed by the agent
    }
  }

  /** Runs a command through the leader; `done` is called once, when committed or refused. */
  command(cmd: Command, done: Done): void {
    command(this.n, cmd, done);
  }

  // ---- auto-join: the leader admits a node that proves it holds the token (issue 3) -----

  private onJoinHello(from: string, m: JoinHello): void {
    const n = this.n;
    if (from !== m.node) return n.count("reject.inconsistent");
    if (n.role !== "leader" || !n.hasLease() || !n.desk.canAdmit) return n.count("join.not-leader");
    const c = n.desk.hello(m, n.env.now(), () => n.env.nonce());
    if (!c) return n.count("join.too-many");
    n.count("join.challenged");
    n.env.send(m.node, c);
  }

  private onJoinProof(from: string, m: JoinProof): void {
    const n = this.n;
    if (from !== m.node) return n.count("reject.inconsistent");
    if (n.role !== "leader" || !n.desk.canAdmit) return n.count("join.not-leader");
    const v = n.desk.proof(m, isMember(n.config, m.node), n.env.now());
    if (!v.ok && v.duplicate) {
      n.count("join.duplicate");
      return n.env.log.debug(`join: ${m.node}: ${v.reason}`, { joiner: m.node });
    }
    if (!v.ok) {
      n.count("join.refused");
      n.env.log.warn(`join refused for ${m.node}: ${v.reason}`, { joiner: m.node });
      n.emit("join", `join refused for ${m.node}: ${v.reason}`);
      if (v.answer) n.env.send(m.node, v.answer);
      return;
    }
    n.emit("join", `${m.node} proved it holds the join token; ${v.cmd.op === "add" ? "adding it" : "readmitting it"} (broker ${m.bus})`);
    this.command(v.cmd, (r) => {
      const answer = n.desk.done(m.node, r.status === "ok" ? "ok" : "refused", r.status === "ok" ? "admitted" : r.error ?? "not committed", r.epoch);
      if (r.status === "ok") n.count("join.admitted");
      else n.emit("join", `admitting ${m.node} failed: ${r.error}`);
      if (answer) n.env.send(m.node, answer);
    });
  }

  // ---- reads ----------------------------------------------------------------------------

  /** Cheap read of the core's state for the simulator's invariant checks (no copies). */
  peek(): { role: Role; term: number; config: ClusterConfig; committed: ClusterConfig } {
    const n = this.n;
    return { role: n.role, term: n.term, config: n.config, committed: n.committed };
  }

  /** True while this node believes it holds a valid leader lease. */
  hasLease(): boolean {
    return this.n.hasLease();
  }

  /** Lease window in local monotonic ms, for the simulator's I2 check. */
  leaseWindow(): { from: number; until: number } | null {
    const n = this.n;
    if (n.role !== "leader" || n.tilt) return null;
    return { from: n.lease.blockedUntil, until: n.lease.until };
  }

  view(): NodeView {
    const n = this.n;
    const now = n.env.now();
    const peers: PeerView[] = n.config.members.filter((m) => m.name !== this.id).map((m) => {
      const p = n.peers.get(m.name);
      return {
        name: m.name, alive: n.alive(m.name, now), lastHeardMs: p ? Math.round(now - p.lastHeard) : null,
        term: p?.term ?? 0, role: p?.role ?? "follower", leader: p?.leader ?? null, skewMs: p ? Math.round(p.skewMs) : null,
      };
    });
    const lease = n.hasLease();
    const ownCommit = n.committed.term === n.term;
    const quorum = n.hasQuorum(now);
    // Up to date: the acting leader, or a follower that hears a live leader and holds the
    // commit it announces. A node back from a partition or a restart may hold an old
    // committed config; it must not act on it (promote) until it has caught up.
    const current = n.role === "leader"
      ? lease && ownCommit
      : n.sticky(now) && n.leaderCommit !== null && sameId(n.leaderCommit, idOf(n.committed));
    return {
      node: this.id, role: n.role, term: n.term, leader: n.leader, quorum, lease, current,
      acting: !n.tilt && !n.selfFenced && (n.role === "leader" ? lease && ownCommit : quorum),
      tilt: n.tilt, selfFenced: n.selfFenced, member: isMember(n.config, this.id),
      config: n.config, committed: n.committed, peers, counters: { ...n.counters },
    };
  }
}
