// systemd notify (sd_notify(3)): READY=1 once started, WATCHDOG=1 at a quarter of WATCHDOG_USEC (at most every second),
// STOPPING=1 on shutdown, STATUS=... for `systemctl status`. Only when NOTIFY_SOCKET is set.
//
// The notify socket is AF_UNIX SOCK_DGRAM, which Node cannot send on (node:net is stream
// only, node:dgram is UDP only). `systemd-notify` per message is no good for the watchdog:
// it exits at once, so systemd may not attribute its message to the unit, and its PID is
// never the main PID. So one long-lived helper is spawned: a perl one-liner (perl-base is
// Essential in Debian, so it is on every node) that reads one hex-encoded datagram per line
// on stdin and sends it with sendto(2). Hex keeps datagram boundaries exact (a message may
// hold several newline-separated assignments). The helper ends when its stdin closes, so
// it dies with the agent. Its PID is not the main PID: the unit needs `NotifyAccess=all`.
// The agent pings from its tick loop, so a stalled loop stops the pings and systemd
// restarts the agent (DESIGN §5: the watchdog stands behind self-fence).
import { spawn, type ChildProcess } from "node:child_process";
import type { Logger } from "./env.ts";

export interface NotifyTarget {
  /** a path, or "@name" for an abstract socket */
  socket: string;
  /** how often to send WATCHDOG=1 (a quarter of WATCHDOG_USEC, at most 1 s), null when the watchdog is off */
  watchdogMs: number | null;
}

/** The notify target from a service environment (NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID). */
export function notifyTarget(env: Record<string, string | undefined>, pid: number): NotifyTarget | null {
  const socket = env.NOTIFY_SOCKET;
  if (!socket) return null;
  const usec = Number(env.WATCHDOG_USEC);
  // sd_watchdog_enabled(3): WATCHDOG_PID, when set, names the process the watchdog is for.
  const forUs = env.WATCHDOG_PID === undefined || env.WATCHDOG_PID === "" || Number(env.WATCHDOG_PID) === pid;
  // A quarter of the interval, at most a second: what may stall without a reset is then the
  // whole interval less one ping period (3 s: 2.25 s), not half of it. A stall of 2 s on a 3 s
  // watchdog reset the lab's primary at the half-interval ping (issue 20: a stalled agent is not
  // a dead node). A ping is one line to the notify helper.
  const watchdogMs = Number.isInteger(usec) && usec > 0 && forUs ? Math.min(usec / 4000, 1000) : null;
  return { socket, watchdogMs };
}

/** Reads hex lines on stdin, sends each as one datagram to ARGV[0] ("@x" = abstract "\0x"). */
const PERL_HELPER = [
  "use strict; use Socket;",
  "my $p = shift; $p =~ s/^\\@/\\0/;",
  'socket(my $s, AF_UNIX, SOCK_DGRAM, 0) or die "socket: $!\\n";',
  "my $a = pack_sockaddr_un($p);",
  "while (my $l = <STDIN>) { chomp $l; next if $l eq '';",
  '  defined(send($s, pack("H*", $l), 0, $a)) or print STDERR "sendto: $!\\n"; }',
].join("\n");

export interface NotifierOptions {
  /** helper argv before the socket argument; default perl running PERL_HELPER */
  helper?: string[];
  /** monotonic ms */
  now?: () => number;
  /** least time between two helper starts after it died */
  respawnMs?: number;
}

export class Notifier {
  private child: ChildProcess | null = null;
  private lastSpawn = -Infinity;
  private lastPing = -Infinity;
  private stopped = false;
  private readonly helper: string[];
  private readonly now: () => number;
  private readonly respawnMs: number;

  constructor(
    readonly target: NotifyTarget | null,
    private readonly log: Logger,
    opts: NotifierOptions = {},
  ) {
    this.helper = opts.helper ?? ["perl", "-e", PERL_HELPER];
    this.now = opts.now ?? (() => performance.now());
    this.respawnMs = opts.respawnMs ?? 5000;
  }

  get enabled(): boolean {
    return this.target !== null && (this.target.socket.startsWith("/") || this.target.socket.startsWith("@"));
  }

  start(): void {
    if (!this.target) return;
    if (!this.enabled) {
      this.log.warn("NOTIFY_SOCKET is not a unix socket path; systemd notify is off", { socket: this.target.socket });
      return;
    }
    this.log.info("systemd notify on", { socket: this.target.socket, watchdogMs: this.target.watchdogMs });
    this.spawnHelper();
  }

  ready(status?: string): void {
    this.send(status ? `READY=1\nSTATUS=${oneLine(status)}` : "READY=1");
  }

  status(text: string): void {
    this.send(`STATUS=${oneLine(text)}`);
  }

  /** Call on every pass of the main loop; sends WATCHDOG=1 once per watchdog interval. */
  watchdog(): void {
    const every = this.target?.watchdogMs;
    if (!every || !this.enabled) return;
    const now = this.now();
    if (now - this.lastPing < every) return;
    if (this.send("WATCHDOG=1")) this.lastPing = now;
  }

  stopping(): void {
    this.send("STOPPING=1");
  }

  /** Lets the helper send what it has, then ends it (killed after `timeoutMs`). */
  async stop(timeoutMs = 1000): Promise<void> {
    this.stopped = true;
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.stdin?.end();
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    await exited;
    clearTimeout(timer);
  }

  /** true when handed to a live helper (delivery itself is not confirmed by sendto). */
  private send(msg: string): boolean {
    if (!this.enabled || this.stopped) return false;
    if (!this.child && this.now() - this.lastSpawn >= this.respawnMs) this.spawnHelper();
    const stdin = this.child?.stdin;
    if (!stdin || !stdin.writable) return false;
    stdin.write(Buffer.from(msg, "utf8").toString("hex") + "\n");
    return true;
  }

  private spawnHelper(): void {
    const [cmd, ...args] = this.helper;
    if (!cmd || !this.target) return;
    this.lastSpawn = this.now();
    const child = spawn(cmd, [...args, this.target.socket], {
      stdio: ["pipe", "ignore", "pipe"],
      env: { PATH: process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin", LC_ALL: "C" },
    });
    this.child = child;
    child.stdin.on("error", () => {
      /* EPIPE when the helper died; its exit is logged below */
    });
    let errText = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (d: string) => {
      errText += d;
      let nl: number;
      while ((nl = errText.indexOf("\n")) >= 0) {
        this.log.warn("systemd notify helper", { error: errText.slice(0, nl) });
        errText = errText.slice(nl + 1);
      }
    });
    child.on("error", (e) => {
      this.log.error("systemd notify helper failed to start; watchdog pings are not sent", { cmd, err: e });
      if (this.child === child) this.child = null;
    });
    child.on("exit", (code, signal) => {
      if (this.child === child) this.child = null;
      if (!this.stopped) this.log.error("systemd notify helper exited", { code, signal });
    });
  }
}

function oneLine(s: string): string {
  return s.replace(/[\r\n]+/g, " ").slice(0, 400);
}
