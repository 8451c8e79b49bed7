// The local fence of one server (issue 22 item 1): find the process that listens on the
// server's address and port, kill it (SIGKILL: a hung process, stopped or stuck in the kernel,
// cannot catch it) and confirm it is gone and nothing listens there any more. The listener is
// found from the kernel's own tables, not from a pid file that may be stale: /proc/net/tcp
// (proc(5): "local_address", "st" 0A = LISTEN, "inode") of this network namespace, then the
// process holding socket:[inode] among /proc/<pid>/fd. A process that is a zombie has stopped.
import { readFileSync, readdirSync, readlinkSync } from "node:fs";

export interface Listener {
  inode: number;
  pids: number[];
}

/** Inodes of the sockets listening on addr:port in /proc/net/tcp text (pure). 0.0.0.0 counts. */
export function listeningInodes(tcpTable: string, addr: string, port: number): number[] {
  const want = [hexAddr(addr), hexAddr("0.0.0.0")].map((a) => `${a}:${port.toString(16).toUpperCase().padStart(4, "0")}`);
  const out: number[] = [];
  for (const line of tcpTable.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[3] !== "0A") continue; // TCP_LISTEN
    if (want.includes(f[1]!.toUpperCase())) out.push(Number(f[9]));
  }
  return out.filter((n) => Number.isInteger(n) && n > 0);
}

/** 198.18.0.11 -> "0B0012C6": /proc/net/tcp prints the address as a host-order (little-endian) word. */
export function hexAddr(addr: string): string {
  const p = addr.split(".").map(Number);
  if (p.length !== 4 || p.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) throw new Error(`not an IPv4 address: ${addr}`);
  return p.reverse().map((x) => x.toString(16).toUpperCase().padStart(2, "0")).join("");
}

export interface ProcFs {
  tcp(): string;
  pids(): number[];
  fds(pid: number): string[];
  /** "R", "S", "T", "Z", ... or null when the process is gone */
  state(pid: number): string | null;
  comm(pid: number): string | null;
  kill(pid: number): void;
}

export const realProc: ProcFs = {
  tcp: () => readFileSync("/proc/net/tcp", "utf8"),
  pids: () => readdirSync("/proc").filter((d) => /^\d+$/.test(d)).map(Number),
  fds: (pid) => {
    try {
      return readdirSync(`/proc/${pid}/fd`).map((fd) => { try { return readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { return ""; } });
    } catch {
      return [];
    }
  },
  state: (pid) => {
    try {
      const s = readFileSync(`/proc/${pid}/stat`, "utf8");
      return s.slice(s.lastIndexOf(")") + 2).split(" ")[0] ?? null;
    } catch {
      return null;
    }
  },
  comm: (pid) => { try { return readFileSync(`/proc/${pid}/comm`, "utf8").trim(); } catch { return null; } },
  kill: (pid) => { try { process.kill(pid, "SIGKILL"); } catch { /* gone */ } },
};

/** The processes that hold a socket listening on addr:port. */
export function findListener(addr: string, port: number, fs: ProcFs = realProc): Listener[] {
  const inodes = listeningInodes(fs.tcp(), addr, port);
  if (!inodes.length) return [];
  const marks = new Map(inodes.map((i) => [`socket:[${i}]`, i]));
  const out = new Map<number, number[]>();
  for (const pid of fs.pids()) {
    if (pid === process.pid) continue;
    for (const l of fs.fds(pid)) {
      const inode = marks.get(l);
      if (inode !== undefined) out.set(inode, [...(out.get(inode) ?? []), pid]);
    }
  }
  return inodes.map((inode) => ({ inode, pids: [...new Set(out.get(inode) ?? [])] }));
}

export interface KillResult {
  ok: boolean;
  /** what was done and what confirmed it, for the event log and the report */
  proof: string;
  ms: number;
}

/**
 * Kills every process listening on addr:port whose name is one of `names`, and confirms: each is
 * gone (or a zombie) and nothing listens there. A listener of another name is never killed: the
 * fence fails instead (something else holds the port). Nothing listening: confirmed at once.
 */
export async function killListener(addr: string, port: number, names: readonly string[], o: { fs?: ProcFs; timeoutMs?: number; sleep?: (ms: number) => Promise<void> } = {}): Promise<KillResult> {
  const fs = o.fs ?? realProc;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const t0 = performance.now();
  const ms = () => Math.round(performance.now() - t0);
  const where = `${addr}:${port}`;
  const found = findListener(addr, port, fs).flatMap((l) => l.pids);
  if (!found.length) {
    const still = listeningInodes(fs.tcp(), addr, port);
    return still.length
      ? { ok: false, proof: `a socket listens on ${where} but no process holds it (not visible from here)`, ms: ms() }
      : { ok: true, proof: `nothing listens on ${where}: no process to kill`, ms: ms() };
  }
  const named = found.map((pid) => ({ pid, comm: fs.comm(pid), was: fs.state(pid) }));
  const foreign = named.find((p) => p.comm !== null && !names.includes(p.comm));
  if (foreign) return { ok: false, proof: `${where} is held by pid ${foreign.pid} (${foreign.comm}), not ${names.join("/")}: not killed`, ms: ms() };
  for (const p of named) fs.kill(p.pid);
  const deadline = o.timeoutMs ?? 3000;
  for (;;) {
    const left = named.filter((p) => { const s = fs.state(p.pid); return s !== null && s !== "Z" && s !== "X"; });
    const listening = listeningInodes(fs.tcp(), addr, port).length > 0;
    if (!left.length && !listening) {
      const what = named.map((p) => `pid ${p.pid} (${p.comm ?? "?"}${p.was === "T" ? ", stopped" : p.was === "D" ? ", in uninterruptible sleep" : ""})`).join(", ");
      return { ok: true, proof: `killed ${what}, the listener of ${where}; gone in ${ms()} ms, nothing listens there`, ms: ms() };
    }
    if (ms() > deadline) {
      return { ok: false, proof: `killed ${named.map((p) => p.pid).join(",")} on ${where}, but after ${ms()} ms ${left.length ? `pid ${left.map((p) => `${p.pid} (state ${fs.state(p.pid)})`).join(",")} is still there` : "something still listens there"}`, ms: ms() };
    }
    await sleep(10);
  }
}
