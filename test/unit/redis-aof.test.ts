// The AOF reader of redis-aof.ts on hand-made files: commands after the last stamp, SELECT left
// out, a command cut short by a power cut not counted, bad bytes an error value.
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { aofConfig, aofTail, cmpRedisPositions, parseAofPosition, parseManifest } from "../../agent/resources/redis-aof.ts";

const resp = (...argv: string[]) => `*${argv.length}\r\n${argv.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`;
const buf = (s: string) => Buffer.from(s, "latin1");

const t = suite("redis-aof");

t("counts the commands after the last stamp, across incr files, SELECT left out", () => {
  const a = buf(resp("SELECT", "0") + resp("set", "a", "1") + resp("INCR", "bollard:stamp") + resp("set", "b", "2"));
  const b = buf(resp("incr", "bollard:stamp") + resp("SELECT", "3") + resp("set", "c", "3") + resp("MULTI") + resp("incr", "x") + resp("EXEC"));
  const r = aofTail([a, b]);
  assert.ok(r.ok);
  if (r.ok) assert.equal(r.value, { stamped: true, after: 4, commands: 10, truncated: 0 });
});

t("no stamp: every command counts, and it says so", () => {
  const r = aofTail([buf(resp("set", "a", "1") + resp("INCR", "other") + resp("INCR", "bollard:stampx"))]);
  assert.ok(r.ok && !r.value.stamped && r.value.after === 3);
});

t("a command cut short at the end is not counted; annotations are skipped", () => {
  const whole = resp("INCR", "bollard:stamp") + "#TS:1700000000\r\n" + resp("set", "a", "1");
  const cut = resp("set", "b", "22222");
  for (let n = 1; n < cut.length; n++) {
    const r = aofTail([buf(whole + cut.slice(0, n))]);
    assert.ok(r.ok, `cut at ${n}`);
    if (r.ok) assert.equal([r.value.after, r.value.truncated], [1, n], `cut at ${n}`);
  }
});

t("bytes that are not RESP are an error value naming where", () => {
  const r = aofTail([buf(resp("set", "a", "1") + "garbage\r\n")]);
  assert.ok(!r.ok && /byte 27/.test(r.error), r.ok ? "" : r.error);
  const h = aofTail([buf("*x\r\n")]);
  assert.ok(!h.ok && /bad array header/.test(h.error));
});

t("manifest: files with seq and type; a bad line is an error", () => {
  const m = parseManifest("file appendonly.aof.2.base.rdb seq 2 type b\nfile appendonly.aof.2.incr.aof seq 2 type i\nfile appendonly.aof.3.incr.aof seq 3 type i\n");
  assert.ok(m.ok && m.value.length === 3 && m.value[2]!.seq === 3);
  assert.not.ok(parseManifest("file x seq 1 type q\n").ok);
  assert.not.ok(parseManifest("file ../etc/passwd seq 1 type i\n").ok, "a path outside the AOF directory");
  assert.not.ok(parseManifest("file x seq\n").ok);
});

t("positions: stamps then commands; a live offset ahead of any AOF position", () => {
  assert.ok(cmpRedisPositions("aof:3+0", "aof:2+900") > 0);
  assert.ok(cmpRedisPositions("aof:3+5", "aof:3+7") < 0);
  assert.is(cmpRedisPositions("aof:3+5", "aof:3+5"), 0);
  assert.ok(cmpRedisPositions("12", "aof:99+99") > 0);
  assert.ok(cmpRedisPositions("aof:0+0", "0") < 0);
  assert.ok(cmpRedisPositions("12", "9") > 0);
  assert.equal(parseAofPosition("aof:4+2"), { stamp: 4, after: 2 });
  assert.is(parseAofPosition("4"), null);
});


t("where the AOF is, from CONFIG GET's flat reply; off is null; a reply without the names is an error", () => {
  assert.equal(aofConfig(["appendonly", "yes", "appenddirname", "appendonlydir", "appendfilename", "appendonly.aof", "dir", "/var/lib/redis"]), { ok: true, value: { dir: "/var/lib/redis", appendDir: "appendonlydir", file: "appendonly.aof" } });
  assert.equal(aofConfig(["appendonly", "no", "dir", "/d"]), { ok: true, value: null });
  const bad = aofConfig(["appendonly", "yes", "dir", "/d"]);
  assert.is(bad.ok, false);
  assert.match(bad.ok ? "" : bad.error, /appenddirname appendfilename: got/);
});

t.run();
