// The node's Redis, over ioredis (DESIGN §1, §5; issue 4 items 2 and 6). One master, two
// replicas; `min-replicas-to-write`/`min-replicas-max-lag` on the master bound what a
// failover can lose. Commands used (https://redis.io/commands/): INFO replication,
// CONFIG GET/SET (several parameters at once, atomically, since 7.0), REPLICAOF,
// CLIENT KILL TYPE normal SKIPME yes. The driver talks to the local Redis only; it decides
// nothing. A failed command throws a DriverError that names the command and the server.
// The password is handed to ioredis and redacted from every message; it is never logged.
import { Redis } from "ioredis";
import type { Logger } from "../env/env.ts";
import { type AofPosition, STAMP_KEY, aofConfig, readAofPosition } from "./redis-aof.ts";
import { DriverError, type RedisStatus } from "./types.ts";

/** min-replicas-to-write while fenced: INT_MAX, the parameter's upper bound in Redis's
 *  config.c. No master ever has that many good replicas, so every write gets NOREPLICAS. */
export const FENCE_MIN_REPLICAS = 2147483647;

export interface RedisDriverOptions {
  host: string;
  port: number;
  password?: string;
  /** this node's address, announced by a replica to its master (replica-announce-ip) */
  announceIp: string;
  log: Logger;
  /** deadline of a TCP connect and of each command; default 1000 ms */
  commandTimeoutMs?: number;
  /** min-replicas-to-write on a master; default 1 */
  minReplicasToWrite?: number;
  /** min-replicas-max-lag on a master, seconds; default 2 */
  minReplicasMaxLagS?: number;
}

/** One `slaveN:` line of a master's INFO replication. */
export interface ReplicaLine {
  ip: string;
  port: number;
  state: string;
  offset: number;
  lag: number;
}

/** INFO replication, parsed (https://redis.io/commands/info/, "replication" section). */
export interface ReplicationInfo {
  role: "master" | "replica";
  /** master_repl_offset (master) or slave_repl_offset (replica) */
  offset: number;
  masterReplOffset: number | null;
  masterHost: string | null;
  masterPort: number | null;
  linkUp: boolean;
  lastIoSeconds: number | null;
  syncInProgress: boolean;
  /** slave_read_only (replica-read-only); true on a master, where it does not apply */
  replicaReadOnly: boolean;
  connectedReplicas: number;
  replicas: ReplicaLine[];
  /** min_slaves_good_slaves: present only while min-replicas-to-write and -max-lag are both set */
  goodReplicas: number | null;
  replid: string | null;
  replid2: string | null;
  /** second_repl_offset: replid2 is valid up to this offset - 1; -1 when none */
  secondReplOffset: number;
}

export type ParsedReplication = { ok: true; info: ReplicationInfo } | { ok: false; error: string };

class ParseError extends Error {}

/** Parses the text of `INFO replication`. Pure; bad input gives an error value, never a throw. */
export function parseReplicationInfo(text: unknown): ParsedReplication {
  if (typeof text !== "string") return { ok: false, error: `INFO replication: expected text, got ${text === null ? "null" : typeof text}` };
  const f = new Map<string, string>();
  const lines = text.split(/\r?\n/);
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!.trim();
    if (line === "" || line.startsWith("#")) continue;
    const i = line.indexOf(":");
    if (i <= 0) return { ok: false, error: `INFO replication line ${n + 1}: expected "field:value", got ${show(line)}` };
    f.set(line.slice(0, i), line.slice(i + 1));
  }
  try {
    const role = f.get("role");
    if (role !== "master" && role !== "slave") throw new ParseError(`role: expected "master" or "slave", got ${show(role)}`);
    const replicas: ReplicaLine[] = [];
    for (const [k, v] of f) if (/^slave\d+$/.test(k)) replicas.push(replicaLine(k, v));
    const common = {
      connectedReplicas: int(f, "connected_slaves", true)!,
      replicas,
      goodReplicas: int(f, "min_slaves_good_slaves", false),
      replid: f.get("master_replid") ?? null,
      replid2: f.get("master_replid2") ?? null,
      secondReplOffset: int(f, "second_repl_offset", false) ?? -1,
      masterReplOffset: int(f, "master_repl_offset", role === "master"),
    };
    if (role === "master") {
      return { ok: true, info: { role: "master", offset: common.masterReplOffset!, masterHost: null, masterPort: null, linkUp: false,
        lastIoSeconds: null, syncInProgress: false, replicaReadOnly: true, ...common } };
    }
    const link = f.get("master_link_status");
    if (link !== "up" && link !== "down") throw new ParseError(`master_link_status: expected "up" or "down", got ${show(link)}`);
    const host = f.get("master_host");
    if (!host) throw new ParseError(`master_host: expected a host, got ${show(host)}`);
    const lastIo = int(f, "master_last_io_seconds_ago", false);
    return { ok: true, info: { role: "replica", offset: int(f, "slave_repl_offset", true)!, masterHost: host, masterPort: int(f, "master_port", true),
      linkUp: link === "up", lastIoSeconds: lastIo === null || lastIo < 0 ? null : lastIo, syncInProgress: int(f, "master_sync_in_progress", false) === 1,
      replicaReadOnly: (int(f, "slave_read_only", false) ?? 1) === 1, ...common } };
  } catch (e) {
    if (e instanceof ParseError) return { ok: false, error: `INFO replication: ${e.message}` };
    throw e;
  }
}

function int(f: Map<string, string>, key: string, required: boolean): number | null {
  const v = f.get(key);
  if (v === undefined) {
    if (required) throw new ParseError(`${key}: missing`);
    return null;
  }
  if (!/^-?\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new ParseError(`${key}: expected an integer, got ${show(v)}`);
  return Number(v);
}

function replicaLine(key: string, v: string): ReplicaLine {
  const kv = new Map(v.split(",").map((p) => [p.slice(0, p.indexOf("=")), p.slice(p.indexOf("=") + 1)] as const));
  const n = (k: string) => {
    const x = kv.get(k);
    if (x === undefined || !/^-?\d+$/.test(x)) throw new ParseError(`${key}: ${k}: expected an integer, got ${show(x)}`);
    return Number(x);
  };
  const ip = kv.get("ip");
  if (!ip) throw new ParseError(`${key}: ip: expected an address, got ${show(ip)}`);
  return { ip, port: n("port"), state: kv.get("state") ?? "", offset: n("offset"), lag: n("lag") };
}

function show(v: unknown): string {
  if (v === undefined) return "nothing";
  const s = JSON.stringify(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

export interface WriteGate {
  minReplicasToWrite: number;
  minReplicasMaxLag: number;
}

/** RedisStatus from parsed INFO and the min-replicas settings (pure). `linkUp` and `source`
 *  describe the link to a master: false and null on a master. */
export function statusFromInfo(info: ReplicationInfo, gate: WriteGate): RedisStatus {
  let writesRefused: boolean;
  if (info.role === "replica") writesRefused = info.replicaReadOnly;
  else {
    // checkGoodReplicasStatus() in Redis's server.c: the gate is off unless both are non-zero.
    const good = info.goodReplicas ?? info.replicas.filter((r) => r.state === "online" && r.lag <= gate.minReplicasMaxLag).length;
    writesRefused = gate.minReplicasToWrite > 0 && gate.minReplicasMaxLag > 0 && good < gate.minReplicasToWrite;
  }
  return {
    up: true,
    role: info.role,
    offset: info.offset,
    source: info.role === "replica" ? `${info.masterHost}:${info.masterPort}` : null,
    linkUp: info.role === "replica" && info.linkUp,
    lastIoSeconds: info.lastIoSeconds,
    connectedReplicas: info.connectedReplicas,
    writesRefused,
  };
}

export const REDIS_DOWN: RedisStatus = Object.freeze({
  up: false, role: "none", offset: 0, source: null, linkUp: false, lastIoSeconds: null, connectedReplicas: 0, writesRefused: true,
});

export type DetailedInfo = ReplicationInfo & WriteGate & { fenced: boolean; runId: string };

export class RedisDriver {
  readonly address: string;
  private readonly client: Redis;
  private readonly log: Logger;
  private readonly announceIp: string;
  private readonly password: string | undefined;
  private readonly minReplicas: number;
  private readonly maxLag: number;
  private connecting: Promise<void> | null = null;
  private lastConnError: string | null = null;
  private wasUp: boolean | null = null;
  private closed = false;

  constructor(opts: RedisDriverOptions) {
    this.address = `${opts.host}:${opts.port}`;
    this.log = opts.log.child("redis");
    this.announceIp = opts.announceIp;
    this.password = opts.password;
    this.minReplicas = opts.minReplicasToWrite ?? 1;
    this.maxLag = opts.minReplicasMaxLagS ?? 2;
    if (!Number.isInteger(this.minReplicas) || this.minReplicas < 0 || this.minReplicas >= FENCE_MIN_REPLICAS) {
      throw new DriverError("redis", `minReplicasToWrite: expected an integer from 0 to ${FENCE_MIN_REPLICAS - 1}, got ${this.minReplicas}`);
    }
    if (!Number.isInteger(this.maxLag) || this.maxLag < 1) throw new DriverError("redis", `minReplicasMaxLagS: expected an integer >= 1, got ${this.maxLag}`);
    const timeout = opts.commandTimeoutMs ?? 1000;
    this.client = new Redis({
      host: opts.host, port: opts.port, password: opts.password,
      connectionName: "bollard-agent",
      lazyConnect: true, // connect on first use, in conn()
      connectTimeout: timeout, commandTimeout: timeout,
      // Fail fast, never queue or retry: a dead Redis is an error within `timeout`, and the
      // next call connects afresh. The HA manager decides what a failure means.
      retryStrategy: () => null, maxRetriesPerRequest: 0, enableOfflineQueue: false,
      autoResendUnfulfilledCommands: false, autoResubscribe: false, enableReadyCheck: false,
    });
    this.client.on("error", (e: Error) => {
      this.lastConnError = this.redact(e.message);
      this.log.debug("connection error", { redis: this.address, error: this.lastConnError });
    });
  }

  /** Role, offset, link and write gate; `up: false` when Redis cannot be read. Never throws. */
  async status(): Promise<RedisStatus> {
    try {
      const i = await this.info();
      if (this.wasUp !== true) this.log.info("redis reachable", { redis: this.address, role: i.role, offset: i.offset });
      this.wasUp = true;
      return statusFromInfo(i, i);
    } catch (e) {
      if (this.wasUp !== false) this.log.warn("redis unreachable", { redis: this.address, error: (e as Error).message });
      this.wasUp = false;
      return { ...REDIS_DOWN };
    }
  }

  /** INFO replication plus the write-gate settings, in one round trip. Throws DriverError. */
  async info(): Promise<DetailedInfo> {
    const c = await this.conn();
    const [info, toWrite, maxLag, server] = await this.guard("INFO replication", async () => {
      const res = await c.pipeline().call("INFO", "replication")
        .call("CONFIG", "GET", "min-replicas-to-write").call("CONFIG", "GET", "min-replicas-max-lag").call("INFO", "server").exec();
      return (res ?? [[new Error("pipeline discarded"), null]]).map(([err, v]) => {
        if (err) throw err;
        return v;
      });
    });
    const p = parseReplicationInfo(info);
    if (!p.ok) throw new DriverError("redis", `${this.address}: ${p.error}`);
    const gate = { minReplicasToWrite: configInt(toWrite), minReplicasMaxLag: configInt(maxLag) };
    if (Number.isNaN(gate.minReplicasToWrite) || Number.isNaN(gate.minReplicasMaxLag)) {
      throw new DriverError("redis", `${this.address}: CONFIG GET min-replicas-*: expected [name, integer], got ${show([toWrite, maxLag])}`);
    }
    // run_id: "a random value identifying the Redis server" (INFO server), new at every start:
    // the incarnation (a restarted master comes back empty without persistence)
    const runId = /^run_id:([0-9a-f]{40})\s*$/m.exec(typeof server === "string" ? server : "")?.[1] ?? "";
    return { ...p.info, ...gate, fenced: gate.minReplicasToWrite >= FENCE_MIN_REPLICAS, runId };
  }

  /** First master of a fresh cluster: write gate on, then REPLICAOF NO ONE. */
  async bootstrapMaster(): Promise<void> {
    const t0 = performance.now();
    await this.cmd("CONFIG SET", "CONFIG", "SET", "replica-announce-ip", this.announceIp, ...this.gateArgs());
    await this.cmd("REPLICAOF NO ONE", "REPLICAOF", "NO", "ONE");
    this.log.info("bootstrapped as master", { redis: this.address, minReplicasToWrite: this.minReplicas, maxLagS: this.maxLag, ms: ms(t0) });
  }

  /** Replicate from host:port. Ordered so that no instant has a writable master without
   *  its gate: REPLICAOF first (a replica refuses writes: replica-read-only), then the
   *  gate goes to 0, which is inert on a replica and keeps a fence from outliving it. The
   *  announced address is set first: a replica sends it (REPLCONF ip-address) in its handshake. */
  async replicateFrom(host: string, port: number): Promise<void> {
    const t0 = performance.now();
    const auth = this.password === undefined ? [] : ["masterauth", this.password];
    await this.cmd("CONFIG SET", "CONFIG", "SET", "replica-announce-ip", this.announceIp, "replica-read-only", "yes", ...auth);
    await this.cmd(`REPLICAOF ${host} ${port}`, "REPLICAOF", host, String(port));
    await this.cmd("CONFIG SET", "CONFIG", "SET", "min-replicas-to-write", "0");
    this.log.info("replicating", { redis: this.address, from: `${host}:${port}`, ms: ms(t0) });
  }

  /** Becomes master and returns the replication offset it was promoted at (the end of the
   *  shared history: second_repl_offset - 1 after REPLICAOF NO ONE shifts the replid). The
   *  gate is set while still a replica, where it is inert, so the new master never accepts
   *  an unreplicated write; setting it also lifts a fence. */
  async promote(): Promise<number> {
    const t0 = performance.now();
    const before = await this.info();
    await this.cmd("CONFIG SET", "CONFIG", "SET", "replica-announce-ip", this.announceIp, ...this.gateArgs());
    if (before.role === "master") {
      this.log.info("promote: already master", { redis: this.address, offset: before.offset });
      return before.offset;
    }
    await this.cmd("REPLICAOF NO ONE", "REPLICAOF", "NO", "ONE");
    const after = await this.info();
    const offset = after.secondReplOffset > 0 ? after.secondReplOffset - 1 : after.offset;
    this.log.info("promoted to master", { redis: this.address, offset, was: `${before.masterHost}:${before.masterPort}`, ms: ms(t0) });
    return offset;
  }

  /** Self-fence (DESIGN §5, issue 4 item 6): refuse every write, whoever the master is.
   *  min-replicas-to-write INT_MAX makes every write, MULTI/EXEC and script write fail with
   *  "NOREPLICAS Not enough good replicas to write." (server.c checkGoodReplicasStatus),
   *  while reads, INFO and replication go on, the role and offset stay as they are for the
   *  HA manager, and unfence() is one CONFIG SET. Rejected alternatives: REPLICAOF to an
   *  unreachable address (a lie in INFO, shifts the replid, and whatever answers there
   *  would replace the dataset), CLIENT PAUSE WRITE (clients hang instead of failing),
   *  ACL -@write (also hits our own user). The gate needs max-lag > 0 to be checked, so
   *  both are set in one atomic CONFIG SET. Then CLIENT KILL TYPE normal SKIPME yes drops
   *  every client but ours (replica links are type replica/master and stay), so clients
   *  and portal connections reconnect and find the new master. Returns the clients killed. */
  async demote(reason: string): Promise<number> {
    const t0 = performance.now();
    await this.cmd("CONFIG SET (fence)", "CONFIG", "SET", "min-replicas-max-lag", String(this.maxLag), "min-replicas-to-write", String(FENCE_MIN_REPLICAS));
    const killed = Number(await this.cmd("CLIENT KILL", "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"));
    this.log.warn("self-fenced: writes refused", { redis: this.address, reason, clientsKilled: killed, ms: ms(t0) });
    return killed;
  }

  /** Lifts the fence: the configured gate on a master, 0 on a replica (as replicateFrom). */
  async unfence(): Promise<void> {
    const i = await this.info();
    await this.cmd("CONFIG SET", "CONFIG", "SET", ...(i.role === "master" ? this.gateArgs() : ["min-replicas-to-write", "0"]));
    this.log.info("unfenced", { redis: this.address, role: i.role });
  }

  /** On a replica: resolves with its offset once slave_repl_offset >= offset; throws
   *  DriverError after timeoutMs, or at once if this is not a replica. */
  async waitForOffset(offset: number, timeoutMs: number): Promise<number> {
    const t0 = performance.now();
    for (;;) {
      const i = await this.info();
      if (i.role !== "replica") throw new DriverError("redis", `${this.address}: waitForOffset: not a replica (role ${i.role})`);
      if (i.offset >= offset) return i.offset;
      if (performance.now() - t0 > timeoutMs) {
        throw new DriverError("redis", `${this.address}: offset ${offset} not reached in ${timeoutMs} ms: at ${i.offset}, link ${i.linkUp ? "up" : "down"}`);
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** On the primary: INCR bollard:stamp, the mark that orders restarted servers (redis-aof.ts).
   *  Returns the new stamp and the offset after it. Throws DriverError (a fenced master refuses it: NOREPLICAS). */
  async stamp(): Promise<{ stamp: number; offset: number }> {
    const c = await this.conn();
    const [n, info] = await this.guard(`INCR ${STAMP_KEY}`, async () => {
      const res = await c.pipeline().call("INCR", STAMP_KEY).call("INFO", "replication").exec();
      return (res ?? [[new Error("pipeline discarded"), null]]).map(([err, v]) => {
        if (err) throw err;
        return v;
      });
    });
    const p = parseReplicationInfo(info);
    if (!p.ok) throw new DriverError("redis", `${this.address}: ${p.error}`);
    return { stamp: Number(n), offset: p.info.offset };
  }

  /** Where a server that restarted from its AOF stands (redis-aof.ts): the stamp it loaded and
   *  the commands after it. null when it keeps no AOF (appendonly no). Throws DriverError. */
  async aofPosition(): Promise<AofPosition | null> {
    const where = aofConfig(await this.cmd("CONFIG GET", "CONFIG", "GET", "app*", "dir"));
    if (!where.ok) throw new DriverError("redis", `${this.address}: ${where.error}`);
    if (!where.value) return null;
    const { dir, appendDir, file } = where.value;
    const raw = await this.cmd(`GET ${STAMP_KEY}`, "GET", STAMP_KEY);
    const stamp = raw === null ? 0 : Number(raw);
    if (!Number.isSafeInteger(stamp) || stamp < 0) throw new DriverError("redis", `${this.address}: GET ${STAMP_KEY}: expected a count, got ${show(raw)}`);
    const p = await readAofPosition(dir, appendDir, file, stamp);
    if (!p.ok) throw new DriverError("redis", `${this.address}: ${p.error}`);
    return p.value;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.client.disconnect();
  }

  private gateArgs(): string[] {
    return ["min-replicas-to-write", String(this.minReplicas), "min-replicas-max-lag", String(this.maxLag)];
  }

  private async cmd(what: string, command: string, ...args: string[]): Promise<unknown> {
    const c = await this.conn();
    // ioredis errors carry the command's arguments: keep one that holds the password out.
    return this.guard(what, () => c.call(command, ...args), this.password !== undefined && args.includes(this.password));
  }

  private async guard<T>(what: string, fn: () => Promise<T>, secret = false): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      // A timed-out connection may be half-open: drop it, the next call connects afresh.
      if (/timed out/i.test((e as Error).message)) this.client.disconnect();
      throw this.fail(what, e, secret);
    }
  }

  /** The ready client: connects when needed, within connectTimeout, with no retry. */
  private async conn(): Promise<Redis> {
    if (this.closed) throw new DriverError("redis", `${this.address}: driver closed`);
    if (this.client.status === "ready") return this.client;
    if (!this.connecting) {
      this.lastConnError = null;
      this.connecting = this.client.connect().finally(() => (this.connecting = null));
    }
    try {
      await this.connecting;
    } catch (e) {
      throw new DriverError("redis", `${this.address}: connect: ${this.lastConnError ?? this.redact((e as Error).message)}`, e);
    }
    return this.client;
  }

  private fail(what: string, e: unknown, secret = false): DriverError {
    return new DriverError("redis", `${this.address}: ${what}: ${this.redact(e instanceof Error ? e.message : String(e))}`, secret ? undefined : e);
  }

  private redact(s: string): string {
    return this.password ? s.split(this.password).join("***") : s;
  }
}

function configInt(v: unknown): number {
  return Array.isArray(v) && v.length === 2 && /^\d+$/.test(String(v[1])) ? Number(v[1]) : Number.NaN;
}

function ms(t0: number): number {
  return Math.round((performance.now() - t0) * 10) / 10;
}
