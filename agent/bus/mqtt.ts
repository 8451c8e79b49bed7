// The bus adapter (DESIGN §3): one MQTT 5 connection to every member's broker, its own
// included. The agent publishes only to its own broker, under its own prefix; it reads from
// all of them. A message's sender is the broker it arrived from: node X's credentials may
// write only `bollard/v1/<cluster>/X/#` (broker ACL), and node X publishes only to broker X,
// so anything whose topic names another node than its broker is dropped as "wrong-sender".
// Nothing received from the wire can throw out of here: it is delivered, or counted and
// logged (once per sender per minute) and dropped.
// Alarms (DESIGN §3): this node's active alarms are retained at `<own prefix>/alarm/<id>`
// (an empty retained payload clears one [MQTT-3.3.1-6]) and re-published when the own broker
// reconnects; every broker's retained alarms are validated, held per broker (replaced when
// that broker reconnects) and handed to onAlarm receivers, late ones included.
import mqtt from "mqtt";
import type { IClientOptions, IClientPublishOptions, MqttClient } from "mqtt";
import { parseAlarmPayload } from "../alarms/history.ts";
import type { Alarm } from "../alarms/types.ts";
import type { Logger } from "../env/env.ts";
import { DecodeStats, decode, decodeJson, encode, type RejectReason } from "./codec.ts";
import { MAX_PAYLOAD, type Message } from "./messages.ts";
import { buildTopic, isNodeName, parseTopic, subscriptionsFor } from "./topics.ts";

/** One member's broker: its node name and its address, host:port. */
export interface BrokerRef {
  name: string;
  bus: string;
}
export type RetainedKind = "state" | "config";

export interface MqttBusOptions {
  cluster: string;
  node: string;
  username: string;
  password: string;
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

export interface BrokerStats {
  name: string;
  bus: string;
  connected: boolean;
  /** successful connects after the first */
  reconnects: number;
  /** ms from losing this broker to being connected again, for the last reconnect */
  lastReconnectMs: number | null;
  received: number;
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

type MessageCb = (from: string, msg: Message) => void;
type RetainedCb = (from: string, kind: RetainedKind, body: unknown) => void;
/** A retained alarm of node `from` (alarm null: cleared). id null: broker `from` (re)connected
 * or left: forget what was held from it; the alarms it retains follow. */
export type AlarmCb = (from: string, id: string | null, alarm: Alarm | null) => void;
/** Retained alarms held per broker beyond which more are dropped (a runaway peer). */
const MAX_ALARMS_PER_BROKER = 2000;

/** Largest packet we let brokers send us (MQTT5 Maximum Packet Size, [MQTT-3.1.2-24]). */
const MAX_PACKET = 16 * MAX_PAYLOAD;
/** MQTT5 reason codes >= 0x80 are failures (MQTT5 §2.4); 0x87 = 135 "Not authorized". */
const NOT_AUTHORIZED = 135;

export class MqttBus {
  private readonly opts: MqttBusOptions;
  private readonly log: Logger;
  private readonly rejects: DecodeStats;
  private readonly conns = new Map<string, BrokerConn>();
  private readonly closing = new Set<Promise<void>>();
  private readonly msgCbs = new Set<MessageCb>();
  private readonly retainedCbs = new Set<RetainedCb>();
  /** the last body published per retained kind: republished whenever the own broker (re)connects */
  private readonly retained = new Map<RetainedKind, Buffer>();
  private readonly alarmCbs = new Set<AlarmCb>();
  /** every broker's retained alarms, by broker then id (this node's own broker included) */
  private readonly heldAlarms = new Map<string, Map<string, Alarm>>();
  /** this node's active alarms (payloads), re-published when the own broker reconnects */
  private readonly ownAlarms = new Map<string, Buffer>();
  /** clears that could not be published (own broker down): sent on reconnect */
  private readonly pendingClears = new Set<string>();
  private brokers: BrokerRef[];
  private state: "new" | "started" | "stopped" = "new";
  private counters = { received: 0, delivered: 0, sent: 0, dropped: 0, refused: 0 };
  private refusalLog = { last: null as number | null, suppressed: 0 };

  constructor(opts: MqttBusOptions) {
    this.opts = opts;
    this.log = opts.log.child("bus");
    this.rejects = new DecodeStats(opts.now);
    this.brokers = [...opts.brokers];
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
        this.forgetAlarms(name);
      }
    }
    for (const ref of this.brokers) if (!this.conns.has(ref.name)) this.openConn(ref);
    if (!want.has(this.opts.node)) this.log.warn(`own broker "${this.opts.node}" is not in the member list: nothing can be sent`);
  }

  /**
   * Sends `msg` to node `to`, or to every other member when `to` is "*". A broadcast hb goes
   * to `<own prefix>/hb` at QoS 0; any other message goes to `<own prefix>/rpc/<to>` at QoS 1,
   * once per addressee. Best effort: never throws, never queues while the own broker is down.
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
      this.publish(buildTopic({ cluster, node, kind: "rpc", to: t }), payload, 1, false);
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
    const buf = Buffer.from(payload, "utf8");
    if (buf.length) {
      this.ownAlarms.set(id, buf);
      this.pendingClears.delete(id);
    } else {
      this.ownAlarms.delete(id);
      this.pendingClears.add(id);
    }
    if (this.publish(topic, buf, 1, true)) this.pendingClears.delete(id);
  }

  /** Registers a receiver of every broker's retained alarms, and hands it those held now.
   * Returns its removal. */
  onAlarm(cb: AlarmCb): () => void {
    this.alarmCbs.add(cb);
    for (const [from, m] of this.heldAlarms) {
      this.call(() => cb(from, null, null), `alarms of ${from}`);
      for (const [id, a] of m) this.call(() => cb(from, id, a), `alarm ${id} of ${from}`);
    }
    return () => this.alarmCbs.delete(cb);
  }

  /** Registers a receiver of validated messages; returns its removal. */
  onMessage(cb: MessageCb): () => void {
    this.msgCbs.add(cb);
    return () => this.msgCbs.delete(cb);
  }

  /** Registers a receiver of peers' retained state/config (body null: cleared). Returns its removal. */
  onRetained(cb: RetainedCb): () => void {
    this.retainedCbs.add(cb);
    return () => this.retainedCbs.delete(cb);
  }

  stats(): BusStats {
    const brokers = [...this.conns.values()].map((c) => c.stats());
    return {
      ...this.counters,
      rejects: this.rejects.byReason(),
      rejectsBySender: this.rejects.bySender(),
      reconnects: brokers.reduce((n, b) => n + b.reconnects, 0),
      brokers,
    };
  }

  private openConn(ref: BrokerRef): void {
    const { cluster, node, username, password, now } = this.opts;
    const own = ref.name === node;
    const conn = new BrokerConn({
      ref,
      log: this.log,
      now,
      connect: (url, o) => mqtt.connect(url, o),
      clientOptions: {
        protocolVersion: 5,
        clientId: `bollard-${cluster}-${node}`,
        username,
        password,
        clean: true,
        keepalive: this.opts.keepaliveSec ?? 5,
        connectTimeout: this.opts.connectTimeoutMs ?? 2000,
        // Keep retrying after a refused CONNECT (e.g. a broker restarted with stale passwords).
        reconnectOnConnackError: true,
        // We subscribe on every CONNACK ourselves; QoS 0 is never queued while offline.
        resubscribe: false,
        queueQoSZero: false,
        properties: { sessionExpiryInterval: 0, maximumPacketSize: MAX_PACKET },
      },
      reconnectMaxMs: this.opts.reconnectMaxMs ?? 1000,
      // No Local [MQTT-3.8.3-3]: the own broker does not echo our own publishes back to us.
      subscriptions: subscriptionsFor(cluster, node).map((s) => ({ ...s, nl: true })),
      onMessage: (topic, payload) => this.onWire(conn, topic, payload),
      onConnect: () => {
        // its retained alarms arrive again after the SUBACK: drop what we held from it
        this.forgetAlarms(ref.name);
        if (!own) return;
        for (const [kind, payload] of this.retained) this.publish(buildTopic({ cluster, node, kind }), payload, 1, true);
        for (const [id, payload] of this.ownAlarms) this.publish(buildTopic({ cluster, node, kind: "alarm", id }), payload, 1, true);
        for (const id of this.pendingClears) {
          if (this.publish(buildTopic({ cluster, node, kind: "alarm", id }), Buffer.alloc(0), 1, true)) this.pendingClears.delete(id);
        }
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
    this.ingest(conn.ref.name, topic, payload);
  }

  /**
   * Everything that arrives from broker `from`: topic and sender checks, decoding, and
   * delivery. Public so the fuzz test drives the very path a broker's message takes.
   */
  ingest(from: string, topic: string, payload: Buffer): void {
    this.counters.received++;
    const t = parseTopic(topic);
    if (!t || t.cluster !== this.opts.cluster) return this.reject(from, "bad-topic", topic, "topic: expected a bollard topic of this cluster");
    if (t.kind === "join-req") return this.ingestJoin(from, t.node, t.step!, topic, payload);
    if (t.node !== from) {
      return this.reject(from, "wrong-sender", topic, `topic: names node "${t.node}" but arrived on broker "${from}"`);
    }
    // Own retained alarms (from before a restart) too: the watch clears those no longer active.
    if (t.kind === "alarm") return this.ingestAlarm(from, t.id!, topic, payload);
    if (t.node === this.opts.node) {
      // Our own retained state/config from a previous run is expected; anything else under our
      // prefix was published by another connection with our name.
      if (t.kind === "state" || t.kind === "config") return;
      return this.reject(from, "wrong-sender", topic, `topic: our own prefix, published by another client (duplicate node "${t.node}"?)`);
    }
    switch (t.kind) {
      case "hb":
      case "rpc": {
        if (t.kind === "rpc" && t.to !== this.opts.node) return this.reject(from, "bad-topic", topic, `topic: addressed to "${t.to}"`);
        const d = decode(payload);
        if (!d.ok) return this.reject(from, d.reason, topic, d.error);
        if (t.kind === "hb" && d.msg.t !== "hb") return this.reject(from, "schema", topic, `t: expected "hb" on an hb topic, got "${d.msg.t}"`);
        this.counters.delivered++;
        for (const cb of this.msgCbs) this.call(() => cb(from, d.msg), topic);
        return;
      }
      case "state":
      case "config": {
        const kind = t.kind;
        let body: unknown = null; // an empty retained payload clears the topic [MQTT-3.3.1-6]
        if (payload.length > 0) {
          const d = decodeJson(payload);
          if (!d.ok) return this.reject(from, d.reason, topic, d.error);
          body = d.body;
        }
        this.counters.delivered++;
        for (const cb of this.retainedCbs) this.call(() => cb(from, kind, body), topic);
        return;
      }
      default:
        return this.reject(from, "bad-topic", topic, `topic: kind "${t.kind}" is not read by the agent`);
    }
  }

  /** A retained alarm (or its clear) of node `from`, validated against its topic. */
  private ingestAlarm(from: string, id: string, topic: string, payload: Buffer): void {
    const r = parseAlarmPayload(payload, from, id);
    if (!r.ok) {
      const reason = /over \d+ bytes/.test(r.error) ? "too-large" : /not JSON/.test(r.error) ? "not-json" : /version/.test(r.error) ? "wrong-version" : /body (id|reporter)/.test(r.error) ? "wrong-sender" : "schema";
      return this.reject(from, reason, topic, r.error);
    }
    let held = this.heldAlarms.get(from);
    if (r.value) {
      if (!held) this.heldAlarms.set(from, (held = new Map()));
      if (!held.has(id) && held.size >= MAX_ALARMS_PER_BROKER) return this.reject(from, "too-large", topic, `more than ${MAX_ALARMS_PER_BROKER} alarms retained`);
      held.set(id, r.value);
    } else {
      held?.delete(id);
    }
    this.counters.delivered++;
    for (const cb of this.alarmCbs) this.call(() => cb(from, id, r.value), topic);
  }

  private forgetAlarms(from: string): void {
    this.heldAlarms.delete(from);
    for (const cb of this.alarmCbs) this.call(() => cb(from, null, null), `alarms of ${from}`);
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
    this.counters.delivered++;
    void broker;
    for (const cb of this.msgCbs) this.call(() => cb(joiner, d.msg), topic);
  }

  private reject(from: string, reason: RejectReason, topic: string, error: string): void {
    const r = this.rejects.reject(from, reason);
    if (r.log) this.log.warn(`dropped a message from broker "${from}": ${reason}: ${error}`, { from, reason, topic, suppressed: r.suppressed });
  }

  /** A receiver that throws is a bug in the receiver: logged, and the bus carries on. */
  private call(fn: () => void, topic: string): void {
    try {
      fn();
    } catch (e) {
      this.log.error(`message handler failed on ${topic}: ${(e as Error)?.message ?? String(e)}`, { topic });
      this.log.debug("message handler stack", { stack: (e as Error)?.stack });
    }
  }
}

interface BrokerConnDeps {
  ref: BrokerRef;
  log: Logger;
  now: () => number;
  connect: (url: string, opts: IClientOptions) => MqttClient;
  clientOptions: IClientOptions;
  reconnectMaxMs: number;
  subscriptions: { topic: string; qos: 0 | 1; nl: boolean }[];
  onMessage: (topic: string, payload: Buffer) => void;
  onConnect: () => void;
}

/** First reconnect delay; it doubles per failed attempt up to reconnectMaxMs. */
const RECONNECT_MIN_MS = 100;

/**
 * One connection to one broker: connect, subscribe on every CONNACK, bounded exponential
 * reconnect, and one log line per transition (connected, lost, unreachable).
 */
class BrokerConn {
  readonly ref: BrokerRef;
  /** QoS 1 publishes awaiting their PUBACK */
  inflight = 0;
  private readonly d: BrokerConnDeps;
  private client: MqttClient | null = null;
  private phase: "connecting" | "up" | "down" = "connecting";
  private since: number;
  private attempt = 0;
  private connects = 0;
  private lastReconnectMs: number | null = null;
  private received = 0;
  private lastError: string | null = null;

  constructor(d: BrokerConnDeps) {
    this.d = d;
    this.ref = d.ref;
    this.since = 0;
  }

  start(): void {
    const url = brokerUrl(this.ref.bus);
    this.since = this.d.now();
    if (!url) {
      this.phase = "down";
      this.d.log.error(`broker "${this.ref.name}": bad address ${JSON.stringify(this.ref.bus)}, expected host:port`, { broker: this.ref.name });
      return;
    }
    const min = Math.max(1, Math.min(RECONNECT_MIN_MS, this.d.reconnectMaxMs));
    const c = this.d.connect(url, { ...this.d.clientOptions, reconnectPeriod: min });
    this.client = c;
    c.on("connect", () => this.onConnect(c, min));
    // mqtt.js schedules its next attempt after `close` with options.reconnectPeriod, and emits
    // `reconnect` as each attempt starts: growing the period there sets the next delay.
    c.on("reconnect", () => {
      this.attempt++;
      c.options.reconnectPeriod = Math.min(this.d.reconnectMaxMs, min * 2 ** Math.min(this.attempt, 20));
    });
    c.on("close", () => this.onClose());
    c.on("error", (err: Error & { code?: unknown }) => {
      const text = typeof err.code === "number" ? `${err.message} (reason code ${err.code})` : err.message;
      // A refused CONNECT (MQTT5 CONNACK 134 bad user name or password, 135 not authorized)
      // is a configuration fault: logged at error level, once per distinct error.
      if (typeof err.code === "number" && text !== this.lastError) this.d.log.error(`broker "${this.ref.name}": ${text}`, { broker: this.ref.name });
      else this.d.log.debug(`broker "${this.ref.name}": ${text}`, { broker: this.ref.name });
      this.lastError = text;
    });
    c.on("disconnect", (p: { reasonCode?: number }) => {
      // Server-sent DISCONNECT (MQTT5 3.14), e.g. 139 server shutting down, 142 session taken over.
      this.d.log.info(`broker "${this.ref.name}" disconnected us: reason code ${p.reasonCode ?? 0}`, { broker: this.ref.name, reasonCode: p.reasonCode });
    });
    c.on("message", (topic: string, payload: Buffer) => {
      this.received++;
      this.d.onMessage(topic, payload);
    });
  }

  stop(): Promise<void> {
    const c = this.client;
    this.client = null;
    this.phase = "down";
    if (!c) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => c.end(true, {}, () => resolve()), 1000);
      // A graceful DISCONNECT when connected (MQTT5 §3.14); forced (socket closed) otherwise.
      c.end(!c.connected, {}, () => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  connected(): boolean {
    return this.phase === "up" && this.client !== null && this.client.connected;
  }

  publish(topic: string, payload: Buffer, opts: IClientPublishOptions, cb: (err?: Error) => void): void {
    const c = this.client;
    if (!c) return;
    const qos1 = opts.qos === 1;
    if (qos1) this.inflight++;
    let done = false;
    c.publish(topic, payload, opts, (err) => {
      if (done) return;
      done = true;
      if (qos1) this.inflight--;
      cb(err ?? undefined);
    });
  }

  stats(): BrokerStats {
    return {
      name: this.ref.name,
      bus: this.ref.bus,
      connected: this.connected(),
      reconnects: Math.max(0, this.connects - 1),
      lastReconnectMs: this.lastReconnectMs,
      received: this.received,
    };
  }

  private onConnect(c: MqttClient, min: number): void {
    if (this.client !== c) return;
    const t = this.d.now();
    this.attempt = 0;
    c.options.reconnectPeriod = min;
    this.connects++;
    if (this.connects > 1) this.lastReconnectMs = t - this.since;
    this.d.log.info(`connected to broker "${this.ref.name}"`, {
      broker: this.ref.name, bus: this.ref.bus, afterMs: Math.round(t - this.since), reconnect: this.connects > 1,
    });
    this.phase = "up";
    this.since = t;
    this.lastError = null;
    // Clean start: no session survives, so subscribe on every CONNACK [MQTT-3.1.2-4].
    const subs = Object.fromEntries(this.d.subscriptions.map((s) => [s.topic, { qos: s.qos, nl: s.nl }]));
    c.subscribe(subs, (err, granted) => {
      if (err) return this.d.log.warn(`broker "${this.ref.name}": subscribe failed: ${err.message}`, { broker: this.ref.name });
      // SUBACK reason codes >= 0x80 are refusals (MQTT5 3.9.3), e.g. 135 when the ACL denies read.
      for (const g of granted ?? []) {
        if (g.qos >= 0x80) this.d.log.error(`broker "${this.ref.name}" refused subscription ${g.topic}: reason code ${g.qos}`, { broker: this.ref.name });
      }
    });
    this.d.onConnect();
  }

  private onClose(): void {
    if (this.client === null) return;
    const t = this.d.now();
    if (this.phase === "up") {
      this.d.log.warn(`lost broker "${this.ref.name}"`, { broker: this.ref.name, upMs: Math.round(t - this.since) });
      this.since = t;
    } else if (this.phase === "connecting") {
      this.d.log.warn(`cannot reach broker "${this.ref.name}" at ${this.ref.bus}: ${this.lastError ?? "connection closed"}; retrying`, { broker: this.ref.name });
    }
    this.phase = "down";
  }
}

/** `host:port` or `[v6]:port` to an mqtt:// URL; null if it is not one. */
export function brokerUrl(bus: string): string | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(bus);
  if (!m) return null;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return null;
  return m[1] ? `mqtt://[${m[1]}]:${port}` : `mqtt://${m[2]}:${port}`;
}
