// The console's JSON API (broker/console/openapi.yaml), same origin: the
// session cookie is HttpOnly, so the UI never sees the token.

export class ApiError extends Error {
  constructor(public status: number, message: string, public code: string | null) {
    super(message);
  }
}

/** Called on 401 so the app can show the login page. */
export let onUnauthorized: () => void = () => {};
export function setOnUnauthorized(f: () => void) {
  onUnauthorized = f;
}

export async function api<T = any>(method: string, path: string, body?: unknown,
                                   query?: Record<string, string | number | undefined>): Promise<T> {
  let url = "/api/v1" + path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== "") q.set(k, String(v));
    const s = q.toString();
    if (s) url += "?" + s;
  }
  const init: RequestInit = { method, credentials: "same-origin", headers: {} };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    (init.headers as Record<string, string>)["Content-Type"] = "application/json";
  }
  const r = await fetch(url, init);
  const text = await r.text();
  let data: any = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { error: text, code: null }; }
  if (!r.ok) {
    if (r.status === 401 && path !== "/session") onUnauthorized();
    throw new ApiError(r.status, data?.error ?? `HTTP ${r.status}`, data?.code ?? null);
  }
  return data as T;
}

export const get = <T = any>(p: string, q?: Record<string, string | number | undefined>) => api<T>("GET", p, undefined, q);
export const enc = encodeURIComponent;

export function fmtBytes(n: number | null | undefined): string {
  if (n === null || n === undefined) return "—";
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < u.length - 1) { v /= 1024; i++; }
  return `${v.toFixed(i ? 1 : 0)} ${u[i]}`;
}

export function fmtMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || ms < 0) return "∞";
  const units: [number, string][] = [[86400000, "d"], [3600000, "h"], [60000, "min"], [1000, "s"]];
  for (const [n, s] of units) if (ms >= n && ms % n === 0) return `${ms / n} ${s}`;
  return `${ms} ms`;
}

export type Series = Record<string, [number, number][]>;
