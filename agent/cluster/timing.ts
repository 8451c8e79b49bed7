// Every timing of the cluster core, in milliseconds, with its safe default (issue 2 §6).
export interface Timing {
  /** how often the core steps; bounds the reaction delay of every timer below */
  tickMs: number;
  /** heartbeat period of every node; the leader's heartbeat is also its lease round */
  heartbeatMs: number;
  /** a peer is dead after this long without a heartbeat */
  peerDeadMs: number;
  /** an election starts after peerDeadMs plus a random part of this */
  electionJitterMs: number;
  /** the leader lease, renewed by a majority's acks (DESIGN R3) */
  leaseMs: number;
  /** without majority contact this long, a node self-fences (DESIGN R6) */
  quorumLossMs: number;
  /** bound on the rate error of any node's monotonic clock, e.g. 0.01 = 1 % */
  maxDrift: number;
  /** a wall-clock step larger than this (against the monotonic clock) triggers TILT */
  clockJumpMs: number;
  /** how long a node stays in TILT after the last anomaly, with a majority heard again */
  tiltHoldMs: number;
}

export const DEFAULT_TIMING: Timing = {
  tickMs: 50,
  heartbeatMs: 200,
  peerDeadMs: 1200,
  electionJitterMs: 300,
  leaseMs: 2000,
  quorumLossMs: 3000,
  maxDrift: 0.01,
  clockJumpMs: 1000,
  tiltHoldMs: 2000,
};

/**
 * The relations between timings that safety or liveness depends on. Each returned string
 * names the keys involved and says why; an empty list means the set is usable.
 * The lease's safety does not rest on a timing relation: a new leader waits out the lease
 * its voters may have supported (the `leaseWait` they send with their vote).
 */
export function checkTiming(t: Timing): string[] {
  const errs: string[] = [];
  const rel = (ok: boolean, msg: string) => ok || errs.push(msg);
  rel(t.tickMs > 0 && t.tickMs <= t.heartbeatMs / 2, "tick_ms must be > 0 and at most heartbeat_ms / 2, so each heartbeat is sent on time");
  rel(t.heartbeatMs * 3 <= t.peerDeadMs, "peer_dead_ms must be at least 3 x heartbeat_ms, so one lost heartbeat does not kill a peer");
  rel(t.heartbeatMs * 3 <= t.leaseMs, "lease_ms must be at least 3 x heartbeat_ms, so the lease is renewed before it runs out");
  rel(t.peerDeadMs < t.quorumLossMs, "quorum_loss_ms must exceed peer_dead_ms: quorum is lost only after peers are dead");
  rel(t.leaseMs <= t.quorumLossMs, "lease_ms must not exceed quorum_loss_ms: a leader cut off must lose its lease before it self-fences");
  rel(t.electionJitterMs >= t.tickMs, "election_jitter_ms must be at least tick_ms, or elections collide");
  rel(t.maxDrift >= 0 && t.maxDrift < 0.1, "max_drift must be in [0, 0.1)");
  rel(t.clockJumpMs >= t.heartbeatMs, "clock_jump_ms must be at least heartbeat_ms");
  rel(t.tiltHoldMs >= t.heartbeatMs, "tilt_hold_ms must be at least heartbeat_ms");
  return errs;
}
