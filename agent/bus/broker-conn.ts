// One connection to one member's broker (docs/bus.md "Connections and reconnection"):
// mqtt.js with MQTT 5, subscriptions made on every CONNACK, a bounded exponential reconnect,
// and one log line per transition (connected, lost, unreachable). MqttBus (mqtt.ts) holds
// one per member and decides what is published and what is accepted.
import type { IClientOptions, IClientPublishOptions, MqttClient } from "mqtt";
import type { Logger } from "../env/env.ts";
import { isTlsFault } from "./tls.ts";

/** One member's broker: its node name and its address, host:port. */
export interface BrokerRef {
  name: string;
  bus: string;
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

export interface BrokerConnDeps {
  ref: BrokerRef;
  log: Logger;
  now: () => number;
  connect: (url: string, opts: IClientOptions) => MqttClient;
  clientOptions: IClientOptions;
  reconnectMaxMs: number;
  subscriptions: { topic: string; qos: 0 | 1; nl: boolean }[];
  onMessage: (topic: string, payload: Buffer) => void;
  onConnect: () => void;
  /** TLS (mqtts://): clientOptions then carry the CA, key, certificate and the broker check */
  secure?: boolean;
  /** the passwords to log in with, preferred first; a refused CONNECT tries the next one (a
   *  password being rotated: bus/rotation.ts). Default: clientOptions.password alone */
  passwords?: () => string[];
}

/** First reconnect delay; it doubles per failed attempt up to reconnectMaxMs. */
const RECONNECT_MIN_MS = 100;
/** MQTT5 CONNACK reason codes (MQTT5 §3.2.2.2): 134 bad user name or password, 135 not authorized. */
const BAD_LOGIN = 134;
const NOT_AUTHORIZED = 135;


/**
 * One connection to one broker: connect, subscribe on every CONNACK, bounded exponential
 * reconnect, and one log line per transition (connected, lost, unreachable).
 */
export class BrokerConn {
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
  /** which of passwords() the next CONNECT uses */
  private pwIndex = 0;

  constructor(d: BrokerConnDeps) {
    this.d = d;
    this.ref = d.ref;
    this.since = 0;
  }

  start(): void {
    const url = brokerUrl(this.ref.bus, this.d.secure ?? false);
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
      const refused = err.code === BAD_LOGIN || err.code === NOT_AUTHORIZED;
      // Being rotated, the other password may be the one this broker knows now: try it next.
      if (refused && this.tryNextPassword(c)) {
        // said once per distinct refusal: a broker that refuses both would otherwise fill the log
        if (text !== this.lastError) this.d.log.info(`broker "${this.ref.name}": ${text}; trying the other bus password`, { broker: this.ref.name });
        this.lastError = text;
        return;
      }
      // A refused CONNECT (MQTT5 CONNACK 134 bad user name or password, 135 not authorized)
      // and a certificate that does not verify (ours or the broker's) are configuration or
      // security faults: logged at error level, once per distinct error.
      const loud = typeof err.code === "number" || isTlsFault(err.code);
      if (loud && text !== this.lastError) this.d.log.error(`broker "${this.ref.name}": ${text}`, { broker: this.ref.name, code: err.code });
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

  /** The password list changed (a rotation): the next CONNECT uses the preferred one. */
  passwordsChanged(): void {
    this.pwIndex = 0;
    const list = this.d.passwords?.() ?? [];
    if (this.client && list.length) this.client.options.password = list[0];
  }

  private tryNextPassword(c: MqttClient): boolean {
    const list = this.d.passwords?.() ?? [];
    if (list.length < 2) return false;
    this.pwIndex = (this.pwIndex + 1) % list.length;
    c.options.password = list[this.pwIndex];
    return this.pwIndex !== 0;
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

/** `host:port` or `[v6]:port` to an mqtt:// (mqtts:// with TLS) URL; null if it is not one. */
export function brokerUrl(bus: string, tls = false): string | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(bus);
  if (!m) return null;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return null;
  const scheme = tls ? "mqtts" : "mqtt";
  return m[1] ? `${scheme}://[${m[1]}]:${port}` : `${scheme}://${m[2]}:${port}`;
}
