// systemd notify against a real AF_UNIX SOCK_DGRAM socket: a python3 child binds it (a
// path, or an abstract name) and prints every datagram it receives, as systemd would get it.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { JsonLogger } from "../../agent/env/log.ts";
import { Notifier, notifyTarget } from "../../agent/env/notify.ts";

const RECEIVER = `
import json, socket, sys
addr = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\\0" + addr[1:] if addr.startswith("@") else addr)
print("ready", flush=True)
while True:
    print(json.dumps(s.recv(65536).decode()), flush=True)
`;

class Receiver {
  readonly got: string[] = [];
  private child: ChildProcess | null = null;

  async start(addr: string): Promise<void> {
    const child = spawn("python3", ["-c", RECEIVER, addr], { stdio: ["ignore", "pipe", "inherit"] });
    this.child = child;
    let buf = "";
    await new Promise<void>((resolve, reject) => {
      child.on("error", reject);
      child.stdout!.setEncoding("utf8").on("data", (d: string) => {
        buf += d;
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line === "ready") resolve();
          else this.got.push(JSON.parse(line));
        }
      });
    });
  }

  async waitFor(n: number, ms = 3000): Promise<string[]> {
    const until = Date.now() + ms;
    while (this.got.length < n && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    return this.got;
  }

  stop(): void {
    this.child?.kill();
  }
}

function quietLog() {
  const lines: string[] = [];
  return { log: JsonLogger.create({ level: "debug", write: (l) => lines.push(l) }), lines };
}

const Env = suite("notifyTarget");

Env("off without NOTIFY_SOCKET", () => {
  assert.is(notifyTarget({}, 100), null);
  assert.is(notifyTarget({ WATCHDOG_USEC: "1000000" }, 100), null);
});

Env("watchdog at a quarter of WATCHDOG_USEC (at most every second), only for our PID", () => {
  assert.equal(notifyTarget({ NOTIFY_SOCKET: "/run/systemd/notify" }, 100), { socket: "/run/systemd/notify", watchdogMs: null });
  assert.equal(notifyTarget({ NOTIFY_SOCKET: "@n", WATCHDOG_USEC: "3000000" }, 100), { socket: "@n", watchdogMs: 750 });
  assert.equal(notifyTarget({ NOTIFY_SOCKET: "@n", WATCHDOG_USEC: "6000000" }, 100), { socket: "@n", watchdogMs: 1000 });
  assert.equal(notifyTarget({ NOTIFY_SOCKET: "@n", WATCHDOG_USEC: "6000000", WATCHDOG_PID: "100" }, 100)?.watchdogMs, 1000);
  assert.is(notifyTarget({ NOTIFY_SOCKET: "@n", WATCHDOG_USEC: "6000000", WATCHDOG_PID: "7" }, 100)?.watchdogMs, null);
  assert.is(notifyTarget({ NOTIFY_SOCKET: "@n", WATCHDOG_USEC: "bogus" }, 100)?.watchdogMs, null);
});

Env.run();

const Send = suite("Notifier sends datagrams");
let dir = "";
let rx: Receiver;
Send.before.each(() => {
  dir = mkdtempSync(join(tmpdir(), "bollard-notify-"));
  rx = new Receiver();
});
Send.after.each(() => {
  rx.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function lifecycle(socket: string): Promise<string[]> {
  await rx.start(socket);
  let now = 0;
  const { log } = quietLog();
  const n = new Notifier({ socket, watchdogMs: 1000 }, log, { now: () => now });
  n.start();
  n.ready("follower, term 0");
  n.watchdog(); // first ping
  now = 400;
  n.watchdog(); // too soon: not sent
  now = 1000;
  n.watchdog(); // sent
  n.status("leader\nterm 3"); // one line
  n.stopping();
  await n.stop();
  return rx.waitFor(5);
}

const EXPECTED = ["READY=1\nSTATUS=follower, term 0", "WATCHDOG=1", "WATCHDOG=1", "STATUS=leader term 3", "STOPPING=1"];

Send("to a socket path", async () => {
  assert.equal(await lifecycle(join(dir, "notify")), EXPECTED);
});

Send("to an abstract socket (@name)", async () => {
  assert.equal(await lifecycle(`@bollard-test-${process.pid}-${Date.now()}`), EXPECTED);
});

Send("stop() lets the helper flush what was written just before", async () => {
  const socket = join(dir, "notify");
  await rx.start(socket);
  const n = new Notifier({ socket, watchdogMs: null }, quietLog().log);
  n.start();
  for (let i = 0; i < 50; i++) n.status(`n${i}`);
  n.stopping();
  await n.stop();
  const got = await rx.waitFor(51);
  assert.is(got.length, 51);
  assert.is(got[50], "STOPPING=1");
});

Send.run();

const Off = suite("Notifier off or failing");

Off("no target: every call is a no-op", async () => {
  const { log, lines } = quietLog();
  const n = new Notifier(null, log);
  n.start();
  n.ready();
  n.watchdog();
  n.stopping();
  await n.stop();
  assert.is(n.enabled, false);
  assert.equal(lines, []);
});

Off("a missing helper is logged, never thrown", async () => {
  const { log, lines } = quietLog();
  const n = new Notifier({ socket: "/nonexistent/notify", watchdogMs: 10 }, log, { helper: ["/nonexistent/perl"] });
  n.start();
  n.ready();
  await new Promise((r) => setTimeout(r, 100));
  n.watchdog();
  await n.stop();
  assert.ok(lines.some((l) => l.includes("failed to start") && l.includes('"level":"error"')), lines.join("\n"));
});

Off("a socket nobody listens on: the helper reports the send error and keeps going", async () => {
  const { log, lines } = quietLog();
  const n = new Notifier({ socket: join(tmpdir(), `bollard-none-${process.pid}`), watchdogMs: null }, log);
  n.start();
  n.ready();
  n.status("x");
  await new Promise((r) => setTimeout(r, 300));
  await n.stop();
  assert.ok(lines.filter((l) => l.includes("sendto")).length >= 2, lines.join("\n"));
});

Off.run();
