// Builds the web console's front end (agent/web/ui/main.ts: preact with htm, uPlot, xterm) with
// the same esbuild the agent is built with: one minified script and one stylesheet, each named
// by its content hash (cacheable for ever), and the page that loads them. build.mjs embeds the
// result, gzipped, in dist/bollard.js; agent/web/assets.ts calls this when run from source.
import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";

const TYPES = { ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".html": "text/html; charset=utf-8" };

/** path -> { type, body (Buffer), gz (Buffer), immutable } */
export async function buildUi(esbuild, root) {
  const r = await esbuild.build({
    absWorkingDir: root,
    entryPoints: { app: "agent/web/ui/main.ts" },
    bundle: true,
    minify: true,
    format: "iife",
    target: ["chrome100", "firefox100", "safari15"],
    platform: "browser",
    write: false,
    outdir: "assets",
    entryNames: "[name]-[hash]",
    legalComments: "none",
    logLevel: "warning",
    define: { "process.env.NODE_ENV": '"production"' },
  });
  const out = {};
  for (const f of r.outputFiles) {
    const name = `/assets/${f.path.split("/").pop()}`;
    const ext = name.slice(name.lastIndexOf("."));
    if (!TYPES[ext]) continue;
    out[name] = { type: TYPES[ext], body: Buffer.from(f.contents), immutable: true };
  }
  const js = Object.keys(out).find((k) => k.endsWith(".js"));
  const css = Object.keys(out).find((k) => k.endsWith(".css"));
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>bollard</title>${css ? `<link rel="stylesheet" href="${css}">` : ""}</head>
<body><div id="app"><p class="boot">bollard: loading…</p></div><script src="${js}"></script></body></html>
`;
  out["/index.html"] = { type: TYPES[".html"], body: Buffer.from(html), immutable: false };
  for (const a of Object.values(out)) {
    a.gz = gzipSync(a.body, { level: 9 });
    a.etag = `"${createHash("sha256").update(a.body).digest("base64url").slice(0, 16)}"`;
  }
  return out;
}
