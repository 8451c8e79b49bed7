// The MQTT contract as a type map (DESIGN §3, STYLE "The MQTT contract is a type map").
// Every payload is versioned JSON. A message's sender is never in its body: it is the
// broker topic it arrived on (`bollard/v1/<cluster>/<node>/...`), which the broker ACL
// guarantees. Each schema here is the one place a payload's shape is defined; the codec
// validates against it on receipt.
import { z } from "zod";
import { ACKED_BY_RE, ALARM_ID_RE } from "../alarms/types.ts";
import { VmCopies, VmReport } from "./vm-messages.ts";

export const PROTOCOL_VERSION = 1;

// "join" is the joiners' shared topic segment (bollard/v1/<c>/join/...), never a node.
const name = z.string().regex(/^(?!join$)[a-z][a-z0-9-]{0,30}$/, "a node name (a-z, 0-9, -; not \"join\")");
const count = z.number().int().nonnegative();

/** A Mosquitto password hash ($7$ = PBKDF2-SHA512): never the password itself. */
const passHash = z.string().regex(/^\$7\$\d{1,7}\$[A-Za-z0-9+/=]{4,64}\$[A-Za-z0-9+/=]{20,200}$/, "a mosquitto $7$ password hash");

/**
 * One member of the replicated cluster config. `bus` is its broker, host:port. `pass` is the
 * hash of the bus password it got when it joined; a founder without one uses the password
 * derived from the join token (bus/credentials.ts).
 */
export const Member = z.object({ name, bus: z.string().min(3).max(300), pass: passHash.optional() }).strict();
export type Member = z.infer<typeof Member>;

/** The replicated register (DESIGN §4): the only state the cluster agrees on. */
export const ClusterConfig = z
  .object({
    epoch: count,
    term: count,
    members: z.array(Member).max(15),
    /** service -> node that holds it (mysql primary, redis master, vip, vm:<id>) */
    assignments: z.record(z.string().max(64), name),
    /** HA bookkeeping the next leader must know: fenced nodes, maintenance, anti-flapping (ha/flags.ts) */
    flags: z.record(z.string().max(96), z.string().max(300)).default({}),
  })
  .strict();
export type ClusterConfig = z.infer<typeof ClusterConfig>;

/** (term, epoch) of a config: the order in which configs supersede each other. */
export const CfgId = z.object({ term: count, epoch: count }).strict();
export type CfgId = z.infer<typeof CfgId>;

const base = { v: z.literal(PROTOCOL_VERSION) };

/** Every node's heartbeat, QoS 0. The leader's also carries the register and its commit. */
export const Hb = z
  .object({
    ...base,
    t: z.literal("hb"),
    term: count,
    role: z.enum(["follower", "candidate", "leader"]),
    leader: name.nullable(),
    cfg: CfgId,
    committed: count,
    quorum: z.boolean(),
    tilt: z.boolean(),
    wall: z.number(),
    /** leader only: heartbeat round, acknowledged by followers to renew the lease */
    seq: count.optional(),
    config: ClusterConfig.optional(),
    commit: CfgId.optional(),
  })
  .strict();

/** A follower's acknowledgement of a leader round, sent after persisting what it carried. */
export const Ack = z.object({ ...base, t: z.literal("ack"), term: count, seq: count, cfg: CfgId }).strict();

export const VoteReq = z
  .object({ ...base, t: z.literal("vote"), pre: z.boolean(), term: count, cfg: CfgId })
  .strict();

/** `leaseWait`: an upper bound, in real ms, on how long a lease this voter supported may still run. */
export const VoteResp = z
  .object({
    ...base,
    t: z.literal("voted"),
    pre: z.boolean(),
    term: count,
    granted: z.boolean(),
    leaseWait: z.number().nonnegative().max(600_000),
    reason: z.string().max(200).optional(),
  })
  .strict();

/** Operator or agent command, forwarded to the leader. */
export const Command = z.discriminatedUnion("op", [
  z.object({ op: z.literal("assign"), service: z.string().min(1).max(64), node: name }).strict(),
  z.object({ op: z.literal("unassign"), service: z.string().min(1).max(64) }).strict(),
  z.object({ op: z.literal("add"), member: Member }).strict(),
  z.object({ op: z.literal("remove"), node: name }).strict(),
  /** a member that lost its state joined again: new broker address and credentials */
  z.object({ op: z.literal("readmit"), member: Member }).strict(),
  /** a member's new bus password (its hash), sent by that member only: a founder's
   *  token-derived password rotated to a random one once the cluster has formed (bus/rotation.ts) */
  z.object({ op: z.literal("rekey"), node: name, pass: passHash }).strict(),
  /** several assignments and flags changed in one epoch (a flag set to null is removed) */
  z
    .object({
      op: z.literal("apply"),
      why: z.string().max(200),
      assign: z.record(z.string().max(64), name).optional(),
      flags: z.record(z.string().max(96), z.string().max(300).nullable()).optional(),
    })
    .strict(),
]);
export type Command = z.infer<typeof Command>;

export const CmdReq = z
  .object({ ...base, t: z.literal("cmd"), id: z.string().min(1).max(64), cmd: Command })
  .strict();
export const CmdResp = z
  .object({
    ...base,
    t: z.literal("cmd-result"),
    id: z.string().min(1).max(64),
    status: z.enum(["ok", "error"]),
    epoch: count.optional(),
    error: z.string().max(500).optional(),
  })
  .strict();

// Auto-join (issue 3). The token never travels: the joiner proves it holds it with an HMAC
// over a nonce the leader chose (and one of its own), and the leader's answer carries an
// HMAC the joiner checks in turn. Joiners publish under bollard/v1/<c>/join/<node>/...;
// the leader answers under its own prefix, bollard/v1/<c>/<leader>/join/<node>.
const nonce = z.string().regex(/^[0-9a-f]{32}$/, "32 hex digits");
const mac = z.string().regex(/^[0-9a-f]{64}$/, "an HMAC-SHA256, 64 hex digits");

export const JoinHello = z.object({ ...base, t: z.literal("join-hello"), node: name, nonce }).strict();
export const JoinChallenge = z.object({ ...base, t: z.literal("join-challenge"), node: name, nonce, leader: name }).strict();
export const JoinProof = z
  .object({ ...base, t: z.literal("join-proof"), node: name, bus: z.string().min(3).max(300), pass: passHash, joinerNonce: nonce, leaderNonce: nonce, mac })
  .strict();
export const JoinResult = z
  .object({ ...base, t: z.literal("join-result"), node: name, status: z.enum(["ok", "refused"]), reason: z.string().max(300), epoch: count.optional(), joinerNonce: nonce, mac })
  .strict();
export type JoinHello = z.infer<typeof JoinHello>;
export type JoinChallenge = z.infer<typeof JoinChallenge>;
export type JoinProof = z.infer<typeof JoinProof>;
export type JoinResult = z.infer<typeof JoinResult>;

// What each node's local resource manager reports about what it runs (ha/local.ts): sent to
// every peer twice a second and at once on a change, so the leader picks candidates and
// follows failover steps from fresh facts.
const pos = z.string().max(4096);
export const DbReport = z
  .object({
    up: z.boolean(),
    role: z.enum(["primary", "replica", "none"]),
    writable: z.boolean(),
    /** MySQL: GTID set received (relay log); Redis: replication offset, as a decimal string */
    received: pos,
    /** MySQL: GTID set applied; Redis: same as received */
    applied: pos,
    source: name.nullable(),
    /** set when this node holds itself out of replication: why (e.g. the extra transactions) */
    heldOut: z.string().max(500).nullable(),
    /** timings of the last local failover steps, ms (drain, promote, repoint, demote) */
    steps: z.record(z.string().max(32), z.number().nonnegative()).optional(),
    /** the server's incarnation: it changes whenever the server may have restarted (MySQL: a
     *  new connection to it; Redis: its run_id). The leader confirms one as primary (inst:SVC). */
    inst: z.string().max(64).optional(),
    /** a replica: ms since anything (an event or a replication heartbeat) last came from its
     *  source; null when not replicating or unknown */
    recvAgoMs: z.number().nonnegative().nullable().optional(),
    /** the local server has not answered for this long (ms); absent while it answers */
    downMs: z.number().nonnegative().optional(),
    /** the local agent fenced its unanswering server: what proves it cannot write any more */
    fenced: z.string().max(300).optional(),
    /** an action that keeps failing here ("promote: <error>"), after a bounded number of tries */
    stuck: z.string().max(300).optional(),
    /** what the last promotion here dropped: an event group that never arrived whole (its GTID) */
    discarded: z.string().max(300).optional(),
  })
  .strict();
export type DbReport = z.infer<typeof DbReport>;

export const ResReport = z
  .object({
    ...base,
    t: z.literal("res"),
    mysql: DbReport.nullable(),
    redis: DbReport.nullable(),
    /** where this node's portal routes writes; null: nowhere (self-fenced or no primary) */
    portal: z.object({ mysql: name.nullable(), redis: name.nullable() }).strict(),
    vip: z.boolean(),
    selfFenced: z.boolean(),
    /** this node's portal answers its health check (and, on the VIP holder, through the VIP) */
    portalOk: z.boolean().optional(),
  })
  .strict();
export type ResReport = z.infer<typeof ResReport>;
export const ResQuery = z.object({ ...base, t: z.literal("res-query") }).strict();

// An operator on one node reads another node's logs or events through the bus (bollard logs --node).
export const FetchReq = z
  .object({
    ...base, t: z.literal("fetch"), id: z.string().min(1).max(64), what: z.enum(["logs", "events", "samples"]),
    n: z.number().int().min(1).max(2000), level: z.enum(["debug", "info", "warn", "error"]).optional(), since: z.string().max(40).optional(),
  })
  .strict();
export const FetchResp = z
  .object({ ...base, t: z.literal("fetched"), id: z.string().min(1).max(64), items: z.array(z.record(z.string(), z.unknown())).max(2000), truncated: z.boolean() })
  .strict();
export type FetchReq = z.infer<typeof FetchReq>;
export type FetchResp = z.infer<typeof FetchResp>;

// An operator on one node acknowledges an alarm that another node raised (`bollard alarms
// ack`): the node that raised it applies the ack to its own alarm engine and answers
// (alarms/remote-ack.ts). `id` pairs the answer with its request.
const alarmId = z.string().regex(ALARM_ID_RE, "an alarm id ([A-Za-z0-9._:-], 1-128)");
const who = z.string().regex(ACKED_BY_RE, "1-100 printable ASCII characters");
export const AlarmAckReq = z.object({ ...base, t: z.literal("alarm-ack"), id: z.string().min(1).max(64), alarm: alarmId, who }).strict();
/** ok: the alarm is acknowledged, by `ackedBy` at `ackedAt` (wall ms; the first ack's, when it already was) */
export const AlarmAckResp = z
  .object({
    ...base, t: z.literal("alarm-acked"), id: z.string().min(1).max(64), alarm: alarmId, status: z.enum(["ok", "error"]),
    ackedBy: who.nullable(), ackedAt: count.nullable(), error: z.string().max(500).optional(),
  })
  .strict();
export type AlarmAckReq = z.infer<typeof AlarmAckReq>;
export type AlarmAckResp = z.infer<typeof AlarmAckResp>;

// The rolling upgrade of the agent bundle (agent/upgrade/, docs/upgrade.md). New message types
// only (docs/bus.md "Versions"): an agent older than them drops them as schema rejects and
// announces no `upgrade` in its retained state, and `bollard upgrade` refuses to start.
const sha = z.string().regex(/^[0-9a-f]{64}$/, "a sha256, 64 hex digits");
const rpcId = z.string().min(1).max(64);
/** to the node to upgrade: stage a bundle (fetched from `from`), start its trial, bless it, roll it back */
export const UpgradeReq = z
  .object({
    ...base, t: z.literal("upg"), id: rpcId, op: z.enum(["stage", "switch", "bless", "rollback", "image"]), sha,
    from: name.optional(), deadlineMs: z.number().int().min(1000).max(3_600_000).optional(), why: z.string().max(300).optional(),
    // op image (an A/B image upgrade of the node, docs/upgrade.md): the image file on that node; sha is its root's
    path: z.string().max(1024).regex(/^\//).optional(),
  })
  .strict();
export const UpgradeResp = z
  .object({ ...base, t: z.literal("upg-result"), id: rpcId, status: z.enum(["ok", "error"]), detail: z.string().max(300).optional(), error: z.string().max(500).optional() })
  .strict();
/** one piece of a bundle: asked of the node that offers it, answered with base64 data */
export const BundleGet = z.object({ ...base, t: z.literal("bundle-get"), id: rpcId, sha, offset: count }).strict();
export const BundlePart = z
  .object({ ...base, t: z.literal("bundle-part"), id: rpcId, sha, offset: count, total: count, data: z.string().max(56_000), error: z.string().max(300).optional() })
  .strict();
export type UpgradeReq = z.infer<typeof UpgradeReq>;
export type UpgradeResp = z.infer<typeof UpgradeResp>;
export type BundleGet = z.infer<typeof BundleGet>;
export type BundlePart = z.infer<typeof BundlePart>;
// N+1 readiness (issue 17 item 3, docs/readiness.md): what each node measured, retained on
// `<node>/ready` so every node judges from everyone's checks. Not a message: a retained body,
// validated by its reader (runtime/readiness.ts).
const check = z.object({ ok: z.boolean(), at: count, detail: z.string().max(400) }).strict();
export const FenceCheck = check;
export type FenceCheck = z.infer<typeof check>;
export const Measured = z
  .object({ at: count, totalMs: z.number().nonnegative(), steps: z.record(z.string().max(32), z.number().nonnegative()) })
  .strict();
export type Measured = z.infer<typeof Measured>;
export const ReadyBody = z
  .object({
    v: z.literal(PROTOCOL_VERSION),
    /** wall ms it was made */
    at: count,
    /** this node's checks of the other nodes' fence paths: IPMI power status, switch ports' SNMP write access */
    fence: z.record(name, z.object({ ipmi: check.optional(), ports: check.optional() }).strict()),
    /** MySQL's semi-sync master side on this node while it is the primary (Rpl_semi_sync_master_status, _clients) */
    semiSync: z.object({ on: z.boolean(), clients: count, at: count }).strict().nullable(),
    /** /proc/meminfo MemTotal and MemAvailable, bytes */
    mem: z.object({ total: count, available: count }).strict().nullable(),
    /** the last failover of each service this node led, step by step (its event log) */
    measured: z.record(z.string().max(16), Measured),
    /** the lease wait of the last election this node won ("lease usable in N ms") */
    leaseWaitMs: z.number().nonnegative().max(600_000).nullable(),
  })
  .strict();
export type ReadyBody = z.infer<typeof ReadyBody>;

export const Message = z.discriminatedUnion("t", [
  Hb, Ack, VoteReq, VoteResp, CmdReq, CmdResp, JoinHello, JoinChallenge, JoinProof, JoinResult, ResReport, ResQuery, FetchReq, FetchResp,
  AlarmAckReq, AlarmAckResp, VmReport, VmCopies, UpgradeReq, UpgradeResp, BundleGet, BundlePart,
]);
export type Message = z.infer<typeof Message>;
export type Hb = z.infer<typeof Hb>;
export type Ack = z.infer<typeof Ack>;
export type VoteReq = z.infer<typeof VoteReq>;
export type VoteResp = z.infer<typeof VoteResp>;
export type CmdReq = z.infer<typeof CmdReq>;
export type CmdResp = z.infer<typeof CmdResp>;

/** Largest payload accepted from the wire, in bytes. */
export const MAX_PAYLOAD = 64 * 1024;
