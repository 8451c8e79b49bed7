// The leader's side of auto-join (issue 3): challenge a joiner with a nonce, check its
// HMAC proof against the join token, and admit it through the config register. A wrong
// proof is refused with a clear log line and changes nothing.
import type { Command, JoinChallenge, JoinHello, JoinProof, JoinResult } from "../bus/messages.ts";
import { PROTOCOL_VERSION } from "../bus/messages.ts";
import { proofMac, resultMac, sameMac } from "../bus/credentials.ts";

const PENDING_MAX = 16;
const PENDING_TTL_MS = 30_000;

interface Pending {
  joinerNonce: string;
  leaderNonce: string;
  at: number;
  busy: boolean;
}

export type ProofVerdict =
  | { ok: true; cmd: Command }
  | { ok: false; reason: string; answer: JoinResult | null; duplicate?: true };

export class JoinDesk {
  private readonly pending = new Map<string, Pending>();

  constructor(
    private readonly cluster: string,
    private readonly token: Buffer | null,
    private readonly leader: string,
  ) {}

  get canAdmit(): boolean {
    return this.token !== null;
  }

  /** A hello: the challenge to send back (the same one again for a repeated hello). */
  hello(m: JoinHello, now: number, nonce: () => string): JoinChallenge | null {
    this.expire(now);
    let p = this.pending.get(m.node);
    if (!p || p.joinerNonce !== m.nonce) {
      if (!p && this.pending.size >= PENDING_MAX) return null;
      p = { joinerNonce: m.nonce, leaderNonce: nonce(), at: now, busy: false };
      this.pending.set(m.node, p);
    }
    return { v: PROTOCOL_VERSION, t: "join-challenge", node: m.node, nonce: p.leaderNonce, leader: this.leader };
  }

  /** A proof: admit (the command to commit) or refuse (with the reason to log and answer). */
  proof(m: JoinProof, isMember: boolean, now: number): ProofVerdict {
    this.expire(now);
    const p = this.pending.get(m.node);
    // The joiner sends its proof through every peer's broker: copies arrive while (or after)
    // the first is handled. They are counted, not refused.
    if (p?.busy && p.leaderNonce === m.leaderNonce) return { ok: false, reason: "a copy of a proof being committed", answer: null, duplicate: true };
    if (!p || p.leaderNonce !== m.leaderNonce || p.joinerNonce !== m.joinerNonce) {
      return { ok: false, reason: `no open challenge for ${m.node} with these nonces (a late copy, or a replayed proof)`, answer: null, duplicate: true };
    }
    const want = proofMac(this.token!, { cluster: this.cluster, node: m.node, bus: m.bus, pass: m.pass, leaderNonce: p.leaderNonce, joinerNonce: p.joinerNonce });
    if (!sameMac(want, m.mac)) {
      this.pending.delete(m.node);
      const reason = "its proof does not match this cluster's join token (wrong token?)";
      return { ok: false, reason, answer: this.result(m.node, "refused", reason, p.joinerNonce) };
    }
    p.busy = true;
    const member = { name: m.node, bus: m.bus, pass: m.pass };
    return { ok: true, cmd: isMember ? { op: "readmit", member } : { op: "add", member } };
  }

  /** The answer to a proof once the register has decided; forgets the challenge. */
  done(node: string, status: "ok" | "refused", reason: string, epoch?: number): JoinResult | null {
    const p = this.pending.get(node);
    if (!p) return null;
    this.pending.delete(node);
    const r = this.result(node, status, reason, p.joinerNonce);
    if (epoch !== undefined) r.epoch = epoch;
    return r;
  }

  private result(node: string, status: "ok" | "refused", reason: string, joinerNonce: string): JoinResult {
    return {
      v: PROTOCOL_VERSION, t: "join-result", node, status, reason, joinerNonce,
      mac: resultMac(this.token!, this.cluster, node, status, joinerNonce),
    };
  }

  private expire(now: number): void {
    for (const [k, p] of this.pending) if (now - p.at > PENDING_TTL_MS) this.pending.delete(k);
  }
}
