// The progress bar of `bollard flash`, on stderr, plain ASCII, at most 79 columns:
//   writing    [############------------]  50%  2.8/5.5 GiB  210 MiB/s  0:13 left
// On a terminal it is redrawn in place with a carriage return (which even a dumb terminal
// honours), at most 4 times a second. When stderr is not a terminal (a log, a pipe) or
// TERM is unset, one line is printed per 10 % instead, so a log stays readable.

export interface ProgressSink {
  write(s: string): unknown;
  isTTY?: boolean;
}

const WIDTH = 24;

export function bar(label: string, done: number, total: number, elapsedS: number): string {
  const f = total > 0 ? Math.min(1, done / total) : 1;
  const fill = Math.round(f * WIDTH);
  const rate = elapsedS > 0 ? done / elapsedS : 0;
  const left = rate > 0 ? (total - done) / rate : NaN;
  const mmss = (s: number) => (Number.isFinite(s) ? `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")}` : "-:--");
  const gibs = (n: number) => (n / 2 ** 30).toFixed(1);
  return (
    `${label.padEnd(10)} [${"#".repeat(fill)}${"-".repeat(WIDTH - fill)}] ${String(Math.floor(f * 100)).padStart(3)}%  ` +
    `${gibs(done)}/${gibs(total)} GiB  ${Math.round(rate / 2 ** 20)} MiB/s  ${mmss(left)} left`
  ).slice(0, 79);
}

export class Progress {
  private label = "";
  private total = 0;
  private t0 = 0;
  private lastDraw = 0;
  private lastDecile = -1;
  private readonly inPlace: boolean;

  constructor(
    private readonly out: ProgressSink,
    env: Record<string, string | undefined> = process.env,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.inPlace = out.isTTY === true && Boolean(env.TERM);
  }

  start(label: string, total: number): void {
    this.label = label;
    this.total = total;
    this.t0 = this.now();
    this.lastDraw = -Infinity;
    this.lastDecile = -1;
    this.update(0);
  }

  update(done: number): void {
    const t = this.now();
    const line = () => bar(this.label, done, this.total, (t - this.t0) / 1000);
    if (this.inPlace) {
      if (t - this.lastDraw < 250 && done < this.total) return;
      this.lastDraw = t;
      this.out.write(`\r${line().padEnd(79)}`);
      return;
    }
    const decile = this.total > 0 ? Math.floor((done / this.total) * 10) : 10;
    if (decile === this.lastDecile) return;
    this.lastDecile = decile;
    this.out.write(`${line()}\n`);
  }

  /** A short remark after the bar (e.g. "flushing to the disk"). */
  note(text: string): void {
    if (this.inPlace) this.out.write(`\r${bar(this.label, this.total, this.total, (this.now() - this.t0) / 1000).slice(0, 79 - text.length - 3)}  ${text}`);
  }

  done(): void {
    if (this.inPlace) {
      this.out.write(`\r${bar(this.label, this.total, this.total, (this.now() - this.t0) / 1000).padEnd(79)}\n`);
    }
  }
}
