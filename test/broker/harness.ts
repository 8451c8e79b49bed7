// Real Mosquitto brokers for tests (STYLE: "what the lab can run for real is tested for
// real"). Broker i (1-based) is node<i>'s broker on loopback alias 127.0.1.<i> (all of
// 127/8 is loopback on Linux), on a free port, in its own temp dir, with the production
// ACL: node X writes only `bollard/v1/<cluster>/X/#`, everyone logged in reads `bollard/v1/#`,
// and `bollard-cli` only reads. Every process is started and killed by its PID.
// TLS as in production (docs/bus.md "TLS and the trust model"): a CA made for the harness,
// one key and certificate per node (and one for bollard-cli), and listeners that require a
// certificate of that CA; `tls: false` runs plain MQTT.
//
//   const h = await startBrokers({ nodes: 3 });
//   const bus = new MqttBus({ cluster: h.cluster, node: "node1", ...h.credentials("node1"), brokers: h.members(), ... });
//   mqtt.connect(h.url("node2"), { ...h.clientOptions("node1", "node2"), protocolVersion: 5 });  // a raw client
//   await h.stopBroker("node2"); await h.startBroker("node2");   // same address and port
//   await h.stop();                                               // kills all, removes temp dirs
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { renderAcl, renderPasswd } from "../../agent/bus/broker-auth.ts";
import { clientTls, type ClientTls, type TlsMaterial } from "../../agent/bus/tls.ts";
import { issueNodeCert, makeCa, type KeyCert } from "../../agent/provision/pki.ts";
import { mosquittoTlsLines } from "../../agent/provision/seed-apply.ts";

export const CLI_USER = "bollard-cli";

export interface HarnessOptions {
  /** cluster name in the ACL; default "test" */
  cluster?: string;
  /** number of brokers, node1..nodeN; default 3 */
  nodes?: number;
  mosquitto?: string;
  mosquittoPasswd?: string;
  /** deadline for a broker to accept TCP connections; default 5000 ms */
  readyTimeoutMs?: number;
  /** TLS with require_certificate (default true) */
  tls?: boolean;
  /** each broker gets its own password file, ACL and pid file, first written as the agents
   *  write them for the founders of a cluster with this join token (bus/broker-auth.ts): the
   *  agents then own them (bus.broker in their config). Default: one shared file, test users */
  agentAuth?: { token: Buffer };
}

export interface Broker {
  /** the node whose broker this is: node1..nodeN */
  name: string;
  host: string;
  port: number;
  /** host:port, as in the cluster config's `members[].bus` */
  bus: string;
  dir: string;
  /** with agentAuth: this broker's own files, for the agent's bus.broker */
  auth?: { passwordFile: string; aclFile: string; pidFile: string };
}

/** The ACL every node's broker runs (mosquitto.conf(5) "acl_file"). */
export function aclFor(cluster: string): string {
  return [
    // `pattern` lines apply to every user. A `topic` line before any `user` line would apply
    // to anonymous clients only (measured on mosquitto 2.0.11: nobody could read).
    "pattern read bollard/v1/#",
    `pattern write bollard/v1/${cluster}/%u/#`,
    // The CLI only reads: deny is checked before any grant, including the pattern above.
    `user ${CLI_USER}`,
    `topic deny bollard/v1/${cluster}/${CLI_USER}/#`,
    "",
  ].join("\n");
}

/** A broker's TLS files: the CA's certificate, its own key and certificate. */
export interface BrokerTlsFiles {
  ca: string;
  cert: string;
  key: string;
}

export function mosquittoConf(b: Broker, passwordFile: string, aclFile: string, tls: BrokerTlsFiles | null = null): string {
  return [
    ...(b.auth ? [`pid_file ${b.auth.pidFile}`] : []),
    "per_listener_settings false",
    `listener ${b.port} ${b.host}`,
    ...(tls ? mosquittoTlsLines(tls) : []),
    "allow_anonymous false",
    `password_file ${passwordFile}`,
    `acl_file ${aclFile}`,
    "persistence false",
    "user root",
    `log_dest file ${join(b.dir, "mosquitto.log")}`,
    "log_type error",
    "log_type warning",
    "log_type notice",
    "log_type information",
    "",
  ].join("\n");
}

/** True while a process with this PID exists (a reaped child is gone). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

export class BrokerHarness {
  readonly cluster: string;
  readonly brokers: Broker[] = [];
  private readonly opts: Required<Omit<HarnessOptions, "cluster" | "agentAuth">>;
  private readonly agentAuth: { token: Buffer } | null;
  private readonly passwords = new Map<string, string>();
  /** the harness's CA and every user's key and certificate (null without TLS) */
  ca: KeyCert | null = null;
  private readonly certs = new Map<string, KeyCert>();
  private readonly procs = new Map<string, ChildProcess>();
  private readonly started: number[] = [];
  private root: string | null = null;
  private readonly onExit = () => {
    for (const p of this.procs.values()) if (p.pid) try { process.kill(p.pid, "SIGKILL"); } catch { /* gone */ }
    if (this.root) rmSync(this.root, { recursive: true, force: true });
  };

  constructor(opts: HarnessOptions = {}) {
    this.cluster = opts.cluster ?? "test";
    this.opts = {
      nodes: opts.nodes ?? 3,
      mosquitto: opts.mosquitto ?? "/usr/sbin/mosquitto",
      mosquittoPasswd: opts.mosquittoPasswd ?? "mosquitto_passwd",
      readyTimeoutMs: opts.readyTimeoutMs ?? 5000,
      tls: opts.tls ?? true,
    };
    this.agentAuth = opts.agentAuth ?? null;
  }

  /** Writes the config and starts every broker; resolves once all accept TCP connections. */
  async start(): Promise<this> {
    if (this.root) throw new Error("harness already started");
    this.root = mkdtempSync(join(tmpdir(), "bollard-mq-"));
    process.on("exit", this.onExit); // a crashed test still leaves no broker behind
    const pw = join(this.root, "passwd");
    const acl = join(this.root, "acl");
    const users = [...Array.from({ length: this.opts.nodes }, (_, i) => `node${i + 1}`), CLI_USER];
    users.forEach((u, i) => {
      const p = randomBytes(12).toString("hex");
      this.passwords.set(u, p);
      execFileSync(this.opts.mosquittoPasswd, [...(i === 0 ? ["-c"] : []), "-b", pw, u, p], { stdio: "pipe" });
    });
    writeFileSync(acl, aclFor(this.cluster));
    if (this.opts.tls) {
      this.ca = makeCa(this.cluster);
      writeFileSync(join(this.root, "ca.crt"), this.ca.cert);
      users.forEach((u, i) => this.certs.set(u, issueNodeCert(this.ca!, { cluster: this.cluster, node: u, ips: u === CLI_USER ? [] : [`127.0.1.${i + 1}`] })));
    }
    try {
      for (let i = 1; i <= this.opts.nodes; i++) {
        const host = `127.0.1.${i}`;
        const dir = mkdtempSync(join(this.root, `node${i}-`));
        const b: Broker = { name: `node${i}`, host, port: 0, bus: "", dir };
        this.brokers.push(b);
        if (this.agentAuth) b.auth = { passwordFile: join(dir, "passwd"), aclFile: join(dir, "acl"), pidFile: join(dir, "mosquitto.pid") };
        let tls: BrokerTlsFiles | null = null;
        if (this.opts.tls) {
          const kc = this.certs.get(b.name)!;
          tls = { ca: join(this.root, "ca.crt"), cert: join(dir, "node.crt"), key: join(dir, "node.key") };
          writeFileSync(tls.cert, kc.cert);
          writeFileSync(tls.key, kc.key, { mode: 0o600 });
        }
        // A free port can be taken between our probe and mosquitto's bind: try a few.
        for (let attempt = 1; ; attempt++) {
          b.port = await freePort(host);
          b.bus = `${host}:${b.port}`;
          if (b.auth) this.writeFounders(b.auth);
          writeFileSync(join(dir, "mosquitto.conf"), b.auth ? mosquittoConf(b, b.auth.passwordFile, b.auth.aclFile, tls) : mosquittoConf(b, pw, acl, tls));
          try {
            await this.startBroker(b.name);
            break;
          } catch (e) {
            if (attempt >= 3) throw e;
          }
        }
      }
    } catch (e) {
      await this.stop();
      throw e;
    }
    return this;
  }

  /** agentAuth: a broker's files as the founders' agents write them (names are all they need). */
  private writeFounders(auth: NonNullable<Broker["auth"]>): void {
    const members = Array.from({ length: this.opts.nodes }, (_, i) => ({ name: `node${i + 1}`, bus: `127.0.1.${i + 1}:1` }));
    const cfg = { epoch: 0, term: 0, members, assignments: {}, flags: {} };
    writeFileSync(auth.passwordFile, renderPasswd(cfg, this.cluster, this.agentAuth!.token), { mode: 0o600 });
    writeFileSync(auth.aclFile, renderAcl(cfg, this.cluster));
  }

  /** `{name, bus}` of every broker: the cluster config's member list. */
  members(): { name: string; bus: string }[] {
    return this.brokers.map((b) => ({ name: b.name, bus: b.bus }));
  }

  /** MqttBus's login: user, password and, with TLS, the user's key and certificate and the CA. */
  credentials(user: string): { username: string; password: string; tls: TlsMaterial | null } {
    const password = this.passwords.get(user);
    if (password === undefined) throw new Error(`no user "${user}" (node1..node${this.opts.nodes} or ${CLI_USER})`);
    return { username: user, password, tls: this.tlsOf(user) };
  }

  /** A user's key and certificate with the CA (null without TLS). */
  tlsOf(user: string): TlsMaterial | null {
    const kc = this.certs.get(user);
    return kc && this.ca ? { ca: this.ca.cert, cert: kc.cert, key: kc.key } : null;
  }

  /** A raw mqtt.js client's login to `broker` as `user`: password, and with TLS the certificates
   *  and the check that the broker is `broker`. */
  clientOptions(user: string, broker: string): { username: string; password: string } & Partial<ClientTls> {
    const { username, password, tls } = this.credentials(user);
    return { username, password, ...(tls ? clientTls(tls, broker) : {}) };
  }

  broker(name: string): Broker {
    const b = this.brokers.find((x) => x.name === name);
    if (!b) throw new Error(`no broker "${name}"`);
    return b;
  }

  /** mqtt:// (mqtts:// with TLS) URL of a broker, for raw mqtt.js clients. */
  url(name: string): string {
    const b = this.broker(name);
    return `${this.opts.tls ? "mqtts" : "mqtt"}://${b.host}:${b.port}`;
  }

  /** The directory every broker's files are in (the CA's certificate: ca.crt). */
  dir(): string {
    if (!this.root) throw new Error("harness not started");
    return this.root;
  }

  isRunning(name: string): boolean {
    return this.procs.has(name);
  }

  /** Every PID this harness has started, running or not. */
  pids(): number[] {
    return [...this.started];
  }

  log(name: string): string {
    try {
      return readFileSync(join(this.broker(name).dir, "mosquitto.log"), "utf8");
    } catch {
      return "";
    }
  }

  /** Starts one broker (again) on its address and port; resolves once it accepts connections. */
  async startBroker(name: string): Promise<void> {
    const b = this.broker(name);
    if (this.procs.has(name)) return;
    const child = spawn(this.opts.mosquitto, ["-c", join(b.dir, "mosquitto.conf")], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => { if (stderr.length < 4096) stderr += d.toString(); });
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    await new Promise<void>((resolve, reject) => {
      child.once("spawn", () => resolve());
      child.once("error", reject);
    });
    this.started.push(child.pid!);
    this.procs.set(name, child);
    exited.then(() => { if (this.procs.get(name) === child) this.procs.delete(name); });
    const deadline = Date.now() + this.opts.readyTimeoutMs;
    // a TCP connect: a TLS listener accepts it too (and closes it without a handshake)
    while (!(await canConnect(b.host, b.port))) {
      const dead = await Promise.race([exited.then(() => true), sleep(20).then(() => false)]);
      if (dead || Date.now() > deadline) {
        await this.stopBroker(name);
        throw new Error(`mosquitto for ${name} on ${b.bus} ${dead ? "exited" : "not listening in time"}: ${stderr.trim()} ${this.log(name).slice(-500)}`);
      }
    }
  }

  /** Stops one broker: SIGTERM, SIGKILL after 3 s; resolves once the process is gone. */
  async stopBroker(name: string): Promise<void> {
    const child = this.procs.get(name);
    if (!child) return;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once("exit", () => r()));
      child.kill("SIGTERM");
      const killed = await Promise.race([exited.then(() => true), sleep(3000).then(() => false)]);
      if (!killed) {
        child.kill("SIGKILL");
        await exited;
      }
    }
    this.procs.delete(name);
  }

  /** Stops every broker and removes the temp dirs. Idempotent. Throws if a PID survived. */
  async stop(): Promise<void> {
    await Promise.all([...this.procs.keys()].map((n) => this.stopBroker(n)));
    process.off("exit", this.onExit);
    if (this.root) rmSync(this.root, { recursive: true, force: true });
    this.root = null;
    const alive = this.started.filter(pidAlive);
    if (alive.length) throw new Error(`mosquitto PIDs still alive after stop: ${alive.join(", ")}`);
  }
}

/** Starts a harness: `const h = await startBrokers({ nodes: 3 })`. */
export function startBrokers(opts: HarnessOptions = {}): Promise<BrokerHarness> {
  return new BrokerHarness(opts).start();
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, host, () => {
      const a = s.address();
      const port = typeof a === "object" && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.once("connect", () => done(true));
    s.once("error", () => done(false));
    s.setTimeout(500, () => done(false));
  });
}
