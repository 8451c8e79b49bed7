// What every rule file (rules.ts, rules-hw.ts) is written with: the Collector the rules add
// their conditions to, and thresholds with hysteresis (levelUp, levelDown). Pure.
import type { RuleConfig } from "./config.ts";
import { severityRank, type Condition, type Severity } from "./types.ts";

/** Gathers what the rules find; drops conditions of disabled rules. */
export class Collector {
  readonly conditions: Condition[] = [];
  readonly scopes = new Set<string>();
  readonly resolved: string[] = [];
  private readonly disabled: ReadonlySet<string>;

  constructor(
    readonly cfg: RuleConfig,
    private readonly activeIds: ReadonlySet<string>,
  ) {
    this.disabled = new Set(cfg.disabled);
  }

  judged(scope: string): void {
    this.scopes.add(scope);
  }

  add(c: Condition): void {
    if (!this.disabled.has(c.rule)) this.conditions.push(c);
  }

  active(id: string): boolean {
    return this.activeIds.has(id);
  }
}

export type Level = [threshold: number | null | undefined, severity: Severity, name: string];

/**
 * The most severe level that `value` reaches going up (value >= threshold). While the alarm
 * is active every threshold counts `hyst` lower, so it clears only below threshold - hyst.
 */
export function levelUp(value: number, levels: Level[], hyst: number, active: boolean): Level | null {
  let best: Level | null = null;
  for (const l of levels) {
    if (l[0] === null || l[0] === undefined) continue;
    if (value >= l[0] - (active ? hyst : 0) && (best === null || severityRank(l[1]) < severityRank(best[1]))) best = l;
  }
  return best;
}

/** As levelUp, going down (value <= threshold; active: threshold + hyst). */
export function levelDown(value: number, levels: Level[], hyst: number, active: boolean): Level | null {
  return levelUp(-value, levels.map(([t, s, n]) => [t === null || t === undefined ? t : -t, s, n]), hyst, active);
}
