// What a node learns from heartbeats (DESIGN §4, README "Membership and quorum"): who is
// alive, who leads (the leader's heartbeat carries the register and its commit, and is
// acknowledged once persisted), whether a majority is seen (R6 self-fence), and TILT when the
// node's own timers or wall clock cannot be trusted ("Clock jumps").
import type { Hb } from "../bus/messages.ts";
import { PROTOCOL_VERSION } from "../bus/messages.ts";
import { cmpId, idOf, isMember, sameId } from "./register.ts";
import type { NodeState } from "./state.ts";

export function onHb(n: NodeState, from: string, m: Hb): void {
  const now = n.env.now();
  if (m.role === "leader" && m.leader !== from) return n.count("reject.inconsistent");
  n.peers.set(from, { lastHeard: now, term: m.term, role: m.role, leader: m.leader, skewMs: m.wall - n.env.wall() });
  if (m.term < n.term) return;
  if (m.term > n.term) n.adoptTerm(m.term, `heartbeat from ${from}`);
  if (m.role !== "leader") return;
  if (n.role === "leader") return n.count("reject.two-leaders"); // impossible by R1; counted, never acted on
  if (n.role === "candidate") n.setRole("follower", `${from} leads term ${m.term}`);
  if (n.leader !== from) {
    n.leader = from;
    n.emit("leader", `following ${from} in term ${m.term}`);
  }
  n.lastLeaderHb = now;
  if (n.voteFloor === Infinity) n.voteFloor = m.term;
  n.preVotes = null;
  n.resetElectionTimer(now);
  if (m.config && cmpId(idOf(m.config), idOf(n.config)) > 0) {
    const wasMember = isMember(n.config, n.id);
    n.config = m.config;
    n.persist();
    if (wasMember !== isMember(n.config, n.id)) n.emit("membership", wasMember ? "removed from the cluster" : "admitted to the cluster");
  }
  if (m.commit && sameId(m.commit, idOf(n.config)) && !sameId(m.commit, idOf(n.committed))) n.commit(n.config);
  n.leaderCommit = m.commit ?? null;
  if (m.seq === undefined) return;
  n.lastAck = now;
  n.env.send(from, { v: PROTOCOL_VERSION, t: "ack", term: n.term, seq: m.seq, cfg: idOf(n.config) });
}

export function updateQuorum(n: NodeState, now: number): void {
  const q = n.hasQuorum(now);
  if (q) {
    if (!n.hadQuorum) n.emit("quorum", `quorum: ${n.config.members.filter((m) => m.name === n.id || n.alive(m.name, now)).length} of ${n.config.members.length} members seen`);
    if (n.selfFenced) n.emit("self-fence", "self-fence lifted: quorum regained");
    n.quorumLostSince = null;
    n.selfFenced = false;
  } else {
    if (n.hadQuorum) n.emit("quorum", "quorum lost");
    n.quorumLostSince ??= now;
    if (!n.selfFenced && isMember(n.config, n.id) && now - n.quorumLostSince >= n.t.quorumLossMs) {
      n.selfFenced = true;
      n.emit("self-fence", `self-fenced: no majority contact for ${Math.round(now - n.quorumLostSince)} ms (R6)`);
    }
  }
  n.hadQuorum = q;
}

// ---- TILT (DESIGN §4 "Clock jumps") -----------------------------------------------------

export function detectTilt(n: NodeState, now: number, wall: number): void {
  if (n.lastTick !== null) {
    const gap = now - n.lastTick;
    const jump = wall - n.lastWall - gap;
    if (gap > n.t.leaseMs) enterTilt(n, now, `event loop stalled for ${Math.round(gap)} ms`);
    else if (Math.abs(jump) > n.t.clockJumpMs) enterTilt(n, now, `wall clock jumped ${Math.round(jump)} ms`);
  }
  n.lastTick = now;
  n.lastWall = wall;
  if (n.tilt && now >= n.tiltUntil && n.hasQuorum(now)) {
    n.tilt = false;
    n.emit("tilt", "TILT over: timers steady and a majority heard again");
  }
}

function enterTilt(n: NodeState, now: number, why: string): void {
  n.tiltUntil = now + n.t.tiltHoldMs;
  if (!n.tilt) n.emit("tilt", `TILT: ${why}; not acting for at least ${n.t.tiltHoldMs} ms`);
  n.tilt = true;
  if (n.role === "leader") n.stepDown("TILT");
}
