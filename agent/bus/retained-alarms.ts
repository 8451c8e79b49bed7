// Alarms on the bus (DESIGN §3, docs/alarms.md "MQTT"): this node's active alarms are
// retained at `<own prefix>/alarm/<id>` (an empty retained payload clears one
// [MQTT-3.3.1-6]) and re-published when the own broker reconnects; every broker's retained
// alarms are validated, held per broker (replaced when that broker reconnects) and handed to
// onAlarm receivers, late ones included.
import { parseAlarmPayload } from "../alarms/history.ts";
import type { Alarm } from "../alarms/types.ts";
import type { Delivery } from "./inbox.ts";

/** A retained alarm of node `from` (alarm null: cleared). id null: broker `from` (re)connected
 * or left: forget what was held from it; the alarms it retains follow. */
export type AlarmCb = (from: string, id: string | null, alarm: Alarm | null) => void;
/** Retained alarms held per broker beyond which more are dropped (a runaway peer). */
const MAX_ALARMS_PER_BROKER = 2000;

export interface RetainedAlarmsDeps {
  /** `<own prefix>/alarm/<id>`; throws on a bad id */
  topic(id: string): string;
  /** a retained QoS 1 publish to the own broker; false when it was dropped */
  publish(topic: string, payload: Buffer): boolean;
  delivery: Delivery;
}

export class RetainedAlarms {
  private readonly cbs = new Set<AlarmCb>();
  /** every broker's retained alarms, by broker then id (this node's own broker included) */
  private readonly held = new Map<string, Map<string, Alarm>>();
  /** this node's active alarms (payloads), re-published when the own broker reconnects */
  private readonly own = new Map<string, Buffer>();
  /** clears that could not be published (own broker down): sent on reconnect */
  private readonly pendingClears = new Set<string>();

  constructor(private readonly d: RetainedAlarmsDeps) {}

  /** This node's alarm `id`: `buf` while active, empty to clear it. `topic` is its topic. */
  publish(id: string, topic: string, buf: Buffer): void {
    if (buf.length) {
      this.own.set(id, buf);
      this.pendingClears.delete(id);
    } else {
      this.own.delete(id);
      this.pendingClears.add(id);
    }
    if (this.d.publish(topic, buf)) this.pendingClears.delete(id);
  }

  /** The own broker (re)connected: it may have lost its retained messages. */
  republish(): void {
    for (const [id, payload] of this.own) this.d.publish(this.d.topic(id), payload);
    for (const id of this.pendingClears) {
      if (this.d.publish(this.d.topic(id), Buffer.alloc(0))) this.pendingClears.delete(id);
    }
  }

  /** Registers a receiver of every broker's retained alarms, and hands it those held now.
   * Returns its removal. */
  onAlarm(cb: AlarmCb): () => void {
    const dl = this.d.delivery;
    this.cbs.add(cb);
    for (const [from, m] of this.held) {
      dl.call(() => cb(from, null, null), `alarms of ${from}`);
      for (const [id, a] of m) dl.call(() => cb(from, id, a), `alarm ${id} of ${from}`);
    }
    return () => this.cbs.delete(cb);
  }

  /** A retained alarm (or its clear) of node `from`, validated against its topic. */
  ingest(from: string, id: string, topic: string, payload: Buffer): void {
    const dl = this.d.delivery;
    const r = parseAlarmPayload(payload, from, id);
    if (!r.ok) {
      const reason = /over \d+ bytes/.test(r.error) ? "too-large" : /not JSON/.test(r.error) ? "not-json" : /version/.test(r.error) ? "wrong-version" : /body (id|reporter)/.test(r.error) ? "wrong-sender" : "schema";
      return dl.reject(from, reason, topic, r.error);
    }
    let held = this.held.get(from);
    if (r.value) {
      if (!held) this.held.set(from, (held = new Map()));
      if (!held.has(id) && held.size >= MAX_ALARMS_PER_BROKER) return dl.reject(from, "too-large", topic, `more than ${MAX_ALARMS_PER_BROKER} alarms retained`);
      held.set(id, r.value);
    } else {
      held?.delete(id);
    }
    dl.markDelivered();
    for (const cb of this.cbs) dl.call(() => cb(from, id, r.value), topic);
  }

  /** Broker `from` (re)connected or left: drop what was held from it. */
  forget(from: string): void {
    this.held.delete(from);
    for (const cb of this.cbs) this.d.delivery.call(() => cb(from, null, null), `alarms of ${from}`);
  }
}
