// The IPMI adapter (DESIGN §6): one BMC, driven through `ipmitool -I lanplus` (IPMI v2.0
// RMCP+), the client every BMC in the field answers. Every call is one ipmitool process,
// started with execFile and an argument array (no shell) and killed after a hard timeout.
//
// The password is never on a command line (DESIGN §6; argv is world-readable in
// /proc/<pid>/cmdline): it goes either as `-f FILE` (a 0600 file ipmitool reads) or in the
// child's environment as IPMI_PASSWORD with `-E`. /proc/<pid>/environ is readable by the
// process owner and root only.
//
// Everything a BMC answers, or fails to, is an error value with a message naming the
// command and the BMC (STYLE "Config, logs, errors"); nothing here throws. Calls to one
// BMC are serialized: real BMCs have few session slots (often 4).
import { execFile } from "node:child_process";
import { statSync } from "node:fs";
import type { Logger } from "../env/env.ts";
import {
  err, type FruDevice, ok, parseFru, parsePowerControl, parsePowerStatus, parseSdrElist, parseSel, parseSensorList,
  type PowerState, type Result, type SelRead, selNewerThan, type Sensor,
} from "./ipmi-parse.ts";

export interface BmcConfig {
  host: string;
  /** RMCP port, default 623 */
  port?: number;
  user: string;
  /** a file holding the password on its first line, mode 0600 (checked): passed as `-f FILE` */
  passwordFile?: string;
  /** the name of one of the agent's environment variables holding the password: handed to
   *  ipmitool as IPMI_PASSWORD with `-E` */
  passwordEnv?: string;
  /** RMCP+ cipher suite (-C); default 17 (HMAC-SHA256 / AES-CBC-128). ipmi_sim needs 3:
   *  without -C ipmitool 1.8.19 asks for the suites, ipmi_sim does not answer, 10 s lost. */
  cipher?: number;
  /** seconds per request before a retry (-N); default 1 */
  timeoutS?: number;
  /** retries per request (-R); default 1 */
  retries?: number;
  /** ipmitool is killed (SIGKILL) after this; default max(5000, 3 x timeoutS x (retries + 1)) ms */
  hardTimeoutMs?: number;
  /** default "ipmitool" (found on PATH) */
  ipmitool?: string;
}

export interface RunOutput {
  /** exit code; null when killed or not started */
  code: number | null;
  stdout: string;
  stderr: string;
  /** set when the process could not be started (ENOENT, ...) */
  spawnError?: string;
  /** killed by the hard timeout */
  timedOut: boolean;
}

/** Runs `file args` with exactly `env` and no shell. Injected so tests can watch the argv. */
export type Runner = (file: string, args: string[], env: Record<string, string>, timeoutMs: number) => Promise<RunOutput>;

export const execRunner: Runner = (file, args, env, timeoutMs) =>
  new Promise((resolve) => {
    const child = execFile(
      file,
      args,
      { env, timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 8 << 20, encoding: "utf8", windowsHide: true },
      (e, stdout, stderr) => {
        const x = e as (NodeJS.ErrnoException & { killed?: boolean; code?: unknown }) | null;
        const spawnError = x && typeof x.code === "string" ? `${x.code}: ${x.message}` : undefined;
        resolve({
          code: x ? (typeof x.code === "number" ? x.code : null) : 0,
          stdout, stderr, timedOut: !!x?.killed, ...(spawnError ? { spawnError } : {}),
        });
      },
    );
    child.stdin?.end(); // never a password prompt: ipmitool reads its stdin only to ask for one
  });

export interface IpmiCall {
  /** the ipmitool subcommand, e.g. "chassis power status" */
  cmd: string;
  bmc: string;
  ms: number;
  ok: boolean;
}

export interface IpmiOptions {
  log: Logger;
  run?: Runner;
  /** monotonic ms; default performance.now */
  now?: () => number;
  /** where `passwordEnv` is looked up; default process.env */
  env?: NodeJS.ProcessEnv;
  /** called after every ipmitool call (metrics, benchmarks) */
  onCall?: (c: IpmiCall) => void;
  /** HOME for ipmitool. ipmitool 1.8.19 parses the IANA enterprise registry at every start,
   *  from $HOME/.local/usr/share/misc/enterprise-numbers.txt if there, else the system's
   *  4.7 MB copy: ~20 ms of CPU per call. A polling caller points this at a small registry
   *  (runtime/watch-poll.ts): vendor names then read "Unknown", sensors and the SEL are the same. */
  home?: string;
}

export interface Invocation {
  file: string;
  args: string[];
  env: Record<string, string>;
}

export class Ipmi {
  readonly bmc: string;
  private readonly run: Runner;
  private readonly now: () => number;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    readonly cfg: BmcConfig,
    private readonly opts: IpmiOptions,
  ) {
    this.bmc = `${cfg.host}:${cfg.port ?? 623}`;
    this.run = opts.run ?? execRunner;
    this.now = opts.now ?? (() => performance.now());
  }

  /** The exact argv and environment for `ipmitool ... cmd`; the password is never in `args`. */
  invocation(cmd: string[]): Result<Invocation> {
    const c = this.cfg;
    const base = [
      "-I", "lanplus", "-H", c.host, "-p", String(c.port ?? 623), "-U", c.user,
      "-C", String(c.cipher ?? 17), "-N", String(c.timeoutS ?? 1), "-R", String(c.retries ?? 1),
    ];
    const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C" };
    if (this.opts.home) env.HOME = this.opts.home;
    if (c.passwordFile) {
      let mode: number;
      try {
        mode = statSync(c.passwordFile).mode;
      } catch (e) {
        return err(`password file ${c.passwordFile}: ${(e as Error).message}`);
      }
      if (mode & 0o077) {
        return err(`password file ${c.passwordFile} is mode ${(mode & 0o777).toString(8)}: expected 600 (chmod 600 ${c.passwordFile})`);
      }
      return ok({ file: c.ipmitool ?? "ipmitool", args: [...base, "-f", c.passwordFile, ...cmd], env });
    }
    if (c.passwordEnv) {
      const pw = (this.opts.env ?? process.env)[c.passwordEnv];
      if (!pw) return err(`password: environment variable ${c.passwordEnv} is not set or empty`);
      env.IPMI_PASSWORD = pw;
      return ok({ file: c.ipmitool ?? "ipmitool", args: [...base, "-E", ...cmd], env });
    }
    return err("password: neither passwordFile nor passwordEnv is configured");
  }

  /** `chassis power status` */
  async powerStatus(): Promise<Result<PowerState>> {
    return this.call(["chassis", "power", "status"], parsePowerStatus);
  }

  /** `chassis power off`: a hard power off (Chassis Control 00h), not a soft shutdown. The BMC
   *  accepting it is not proof: confirm with powerStatus(). */
  async powerOff(): Promise<Result<PowerState>> {
    return this.call(["chassis", "power", "off"], (o) => parsePowerControl(o, "off"));
  }

  /** `chassis power on` (Chassis Control 01h) */
  async powerOn(): Promise<Result<PowerState>> {
    return this.call(["chassis", "power", "on"], (o) => parsePowerControl(o, "on"));
  }

  /**
   * Sensor readings. "sensor" (default) runs `ipmitool sensor`: thresholds included, one Get
   * Sensor Thresholds per sensor, slow on a BMC with hundreds of sensors. "sdr" runs
   * `sdr elist`: sensor numbers, entities and discrete states as text, no thresholds.
   */
  async sensors(source: "sensor" | "sdr" = "sensor"): Promise<Result<Sensor[]>> {
    return source === "sensor" ? this.call(["sensor"], parseSensorList) : this.call(["sdr", "elist"], parseSdrElist);
  }

  /** `sel elist`: the SEL entries newer than `lastId` (null: all of them). */
  async selSince(lastId: number | null): Promise<Result<SelRead>> {
    return this.call(["sel", "elist"], (o) => {
      const r = parseSel(o);
      return r.ok ? ok(selNewerThan(r.value, lastId)) : r;
    });
  }

  /** `fru print`: every FRU device's fields (board, product, chassis areas). */
  async fru(): Promise<Result<FruDevice[]>> {
    return this.call(["fru", "print"], parseFru);
  }

  private call<T>(cmd: string[], parse: (out: string) => Result<T>): Promise<Result<T>> {
    const next = this.chain.then(() => this.once(cmd, parse));
    this.chain = next.catch(() => undefined);
    return next;
  }

  private async once<T>(cmd: string[], parse: (out: string) => Result<T>): Promise<Result<T>> {
    const what = cmd.join(" ");
    const t0 = this.now();
    const r = await this.exec(cmd, parse);
    const ms = Math.round((this.now() - t0) * 10) / 10;
    this.opts.log.debug(`ipmitool ${what}`, { bmc: this.bmc, ms, ok: r.ok, ...(r.ok ? {} : { error: r.error }) });
    this.opts.onCall?.({ cmd: what, bmc: this.bmc, ms, ok: r.ok });
    return r.ok ? r : err(`ipmitool ${what} on ${this.bmc}: ${r.error}`);
  }

  private async exec<T>(cmd: string[], parse: (out: string) => Result<T>): Promise<Result<T>> {
    const inv = this.invocation(cmd);
    if (!inv.ok) return inv;
    const hard = this.hardTimeoutMs();
    const t0 = this.now();
    let out: RunOutput;
    try {
      out = await this.run(inv.value.file, inv.value.args, inv.value.env, hard);
    } catch (e) {
      return err(`could not run ${inv.value.file}: ${(e as Error).message}`);
    }
    const ms = this.now() - t0;
    if (out.spawnError) {
      const hint = out.spawnError.startsWith("ENOENT") ? " (is ipmitool installed?)" : "";
      return err(`could not run ${inv.value.file}: ${out.spawnError}${hint}`);
    }
    if (out.timedOut) return err(`no result within ${hard} ms: killed (hard timeout)`);
    if (out.code !== 0) return err(this.explain(out, ms));
    return parse(out.stdout);
  }

  /** when ipmitool is killed: hardTimeoutMs, default max(5000, 3 x budgetMs()) */
  hardTimeoutMs(): number {
    return this.cfg.hardTimeoutMs ?? Math.max(5000, 3 * this.budgetMs());
  }

  /** what -N and -R allow one request: an unanswered call ends after about this long */
  budgetMs(): number {
    return (this.cfg.timeoutS ?? 1) * 1000 * ((this.cfg.retries ?? 1) + 1);
  }

  /** ipmitool says "Unable to establish IPMI v2 / RMCP+ session" for every session failure;
   *  the time it took tells "no answer" from "refused". (Also used by ipmi-shell.ts.) */
  explain(out: RunOutput, ms: number): string {
    const text = `${out.stderr}\n${out.stdout}`.replace(/\s+/g, " ").trim() || "(no output)";
    const budget = this.budgetMs();
    let why = "";
    if (/invalid authentication algorithm|cipher/i.test(text)) why = `cipher suite ${this.cfg.cipher ?? 17} refused by the BMC (set cipher); `;
    else if (/Unable to establish/i.test(text)) {
      why = ms >= budget * 0.8
        ? `no answer within ${(ms / 1000).toFixed(1)} s (BMC unreachable or down?); `
        : `session refused (wrong user, password or cipher suite ${this.cfg.cipher ?? 17}?); `;
    }
    return `${why}exit ${out.code}: ${text.length > 300 ? `${text.slice(0, 300)}...` : text}`;
  }
}
