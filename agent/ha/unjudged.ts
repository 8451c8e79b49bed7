// What a leader found between two alarm steps (the alarm step reads once per hw.pollMs): a
// condition that began and ended in between is still handed to the alarms once, so that a
// mirror rebuilt in 0.6 s or an outage just over its threshold is not missed. Pure.
export class Unjudged<T> {
  private readonly seen = new Map<string, T>();
  constructor(private readonly key: (x: T) => string) {}

  note(x: T): void {
    this.seen.set(this.key(x), x);
  }

  /** `now`, and what was noted since the last call that `now` does not hold; forgets what was noted. */
  take(now: T[]): T[] {
    const keys = new Set(now.map(this.key));
    const out = [...now, ...[...this.seen.values()].filter((x) => !keys.has(this.key(x)))];
    this.seen.clear();
    return out;
  }

  clear(): void {
    this.seen.clear();
  }
}
