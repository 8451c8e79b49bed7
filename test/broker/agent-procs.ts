// Real agents (the built bundle) as processes for the broker tests that run whole agents
// against the harness's brokers (agents.test.ts, rotation.test.ts): started and stopped by
// PID, their status read through `bollard status --json` as an operator would, their TLS files
// written from the harness's certificates.
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import * as assert from "uvu/assert";
import type { TlsMaterial } from "../../agent/bus/tls.ts";
import { pidAlive } from "./harness.ts";

export const BUNDLE = new URL("../../dist/bollard.js", import.meta.url).pathname;

export class AgentProcs {
  readonly agents = new Map<string, ChildProcess>();
  readonly pids: number[] = [];

  constructor(private readonly configOf: (node: string) => string) {}

  start(node: string): ChildProcess {
    const p = spawn(process.execPath, [BUNDLE, "agent", "--config", this.configOf(node)], { stdio: ["ignore", "ignore", "pipe"] });
    p.stderr!.on("data", (d) => process.stderr.write(`[${node}] ${d}`));
    this.agents.set(node, p);
    this.pids.push(p.pid!);
    return p;
  }

  /** `bollard status --json` of the node: the whole answer, or null when it is not JSON. */
  status(node: string): Promise<any | null> {
    return new Promise((resolve) => {
      const p = spawn(process.execPath, [BUNDLE, "status", "--json", "--config", this.configOf(node)], { stdio: ["ignore", "pipe", "ignore"] });
      let out = "";
      p.stdout!.on("data", (d) => (out += d));
      p.on("close", () => { try { resolve(JSON.parse(out)); } catch { resolve(null); } });
    });
  }

  /** SIGTERM to every agent, SIGKILL to what is left after 0.5 s; asserts none is left. */
  async stopAll(): Promise<void> {
    for (const p of this.agents.values()) if (p.exitCode === null) p.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 500));
    for (const pid of this.pids) if (pidAlive(pid)) process.kill(pid, "SIGKILL");
    assert.equal(this.pids.filter(pidAlive), [], "no agent process is left");
  }
}

/** Writes the CA, the node's certificate and key (0600) into `dir`; returns bollard.yaml's `bus.tls` line. */
export function writeTls(dir: string, m: TlsMaterial): string {
  writeFileSync(join(dir, "ca.crt"), m.ca);
  writeFileSync(join(dir, "node.crt"), m.cert);
  writeFileSync(join(dir, "node.key"), m.key, { mode: 0o600 });
  return `  tls: { ca_file: ${join(dir, "ca.crt")}, cert_file: ${join(dir, "node.crt")}, key_file: ${join(dir, "node.key")} }`;
}

export async function until<T>(what: string, ms: number, f: () => Promise<T | null | undefined | false>, everyMs = 50): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
