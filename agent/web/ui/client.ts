// The web console's client side of the API (routes.ts): one fetch helper that sends the
// session's CSRF token with every POST, and the names the pages share.
export interface Me {
  user: string;
  role: "viewer" | "operator" | "admin";
  csrf: string;
  node: string;
  cluster: string;
}

/** A request to the API; never throws for an HTTP error: the code and the body say what happened. */
export async function api(path: string, me: Me | null, body?: unknown): Promise<{ code: number; body: Record<string, unknown> }> {
  const r = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: body === undefined ? {} : { "content-type": "application/json", ...(me ? { "x-csrf-token": me.csrf } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  let b: Record<string, unknown> = {};
  try {
    b = (await r.json()) as Record<string, unknown>;
  } catch {
    b = { status: "error", error: `HTTP ${r.status}` };
  }
  return { code: r.status, body: b };
}

export const PAGES = ["overview", "nodes", "services", "vms", "alarms", "events", "logs", "charts", "audit"] as const;
export type PageName = (typeof PAGES)[number];
