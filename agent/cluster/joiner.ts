// The joiner's side of auto-join (issue 3), as a pure step machine: the MQTT client
// (bus/join-client.ts) and the simulator both drive it. A node with only its seed says hello,
// answers the leader's challenge with an HMAC proof, and checks the leader's answer with the
// same token before it believes it.
import type { JoinChallenge, JoinHello, JoinProof, JoinResult } from "../bus/messages.ts";
import { PROTOCOL_VERSION } from "../bus/messages.ts";
import { proofMac, resultMac, sameMac } from "../bus/credentials.ts";

export type JoinOutcome =
  | { ok: true; leader: string; epoch: number | undefined }
  | { ok: false; leader: string; reason: string };

export class Joiner {
  private challengeFrom: string | null = null;
  private proof: JoinProof | null = null;

  constructor(
    private readonly cluster: string,
    readonly node: string,
    private readonly bus: string,
    private readonly pass: string,
    private readonly token: Buffer,
    private readonly nonce: string,
  ) {}

  hello(): JoinHello {
    return { v: PROTOCOL_VERSION, t: "join-hello", node: this.node, nonce: this.nonce };
  }

  /** The proof to publish, or null if the challenge is not for this attempt. */
  onChallenge(from: string, m: JoinChallenge): JoinProof | null {
    if (m.node !== this.node || m.leader !== from) return null;
    if (this.proof && this.proof.leaderNonce === m.nonce) return this.proof; // a repeated challenge
    this.challengeFrom = from;
    const p = { cluster: this.cluster, node: this.node, bus: this.bus, pass: this.pass, leaderNonce: m.nonce, joinerNonce: this.nonce };
    this.proof = { v: PROTOCOL_VERSION, t: "join-proof", node: this.node, bus: this.bus, pass: this.pass, joinerNonce: this.nonce, leaderNonce: m.nonce, mac: proofMac(this.token, p) };
    return this.proof;
  }

  /** The outcome, or null if the answer is not for this attempt. */
  onResult(from: string, m: JoinResult): JoinOutcome | null {
    if (m.node !== this.node || m.joinerNonce !== this.nonce) return null;
    const want = resultMac(this.token, this.cluster, this.node, m.status, this.nonce);
    if (!sameMac(want, m.mac)) {
      return { ok: false, leader: from, reason: `the answer from ${from} does not verify with our join token (wrong token?): it said ${m.status}: ${m.reason}` };
    }
    if (m.status === "refused") return { ok: false, leader: from, reason: `refused by ${from}: ${m.reason}` };
    return { ok: true, leader: from, epoch: m.epoch };
  }

  get challenged(): string | null {
    return this.challengeFrom;
  }
}
