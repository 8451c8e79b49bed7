// The operator PIN that every console action asks for (issue 6). It lives in a file only root
// can read: `console.pin_file` in docs/console.md; the path comes from the environment
// variable BOLLARD_CONSOLE_PIN_FILE, else /etc/bollard/console.pin. The file is read at each
// check (a changed PIN applies at once, and the PIN is not kept in memory), compared in
// constant time (SHA-256 of both, then timingSafeEqual, so neither length nor content leaks
// through timing), and three wrong PINs lock the actions for a minute.
import { createHash, timingSafeEqual } from "node:crypto";
import { readFileSync, statSync } from "node:fs";

export const DEFAULT_PIN_FILE = "/etc/bollard/console.pin";
export const PIN_ENV = "BOLLARD_CONSOLE_PIN_FILE";
const MAX_FAILURES = 3;
const LOCK_MS = 60_000;

export function pinFile(env: NodeJS.ProcessEnv = process.env): string {
  return env[PIN_ENV] || DEFAULT_PIN_FILE;
}

export type PinRead = { ok: true; pin: string } | { ok: false; error: string };

/** The PIN from `file`: its first line, 4-64 characters; the file must be mode 0600 or stricter. */
export function readPin(file: string): PinRead {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch (e) {
    return { ok: false, error: `no operator PIN: ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` };
  }
  if (mode & 0o077) return { ok: false, error: `PIN file ${file} is mode ${(mode & 0o777).toString(8)}: expected 600 (chmod 600 ${file})` };
  let pin: string;
  try {
    pin = readFileSync(file, "utf8").split(/\r?\n/)[0]!.trim();
  } catch (e) {
    return { ok: false, error: `PIN file ${file}: ${(e as Error).message}` };
  }
  if (pin.length < 4 || pin.length > 64) return { ok: false, error: `PIN file ${file}: expected a PIN of 4-64 characters on its first line` };
  return { ok: true, pin };
}

/** Constant-time comparison of two PINs of any lengths. */
export function pinMatches(given: string, expected: string): boolean {
  const h = (s: string) => createHash("sha256").update(s, "utf8").digest();
  return timingSafeEqual(h(given), h(expected)) && expected.length > 0;
}

export type PinCheck = { ok: true } | { ok: false; error: string };

/** Checks PINs against the file, with the lock-out after repeated failures. */
export class PinGate {
  private failures = 0;
  private lockedUntil = 0;

  constructor(
    private readonly file: string,
    private readonly now: () => number = Date.now,
  ) {}

  /** Why actions cannot be asked for now, or null. */
  blocked(): string | null {
    const left = this.lockedUntil - this.now();
    if (left > 0) return `actions locked for ${Math.ceil(left / 1000)} s after ${MAX_FAILURES} wrong PINs`;
    const r = readPin(this.file);
    return r.ok ? null : r.error;
  }

  check(given: string): PinCheck {
    const b = this.blocked();
    if (b) return { ok: false, error: b };
    const r = readPin(this.file);
    if (!r.ok) return r;
    if (pinMatches(given, r.pin)) {
      this.failures = 0;
      return { ok: true };
    }
    this.failures++;
    if (this.failures >= MAX_FAILURES) {
      this.failures = 0;
      this.lockedUntil = this.now() + LOCK_MS;
      return { ok: false, error: `wrong PIN; actions locked for ${LOCK_MS / 1000} s` };
    }
    return { ok: false, error: `wrong PIN (${MAX_FAILURES - this.failures} more tries)` };
  }
}
