// agent/upgrade/: the rolling upgrade of the agent bundle and the A/B image upgrade
// (issue 15, docs/upgrade.md). This file: what a bundle is, and where a node keeps them.
//
// A node's bundles live beside each other under `<state_dir>/bundles` (the data partition:
// they survive a switch of root slot):
//   <version>-<sha12>/bollard.js   one per staged bundle
//   current -> <dir>                the one the agent runs (absent: the image's own bundle)
//   previous -> <dir>               the one `current` replaced (absent: the image's own)
//   trial.json                      {sha, version, until, previous}: `current` is on trial
//                                   until `until` (wall ms); blessing removes it
//   rolled-back.json                {sha, version, why, at}: the last trial that was undone
// The agent is started through /usr/lib/bollard/agent-exec BUNDLES FALLBACK, which runs
// `current` (resolved) or FALLBACK, and undoes a trial whose deadline passed while nobody
// was left to undo it (the node rebooted during the trial).
//
// Every failure is an error value with a message that says what and why (STYLE): a bad
// bundle never throws out of here.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { atomicWrite } from "../env/store.ts";

export type Result<T> = { ok: true; value: T } | { ok: false; error: string };
const ok = <T>(value: T): Result<T> => ({ ok: true, value });
const fail = <T>(error: string): Result<T> => ({ ok: false, error });

/** A bundle larger than this is not a bollard bundle (ours is ~2.6 MB). */
export const MAX_BUNDLE_BYTES = 32 * 1024 * 1024;
const VERSION_RE = /^bollard (\d+\.\d+\.\d+[0-9A-Za-z.+-]{0,40}) \(([0-9A-Za-z._-]{1,40})\)$/;

export interface BundleInfo {
  path: string;
  sha: string;
  size: number;
  version: string;
  rev: string;
}

export const sha256 = (b: Buffer) => createHash("sha256").update(b).digest("hex");
export const dirName = (version: string, sha: string) => `${version}-${sha.slice(0, 12)}`;

/**
 * What the bundle at `path` is: read, hashed, and asked for its version (`node FILE
 * --version`, 20 s at most) in a child, so that a broken file cannot touch this process.
 * A file that is missing, too large, not a Node script or does not say `bollard X (REV)`
 * is an error that says so.
 */
export function inspectBundle(path: string, node = process.execPath): Result<BundleInfo> {
  let st;
  try {
    st = statSync(path);
  } catch (e) {
    return fail(`${path}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`);
  }
  if (!st.isFile()) return fail(`${path}: not a regular file`);
  if (st.size === 0 || st.size > MAX_BUNDLE_BYTES) return fail(`${path}: ${st.size} bytes: not a bollard bundle (expected 1 byte to ${MAX_BUNDLE_BYTES >> 20} MiB)`);
  const data = readFileSync(path);
  return inspectBytes(path, data, node);
}

/** inspectBundle for bytes already read (a bundle received over the bus, written to `path`). */
export function inspectBytes(path: string, data: Buffer, node = process.execPath): Result<BundleInfo> {
  const head = data.subarray(0, 200).toString("latin1");
  if (!head.startsWith("#!") || !/node/.test(head.split("\n")[0]!)) return fail(`${path}: not a bollard bundle (it does not start with a node #! line)`);
  if (data.subarray(0, 65536).includes(0)) return fail(`${path}: not a bollard bundle (binary content)`);
  const r = spawnSync(node, [path, "--version"], { encoding: "utf8", timeout: 20_000, env: { ...process.env, NODE_OPTIONS: "" } });
  if (r.error) return fail(`${path}: running it failed: ${r.error.message}`);
  const line = (r.stdout ?? "").trim();
  const m = VERSION_RE.exec(line);
  if (r.status !== 0 || !m) return fail(`${path}: not a bollard bundle: "node ${basename(path)} --version" ${r.status !== 0 ? `exited ${r.status ?? r.signal}` : `printed ${JSON.stringify(line.slice(0, 80))}`}`);
  return ok({ path, sha: sha256(data), size: data.length, version: m[1]!, rev: m[2]! });
}

export interface Trial {
  sha: string;
  version: string;
  /** wall ms: the deadline of the health gate, after which the trial is undone */
  until: number;
  /** the directory `current` pointed at before, or null: the image's own bundle */
  previous: string | null;
  startedAt: number;
}

export interface RolledBack {
  sha: string;
  version: string;
  why: string;
  at: number;
}

/** One node's bundle directory (see the top of this file). */
export class BundleStore {
  constructor(readonly dir: string) {}

  private p(name: string): string {
    return join(this.dir, name);
  }

  /** The directory `current` points at, or null (the image's own bundle runs). */
  current(): string | null {
    return link(this.p("current"));
  }

  trial(): Trial | null {
    return readJson<Trial>(this.p("trial.json"));
  }

  rolledBack(): RolledBack | null {
    return readJson<RolledBack>(this.p("rolled-back.json"));
  }

  /** The staged bundle of this sha, if it is here and whole. */
  staged(sha: string): string | null {
    if (!existsSync(this.dir)) return null;
    for (const d of readdir(this.dir)) {
      if (!d.endsWith(`-${sha.slice(0, 12)}`)) continue;
      const f = join(this.dir, d, "bollard.js");
      try {
        if (sha256(readFileSync(f)) === sha) return f;
      } catch {
        /* not there */
      }
    }
    return null;
  }

  /** Writes `data` as a staged bundle (checked: sha, and it answers --version). */
  stage(data: Buffer, sha: string, node = process.execPath): Result<BundleInfo> {
    if (sha256(data) !== sha) return fail(`the bundle received does not match its sha256 ${sha.slice(0, 12)}: not staged`);
    mkdirSync(this.dir, { recursive: true, mode: 0o750 });
    const tmp = this.p(`.staging-${process.pid}`);
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { mode: 0o755 });
    const file = join(tmp, "bollard.js");
    writeFileSync(file, data, { mode: 0o755 });
    const info = inspectBytes(file, data, node);
    if (!info.ok) {
      rmSync(tmp, { recursive: true, force: true });
      return info;
    }
    const final = this.p(dirName(info.value.version, sha));
    rmSync(final, { recursive: true, force: true });
    renameSync(tmp, final);
    this.prune([final, this.current(), link(this.p("previous"))]);
    return ok({ ...info.value, path: join(final, "bollard.js") });
  }

  /**
   * Puts the staged bundle `sha` on trial: `previous` is what ran, `current` the new one,
   * trial.json says until when. The caller then restarts the agent.
   */
  startTrial(sha: string, version: string, until: number, now: number): Result<Trial> {
    const f = this.staged(sha);
    if (!f) return fail(`bundle ${sha.slice(0, 12)} is not staged on this node`);
    if (this.trial()) return fail(`a trial is already running (${this.trial()!.version}): bless or roll it back first`);
    const previous = this.current();
    const t: Trial = { sha, version, until, previous, startedAt: now };
    atomicWrite(this.p("trial.json"), JSON.stringify(t) + "\n", { durable: true });
    setLink(this.p("previous"), previous);
    setLink(this.p("current"), dirname(f));
    rmSync(this.p("rolled-back.json"), { force: true });
    // the bundle is this root's now (agent-exec: a bundle rolled out before an image upgrade stays the old root's)
    rmSync(`${this.dir}-root`, { force: true });
    return ok(t);
  }

  /**
   * Ends the trial of `sha` as good: trial.json is renamed away, which is atomic against
   * an undo racing it (only one of the two renames can succeed).
   */
  bless(sha: string): Result<string> {
    const t = this.trial();
    if (!t) return fail("no trial is running on this node (it was blessed, or undone when its deadline passed)");
    if (t.sha !== sha) return fail(`the trial here is of ${t.sha.slice(0, 12)}, not ${sha.slice(0, 12)}`);
    try {
      renameSync(this.p("trial.json"), this.p(".trial-blessed"));
    } catch {
      return fail("the trial ended meanwhile (its deadline passed and it was undone)");
    }
    rmSync(this.p(".trial-blessed"), { force: true });
    return ok(`bundle ${t.version} (${sha.slice(0, 12)}) blessed`);
  }

  /**
   * Undoes the trial: `current` back to `previous`, rolled-back.json says why. Atomic against
   * a blessing (see bless). Returns the undone trial, or an error when there was none.
   */
  undo(why: string, now: number): Result<Trial> {
    const t = this.trial();
    if (!t) return fail("no trial to undo");
    try {
      renameSync(this.p("trial.json"), this.p(".trial-undone"));
    } catch {
      return fail("the trial was blessed meanwhile");
    }
    setLink(this.p("current"), t.previous);
    const rb: RolledBack = { sha: t.sha, version: t.version, why, at: now };
    atomicWrite(this.p("rolled-back.json"), JSON.stringify(rb) + "\n", { durable: true });
    rmSync(this.p(".trial-undone"), { force: true });
    return ok(t);
  }

  /** Keeps the bundles in `keep` and the newest two others; removes the rest. */
  private prune(keep: (string | null)[]): void {
    const k = new Set(keep.filter(Boolean).map((x) => basename(x!)));
    const dirs = readdir(this.dir).filter((d) => !d.startsWith(".") && !["current", "previous"].includes(d) && !d.endsWith(".json"))
      .map((d) => ({ d, t: mtime(join(this.dir, d)) })).sort((a, b) => b.t - a.t);
    let others = 0;
    for (const { d } of dirs) {
      if (k.has(d)) continue;
      if (++others > 2) rmSync(join(this.dir, d), { recursive: true, force: true });
    }
  }
}

function link(p: string): string | null {
  try {
    return readlinkSync(p);
  } catch {
    return null;
  }
}

/** Points `p` at `target` atomically (symlink beside it, then rename); null removes it. */
function setLink(p: string, target: string | null): void {
  if (target === null) {
    try { unlinkSync(p); } catch { /* absent */ }
    return;
  }
  const tmp = `${p}.tmp-${process.pid}`;
  rmSync(tmp, { force: true });
  symlinkSync(target, tmp);
  renameSync(tmp, p);
}

function readJson<T>(p: string): T | null {
  try {
    return JSON.parse(readFileSync(p, "utf8")) as T;
  } catch {
    return null;
  }
}

function readdir(d: string): string[] {
  try {
    return readdirSync(d);
  } catch {
    return [];
  }
}

function mtime(p: string): number {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return 0;
  }
}
