// What arrives from the brokers (DESIGN §3, docs/bus.md): topic and sender checks, decoding,
// delivery to the receivers, and the reject accounting. A message's sender is the broker it
// arrived from: node X's credentials may write only `bollard/v1/<cluster>/X/#` (broker ACL),
// and node X publishes only to broker X, so anything whose topic names another node than
// its broker is dropped as "wrong-sender". Nothing received from the wire can throw out of
// here: it is delivered, or counted and logged (once per sender per minute) and dropped.
import type { Logger } from "../env/env.ts";
import { DecodeStats, decode, decodeJson, type RejectReason } from "./codec.ts";
import type { Message } from "./messages.ts";
import { parseTopic } from "./topics.ts";

export type RetainedKind = "state" | "config" | "ready";
export type MessageCb = (from: string, msg: Message) => void;
export type RetainedCb = (from: string, kind: RetainedKind, body: unknown) => void;

/** What the receiving side of the retained alarms (retained-alarms.ts) needs of the inbox. */
export interface Delivery {
  reject(from: string, reason: RejectReason, topic: string, error: string): void;
  /** counts one message handed to receivers */
  markDelivered(): void;
  /** runs one receiver; a receiver that throws is logged */
  call(fn: () => void, topic: string): void;
}

export interface InboxDeps {
  cluster: string;
  node: string;
  /** the bus's logger ("bus") */
  log: Logger;
  /** monotonic milliseconds */
  now: () => number;
  /** a retained alarm (or its clear) of node `from`, its topic already checked */
  alarm(from: string, id: string, topic: string, payload: Buffer): void;
}

export class Inbox implements Delivery {
  readonly msgCbs = new Set<MessageCb>();
  readonly retainedCbs = new Set<RetainedCb>();
  /** messages that arrived from any broker */
  received = 0;
  /** messages handed to receivers */
  delivered = 0;
  private readonly rejects: DecodeStats;

  constructor(private readonly d: InboxDeps) {
    this.rejects = new DecodeStats(d.now);
  }

  markDelivered(): void {
    this.delivered++;
  }

  byReason(): Record<RejectReason, number> {
    return this.rejects.byReason();
  }

  bySender(): Record<string, number> {
    return this.rejects.bySender();
  }

  /** Everything that arrives from broker `from`: topic and sender checks, decoding, and delivery. */
  ingest(from: string, topic: string, payload: Buffer): void {
    const { cluster, node } = this.d;
    this.received++;
    const t = parseTopic(topic);
    if (!t || t.cluster !== cluster) return this.reject(from, "bad-topic", topic, "topic: expected a bollard topic of this cluster");
    if (t.kind === "join-req") return this.ingestJoin(from, t.node, t.step!, topic, payload);
    if (t.node !== from) {
      return this.reject(from, "wrong-sender", topic, `topic: names node "${t.node}" but arrived on broker "${from}"`);
    }
    // Own retained alarms (from before a restart) too: the watch clears those no longer active.
    if (t.kind === "alarm") return this.d.alarm(from, t.id!, topic, payload);
    if (t.node === node) {
      // Our own retained state/config from a previous run is expected; anything else under our
      // prefix was published by another connection with our name.
      if (t.kind === "state" || t.kind === "config" || t.kind === "ready") return;
      return this.reject(from, "wrong-sender", topic, `topic: our own prefix, published by another client (duplicate node "${t.node}"?)`);
    }
    switch (t.kind) {
      case "hb":
      case "rpc": {
        if (t.kind === "rpc" && t.to !== node) return this.reject(from, "bad-topic", topic, `topic: addressed to "${t.to}"`);
        const d = decode(payload);
        if (!d.ok) return this.reject(from, d.reason, topic, d.error);
        if (t.kind === "hb" && d.msg.t !== "hb") return this.reject(from, "schema", topic, `t: expected "hb" on an hb topic, got "${d.msg.t}"`);
        this.delivered++;
        for (const cb of this.msgCbs) this.call(() => cb(from, d.msg), topic);
        return;
      }
      case "state":
      case "config":
      case "ready": {
        const kind = t.kind;
        let body: unknown = null; // an empty retained payload clears the topic [MQTT-3.3.1-6]
        if (payload.length > 0) {
          const d = decodeJson(payload);
          if (!d.ok) return this.reject(from, d.reason, topic, d.error);
          body = d.body;
        }
        this.delivered++;
        for (const cb of this.retainedCbs) this.call(() => cb(from, kind, body), topic);
        return;
      }
      default:
        return this.reject(from, "bad-topic", topic, `topic: kind "${t.kind}" is not read by the agent`);
    }
  }

  /**
   * A joiner's hello or proof. Joiners share the "join" login, so the broker vouches for
   * nothing here: the body must name the joiner of its topic, and the core checks the
   * HMAC proof before anything changes.
   */
  private ingestJoin(broker: string, joiner: string, step: "hello" | "proof", topic: string, payload: Buffer): void {
    const d = decode(payload);
    if (!d.ok) return this.reject(`join:${joiner}`, d.reason, topic, d.error);
    if (d.msg.t !== `join-${step}` || (d.msg as { node?: string }).node !== joiner) {
      return this.reject(`join:${joiner}`, "wrong-sender", topic, `body: expected join-${step} from "${joiner}", got ${d.msg.t}`);
    }
    this.delivered++;
    void broker;
    for (const cb of this.msgCbs) this.call(() => cb(joiner, d.msg), topic);
  }

  reject(from: string, reason: RejectReason, topic: string, error: string): void {
    const r = this.rejects.reject(from, reason);
    if (r.log) this.d.log.warn(`dropped a message from broker "${from}": ${reason}: ${error}`, { from, reason, topic, suppressed: r.suppressed });
  }

  /** A receiver that throws is a bug in the receiver: logged, and the bus carries on. */
  call(fn: () => void, topic: string): void {
    try {
      fn();
    } catch (e) {
      this.d.log.error(`message handler failed on ${topic}: ${(e as Error)?.message ?? String(e)}`, { topic });
      this.d.log.debug("message handler stack", { stack: (e as Error)?.stack });
    }
  }
}
