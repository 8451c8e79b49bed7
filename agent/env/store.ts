// The node's persisted state (DESIGN §4: term, vote and the config register) in
// `<state_dir>/cluster.json`. save() returns only once the state is durable: write a temp
// file, fsync it, rename it over the old one, fsync the directory (rename(2) is atomic; the
// directory fsync makes the rename itself durable). load() validates the content; a file
// that is not valid state is an error, never "no state": starting blank could vote twice in
// one term (DESIGN R1), so the agent refuses to start instead (docs/config.md, state_dir).
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { z } from "zod";
import { ClusterConfig } from "../bus/messages.ts";
import type { PersistedState, Store } from "./env.ts";

export const STATE_FORMAT = 1;

export const PersistedStateFile = z
  .object({
    format: z.literal(STATE_FORMAT),
    term: z.number().int().nonnegative(),
    votedFor: z.string().min(1).max(64).nullable(),
    config: ClusterConfig,
    committed: ClusterConfig,
  })
  .strict();

export class StateFileError extends Error {
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(
      `${file}: ${detail}. The agent does not start on a corrupt state file (it could vote twice in a term): ` +
        `inspect it, then move it aside to start this node blank (see docs/config.md, state_dir)`,
    );
    this.name = "StateFileError";
  }
}

export class FileStore implements Store {
  readonly file: string;
  private dirReady = false;

  constructor(readonly dir: string) {
    this.file = join(dir, "cluster.json");
  }

  load(): PersistedState | null {
    let text: string;
    try {
      text = readFileSync(this.file, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw new StateFileError(this.file, `cannot read: ${(e as Error).message}`);
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new StateFileError(this.file, `not valid JSON (${(e as Error).message}, ${text.length} bytes)`);
    }
    const r = PersistedStateFile.safeParse(raw);
    if (!r.success) {
      const first = r.error.issues[0]!;
      throw new StateFileError(this.file, `not a valid state file: ${first.path.join(".") || "(top level)"}: ${first.message}`);
    }
    const { term, votedFor, config, committed } = r.data;
    return { term, votedFor, config, committed };
  }

  save(state: PersistedState): void {
    if (!this.dirReady) {
      mkdirSync(this.dir, { recursive: true, mode: 0o750 });
      this.dirReady = true;
    }
    const body = { format: STATE_FORMAT, ...state };
    atomicWrite(this.file, JSON.stringify(body) + "\n", { durable: true });
  }
}

/**
 * Replaces `file` with `data` so that a reader sees the old or the new content, never a mix.
 * `durable`: also fsync the data and the directory, so the new content survives a power cut.
 * A temp file left behind by a crash is overwritten by the next write and never read.
 */
export function atomicWrite(file: string, data: string, opts: { durable: boolean; mode?: number }): void {
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, "w", opts.mode ?? 0o640);
  try {
    const buf = Buffer.from(data, "utf8");
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    if (opts.durable) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  if (opts.durable) fsyncDir(dirname(file));
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
