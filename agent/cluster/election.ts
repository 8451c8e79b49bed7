// The election (DESIGN §4, R1 and R2): Raft's rules on one register. A node that has not
// heard the leader for peer-dead plus a random part of the jitter asks for pre-votes first
// (Raft thesis §9.6); a node that heard a live leader refuses (stickiness). A real vote is
// persisted before it is sent, and granted only to a candidate whose config is at least the
// voter's. Each vote carries how long a lease the voter supported may still run, and the new
// leader waits out the largest before its own lease starts (R3).
import type { VoteReq, VoteResp } from "../bus/messages.ts";
import { PROTOCOL_VERSION } from "../bus/messages.ts";
import { sendHb } from "./commit.ts";
import { LeaseTracker } from "./lease.ts";
import { cmpId, idOf, isMember, majority } from "./register.ts";
import type { NodeState } from "./state.ts";

export function campaign(n: NodeState, now: number): void {
  n.resetElectionTimer(now);
  if (n.tilt || !isMember(n.config, n.id)) return;
  if (n.role === "candidate") n.setRole("follower", "election timed out");
  // Pre-vote (Raft thesis §9.6): ask whether a majority would vote before raising the term.
  n.preVotes = new Set([n.id]);
  n.count("prevote.started");
  if (n.config.members.length === 1) return startElection(n, now);
  n.env.send("*", { v: PROTOCOL_VERSION, t: "vote", pre: true, term: n.term + 1, cfg: idOf(n.config) });
}

function startElection(n: NodeState, now: number): void {
  n.preVotes = null;
  n.term += 1;
  n.votedFor = n.id;
  n.leader = null;
  n.persist();
  n.setRole("candidate", `pre-vote won, campaigning in term ${n.term}`);
  n.votes = new Map([[n.id, waitOwed(n, now)]]);
  // A split vote is retried after a short random back-off, not a whole failure-detection
  // period: the leader is already known to be gone.
  n.electionAt = now + n.t.heartbeatMs + n.env.random() * n.t.electionJitterMs;
  if (n.votes.size >= majority(n.config.members.length)) return becomeLeader(n, now);
  n.env.send("*", { v: PROTOCOL_VERSION, t: "vote", pre: false, term: n.term, cfg: idOf(n.config) });
}

function waitOwed(n: NodeState, now: number): number {
  return LeaseTracker.waitOwed(n.t.leaseMs, n.t.maxDrift, now - n.lastAck);
}

export function onVoteReq(n: NodeState, from: string, m: VoteReq): void {
  const now = n.env.now();
  const reply = (granted: boolean, reason?: string) => {
    const r: VoteResp = { v: PROTOCOL_VERSION, t: "voted", pre: m.pre, term: m.pre ? m.term : n.term, granted, leaseWait: granted ? waitOwed(n, now) : 0 };
    if (reason) r.reason = reason;
    n.env.send(from, r);
  };
  if (!isMember(n.config, from)) return reply(false, "not a member");
  if (n.sticky(now)) return reply(false, `${n.leader} is alive`); // R2, and no term bump (Raft §6)
  if (m.pre) {
    if (m.term <= n.term) return reply(false, "stale term");
    if (cmpId(m.cfg, idOf(n.config)) < 0) return reply(false, "config behind");
    return reply(true);
  }
  if (m.term > n.term) n.adoptTerm(m.term, `vote request from ${from}`);
  if (m.term < n.term) return reply(false, "stale term");
  if (n.votedFor !== null && n.votedFor !== from) return reply(false, `voted for ${n.votedFor}`);
  if (n.voteFloor !== null && m.term <= n.voteFloor) return reply(false, "started without state: no vote before a later term");
  if (cmpId(m.cfg, idOf(n.config)) < 0) return reply(false, "config behind"); // R1
  n.votedFor = from;
  n.persist(); // R1: the vote is durable before it is sent
  n.resetElectionTimer(now);
  reply(true);
}

export function onVoteResp(n: NodeState, from: string, m: VoteResp): void {
  const now = n.env.now();
  if (m.pre) {
    if (!n.preVotes || m.term !== n.term + 1 || !m.granted || !isMember(n.config, from)) return;
    n.preVotes.add(from);
    if (n.preVotes.size >= majority(n.config.members.length)) startElection(n, now);
    return;
  }
  if (m.term > n.term) return n.adoptTerm(m.term, `vote reply from ${from}`);
  if (n.role !== "candidate" || m.term !== n.term || !m.granted || !isMember(n.config, from)) return;
  n.votes.set(from, m.leaseWait);
  if (n.votes.size >= majority(n.config.members.length)) becomeLeader(n, now);
}

function becomeLeader(n: NodeState, now: number): void {
  const wait = Math.max(...n.votes.values()) * (1 + n.t.maxDrift);
  n.lease.reset(now, now + wait);
  n.cfgAcks.clear();
  n.setRole("leader", `elected in term ${n.term} by ${[...n.votes.keys()].sort().join(",")}; lease usable in ${Math.round(wait)} ms`);
  n.leader = n.id;
  // R4: commit a config of our own term before anything else.
  n.config = { ...n.config, term: n.term, epoch: n.config.epoch + 1 };
  n.persist();
  sendHb(n, now);
}
