// Acknowledging an alarm that another node raised (docs/alarms.md "Acknowledging"). Only
// the node whose engine raised an alarm can acknowledge it: its engine holds it, and its
// retained copy is the one the cluster sees. So `bollard alarms ack ID` on node1 for an
// alarm node2 raised asks node2 over the bus:
//
//   node1 -> bollard/v1/<c>/node1/rpc/node2   {"t":"alarm-ack","id":REQ,"alarm":ID,"who":WHO}
//   node2: AlarmService.ack(ID, WHO): raised -> acknowledged, history, retained publish, webhooks
//   node2 -> bollard/v1/<c>/node2/rpc/node1   {"t":"alarm-acked","id":REQ,"alarm":ID,"status":"ok",
//                                              "ackedBy":WHO,"ackedAt":MS}  (or status "error", error)
//
// The asking side waits at most `timeoutMs` per node, then reports that node as not
// answering. Time comes in through `timers`, the bus through `send`: no I/O of its own.
// Messages that fail the schema never get here (the bus counts them as `schema` rejects);
// answers that pass it but do not fit a request are counted here and logged.
import type { AlarmAckReq, AlarmAckResp, Message } from "../bus/messages.ts";
import { PROTOCOL_VERSION } from "../bus/messages.ts";
import type { Logger, TimerHandle } from "../env/env.ts";
import type { AckResult } from "./engine.ts";

export const ACK_TIMEOUT_MS = 3000;

export interface RemoteAckDeps {
  self: string;
  send(to: string, msg: Message): void;
  /** applies an ack to this node's engine and emits it (AlarmService.ack with the wall clock) */
  ack(alarm: string, who: string): AckResult;
  timers: { after(ms: number, fn: () => void): TimerHandle };
  /** a request id, unique among this node's requests (1-64 characters) */
  newId(): string;
  log: Logger;
  timeoutMs?: number;
}

/** One node's acknowledgement: who acknowledged it first, and when (wall ms). */
export interface RemoteAcked {
  node: string;
  ackedBy: string;
  ackedAt: number;
}

export interface ForwardResult {
  acked: RemoteAcked[];
  /** one line per node that did not acknowledge, naming it and why */
  errors: string[];
}

type NodeResult = { ok: true; acked: RemoteAcked } | { ok: false; error: string };

interface Waiting {
  node: string;
  alarm: string;
  timer: TimerHandle;
  settle(r: NodeResult): void;
}

export interface RemoteAckCounters {
  /** alarm-ack requests this node sent */
  sent: number;
  /** alarm-ack requests this node received and answered */
  answered: number;
  /** of those, answered with an error (unknown id, ...) */
  refused: number;
  /** requests of ours that got no answer in time */
  timeouts: number;
  /** answers that fit no waiting request (late, duplicate, from another node, or inconsistent) */
  rejected: number;
}

export class RemoteAck {
  readonly counters: RemoteAckCounters = { sent: 0, answered: 0, refused: 0, timeouts: 0, rejected: 0 };
  private readonly waiting = new Map<string, Waiting>();
  private readonly timeoutMs: number;

  constructor(private readonly d: RemoteAckDeps) {
    this.timeoutMs = d.timeoutMs ?? ACK_TIMEOUT_MS;
  }

  /**
   * Asks every node of `reporters` to acknowledge `alarm` as `who`. Resolves once each has
   * answered or timed out; never rejects.
   */
  async forward(alarm: string, who: string, reporters: string[]): Promise<ForwardResult> {
    const results = await Promise.all(reporters.map((node) => this.ask(node, alarm, who)));
    const out: ForwardResult = { acked: [], errors: [] };
    for (const r of results) {
      if (r.ok) out.acked.push(r.acked);
      else out.errors.push(r.error);
    }
    return out;
  }

  /** alarm-ack: apply and answer. alarm-acked: settle the request it answers. Others: ignored. */
  receive(from: string, msg: Message): void {
    if (msg.t === "alarm-ack") return this.onRequest(from, msg);
    if (msg.t === "alarm-acked") return this.onAnswer(from, msg);
  }

  /** Requests still waiting are settled as failed: the agent is stopping. */
  stop(): void {
    for (const [id, w] of this.waiting) {
      this.waiting.delete(id);
      w.timer.cancel();
      w.settle({ ok: false, error: `${w.node}: not answered: this agent is stopping` });
    }
  }

  private ask(node: string, alarm: string, who: string): Promise<NodeResult> {
    if (node === this.d.self) return Promise.resolve({ ok: false, error: `${node}: is this node` });
    const id = this.d.newId();
    return new Promise<NodeResult>((resolve) => {
      const timer = this.d.timers.after(this.timeoutMs, () => {
        if (!this.waiting.delete(id)) return;
        this.counters.timeouts++;
        this.d.log.warn(`alarm ack: ${node} did not answer within ${this.timeoutMs} ms`, { node, alarm });
        resolve({ ok: false, error: `${node} did not answer within ${this.timeoutMs} ms: it may not have acknowledged ${alarm}; run "bollard alarms ack ${alarm}" on ${node}` });
      });
      this.waiting.set(id, { node, alarm, timer, settle: resolve });
      const req: AlarmAckReq = { v: PROTOCOL_VERSION, t: "alarm-ack", id, alarm, who };
      this.counters.sent++;
      this.d.send(node, req);
    });
  }

  private onRequest(from: string, m: AlarmAckReq): void {
    let r: AckResult;
    try {
      r = this.d.ack(m.alarm, m.who);
    } catch (e) {
      r = { ok: false, error: `acknowledging failed on ${this.d.self}: ${(e as Error)?.message ?? String(e)}` };
    }
    const answer: AlarmAckResp = r.ok
      ? { v: PROTOCOL_VERSION, t: "alarm-acked", id: m.id, alarm: m.alarm, status: "ok", ackedBy: r.alarm.ackedBy, ackedAt: r.alarm.ackedAt }
      : { v: PROTOCOL_VERSION, t: "alarm-acked", id: m.id, alarm: m.alarm, status: "error", ackedBy: null, ackedAt: null, error: r.error.slice(0, 500) };
    this.counters.answered++;
    if (r.ok) this.d.log.info(`alarm ${m.alarm} acknowledged by ${r.alarm.ackedBy}, asked by ${from}`, { id: m.alarm, from, who: m.who });
    else {
      this.counters.refused++;
      this.d.log.info(`alarm ack from ${from} refused: ${r.error}`, { id: m.alarm, from });
    }
    this.d.send(from, answer);
  }

  private onAnswer(from: string, m: AlarmAckResp): void {
    const w = this.waiting.get(m.id);
    if (!w || w.node !== from || w.alarm !== m.alarm) {
      const why = !w ? "it answers no waiting request (late, after its timeout, or a duplicate)" : w.node !== from ? `the request went to ${w.node}` : `the request was for alarm ${w.alarm}`;
      return this.reject(from, m, why);
    }
    this.waiting.delete(m.id);
    w.timer.cancel();
    if (m.status === "error") return w.settle({ ok: false, error: m.error ?? `${from} refused, giving no reason` });
    if (m.ackedBy === null || m.ackedAt === null) {
      this.reject(from, m, 'status "ok" without ackedBy and ackedAt');
      return w.settle({ ok: false, error: `${from} answered "ok" without saying who acknowledged ${m.alarm}` });
    }
    w.settle({ ok: true, acked: { node: from, ackedBy: m.ackedBy, ackedAt: m.ackedAt } });
  }

  private reject(from: string, m: AlarmAckResp, why: string): void {
    this.counters.rejected++;
    this.d.log.warn(`dropped an alarm-acked from ${from} for ${m.alarm}: ${why}`, { from, id: m.alarm, req: m.id });
  }
}
