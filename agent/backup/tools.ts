// Running the database tools a backup uses (mariadb-backup, mariadb-binlog, mariadb,
// redis-check-rdb): argv lists (no shell), a deadline after which the tool is killed by its
// PID, and an error that ends with the tool's last stderr lines. A password goes in an option
// file (mode 0600, in a private temp dir, removed after), never on a command line.
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface MysqlConn {
  host?: string;
  port?: number;
  socket?: string;
  user: string;
  password: string;
}

export function run(cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"], env: opts.env ?? process.env });
    let stdout = "", stderr = "", timedOut = false;
    p.stdout.on("data", (d) => { if (stdout.length < 4 << 20) stdout += d; });
    p.stderr.on("data", (d) => { stderr = (stderr + d).slice(-16_384); });
    p.stdin.on("error", () => undefined);
    p.stdin.end(opts.input ?? "");
    const timer = setTimeout(() => { timedOut = true; p.kill("SIGKILL"); }, opts.timeoutMs ?? 3_600_000);
    p.once("error", (e) => { clearTimeout(timer); reject(new Error(`${cmd}: ${e.message}`)); });
    p.once("close", (code, sig) => {
      clearTimeout(timer);
      if (code === 0) return resolve({ stdout, stderr });
      const tail = stderr.trim().split("\n").slice(-3).join(" / ");
      reject(new Error(`${cmd} ${timedOut ? `not done in ${opts.timeoutMs} ms` : code !== null ? `exited ${code}` : `killed by ${sig}`}${tail ? `: ${tail}` : ""}`));
    });
  });
}

/** Calls `fn` with the path of a [client] option file holding the password. */
export async function withClientCnf<T>(password: string, fn: (cnf: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "bollard-backup-"));
  try {
    const cnf = join(dir, "client.cnf");
    await writeFile(cnf, `[client]\npassword="${password.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"\n`, { mode: 0o600 });
    return await fn(cnf);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export const connArgs = (c: MysqlConn): string[] => [
  ...(c.socket ? [`--socket=${c.socket}`] : [`--host=${c.host ?? "127.0.0.1"}`, `--port=${c.port ?? 3306}`, "--protocol=TCP"]),
  `--user=${c.user}`,
];

/** Runs SQL through the mariadb client, tab-separated rows without headers. */
export function sql(c: MysqlConn, statements: string, client = "mariadb", timeoutMs = 60_000): Promise<string> {
  return withClientCnf(c.password, (cnf) => run(client, [`--defaults-extra-file=${cnf}`, ...connArgs(c), "-N", "-B"], { input: statements, timeoutMs }).then((r) => r.stdout));
}

/** Bytes used under a directory (du -sb semantics, without following links). */
export async function dirBytes(dir: string): Promise<number> {
  const { stdout } = await run("du", ["-sb", dir], { timeoutMs: 60_000 });
  return Number(stdout.split("\t")[0]) || 0;
}
