// The watch's polls of one BMC through one long-lived `ipmitool -I lanplus ... shell`, instead
// of one ipmitool process per call (hw/ipmi.ts). Every ipmitool start costs the agent a fork
// (~3.5 ms of CPU) and the child ~11 ms: the IANA registry, and the RMCP+ session set-up
// (five exchanges, key derivation) before the command itself. In a shell the session is set
// up once; a `sensor` then costs the child ~2 ms and answers in ~10 ms instead of ~45 ms
// (measured against ipmi_sim, docs/hardware.md "Idle cost"). Fencing keeps hw/ipmi.ts: one
// process per call, nothing to go stale.
//
// The shell speaks no protocol, so this file holds what makes it safe to rely on:
//  - framing: ipmitool prints "ipmitool> " when it waits for the next line; what came before
//    it (minus the echo of the command line, which readline prints on a pipe) is the answer;
//  - errors: a command in the shell has no exit code. An answer that parses to nothing while
//    ipmitool wrote to stderr ("Get Device ID command failed") is a failure; so is the shell
//    exiting, or no prompt within the hard timeout (it is then killed);
//  - any failure ends the shell: the next call starts a new one, whose session set-up fails
//    the way a single ipmitool call does while the BMC is away (same messages, same times);
//  - a stale session (the BMC reset, or ended a session left idle; ipmi_sim then stays silent
//    for the request's -N): a command that failed in a shell that had worked is tried once
//    more in a new shell at once, by the time one ipmitool call would have taken to give up
//    (-N x (-R + 1), 2 s by default). So a BMC that is away is reported as unreachable no later
//    than before, and one that merely forgot the session is not reported at all. A shell
//    unused for `idleMs` is ended before the next command (BMCs end idle sessions, often at 60 s);
//  - ipmitool 1.8.19's shell spins at ~30 % of a core once its stdin reaches EOF, so it must
//    not outlive the agent: it runs under `setpriv --pdeathsig KILL` (util-linux, Essential in
//    Debian), which kills it when the agent dies however it dies; close() kills it too.
import { spawn, type ChildProcess } from "node:child_process";
import type { Logger } from "../env/env.ts";
import type { Ipmi, IpmiCall } from "./ipmi.ts";
import { err, ok, parseSdrElist, parseSel, parseSensorList, type Result, type SelRead, selNewerThan, type Sensor } from "./ipmi-parse.ts";

export const PROMPT = "ipmitool> ";

export interface IpmiShellOptions {
  log: Logger;
  /** monotonic ms; default performance.now */
  now?: () => number;
  /** a shell unused this long is ended before the next command; default 20000 */
  idleMs?: number;
  /** runs ipmitool with the agent as its death signal's parent; default ["setpriv", "--pdeathsig", "KILL", "--"];
   *  [] runs ipmitool directly (tests) */
  wrapper?: string[];
  onCall?: (c: IpmiCall) => void;
}

interface Shell {
  child: ChildProcess;
  out: string;
  err: string;
  /** set once it has exited, or could not be started */
  ended: string | null;
  /** called on every change (output, exit) */
  wake: (() => void) | null;
  usedAt: number;
  /** a command has succeeded in it */
  worked: boolean;
}

type Wait = { prompt: true; text: string; stderr: string } | { prompt: false; why: string; stderr: string; code: number | null; late?: boolean };

export class IpmiShell {
  readonly bmc: string;
  private shell: Shell | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly now: () => number;
  private closed = false;

  constructor(
    private readonly ipmi: Ipmi,
    private readonly o: IpmiShellOptions,
  ) {
    this.bmc = ipmi.bmc;
    this.now = o.now ?? (() => performance.now());
  }

  /** As Ipmi.sensors(): `sensor` (default) or `sdr elist`. */
  sensors(source: "sensor" | "sdr" = "sensor"): Promise<Result<Sensor[]>> {
    return source === "sensor" ? this.call(["sensor"], parseSensorList) : this.call(["sdr", "elist"], parseSdrElist);
  }

  /** As Ipmi.selSince(): the SEL entries newer than `lastId`. */
  selSince(lastId: number | null): Promise<Result<SelRead>> {
    return this.call(["sel", "elist"], (o) => {
      const r = parseSel(o);
      return r.ok ? ok(selNewerThan(r.value, lastId)) : r;
    });
  }

  /** Ends the shell; later calls start none. */
  close(): void {
    this.closed = true;
    this.end();
  }

  /** the running shell's PID (tests, diagnostics) */
  pid(): number | null {
    return this.shell && !this.shell.ended ? (this.shell.child.pid ?? null) : null;
  }

  private call<T extends unknown[] | SelRead>(cmd: string[], parse: (out: string) => Result<T>): Promise<Result<T>> {
    const next = this.chain.then(() => this.once(cmd, parse));
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async once<T extends unknown[] | SelRead>(cmd: string[], parse: (out: string) => Result<T>): Promise<Result<T>> {
    const what = cmd.join(" ");
    const t0 = this.now();
    let r = await this.run(what, parse, t0 + this.ipmi.hardTimeoutMs(), null);
    if (!r.ok && r.retry) {
      // within what one ipmitool call may take to find the BMC away (-N x (-R + 1)): an
      // unreachable BMC is reported no later than it was with one process per call
      this.o.log.debug(`ipmitool shell: ${what} failed in a session that had worked; once more in a new one`, { bmc: this.bmc, error: r.error });
      r = await this.run(what, parse, t0 + this.ipmi.budgetMs() + 250, t0);
    }
    const ms = Math.round((this.now() - t0) * 10) / 10;
    this.o.log.debug(`ipmitool shell ${what}`, { bmc: this.bmc, ms, ok: r.ok, ...(r.ok ? {} : { error: r.error }) });
    this.o.onCall?.({ cmd: what, bmc: this.bmc, ms, ok: r.ok });
    return r.ok ? r : err(`ipmitool ${what} on ${this.bmc}: ${r.error}`);
  }

  /**
   * One command by `deadline`; on failure the shell is ended, and `retry` says whether a new
   * one may do better. `since`: when the first try began (a retry's deadline is an unanswered
   * BMC, not a hung ipmitool).
   */
  private async run<T extends unknown[] | SelRead>(what: string, parse: (out: string) => Result<T>, deadline: number, since: number | null): Promise<Result<T> & { retry?: boolean }> {
    if (this.closed) return err("closed");
    if (this.shell && this.now() - this.shell.usedAt > (this.o.idleMs ?? 20_000)) this.end();
    const t0 = this.now();
    const late = (): string => since === null
      ? `no result within ${this.ipmi.hardTimeoutMs()} ms: killed (hard timeout)`
      : `no answer within ${((this.now() - since) / 1000).toFixed(1)} s (BMC unreachable or down?)`;
    if (!this.shell) {
      const started = await this.start(deadline, late);
      if (!started.ok) return started;
    }
    const sh = this.shell!;
    const worked = sh.worked;
    sh.out = "";
    sh.err = "";
    sh.child.stdin!.write(`${what}\n`);
    const w = await this.wait(sh, deadline, late);
    const ms = this.now() - t0;
    sh.usedAt = this.now();
    if (!w.prompt) {
      this.end();
      return w.late ? err(w.why) : err(this.ipmi.explain({ code: w.code, stdout: "", stderr: `${w.why} ${w.stderr}`, timedOut: false }, ms));
    }
    const text = stripEcho(w.text, what);
    const r = parse(text);
    const empty = r.ok && (Array.isArray(r.value) ? r.value.length === 0 : r.value.entries.length === 0 && r.value.lastId === null);
    if (r.ok && !(empty && w.stderr.trim())) {
      sh.worked = true;
      return r;
    }
    this.end();
    const said = (w.stderr.trim() || (r.ok ? "" : r.error)).replace(/\s+/g, " ").slice(0, 300);
    // a request unanswered for its -N: the BMC is away, or it forgot the session (a reset)
    const unanswered = ms >= (this.ipmi.cfg.timeoutS ?? 1) * 800;
    return { ...err(unanswered ? `no answer within ${(ms / 1000).toFixed(1)} s (BMC unreachable or down?): ${said}` : said), retry: worked && since === null };
  }

  private async start(deadline: number, late: () => string): Promise<Result<true>> {
    const inv = this.ipmi.invocation(["shell"]);
    if (!inv.ok) return inv;
    const t0 = this.now();
    const wrapper = this.o.wrapper ?? ["setpriv", "--pdeathsig", "KILL", "--"];
    const [file, args] = wrapper.length ? [wrapper[0]!, [...wrapper.slice(1), inv.value.file, ...inv.value.args]] : [inv.value.file, inv.value.args];
    let child: ChildProcess;
    try {
      child = spawn(file, args, { env: { ...inv.value.env, TERM: "dumb" }, stdio: ["pipe", "pipe", "pipe"] });
    } catch (e) {
      return err(`could not run ${file}: ${(e as Error).message}`);
    }
    const sh: Shell = { child, out: "", err: "", ended: null, wake: null, usedAt: this.now(), worked: false };
    const wake = () => sh.wake?.();
    child.stdout!.setEncoding("utf8").on("data", (d: string) => ((sh.out += d), wake()));
    child.stderr!.setEncoding("utf8").on("data", (d: string) => ((sh.err += d), wake()));
    child.stdin!.on("error", () => {}); // EPIPE once it has exited: seen as the exit
    child.once("error", (e: NodeJS.ErrnoException) => {
      sh.ended = `could not run ${file}: ${e.code ?? ""} ${e.message}${e.code === "ENOENT" ? ` (is ${file} installed?)` : ""}`;
      wake();
    });
    child.once("exit", (code, sig) => {
      sh.ended ??= `exit ${code ?? sig}`;
      wake();
    });
    this.shell = sh;
    const w = await this.wait(sh, deadline, late);
    if (w.prompt) return ok(true);
    this.end();
    return w.late ? err(w.why) : err(this.ipmi.explain({ code: w.code, stdout: "", stderr: w.stderr || w.why, timedOut: false }, this.now() - t0));
  }

  /** Until the prompt ends the output, the shell ends, or the deadline (then it is killed). */
  private wait(sh: Shell, deadline: number, late: () => string): Promise<Wait> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => done({ prompt: false, why: late(), stderr: sh.err, code: null, late: true }), Math.max(0, deadline - this.now()));
      let settled = false;
      const done = (w: Wait) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        sh.wake = null;
        resolve(w);
      };
      sh.wake = () => {
        // ipmitool writes its errors to stderr before the prompt to stdout, but the two pipes'
        // data may be handed over in either order within one turn of the loop: the answer is
        // taken after that turn (setImmediate), with whatever stderr said by then.
        if (sh.out.endsWith(PROMPT)) {
          sh.wake = null;
          setImmediate(() => done({ prompt: true, text: sh.out.slice(0, -PROMPT.length), stderr: sh.err }));
        } else if (sh.ended) done({ prompt: false, why: sh.ended, stderr: sh.err, code: sh.child.exitCode });
      };
      sh.wake();
    });
  }

  private end(): void {
    const sh = this.shell;
    this.shell = null;
    if (sh && !sh.ended) sh.child.kill("SIGKILL");
  }
}

/** The answer without the command line readline echoes first (when it does). */
export function stripEcho(text: string, cmd: string): string {
  const nl = text.indexOf("\n");
  const first = nl < 0 ? text : text.slice(0, nl);
  if (first.trim() !== cmd) return text;
  return nl < 0 ? "" : text.slice(nl + 1);
}
