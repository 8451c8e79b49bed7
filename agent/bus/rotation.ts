// Rotating a founder's bus password (issue 17 item 1, docs/bus.md "Password rotation").
// Founders form a cluster with passwords derived from the join token, which every seed holds:
// anyone with a seed could log in as any founder. Once the cluster has formed, each founder
// picks a random password, keeps it in <state_dir>/bus.password.next (0600) before anything
// else, and asks the leader to commit its hash into its member entry (`rekey`, a command the
// leader takes from that member only: cluster/commit.ts). Every agent writes the committed
// hashes into its own broker's password file (broker-auth.ts), and each broker, on its reload,
// drops connections whose password no longer matches. The node, once it holds the commit,
// keeps the new password as <state_dir>/bus.password (what identity.ts reads at the next
// start) and logs in with it; until every broker has reloaded, a refused CONNECT tries the
// other password (broker-conn.ts), so the order in which brokers reload does not matter.
// The steps are driven by the committed config alone: a crash at any point resumes.
import { existsSync, readFileSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import type { ClusterConfig, Command } from "./messages.ts";
import type { Logger } from "../env/env.ts";
import { atomicWrite } from "../env/store.ts";
import { derivedPassword, hashMatches, mosquittoHash, newPassword } from "./credentials.ts";
import { JOINED_PASSWORD_FILE } from "./identity.ts";

export const PENDING_PASSWORD_FILE = "bus.password.next";
/** a refused or unanswered rekey is asked again after this long */
const RETRY_MS = 5000;
/** the old password stays a fallback this long after the switch (peers' brokers reload) */
const FALLBACK_MS = 60_000;

export interface RotationDeps {
  cluster: string;
  node: string;
  stateDir: string;
  /** the join token; null: no derived password, nothing to rotate */
  token: Buffer | null;
  /** the password the bus logs in with now (identity.ts) */
  current: string;
  log: Logger;
  /** runs a command through the leader (ClusterNode.command) */
  command(cmd: Command, done: (r: { status: "ok" | "error"; epoch?: number; error?: string }) => void): void;
  /** the bus's passwords, preferred first (MqttBus.setPasswords) */
  setPasswords(list: string[]): void;
  /** monotonic ms */
  now(): number;
  newPassword?: () => string;
}

/** What of the node's view a step reads (cluster/view.ts NodeView is one). */
export interface RotationView {
  committed: ClusterConfig;
  leader: string | null;
  /** up to date with a live leader's commit (or the acting leader) */
  current: boolean;
  acting: boolean;
}

export class PasswordRotation {
  private current: string;
  private pending: string | null = null;
  private inFlight = false;
  private nextTryAt = 0;
  private fallbackUntil: number | null = null;
  private saidForeign = false;
  private saidFailure: string | null = null;
  /** the committed hash last found to be the current password's */
  private judged: string | null = null;
  private readonly pendingFile: string;

  constructor(private readonly d: RotationDeps) {
    this.current = d.current;
    this.pendingFile = join(d.stateDir, PENDING_PASSWORD_FILE);
    try {
      if (existsSync(this.pendingFile)) this.pending = readFileSync(this.pendingFile, "utf8").trim() || null;
    } catch (e) {
      d.log.warn(`cannot read ${this.pendingFile}: ${(e as Error).message}; a new password will be picked`);
    }
    // a rotation under way before a restart: its commit may be on some brokers already
    if (this.pending) d.setPasswords([this.current, this.pending]);
  }

  /** True once this node logs in with a password of its own (not derived from the token). */
  get rotated(): boolean {
    return this.d.token === null || this.current !== derivedPassword(this.d.token, this.d.cluster, this.d.node);
  }

  /** One step, after each tick of the node: cheap unless something is to be done. */
  step(v: RotationView): void {
    const now = this.d.now();
    if (this.fallbackUntil !== null && now >= this.fallbackUntil) {
      this.fallbackUntil = null;
      this.d.setPasswords([this.current]);
    }
    const me = v.committed.members.find((m) => m.name === this.d.node);
    if (!me) return;
    if (me.pass) {
      // PBKDF2 on every tick would be a steady cost: a hash is judged once
      if (me.pass === this.judged) return;
      if (this.pending && hashMatches(this.pending, me.pass)) return this.adopt(v.committed.epoch, now);
      if (hashMatches(this.current, me.pass)) {
        this.judged = me.pass;
        if (this.pending) this.forgetPending(); // a rekey that was refused or superseded
        return;
      }
      if (!this.saidForeign) this.d.log.error(`the committed config (epoch ${v.committed.epoch}) holds a bus password for ${this.d.node} that is not this node's: another node joined with this name?`);
      this.saidForeign = true;
      this.judged = me.pass;
      return;
    }
    // No hash in the register: the brokers know this founder by the token-derived password.
    if (this.rotated) return; // a configured password: not ours to rotate
    if (!v.current || !v.acting || !v.leader || this.inFlight || now < this.nextTryAt) return;
    if (!this.pending) {
      const p = (this.d.newPassword ?? newPassword)();
      // kept before it is sent: after a crash the commit may exist, and only this file has it
      atomicWrite(this.pendingFile, `${p}\n`, { durable: true, mode: 0o600 });
      this.pending = p;
      this.d.setPasswords([this.current, p]);
      this.d.log.info(`the cluster has formed: rotating ${this.d.node}'s bus password from the one derived from the join token to a random one (through ${v.leader})`);
    }
    this.inFlight = true;
    this.d.command({ op: "rekey", node: this.d.node, pass: mosquittoHash(this.pending) }, (r) => {
      this.inFlight = false;
      // committed or not, not again at once: a follower holds the commit a heartbeat later
      this.nextTryAt = this.d.now() + RETRY_MS;
      if (r.status === "ok") return;
      if (r.error !== this.saidFailure) this.d.log.warn(`bus password rotation not committed: ${r.error ?? "no reason"}; asking again in ${RETRY_MS / 1000} s`);
      this.saidFailure = r.error ?? null;
    });
  }

  private adopt(epoch: number, now: number): void {
    const next = this.pending!;
    atomicWrite(join(this.d.stateDir, JOINED_PASSWORD_FILE), `${next}\n`, { durable: true, mode: 0o600 });
    this.forgetPending();
    const old = this.current;
    this.current = next;
    this.d.setPasswords([next, old]);
    this.fallbackUntil = now + FALLBACK_MS;
    this.d.log.info(`bus password rotated at config epoch ${epoch}: ${this.d.node} logs in with a random password (${JOINED_PASSWORD_FILE}); the one derived from the join token is refused by every broker once it has reloaded`);
  }

  private forgetPending(): void {
    this.pending = null;
    try {
      unlinkSync(this.pendingFile);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") this.d.log.warn(`cannot remove ${this.pendingFile}: ${(e as Error).message}`);
    }
  }
}
