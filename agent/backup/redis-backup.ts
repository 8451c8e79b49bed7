// A Redis snapshot (issue 23 item 4): BGSAVE on a replica (never the master), wait until
// LASTSAVE moves past the time before the request and the save reports ok (INFO persistence:
// rdb_bgsave_in_progress, rdb_last_bgsave_status; https://redis.io/commands/bgsave/), copy the
// RDB file the replica wrote (CONFIG GET dir, dbfilename) into `<target>/redis/<id>.tmp/`, check
// the copy with redis-check-rdb (its key count goes in the manifest), then rename.
import { Redis } from "ioredis";
import { copyFile, mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { finalize, tmpDir, writeManifest, type Manifest } from "./manifest.ts";
import { writeSums } from "./sums.ts";
import { dirBytes, run } from "./tools.ts";

export interface RedisBackupOptions {
  host: string;
  port: number;
  password?: string;
  target: string;
  id: string;
  name: string;
  node: string;
  storedOn: string;
  now: () => number;
  timeoutMs?: number;
}

const field = (info: string, k: string) => new RegExp(`^${k}:(.*)$`, "m").exec(info)?.[1]?.trim() ?? null;

/** "[offset 0] ... 1234 keys read" (redis-check-rdb's summary) -> 1234; null if absent. */
export function keysRead(out: string): number | null {
  const m = /(\d+) keys read/.exec(out);
  return m ? Number(m[1]) : null;
}

export async function takeRedisBackup(o: RedisBackupOptions): Promise<Manifest> {
  const tmp = tmpDir(o.target, "redis", o.id);
  const startedAt = new Date(o.now()).toISOString();
  const r = new Redis({ host: o.host, port: o.port, password: o.password, lazyConnect: true, maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 3000 });
  try {
    await r.connect();
    const role = field(await r.info("replication"), "role");
    if (role !== "slave") throw new Error(`redis on ${o.host}:${o.port} is ${role ?? "unknown"}, not a replica: a snapshot is never taken on the master`);
    const [, dir] = (await r.config("GET", "dir")) as [string, string];
    const [, file] = (await r.config("GET", "dbfilename")) as [string, string];
    const before = Number(await r.lastsave());
    // LASTSAVE has whole seconds: a save in the same second as the last one would not show
    while (Math.floor(Date.now() / 1000) <= before) await new Promise((res) => setTimeout(res, 100));
    await r.bgsave();
    const deadline = Date.now() + (o.timeoutMs ?? 600_000);
    for (;;) {
      const info = await r.info("persistence");
      if (Number(await r.lastsave()) > before && field(info, "rdb_bgsave_in_progress") === "0") {
        if (field(info, "rdb_last_bgsave_status") !== "ok") throw new Error(`BGSAVE failed on ${o.host}:${o.port} (rdb_last_bgsave_status ${field(info, "rdb_last_bgsave_status")})`);
        break;
      }
      if (Date.now() > deadline) throw new Error(`BGSAVE not done in ${o.timeoutMs ?? 600_000} ms`);
      await new Promise((res) => setTimeout(res, 100));
    }
    await mkdir(tmp, { recursive: true });
    await copyFile(join(dir, file), join(tmp, "dump.rdb"));
    const check = await run("redis-check-rdb", [join(tmp, "dump.rdb")], { timeoutMs: 600_000 });
    const keys = keysRead(check.stdout + check.stderr);
    if (keys === null) throw new Error("redis-check-rdb: no key count in its output");
    await writeSums(tmp);
    const m: Manifest = {
      id: o.id, kind: "redis", name: o.name, node: o.node, storedOn: o.storedOn, startedAt,
      finishedAt: new Date(o.now()).toISOString(), bytes: await dirBytes(tmp), parent: null, state: "complete",
      detail: { keys, lastsave: Number(await r.lastsave()) },
    };
    await writeManifest(tmp, m);
    await finalize(o.target, "redis", o.id);
    return m;
  } catch (e) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  } finally {
    r.disconnect();
  }
}
