// The console's own state (Ui): which screen shows, the selected rows, the log level and
// whose logs and events, the bottom line's message or question. The controller (app.ts)
// changes it; the frame (render.ts) and the screens (screens-*.ts) read it.
import type { ActionView } from "./actions.ts";

export const SCREENS = [
  [1, "Nodes"],
  [2, "Services"],
  [3, "Alarms"],
  [4, "Logs"],
  [5, "Events"],
  [6, "Network"],
  [7, "Actions"],
  [8, "VMs"],
] as const;
export type ScreenNo = (typeof SCREENS)[number][0];

export type LogLevel = "debug" | "info" | "warn" | "error";

export interface Ui {
  screen: ScreenNo;
  /** selected row: alarms counted from the top; logs and events from the newest (0: follow) */
  sel: { alarms: number; logs: number; events: number };
  logLevel: LogLevel;
  /** whose logs: a node name */
  logNode: string;
  /** whose events: a node name, or "all" (merged, the cluster's timeline) */
  eventNode: string;
  /** failover timeline only, or every event */
  eventKinds: "timeline" | "all";
  /** a line for the operator (a result, an error), shown on the bottom line */
  message: string | null;
  /** a question on the bottom line (y/n) */
  prompt: string | null;
  actions: ActionView;
}
