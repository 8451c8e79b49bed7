// What the acting leader does besides deciding (ha/manager.ts HaAction): commits, queries,
// fences and unfences through the fence levels, and the data-path probes of silent holders
// (issue 20 item 4): while a node that holds MySQL or Redis is not heard, every node (so that a
// leader elected meanwhile has the answers already) asks its servers directly, every
// PROBE_EVERY_MS, whether they still answer as primaries. A stalled agent's node still does; a
// powered-off, cut-off or restarted one does not.
import { connect } from "node:net";
import { readFileSync } from "node:fs";
import mysql from "mysql2/promise";
import type { Message } from "../bus/messages.ts";
import { PROTOCOL_VERSION } from "../bus/messages.ts";
import type { ClusterNode } from "../cluster/node.ts";
import type { NodeView } from "../cluster/view.ts";
import type { Config } from "../config/schema.ts";
import type { Logger } from "../env/env.ts";
import { fenceNode, realFenceDeps, unfence, type NodeFenceConfig } from "../fence/fence.ts";
import { probeTargets, type HaAction, type HaManager } from "../ha/manager.ts";
import type { DataPath } from "../ha/types.ts";

/** a probe of a silent holder is started this often */
const PROBE_EVERY_MS = 200;
/** and gives up after this long (a powered-off node does not answer a SYN) */
const PROBE_TIMEOUT_MS = 400;

export interface LeaderDeps {
  config: Config;
  node: ClusterNode;
  send(to: string, msg: Message): void;
  log: Logger;
  event(kind: string, detail: string, fields?: Record<string, unknown>): void;
}

export class LeaderIo {
  private readonly c: NonNullable<Config["ha"]>;
  /** fences in flight, by node: called off only when this node stops leading */
  private readonly fencing = new Map<string, AbortController>();
  readonly probes = new Map<string, DataPath>();
  private readonly probing = new Map<string, number>();

  constructor(private readonly d: LeaderDeps, private readonly mgr: HaManager) {
    this.c = d.config.ha!;
  }

  async act(a: HaAction): Promise<void> {
    if (a.kind === "query") return this.d.send("*", { v: PROTOCOL_VERSION, t: "res-query" });
    if (a.kind === "commit") return this.d.node.command(a.cmd, (r) => this.mgr.commitDone(r.status === "ok", r.error, a.own));
    const cfg = this.fenceConfig(a.node);
    const deps = realFenceDeps(this.d.log);
    if (a.kind === "unfence") {
      const r = await unfence({ node: a.node, config: cfg }, { deps, onProof: (p) => this.d.event("unfence", `${a.node} ${p.level}: ${p.detail}`) });
      this.d.event("unfence", `${a.node} ${r.ok ? "unfenced" : "NOT unfenced"}`);
      return;
    }
    if (a.kind === "abort-fence") return this.abort(a.node, a.why);
    const t = this.d.config.timing;
    this.d.event("fence", `fencing ${a.node}: last heard ${a.lastContactAgoMs} ms ago`);
    const ac = new AbortController();
    this.fencing.get(a.node)?.abort(new Error("superseded by a new fence"));
    this.fencing.set(a.node, ac);
    const r = await fenceNode({ node: a.node, config: cfg, lastContactMs: performance.now() - Math.max(0, a.lastContactAgoMs) }, {
      deps, signal: ac.signal, timing: { quorumLossMs: t.quorumLossMs, watchdogMs: this.c.ha.watchdog_ms, marginMs: this.c.ha.fence_margin_ms, maxDrift: t.maxDrift },
      onProof: (p) => this.d.event("fence", `${a.node} level ${p.level} ${p.ok ? "CONFIRMED" : "not confirmed"} in ${p.ms} ms: ${p.detail}`, { node: a.node, level: p.level, ok: p.ok, ms: p.ms }),
    });
    if (this.fencing.get(a.node) === ac) this.fencing.delete(a.node);
    this.mgr.fenceDone(a.node, r.fenced, r.proofs, performance.now(), a.id);
  }

  /** This node stopped leading: fence levels not started yet are called off (what was sent is sent). */
  stopLeading(why: string): void {
    for (const [n, ac] of this.fencing) { this.d.event("fence", `the fence of ${n} stops at the level it reached: ${why}`); ac.abort(new Error(why)); }
    this.fencing.clear();
  }

  private abort(node: string, why: string): void {
    const ac = this.fencing.get(node);
    if (!ac) return;
    this.fencing.delete(node);
    this.d.event("fence", `calling off the fence of ${node}: ${why}`);
    ac.abort(new Error(why));
  }

  /** Starts the probes due now (probeTargets) and forgets nodes that are heard again. */
  probe(view: NodeView, now: number): void {
    const targets = probeTargets(view);
    for (const n of [...this.probes.keys()]) if (!targets.includes(n)) this.probes.delete(n);
    for (const n of targets) {
      if (this.probing.has(n) && now - this.probing.get(n)! < PROBE_EVERY_MS) continue;
      this.probing.set(n, now);
      const held = (["mysql", "redis"] as const).filter((s) => view.committed.assignments[s] === n);
      void Promise.all(held.map((s) => (s === "mysql" ? this.mysqlPrimary(n) : this.redisPrimary(n)))).then((r) => {
        if (!targets.includes(n)) return;
        const prev = this.probes.get(n) ?? { okAt: null, failAt: null };
        this.probes.set(n, r.length && r.every(Boolean) ? { ...prev, okAt: now } : { ...prev, failAt: now });
      });
    }
  }

  /** The node's MySQL answers and is writable (read_only off): it still is the primary. */
  private async mysqlPrimary(node: string): Promise<boolean> {
    const m = this.c.mysql;
    const host = this.c.ha.nodes[node]?.address;
    if (!m || !host) return false;
    let c: mysql.Connection | null = null;
    const timer = new Promise<false>((r) => setTimeout(() => r(false), PROBE_TIMEOUT_MS).unref());
    const probe = (async () => {
      try {
        c = await mysql.createConnection({ host, port: m.port, user: m.repl_user, password: readFileSync(m.repl_password_file, "utf8").trim(), connectTimeout: PROBE_TIMEOUT_MS });
        const [rows] = await c.query("SELECT @@GLOBAL.read_only AS ro");
        return Number((rows as { ro?: unknown }[])[0]?.ro) === 0;
      } catch {
        return false;
      }
    })();
    try {
      return await Promise.race([probe, timer]);
    } finally {
      void probe.finally(() => (c as mysql.Connection | null)?.destroy());
    }
  }

  /** The node's Redis answers ROLE with "master" (RESP over a bare socket: no client to set up). */
  private redisPrimary(node: string): Promise<boolean> {
    const r = this.c.redis;
    const host = this.c.ha.nodes[node]?.address;
    if (!r || !host) return Promise.resolve(false);
    const pw = r.password_file ? readFileSync(r.password_file, "utf8").trim() : null;
    const cmd = (...a: string[]) => `*${a.length}\r\n${a.map((x) => `$${Buffer.byteLength(x)}\r\n${x}\r\n`).join("")}`;
    return new Promise((resolve) => {
      const s = connect({ host, port: r.port });
      let buf = "";
      const done = (ok: boolean) => { s.destroy(); resolve(ok); };
      s.setTimeout(PROBE_TIMEOUT_MS, () => done(false));
      s.on("error", () => done(false));
      s.on("connect", () => s.write((pw ? cmd("AUTH", pw) : "") + cmd("ROLE")));
      s.on("data", (d) => {
        buf += d.toString("latin1");
        if (/-(ERR|NOAUTH|WRONGPASS)/.test(buf)) return done(false);
        if (/\$6\r\nmaster\r\n/.test(buf)) return done(true);
        if (/\$(5|7)\r\n(slave|replica)\r\n/.test(buf)) return done(false);
      });
    });
  }

  private fenceConfig(node: string): NodeFenceConfig {
    const n = this.c.ha.nodes[node];
    const sw = this.c.ha.switches;
    return {
      bmc: n?.bmc ? { host: n.bmc.host, port: n.bmc.port, user: n.bmc.user, passwordFile: n.bmc.password_file, cipher: n.bmc.cipher, timeoutS: n.bmc.timeout_s, retries: n.bmc.retries } : undefined,
      switchPorts: (n?.ports ?? []).map((p) => {
        const s = sw[p.switch];
        return { port: p.port, switch: { name: p.switch, host: s.host, port: s.port, version: s.version, community: s.community, writeCommunity: s.write_community, timeoutMs: s.timeout_ms, v3: s.v3 ? { user: s.v3.user, authKey: s.v3.auth_key, privKey: s.v3.priv_key, authProtocol: s.v3.auth_protocol, privProtocol: s.v3.priv_protocol } : undefined } };
      }),
    };
  }
}
