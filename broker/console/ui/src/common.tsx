import { ApiError } from "./api";

/** An API error shown plainly, with its Kafka error name. */
export function Err({ e }: { e: ApiError | Error | null }) {
  if (!e) return null;
  const code = (e as ApiError).code;
  return <p class="error" role="alert">{e.message}{code ? ` (${code})` : ""}</p>;
}

export function Table({ head, rows, empty = "None." }: { head: string[]; rows: any[][]; empty?: string }) {
  if (!rows.length) return <p class="muted">{empty}</p>;
  return <table><thead><tr>{head.map((h) => <th>{h}</th>)}</tr></thead>
    <tbody>{rows.map((r) => <tr>{r.map((c) => <td>{c}</td>)}</tr>)}</tbody></table>;
}

/** Ask, then run an action; errors land in `setErr`. */
export async function act(f: () => Promise<unknown>, setErr: (e: any) => void, confirmText?: string) {
  if (confirmText && !confirm(confirmText)) return false;
  try { await f(); setErr(null); return true; } catch (e) { setErr(e); return false; }
}
