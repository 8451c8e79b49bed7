// Bus credentials and the join handshake's MACs (issue 3 "Auto-join"). Pure: no I/O.
//
// - A founder (a member of the first config, with no `pass` in the register) uses the bus
//   password derived from the join token, so three fresh nodes can form a cluster from their
//   seeds alone.
// - A node that joins later, or a member that lost its state, picks a fresh random password
//   and sends only its Mosquitto hash in its join proof; once the leader commits it to the
//   register, every agent writes it into its own broker's password file.
// - The join token itself never travels: the joiner's proof is HMAC(token, ...) over a nonce
//   the leader chose, and the leader's answer is an HMAC over the joiner's nonce.
import { createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";

/** The shared MQTT user joiners log in as; the ACL lets it write only bollard/v1/<c>/join/#. */
export const JOIN_USER = "join";
/** Not a secret: the join user can only ask; the HMAC proof is what admits a node. */
export const JOIN_PASSWORD = "join";

/** Mosquitto 2.0's default: PBKDF2-SHA512, 101 iterations, 12-byte salt, 64-byte hash ($7$). */
const ITERATIONS = 101;

export function derivedPassword(token: Buffer, cluster: string, node: string): string {
  return createHmac("sha256", token).update(`bollard-bus\n${cluster}\n${node}`).digest("hex").slice(0, 40);
}

export function newPassword(): string {
  return randomBytes(24).toString("base64url");
}

/**
 * A Mosquitto `$7$` hash of `password`. With `saltFrom`, the salt is derived from it, so the
 * same inputs give the same line and the password file changes only when a member does.
 */
export function mosquittoHash(password: string, saltFrom?: string): string {
  const salt = saltFrom ? createHmac("sha256", "bollard-salt").update(saltFrom).digest().subarray(0, 12) : randomBytes(12);
  const hash = pbkdf2Sync(password, salt, ITERATIONS, 64, "sha512");
  return `$7$${ITERATIONS}$${salt.toString("base64")}$${hash.toString("base64")}`;
}

/** True if `hash` (a `$7$` line of mosquittoHash) is the hash of `password`. */
export function hashMatches(password: string, hash: string): boolean {
  const m = /^\$7\$(\d{1,7})\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(hash);
  if (!m) return false;
  const want = Buffer.from(m[3]!, "base64");
  const iterations = Number(m[1]);
  if (want.length === 0 || iterations < 1 || iterations > 1_000_000) return false;
  const got = pbkdf2Sync(password, Buffer.from(m[2]!, "base64"), iterations, want.length, "sha512");
  return timingSafeEqual(got, want);
}

export interface ProofInput {
  cluster: string;
  node: string;
  bus: string;
  pass: string;
  leaderNonce: string;
  joinerNonce: string;
}

export function proofMac(token: Buffer, p: ProofInput): string {
  return createHmac("sha256", token)
    .update(["bollard-join-proof", p.cluster, p.node, p.bus, p.pass, p.leaderNonce, p.joinerNonce].join("\n"))
    .digest("hex");
}

export function resultMac(token: Buffer, cluster: string, node: string, status: string, joinerNonce: string): string {
  return createHmac("sha256", token).update(["bollard-join-result", cluster, node, status, joinerNonce].join("\n")).digest("hex");
}

/** Constant-time comparison of two hex MACs. */
export function sameMac(a: string, b: string): boolean {
  const x = Buffer.from(a, "hex");
  const y = Buffer.from(b, "hex");
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}
