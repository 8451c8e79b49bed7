// The QMP client (agent/resources/qmp.ts) against a fake QMP server on a unix socket in a
// temporary directory: greeting and capabilities negotiation, commands matched by id (also
// answered out of order), errors with their class, events in between, timeouts, a server that
// goes away with commands pending, and a server that never greets.
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { Qmp, QmpError } from "../../agent/resources/qmp.ts";

interface Fake {
  path: string;
  server: Server;
  seen: Record<string, unknown>[];
  client: Socket | null;
}

const GREETING = { QMP: { version: { qemu: { major: 7, minor: 2, micro: 22 }, package: "Debian" }, capabilities: ["oob"] } };

/** A QMP server: `answer` decides what each command gets (null: no answer). */
function fake(dir: string, answer: (cmd: Record<string, unknown>, send: (m: unknown) => void) => unknown, greet = true): Promise<Fake> {
  const path = join(dir, `qmp-${Math.random().toString(16).slice(2)}.sock`);
  const f: Fake = { path, server: createServer(), seen: [], client: null };
  f.server.on("connection", (c) => {
    f.client = c;
    const send = (m: unknown) => c.write(JSON.stringify(m) + "\r\n");
    if (greet) send(GREETING);
    let buf = "";
    c.on("data", (d) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        const cmd = JSON.parse(buf.slice(0, i)) as Record<string, unknown>;
        buf = buf.slice(i + 1);
        f.seen.push(cmd);
        if (cmd.execute === "qmp_capabilities") { send({ return: {}, id: cmd.id }); continue; }
        const r = answer(cmd, send);
        if (r !== null) send({ ...(r as object), id: cmd.id });
      }
    });
    c.on("error", () => {});
  });
  return new Promise((resolve) => f.server.listen(path, () => resolve(f)));
}

const s = suite("QMP client");
const dir = mkdtempSync(join(tmpdir(), "bollard-qmp-"));
s.after(() => rmSync(dir, { recursive: true, force: true }));

s("greeting, qmp_capabilities first, then commands with ids and arguments", async () => {
  const f = await fake(dir, (cmd) => (cmd.execute === "query-status" ? { return: { status: "running", running: true } } : { return: {} }));
  const q = await Qmp.connect(f.path);
  assert.is(q.version, "7.2.22");
  const st = await q.execute<{ status: string }>("query-status");
  assert.is(st.status, "running");
  await q.execute("blockdev-add", { driver: "nbd", "node-name": "t0" });
  assert.is(f.seen[0]!.execute, "qmp_capabilities");
  assert.equal(f.seen[2], { execute: "blockdev-add", arguments: { driver: "nbd", "node-name": "t0" }, id: f.seen[2]!.id });
  assert.is.not(f.seen[1]!.id, f.seen[2]!.id);
  q.close();
  f.server.close();
});

s("answers out of order are matched by id; an error carries its class and text", async () => {
  const held: [Record<string, unknown>, (m: unknown) => void][] = [];
  const f = await fake(dir, (cmd, send) => {
    if (cmd.execute === "slow") { held.push([cmd, send]); return null; }
    if (cmd.execute === "fast") { const [c, sn] = held.pop()!; sn({ return: "slow done", id: c.id }); return { return: "fast done" }; }
    return { error: { class: "DeviceNotFound", desc: "Device 'x' not found" } };
  });
  const q = await Qmp.connect(f.path);
  const slow = q.execute("slow");
  const fast = q.execute("fast");
  assert.equal(await Promise.all([slow, fast]), ["slow done", "fast done"]);
  try {
    await q.execute("device_del", { id: "x" });
    assert.unreachable("an error");
  } catch (e) {
    assert.instance(e, QmpError);
    assert.is((e as QmpError).errorClass, "DeviceNotFound");
    assert.is((e as QmpError).message, "device_del: Device 'x' not found (DeviceNotFound)");
  }
  q.close();
  f.server.close();
});

s("events arrive between answers; waitEvent takes the first that matches", async () => {
  const f = await fake(dir, (cmd, send) => {
    if (cmd.execute === "blockdev-mirror") {
      send({ event: "JOB_STATUS_CHANGE", data: { id: "m0", status: "running" }, timestamp: { seconds: 1, microseconds: 2 } });
      setTimeout(() => {
        send({ event: "BLOCK_JOB_READY", data: { device: "other", len: 1 } });
        send({ event: "BLOCK_JOB_READY", data: { device: "m0", len: 67108864, offset: 67108864 } });
      }, 20);
    }
    return { return: {} };
  });
  const q = await Qmp.connect(f.path);
  const events: string[] = [];
  q.onEvent((e) => events.push(e.event));
  const ready = q.waitEvent("BLOCK_JOB_READY", (e) => e.data.device === "m0", 2000);
  await q.execute("blockdev-mirror", { "job-id": "m0" });
  const e = await ready;
  assert.is(e.data.len, 67108864);
  assert.equal(events, ["JOB_STATUS_CHANGE", "BLOCK_JOB_READY", "BLOCK_JOB_READY"]);
  q.close();
  f.server.close();
});

s("a command without an answer times out; the connection stays usable", async () => {
  const f = await fake(dir, (cmd) => (cmd.execute === "hang" ? null : { return: 1 }));
  const q = await Qmp.connect(f.path);
  try {
    await q.execute("hang", undefined, 50);
    assert.unreachable("a timeout");
  } catch (e) {
    assert.match((e as Error).message, /no answer to hang within 50 ms/);
  }
  assert.is(await q.execute("ok"), 1);
  q.close();
  f.server.close();
});

s("the server goes away: pending commands fail, onClose says why, later commands are refused", async () => {
  const f = await fake(dir, () => null);
  const q = await Qmp.connect(f.path);
  let why = "";
  q.onClose((w) => (why = w));
  const pending = q.execute("quit");
  f.client!.destroy();
  try {
    await pending;
    assert.unreachable("a failure");
  } catch (e) {
    assert.match((e as Error).message, /before quit was answered/);
  }
  assert.match(why, /closed|connection error/);
  assert.not.ok(q.isOpen);
  try { await q.execute("query-status"); assert.unreachable("refused"); } catch (e) { assert.match((e as Error).message, /closed; cannot run query-status/); }
  f.server.close();
});

s("no greeting, or no socket: connect fails within its timeout", async () => {
  const f = await fake(dir, () => null, false);
  const t0 = Date.now();
  try {
    await Qmp.connect(f.path, { timeoutMs: 100 });
    assert.unreachable("no greeting");
  } catch (e) {
    assert.match((e as Error).message, /no greeting within 100 ms/);
  }
  assert.ok(Date.now() - t0 < 1000);
  f.server.close();
  try {
    await Qmp.connect(join(dir, "absent.sock"), { timeoutMs: 200 });
    assert.unreachable("no socket");
  } catch (e) {
    assert.match((e as Error).message, /ENOENT|connection error/);
  }
});

s.run();
