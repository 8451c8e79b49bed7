#!/usr/bin/env node
// image/treehash.mjs DIR [--list FILE] [--out FILE]: the tree hash of a root file system, the
// image's reproducibility measure. One line per entry, sorted by path (bytes):
//   <path> <type> <mode, octal incl. setuid/setgid/sticky> <uid>:<gid> <what>
// where <what> is the sha256 of a file's content, a symlink's target, a device's major,minor,
// and then the entry's extended attributes (file capabilities, ACLs) as name=sha256.
// `tree` is the sha256 of those lines; `tree+mtime` also covers every mtime (seconds).
// Two builds from the same inputs must give the same `tree` (docs/image.md).
import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { lstatSync, openSync, readSync, closeSync, readdirSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const args = process.argv.slice(2);
const dir = args[0];
if (!dir || dir.startsWith("-")) {
  console.error("usage: treehash.mjs DIR [--list FILE] [--out FILE]");
  process.exit(2);
}
const opt = (k) => (args.indexOf(k) > 0 ? args[args.indexOf(k) + 1] : null);

const buf = Buffer.allocUnsafe(1 << 20);
function fileHash(p) {
  const h = createHash("sha256");
  const fd = openSync(p, "r");
  try {
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) h.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return h.digest("hex");
}

// Extended attributes of every entry, in one getfattr run (Node has no xattr API).
const xattrs = new Map();
try {
  const out = execFileSync("getfattr", ["-R", "-P", "-d", "-m", "-", "-e", "hex", "--absolute-names", dir], {
    encoding: "utf8", maxBuffer: 1 << 28, stdio: ["ignore", "pipe", "ignore"],
  });
  let cur = null;
  for (const line of out.split("\n")) {
    if (line.startsWith("# file: ")) cur = line.slice(8);
    else if (cur && line.includes("=")) {
      const at = line.indexOf("=");
      const v = createHash("sha256").update(line.slice(at + 1)).digest("hex").slice(0, 16);
      xattrs.set(cur, [...(xattrs.get(cur) ?? []), `${line.slice(0, at)}=${v}`]);
    }
  }
} catch (e) {
  if (e.code === "ENOENT") console.error("treehash: getfattr not found (apt-get install attr): extended attributes not hashed");
  else if (e.status !== 1) throw e;
}

const lines = [];
const mlines = [];
function walk(rel) {
  const abs = rel ? join(dir, rel) : dir;
  const names = readdirSync(abs).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  for (const name of names) {
    const r = rel ? `${rel}/${name}` : name;
    const p = join(dir, r);
    const st = lstatSync(p);
    const mode = (st.mode & 0o7777).toString(8).padStart(4, "0");
    let type, what;
    if (st.isSymbolicLink()) [type, what] = ["l", readlinkSync(p)];
    else if (st.isFile()) [type, what] = ["f", fileHash(p)];
    else if (st.isDirectory()) [type, what] = ["d", "-"];
    else if (st.isCharacterDevice() || st.isBlockDevice()) [type, what] = [st.isBlockDevice() ? "b" : "c", `${st.rdev >> 8},${st.rdev & 255}`];
    else if (st.isFIFO()) [type, what] = ["p", "-"];
    else [type, what] = ["s", "-"];
    const x = xattrs.get(p);
    const line = `/${r} ${type} ${mode} ${st.uid}:${st.gid} ${what}${x ? ` ${x.sort().join(" ")}` : ""}`;
    lines.push(line);
    mlines.push(`${line} ${Math.floor(st.mtimeMs / 1000)}`);
    if (type === "d") walk(r);
  }
}
walk("");
const text = lines.join("\n") + "\n";
const tree = createHash("sha256").update(text).digest("hex");
const treeM = createHash("sha256").update(mlines.join("\n") + "\n").digest("hex");
if (opt("--list")) writeFileSync(opt("--list"), mlines.join("\n") + "\n");
const summary = `tree ${tree}\ntree+mtime ${treeM}\nentries ${lines.length}\n`;
if (opt("--out")) writeFileSync(opt("--out"), summary);
process.stdout.write(summary);
