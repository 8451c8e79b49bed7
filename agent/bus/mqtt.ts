// The bus adapter (DESIGN §3): one MQTT 5 connection to every member's broker, its own
// included (broker-conn.ts). The agent publishes only to its own broker, under its own
// prefix; it reads from all of them. What arrives is checked and delivered by the inbox
// (inbox.ts: a message's sender is the broker it arrived from); this node's retained alarms
// and every broker's are kept by retained-alarms.ts. Here: the connections to the members,
// what is published and when it is dropped, and the counters.
import mqtt from "mqtt";
import type { IClientPublishOptions } from "mqtt";
import type { Logger } from "../env/env.ts";
import { BrokerConn, type BrokerRef, type BrokerStats } from "./broker-conn.ts";
import { encode, type RejectReason } from "./codec.ts";
import { Inbox, type MessageCb, type RetainedCb, type RetainedKind } from "./inbox.ts";
import { MAX_PAYLOAD, type Message } from "./messages.ts";
import { RetainedAlarms, type AlarmCb } from "./retained-alarms.ts";
import { clientTls, type TlsMaterial } from "./tls.ts";
import { buildTopic, isNodeName, subscriptionsFor } from "./topics.ts";

export { brokerUrl, type BrokerRef, type BrokerStats } from "./broker-conn.ts";
export type { RetainedKind } from "./inbox.ts";
export type { AlarmCb } from "./retained-alarms.ts";

export interface MqttBusOptions {
  cluster: string;
  node: string;
  username: string;
  password: string;
  /** TLS to every broker: this node's key and certificate, the cluster CA (bus/tls.ts); null: plain MQTT */
  tls?: TlsMaterial | null;
  /** every member's broker, this node's own included (the entry whose name is `node`) */
  brokers: BrokerRef[];
  log: Logger;
  /** monotonic milliseconds */
  now: () => number;
  /** cap of the reconnect backoff (100 ms doubling up to this); default 1000 */
  reconnectMaxMs?: number;
  /** TCP connect + CONNACK deadline; default 2000 */
  connectTimeoutMs?: number;
  /** MQTT keep alive (MQTT5 §3.1.2.10): a silent broker is dropped after 1.5x this; default 5 s */
  keepaliveSec?: number;
  /** QoS 1 publishes awaiting their PUBACK beyond which new ones are dropped; default 100 */
  maxInflight?: number;
}

export interface BusStats {
  /** messages that arrived from any broker */
  received: number;
  /** messages handed to onMessage/onRetained */
  delivered: number;
  /** publishes handed to the own broker's connection */
  sent: number;
  /** publishes not attempted: own broker down, too many in flight, too large, bad address */
  dropped: number;
  /** publishes the broker refused (MQTT5 PUBACK reason code >= 0x80, e.g. 135) */
  refused: number;
  rejects: Record<RejectReason, number>;
  rejectsBySender: Record<string, number>;
  reconnects: number;
  brokers: BrokerStats[];
}

/** Largest packet we let brokers send us (MQTT5 Maximum Packet Size, [MQTT-3.1.2-24]). */
const MAX_PACKET = 16 * MAX_PAYLOAD;
/** MQTT5 reason codes >= 0x80 are failures (MQTT5 §2.4); 0x87 = 135 "Not authorized". */
const NOT_AUTHORIZED = 135;

export class MqttBus {
  private readonly opts: MqttBusOptions;
  private readonly log: Logger;
  private readonly inbox: Inbox;
  private readonly alarms: RetainedAlarms;
  private readonly conns = new Map<string, BrokerConn>();
  private readonly closing = new Set<Promise<void>>();
  /** the last body published per retained kind: republished whenever the own broker (re)connects */
  private readonly retained = new Map<RetainedKind, Buffer>();
  private brokers: BrokerRef[];
  /** the bus passwords, preferred first (more than one only while one is being rotated) */
  private passwords: string[];
  private state: "new" | "started" | "stopped" = "new";
  private counters = { sent: 0, dropped: 0, refused: 0 };
  private refusalLog = { last: null as number | null, suppressed: 0 };

  constructor(opts: MqttBusOptions) {
    const { cluster, node } = opts;
    this.opts = opts;
    this.log = opts.log.child("bus");
    this.brokers = [...opts.brokers];
    this.passwords = [opts.password];
    this.inbox = new Inbox({
      cluster, node, log: this.log, now: opts.now,
      alarm: (from, id, topic, payload) => this.alarms.ingest(from, id, topic, payload),
    });
    this.alarms = new RetainedAlarms({
      topic: (id) => buildTopic({ cluster, node, kind: "alarm", id }),
      publish: (topic, payload) => this.publish(topic, payload, 1, true),
      delivery: this.inbox,
    });
  }

  /** Connects to every broker. Does not wait: brokers that are down are retried forever. */
  start(): void {
    if (this.state !== "new") return;
    const { cluster, node } = this.opts;
    buildTopic({ cluster, node, kind: "hb" }); // throws on a bad cluster or node name (a config bug)
    this.state = "started";
    this.setBrokers(this.brokers);
  }

  /** Ends every connection. Idempotent; also ends a start() that is still connecting. */
  async stop(): Promise<void> {
    if (this.state === "stopped") return;
    this.state = "stopped";
    for (const c of this.conns.values()) this.closeConn(c);
    this.conns.clear();
    await Promise.all([...this.closing]);
  }

  /**
   * The passwords to log in with from now on, preferred first: every connection's next CONNECT
   * uses the first, and one a broker refuses tries the next (bus/rotation.ts). Open
   * connections stay open: a broker that no longer accepts the old one drops them itself.
   */
  setPasswords(list: string[]): void {
    const next = [...new Set(list.filter((p) => p.length > 0))];
    if (!next.length || JSON.stringify(next) === JSON.stringify(this.passwords)) return;
    this.passwords = next;
    for (const c of this.conns.values()) c.passwordsChanged();
  }

  /** Adds and removes broker connections to match the member list. */
  setBrokers(list: BrokerRef[]): void {
    const want = new Map<string, BrokerRef>();
    for (const b of list) {
      if (!isNodeName(b.name)) this.log.error(`ignoring broker with bad name ${JSON.stringify(b.name)}`, { broker: b.name });
      else want.set(b.name, { name: b.name, bus: b.bus });
    }
    this.brokers = [...want.values()];
    if (this.state !== "started") return;
    for (const [name, c] of this.conns) {
      if (want.get(name)?.bus !== c.ref.bus) {
        this.log.info(`broker "${name}" ${want.has(name) ? `moved to ${want.get(name)!.bus}` : "left the member list"}`, { broker: name });
        this.closeConn(c);
        this.conns.delete(name);
        this.alarms.forget(name);
      }
    }
    for (const ref of this.brokers) if (!this.conns.has(ref.name)) this.openConn(ref);
    if (!want.has(this.opts.node)) this.log.warn(`own broker "${this.opts.node}" is not in the member list: nothing can be sent`);
  }

  /**
   * Sends `msg` to node `to`, or to every other member when `to` is "*". A broadcast hb goes
   * to `<own prefix>/hb` at QoS 0; any other message goes to `<own prefix>/rpc/<to>`, once per
   * addressee, at QoS 1, except a follower's `ack` of a heartbeat round: QoS 0 like the hb it
   * answers (5 a second per follower; a lost one costs one lease renewal, the next round
   * renews, and it saves a PUBACK each way: docs/hardware.md "Idle cost"). Best effort: never
   * throws, never queues while the own broker is down.
   */
  send(to: string, msg: Message): void {
    const { cluster, node } = this.opts;
    if (to === "*" && msg.t === "hb") {
      this.publish(buildTopic({ cluster, node, kind: "hb" }), encode(msg), 0, false);
      return;
    }
    if (msg.t === "join-challenge" || msg.t === "join-result") {
      // to a joiner, which is not a member: under our own prefix, read by the "join" login
      if (isNodeName(to)) this.publish(buildTopic({ cluster, node, kind: "join", to }), encode(msg), 1, false);
      return;
    }
    const targets = to === "*" ? this.brokers.map((b) => b.name).filter((n) => n !== node) : [to];
    const payload = encode(msg);
    for (const t of targets) {
      if (!isNodeName(t) || t === node) {
        // A node never hears its own publishes (No Local, below): sending to itself is a bug.
        this.counters.dropped++;
        const why = t === node ? "that is this node" : "not a node name";
        this.log.error(`cannot send "${msg.t}" to ${JSON.stringify(t)}: ${why}`, { to: t });
        continue;
      }
      this.publish(buildTopic({ cluster, node, kind: "rpc", to: t }), payload, msg.t === "ack" ? 0 : 1, false);
    }
  }

  /** Publishes `body` as retained JSON on `<own prefix>/<kind>`; republished on every reconnect. */
  publishRetained(kind: RetainedKind, body: unknown): void {
    let payload: Buffer;
    try {
      payload = Buffer.from(JSON.stringify(body) ?? "null", "utf8");
    } catch (e) {
      this.counters.dropped++;
      this.log.error(`cannot publish ${kind}: not serialisable: ${(e as Error).message}`);
      return;
    }
    if (payload.length > MAX_PAYLOAD) {
      this.counters.dropped++;
      this.log.error(`not publishing ${kind}: ${payload.length} bytes, peers accept at most ${MAX_PAYLOAD}`);
      return;
    }
    this.retained.set(kind, payload);
    this.publish(buildTopic({ cluster: this.opts.cluster, node: this.opts.node, kind }), payload, 1, true);
  }

  /**
   * Publishes this node's alarm `id` retained at `<own prefix>/alarm/<id>`, QoS 1: `payload`
   * (alarms/history.ts alarmPayload) while it is active, "" to clear it. Kept and re-published
   * whenever the own broker reconnects (a restarted broker has lost its retained messages).
   */
  publishAlarm(id: string, payload: string): void {
    let topic: string;
    try {
      topic = buildTopic({ cluster: this.opts.cluster, node: this.opts.node, kind: "alarm", id });
    } catch (e) {
      this.counters.dropped++;
      this.log.error(`not publishing alarm ${JSON.stringify(id)}: ${(e as Error).message}`);
      return;
    }
    this.alarms.publish(id, topic, Buffer.from(payload, "utf8"));
  }

  /** Registers a receiver of every broker's retained alarms, and hands it those held now.
   * Returns its removal. */
  onAlarm(cb: AlarmCb): () => void {
    return this.alarms.onAlarm(cb);
  }

  /** Registers a receiver of validated messages; returns its removal. */
  onMessage(cb: MessageCb): () => void {
    this.inbox.msgCbs.add(cb);
    return () => this.inbox.msgCbs.delete(cb);
  }

  /** Registers a receiver of peers' retained state/config (body null: cleared). Returns its removal. */
  onRetained(cb: RetainedCb): () => void {
    this.inbox.retainedCbs.add(cb);
    return () => this.inbox.retainedCbs.delete(cb);
  }

  stats(): BusStats {
    const brokers = [...this.conns.values()].map((c) => c.stats());
    return {
      received: this.inbox.received,
      delivered: this.inbox.delivered,
      ...this.counters,
      rejects: this.inbox.byReason(),
      rejectsBySender: this.inbox.bySender(),
      reconnects: brokers.reduce((n, b) => n + b.reconnects, 0),
      brokers,
    };
  }

  private openConn(ref: BrokerRef): void {
    const { cluster, node, username, now, tls } = this.opts;
    const own = ref.name === node;
    const conn = new BrokerConn({
      ref,
      log: this.log,
      now,
      connect: (url, o) => mqtt.connect(url, o),
      secure: !!tls,
      passwords: () => this.passwords,
      clientOptions: {
        // TLS: our certificate, the cluster CA only, and the broker must be member ref.name
        ...(tls ? clientTls(tls, ref.name) : {}),
        protocolVersion: 5,
        clientId: `bollard-${cluster}-${node}`,
        username,
        password: this.passwords[0],
        clean: true,
        keepalive: this.opts.keepaliveSec ?? 5,
        connectTimeout: this.opts.connectTimeoutMs ?? 2000,
        // Keep retrying after a refused CONNECT (e.g. a broker restarted with stale passwords).
        reconnectOnConnackError: true,
        // We subscribe on every CONNACK ourselves; QoS 0 is never queued while offline.
        resubscribe: false,
        queueQoSZero: false,
        // mqtt-packet would otherwise build a cache of 65536 two-byte Buffers at the first
        // write (for message ids we never use at QoS 0): 7 MB of RSS (docs/hardware.md)
        writeCache: false,
        properties: { sessionExpiryInterval: 0, maximumPacketSize: MAX_PACKET },
      },
      reconnectMaxMs: this.opts.reconnectMaxMs ?? 1000,
      // No Local [MQTT-3.8.3-3]: the own broker does not echo our own publishes back to us.
      subscriptions: subscriptionsFor(cluster, node).map((s) => ({ ...s, nl: true })),
      onMessage: (topic, payload) => this.onWire(conn, topic, payload),
      onConnect: () => {
        // its retained alarms arrive again after the SUBACK: drop what we held from it
        this.alarms.forget(ref.name);
        if (!own) return;
        for (const [kind, payload] of this.retained) this.publish(buildTopic({ cluster, node, kind }), payload, 1, true);
        this.alarms.republish();
      },
    });
    this.conns.set(ref.name, conn);
    conn.start();
  }

  private closeConn(c: BrokerConn): void {
    const p = c.stop().finally(() => this.closing.delete(p));
    this.closing.add(p);
  }

  /** Hands one publish to the own broker's connection; false when it was dropped. */
  private publish(topic: string, payload: Buffer, qos: 0 | 1, retain: boolean): boolean {
    const own = this.conns.get(this.opts.node);
    if (this.state !== "started" || !own || !own.connected()) {
      this.counters.dropped++;
      return false;
    }
    if (payload.length > MAX_PAYLOAD) {
      this.counters.dropped++;
      this.log.error(`not publishing ${topic}: ${payload.length} bytes, peers accept at most ${MAX_PAYLOAD}`);
      return false;
    }
    const maxInflight = this.opts.maxInflight ?? 100;
    if (qos === 1 && own.inflight >= maxInflight) {
      this.counters.dropped++;
      return false;
    }
    this.counters.sent++;
    const opts: IClientPublishOptions = { qos, retain };
    own.publish(topic, payload, opts, (err) => {
      if (!err) return;
      const code = (err as { code?: unknown }).code;
      if (typeof code === "number" && code >= 0x80) this.onRefused(topic, code, err.message);
      else this.log.debug(`publish to ${topic} failed: ${err.message}`);
    });
    return true;
  }

  /** A PUBACK with a failure reason code (MQTT5 3.4.2.1), e.g. 135 when the ACL denies the topic. */
  private onRefused(topic: string, code: number, text: string): void {
    this.counters.refused++;
    const t = this.opts.now();
    const r = this.refusalLog;
    if (r.last !== null && t - r.last < 60_000) {
      r.suppressed++;
      return;
    }
    const hint = code === NOT_AUTHORIZED ? ` (check that username "${this.opts.username}" is node "${this.opts.node}")` : "";
    this.log.error(`broker "${this.opts.node}" refused publish to ${topic}: reason code ${code} ${text}${hint}`, {
      topic, reasonCode: code, suppressed: r.suppressed,
    });
    r.last = t;
    r.suppressed = 0;
  }

  private onWire(conn: BrokerConn, topic: string, payload: Buffer): void {
    if (this.conns.get(conn.ref.name) !== conn) return; // a connection being closed
    this.inbox.ingest(conn.ref.name, topic, payload);
  }

  /**
   * Everything that arrives from broker `from` (inbox.ts): topic and sender checks, decoding,
   * and delivery. Public so the fuzz test drives the very path a broker's message takes.
   */
  ingest(from: string, topic: string, payload: Buffer): void {
    this.inbox.ingest(from, topic, payload);
  }
}
