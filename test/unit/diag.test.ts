// `bollard diag`: the bundle has the listed contents, and no secret is anywhere in it: not the
// config's inline secrets, not the contents of the files it names, not the values of the
// environment's secret variables, even when the agent's answers and the services' logs
// carry them. The proof scans every byte of the decompressed archive.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { redactConfigText, scrub, tar, untar } from "../../agent/cli/diag-tar.ts";
import { writeDiagBundle } from "../../agent/cli/diag.ts";
import { body, events } from "./console-fixture.ts";

const SECRET_FILES: Record<string, string> = {
  "join.token": "join-token-Ab12Cd34Ef56Gh78",
  "bmc.pass": "bmc-pass-9f8e7d6c",
  "mysql.pass": "mysql-pw-Qw3rTy",
  "repl.pass": "repl-pw-Zx9Cv8",
  "redis.pass": "redis-pw-Po0Iu9",
  "console.pin": "pin-8842",
  "mosquitto.passwd": "node1:$7$101$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaGhhc2g=",
};
const INLINE = ["bus-inline-Pw55", "comm-Secret-77", "write-Comm-88", "authkey-Secret-1", "privkey-Secret-2"];
const ENV = { MY_API_TOKEN: "env-token-Zz99Yy88", DB_PASSWORD: "env-pass-Ww77", SOME_SECRET: "env-secret-Qq11", PATH: process.env.PATH };

const D = suite("bollard diag");
let dir = "";
let state = "";
let server: Server | null = null;

D.before.each(async () => {
  dir = mkdtempSync(join(tmpdir(), "bollard-diag-"));
  state = join(dir, "node1", "state");
  mkdirSync(join(dir, "node1", "mysql"), { recursive: true });
  mkdirSync(state, { recursive: true });
  for (const [f, v] of Object.entries(SECRET_FILES)) writeFileSync(join(dir, f), `${v}\n`, { mode: 0o600 });
  const f = (n: string) => join(dir, n);
  writeFileSync(join(dir, "bollard.yaml"), `# the lab's node1
cluster:
  name: lab
  node: node1
  members: [{ name: node1, address: "127.0.0.1:1883" }, { name: node2, address: "127.0.0.2:1883" }]
  join: { token_file: ${f("join.token")} }
bus:
  password: ${INLINE[0]}
  broker: { password_file: ${f("mosquitto.passwd")}, acl_file: ${f("acl")}, pid_file: ${f("pid")} }
state_dir: ${state}
control: { socket: ${f("agent.sock")} }
ha:
  nodes:
    node1:
      address: 127.0.0.1
      bmc: { host: 127.0.0.1, port: 9, user: admin, password_file: ${f("bmc.pass")}, cipher: 3, timeout_s: 1, retries: 0 }
      ports: [{ switch: switchA, port: swp1 }]
    node2: { address: 127.0.0.2 }
  switches:
    switchA: { host: 127.0.0.1, port: 9, community: ${INLINE[1]}, write_community: ${INLINE[2]}, timeout_ms: 200, v3: { user: ops, auth_key: ${INLINE[3]}, priv_key: ${INLINE[4]} } }
mysql: { port: 9, user: bollard, password_file: ${f("mysql.pass")}, repl_password_file: ${f("repl.pass")} }
redis: { port: 9, password_file: ${f("redis.pass")} }
`);
  // what the agent and the services say carries secrets too: the bundle must scrub them
  const st = body();
  st.view.config.members[0]!.pass = SECRET_FILES["mosquitto.passwd"]!.split(":")[1];
  writeFileSync(join(dir, "node1", "mysql", "error.log"), `[Warning] Access denied for user 'bollard' (using password: ${SECRET_FILES["mysql.pass"]})\nnormal line\n`);
  writeFileSync(join(dir, "node1", "agent.log"), `{"msg":"token ${SECRET_FILES["join.token"]} env ${ENV.MY_API_TOKEN}"}\n`);
  server = createServer((req, res) => {
    const u = new URL(req.url!, "http://x");
    const reply = (b: unknown) => (res.writeHead(200, { "content-type": "application/json" }), res.end(JSON.stringify(b)));
    if (u.pathname === "/status") return reply(st);
    if (u.pathname === "/logs") return reply({ node: "node1", lines: [{ ts: "2026-11-22T09:00:00.000Z", level: "info", ns: "bus", msg: `login with ${INLINE[0]}`, password: SECRET_FILES["redis.pass"] }] });
    if (u.pathname === "/events") return reply({ node: "node1", events: [...events, { ts: "2026-11-22T09:59:00.000Z", kind: "x", node: "node1", term: 3, detail: `pin ${SECRET_FILES["console.pin"]} ${ENV.SOME_SECRET}` }] });
    res.writeHead(404).end("{}");
  });
  await new Promise<void>((r) => server!.listen(f("agent.sock"), () => r()));
});

D.after.each(async () => {
  await new Promise((r) => server!.close(r));
  rmSync(dir, { recursive: true, force: true });
});

D("the bundle holds the listed contents and not one secret", async () => {
  const out = join(dir, "bundle.tar.gz");
  const env = { ...ENV, BOLLARD_CONSOLE_PIN_FILE: join(dir, "console.pin") };
  const t0 = Date.now();
  const r = await writeDiagBundle({ configPath: join(dir, "bollard.yaml"), out, env, build: { version: "9.9.9", rev: "test" }, now: Date.parse("2026-11-22T10:00:00Z") });
  console.log(`  bundle: ${r.files.length} files, ${r.bytes} bytes in ${Date.now() - t0} ms; not collected: ${r.errors.length}`);
  assert.is(r.path, out);
  const files = untar(readFileSync(out));
  const names = [...files.keys()].map((n) => n.replace(/^bollard-diag-node1-20261122T100000Z\//, ""));
  for (const want of ["README.txt", "ERRORS.txt", "config/bollard.yaml", "versions.txt", "status.json", "status.txt", "events/node1.jsonl", "logs/agent.jsonl", "replication/facts.json", "hw/bmc-sel.txt", "hw/switch-switchA.txt"]) {
    assert.ok(names.includes(want), `${want} in ${names.join(", ")}`);
  }
  assert.ok(names.some((n) => n.endsWith("/node1/mysql/error.log")) && names.some((n) => n.endsWith("/node1/agent.log")), "the services' logs (lab layout)");
  const text = (n: string) => files.get(`bollard-diag-node1-20261122T100000Z/${n}`)!.toString("utf8");
  assert.match(text("versions.txt"), /^bollard 9\.9\.9 \(test\)\nnode v\d+/);
  assert.match(text("config/bollard.yaml"), /password: <redacted>/);
  assert.match(text("config/bollard.yaml"), /community: <redacted>/);
  assert.match(text("status.txt"), /^cluster +lab/m);
  assert.match(text("events/node1.jsonl"), /confirmFence done in 350 ms/);
  assert.match(text("ERRORS.txt"), /MySQL replication: /, "an unreachable MySQL is a line in ERRORS.txt");
  assert.match(text("logs/files" + join(dir, "node1/mysql/error.log")), /using password: <redacted>\)\nnormal line/);
  // the proof: every byte of the archive, decompressed
  const raw = gunzipSync(readFileSync(out)).toString("latin1");
  const secrets = [...INLINE, ...Object.values(SECRET_FILES), ...SECRET_FILES["mosquitto.passwd"]!.split(":").slice(1), ENV.MY_API_TOKEN, ENV.DB_PASSWORD, ENV.SOME_SECRET];
  for (const s of secrets) assert.not.ok(raw.includes(s), `secret ${JSON.stringify(s)} is in the bundle`);
});

D("redaction and the tar format on their own", () => {
  const secrets = new Set<string>();
  const y = redactConfigText("a: 1\nbus:\n  password: hunter22\n  password_file: /nonexistent\nlist: [{ token: t0k3n-xyz }]\n", secrets);
  assert.is(y, "a: 1\nbus:\n  password: <redacted>\n  password_file: <redacted>\nlist:\n  - token: <redacted>\n");
  assert.ok(secrets.has("hunter22") && secrets.has("t0k3n-xyz"));
  assert.is(scrub("x hunter22 y hunter2 z", ["hunter22", "abc"]), "x <redacted> y hunter2 z", "short values are not scrubbed from text");
  const t = tar([{ name: "a/b.txt", data: "hello" }, { name: `${"d/".repeat(60)}long.txt`, data: Buffer.alloc(700, 65) }], 1_700_000_000);
  assert.is(t.length % 512, 0);
  const back = untar(t);
  assert.is(back.get("a/b.txt")!.toString(), "hello");
  assert.is(back.get(`${"d/".repeat(60)}long.txt`)!.length, 700);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : t[i]!;
  assert.is(parseInt(t.subarray(148, 154).toString(), 8), sum, "ustar header checksum");
});

D.run();
