// The leader lease (DESIGN R3) and the wait a new leader owes the old one.
//
// A leader's lease runs from the SEND time of the newest heartbeat round a majority has
// acknowledged, for lease x (1 - maxDrift) on its own monotonic clock. Because the clock may
// run fast by maxDrift, that is at most `lease` of real time.
//
// A follower that acknowledges a round promises nothing by timing alone. Instead, when it
// votes it tells the candidate how much longer a lease it supported could still run
// (`leaseWait`, an upper bound in real ms). The new leader's majority of voters overlaps
// every majority that renewed the old lease, so waiting out the largest `leaseWait` it
// received (scaled by 1 + maxDrift for its own clock) means the old lease has certainly
// ended before the new one starts.

export class LeaseTracker {
  private sentAt = new Map<number, number>();
  private acked = new Map<string, number>();
  /** the lease is valid for local times in [blockedUntil, until) */
  until = 0;
  blockedUntil = 0;
  lastRenewal = 0;
  seq = 0;

  constructor(
    private readonly leaseMs: number,
    private readonly maxDrift: number,
  ) {}

  /** A fresh term: no lease until a majority acks, and none before `blockedUntil`. */
  reset(now: number, blockedUntil: number): void {
    this.sentAt.clear();
    this.acked.clear();
    this.until = 0;
    this.blockedUntil = blockedUntil;
    this.lastRenewal = now;
  }

  /** Starts a heartbeat round; returns its sequence number. */
  round(now: number): number {
    this.seq += 1;
    this.sentAt.set(this.seq, now);
    return this.seq;
  }

  /**
   * Records `peer`'s ack of round `seq` and renews the lease if a majority of `voters`
   * (the leader itself included, having "acked" its latest round) has now acked a newer round.
   */
  ack(peer: string, seq: number, voters: string[], self: string, now: number): boolean {
    if (seq > (this.acked.get(peer) ?? 0)) this.acked.set(peer, seq);
    const seqs = voters.map((v) => (v === self ? this.seq : this.acked.get(v) ?? 0)).sort((a, b) => b - a);
    const need = Math.floor(voters.length / 2) + 1;
    if (seqs.length < need) return false;
    const quorumSeq = seqs[need - 1];
    const sent = this.sentAt.get(quorumSeq);
    if (sent === undefined) return false;
    for (const s of this.sentAt.keys()) if (s < quorumSeq) this.sentAt.delete(s);
    const until = sent + this.leaseMs * (1 - this.maxDrift);
    if (until <= this.until) return false;
    this.until = until;
    this.lastRenewal = now;
    return true;
  }

  valid(now: number): boolean {
    return now >= this.blockedUntil && now < this.until;
  }

  /** What a voter reports: how long (real ms, upper bound) a lease it acked may still run. */
  static waitOwed(leaseMs: number, maxDrift: number, sinceAckMs: number): number {
    // The acked round was sent before the ack, so the lease ends at most `lease` real ms
    // after it; our clock may have run fast, so the real time since is at least
    // sinceAck / (1 + maxDrift).
    return Math.max(0, leaseMs - sinceAckMs / (1 + maxDrift));
  }
}
