// The web console as a component (web/server.ts, issue 24): started last, only with
// `web.enabled`. It reads and acts through this agent's own control socket, as the CLI and
// the serial console do (web/api.ts), and follows changes with the console's data source
// (web/live.ts). The chart samples are taken on each host reading of the watch and served to
// any node through the bus's fetch (GET /samples?node=N on the control socket).
//
// The certificate: web.cert_file/key_file when given; else the node's certificate from the
// cluster CA, the bus's (bus.tls: cert_file, key_file; made by `bollard seed`, issue 17, naming
// the node's data and management addresses and the VIP, so the browser trusts it at either);
// else (a lab or test without the bus's TLS) a self-signed pair in <state_dir>/web/, made once
// with openssl at the first start.
//
// The VM consoles (web/vm-console.ts) exist with a vms: section: a console of a VM on another
// node is opened on that node's web console, its certificate checked against the cluster CA.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { historyDir } from "../alarms/history.ts";
import { HwPoller } from "../console/hw.ts";
import { emptyHardware, type Hardware, type Model } from "../console/model.ts";
import { DataSource, type Request } from "../console/source.ts";
import type { HostReading } from "../hw/host.ts";
import { Api } from "../web/api.ts";
import { loadAssets } from "../web/assets.ts";
import { AuditLog } from "../web/audit.ts";
import { Lockout, Sessions, sessionKey } from "../web/auth.ts";
import { LiveHub } from "../web/live.ts";
import { Samples, redisLagBytes } from "../web/samples.ts";
import { WebServer } from "../web/server.ts";
import { VmConsoles } from "../web/vm-console.ts";
import { vmPaths } from "../resources/qemu-args.ts";
import type { VmSnapshot } from "../console/screens-vms.ts";
import { usersOf, type User } from "../web/users.ts";
import type { ClusterComponents } from "./cluster-component.ts";
import type { AgentContext, Component } from "./component.ts";
import { controlRequest, type Route } from "./control.ts";
import type { HaComponent } from "./ha-component.ts";

export class WebComponent implements Component {
  readonly name = "web";
  server: WebServer | null = null;
  private hw: LazyHw | null = null;
  private consoles: VmConsoles | null = null;
  readonly samples = new Samples();

  constructor(
    private readonly ctx: AgentContext,
    private readonly cluster: ClusterComponents,
    private readonly ha: HaComponent,
    private readonly routes: Record<string, Route>,
  ) {}

  /** The watch calls this with each host reading: one chart sample (web/samples.ts). */
  onHost(h: HostReading, wall: number): void {
    if (!this.ctx.config.web.enabled) return;
    const fs = h.filesystems.ok ? Math.max(0, ...h.filesystems.value.map((f) => f.usedRatio)) : null;
    const snap = this.ha.runtime?.snapshot();
    const facts = snap?.facts;
    const src = facts?.redis?.source;
    this.samples.record(wall, {
      cpu: h.cpu.ok ? h.cpu.value.usedRatio : null,
      mem: h.memory.ok ? h.memory.value.usedRatio : null,
      disk: fs,
      mysqlLag: facts?.mysql?.role === "replica" ? (facts.mysql.repl?.lagSeconds ?? null) : null,
      redisLag: redisLagBytes(facts?.redis, src ? snap?.peers[src]?.redis : null),
    });
  }

  async start(): Promise<void> {
    const { config, log } = this.ctx;
    const web = config.web;
    if (!web.enabled) return;
    const wlog = log.child("web");
    const socket = config.control.socket;
    const request: Request = (method, path, body, timeoutMs) => controlRequest(socket, method, path, body, timeoutMs);
    const bt = config.bus.tls;
    const tls = ensureCert(config.stateDir, web.certFile ?? bt?.certFile ?? null, web.certFile ? web.keyFile : (bt?.keyFile ?? null), config.cluster.node, wlog);
    const secret = config.cluster.join?.token ?? localSecret(config.stateDir);
    const sessions = new Sessions(sessionKey(secret, config.cluster.name), web.session);
    const lockout = new Lockout(web.lockout);
    const users = (): Map<string, User> => usersOf(this.cluster.node?.view().committed.flags ?? {}).users;
    const members = () => this.cluster.node?.view().committed.members.map((m) => m.name) ?? config.cluster.members.map((m) => m.name);
    const audit = new AuditLog(historyDir(config.stateDir), config.cluster.node, (e) => this.cluster.events.record(e), wlog);
    const api = new Api({ request, users, audit, self: config.cluster.node, cluster: config.cluster.name, wall: Date.now });
    const nodes = config.ha?.ha.nodes ?? {};
    const model: Model = {
      now: Date.now(), self: config.cluster.node, members: config.cluster.members.map((m) => m.name), vip: config.ha?.ha.vip?.address ?? null,
      addresses: Object.fromEntries(Object.entries(nodes).map(([n, v]) => [n, v.address])),
      status: { live: false, body: null, wall: null, why: "not read yet" },
      alarms: { available: null, active: [], error: null }, logs: { node: "", lines: [], error: null }, events: { lines: [], errors: [] }, hw: emptyHardware(),
    };
    // the BMCs and switches are read only while a nodes page is open (live.ts `hw`); the
    // poller (the serial console's, console/hw.ts) is made then, not before
    const hw = new LazyHw(() => new HwPoller(config, config.stateDir, model.hw));
    this.hw = hw;
    const src = new DataSource(model, request, config.stateDir, hw as unknown as HwPoller, () => undefined);
    const hub = new LiveHub(src, () => ({ node: config.cluster.node, cluster: config.cluster.name, members: members(), vip: model.vip, addresses: model.addresses }), {
      every: (ms, fn) => {
        const t = setInterval(fn, ms);
        return { cancel: () => clearInterval(t) };
      },
      now: () => performance.now(),
    });
    // the samples of this node, for any node's charts (bus/fetch.ts)
    this.cluster.fetcher?.provide("samples", () => [this.samples.columns()]);
    this.routes["GET /samples"] = async (q) => {
      const node = q.get("node") ?? config.cluster.node;
      if (node === config.cluster.node) return { code: 200, body: { status: "ok", node, samples: this.samples.columns() } };
      const r = await this.cluster.fetcher!.get(node, { what: "samples", n: 1 });
      return { code: 200, body: { status: "ok", node, samples: r.items[0] ?? null } };
    };
    const vms = config.vms;
    const port = web.listen[0]!.port;
    const consoles = vms ? new VmConsoles({
      self: config.cluster.node,
      paths: (vm) => vmPaths(vms.dir, vm),
      placement: async (vm) => {
        const r = await request("GET", "/vms", undefined, 5000);
        if (r.code !== 200) throw new Error(`GET /vms: HTTP ${r.code}`);
        const s = r.body as VmSnapshot;
        return { known: s.catalog.defs.some((d) => d.name === vm), node: s.committed.assignments[`vm:${vm}`] ?? null };
      },
      peer: (n) => (vms.addresses[n] ? `https://${vms.addresses[n]}${port === 443 ? "" : `:${port}`}` : null),
      ca: bt ? readFileSync(bt.caFile, "utf8") : null,
      record: (c, what, result, detail) => void audit.record({ user: c.user.name, role: c.user.role, from: c.from, what, result, ...(detail ? { detail } : {}) }),
      log: wlog,
    }) : null;
    this.consoles = consoles;
    const server = new WebServer({
      tls, listen: web.listen, api, hub, assets: await loadAssets(), sessions, lockout, users, members, log: wlog, wall: Date.now,
      ...(consoles ? { vmConsole: (req, socket, head, caller, csrf) => consoles.handle(req, socket, head, caller, csrf) } : {}),
    });
    await server.start();
    this.server = server;
    wlog.info("web console listening", { on: server.addresses().map((a) => `${a.host}:${a.port}`).join(" ") });
  }

  async stop(): Promise<void> {
    delete this.routes["GET /samples"];
    this.cluster.fetcher?.provide("samples", null);
    this.consoles?.close();
    this.consoles = null;
    await this.server?.stop();
    this.server = null;
    this.hw?.close();
    this.hw = null;
  }
}

/** The part of HwPoller the data source uses, made at its first use. */
class LazyHw {
  private p: HwPoller | null = null;
  constructor(private readonly make: () => HwPoller) {}
  private get poller(): HwPoller {
    return (this.p ??= this.make());
  }
  get hw(): Hardware {
    return this.poller.hw;
  }
  readLocal(): void {
    this.poller.readLocal();
  }
  readRemote(wall: () => number): Promise<void> {
    return this.poller.readRemote(wall);
  }
  close(): void {
    this.p?.close();
  }
}

/** The pair to serve, per the order in the file's first comment. */
export function ensureCert(stateDir: string, certFile: string | null, keyFile: string | null, node: string, log: { info(m: string, f?: Record<string, unknown>): void }): { cert: string; key: string } {
  if (certFile && keyFile) return { cert: readFileSync(certFile, "utf8"), key: readFileSync(keyFile, "utf8") };
  const dir = join(stateDir, "web");
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  if (!existsSync(cert) || !existsSync(key)) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // P-256, ten years: the operator replaces it with the cluster CA's or their own (docs/web.md)
    execFileSync("openssl", ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "3650",
      "-subj", `/CN=${node}`, "-addext", `subjectAltName=DNS:${node}`, "-keyout", key, "-out", cert], { stdio: "ignore", timeout: 20_000 });
    log.info("made a self-signed web certificate", { cert });
  }
  return { cert: readFileSync(cert, "utf8"), key: readFileSync(key, "utf8") };
}

/** Without a join token: a key of this node's own (sessions then hold on this node only). */
function localSecret(stateDir: string): Buffer {
  const f = join(stateDir, "web", "session.key");
  if (existsSync(f)) return readFileSync(f);
  mkdirSync(join(stateDir, "web"), { recursive: true, mode: 0o700 });
  const k = randomBytes(32);
  writeFileSync(f, k, { mode: 0o600 });
  return k;
}
