import { useState } from "preact/hooks";
import { api, get, enc } from "../api";
import { useLoad } from "../hooks";
import { Err } from "../common";

type Bytes = { size: number; truncated: boolean; text: string | null; json: string | null; hex: string } | null;
type View = "text" | "json" | "hex";

function show(b: Bytes, view: View) {
  if (b === null) return <span class="muted">null</span>;
  const s = view === "hex" ? b.hex : view === "json" ? (b.json ?? b.text ?? b.hex) : (b.text ?? `0x${b.hex}`);
  return <pre class={"bytes " + view}>{s}{b.truncated ? ` … (${b.size} bytes)` : ""}</pre>;
}

export function Messages() {
  const q = new URLSearchParams(location.search);
  const topics = useLoad(() => get("/topics"), []);
  const [topic, setTopic] = useState(q.get("topic") ?? "");
  const [partition, setPartition] = useState(q.get("partition") ?? "0");
  const [from, setFrom] = useState<"start" | "offset" | "time">("start");
  const [offset, setOffset] = useState("0");
  const [time, setTime] = useState("");
  const [key, setKey] = useState("");
  const [committed, setCommitted] = useState(true);
  const [view, setView] = useState<View>("text");
  const [page, setPage] = useState<any>(null);
  const [err, setErr] = useState<any>(null);
  const [busy, setBusy] = useState(false);

  const browse = async (startOffset?: number) => {
    setBusy(true);
    const query: Record<string, string | number | undefined> = { limit: 50, key: key || undefined,
      isolation: committed ? "read_committed" : "read_uncommitted" };
    if (startOffset !== undefined) query.offset = startOffset;
    else if (from === "offset") query.offset = offset;
    else if (from === "time" && time) query.time = new Date(time).toISOString();
    try {
      setPage(await get(`/topics/${enc(topic)}/partitions/${partition}/messages`, query));
      setErr(null);
    } catch (e) { setErr(e); setPage(null); } finally { setBusy(false); }
  };

  return <div>
    <h1>Messages</h1>
    <form class="inline" aria-label="browse" onSubmit={(e) => { e.preventDefault(); browse(); }}>
      <label>topic <select name="topic" value={topic} onChange={(e) => setTopic(e.currentTarget.value)} required>
        <option value="">—</option>
        {topics.data?.topics.map((t: any) => <option value={t.name}>{t.name}</option>)}
      </select></label>
      <label>partition <input name="partition" type="number" min="0" value={partition} onInput={(e) => setPartition(e.currentTarget.value)} /></label>
      <label>from <select name="from" value={from} onChange={(e) => setFrom(e.currentTarget.value as any)}>
        <option value="start">log start</option><option value="offset">offset</option><option value="time">time</option>
      </select></label>
      {from === "offset" && <input name="offset" type="number" min="0" value={offset} onInput={(e) => setOffset(e.currentTarget.value)} />}
      {from === "time" && <input name="time" type="datetime-local" step="1" value={time} onInput={(e) => setTime(e.currentTarget.value)} />}
      <label>key <input name="key" placeholder="any" value={key} onInput={(e) => setKey(e.currentTarget.value)} /></label>
      <label><input name="read-committed" type="checkbox" checked={committed} onChange={(e) => setCommitted(e.currentTarget.checked)} /> read_committed</label>
      <button type="submit" disabled={busy || !topic}>Browse</button>
    </form>
    <Err e={topics.error} /><Err e={err} />
    {page && <div class="messages">
      <p class="muted">Offsets {page.start_offset}–{page.next_offset - 1} · log start {page.log_start_offset} · high watermark {page.high_watermark} · last stable {page.last_stable_offset} · {page.isolation}
        {" "}· show as <select name="view" value={view} onChange={(e) => setView(e.currentTarget.value as View)}>
          <option value="text">text</option><option value="json">pretty JSON</option><option value="hex">hex</option></select>
        {!page.end_reached && <button onClick={() => browse(page.next_offset)}>Next page</button>}</p>
      {page.messages.length === 0 ? <p class="muted">No messages here{page.end_reached ? " (end of the partition reached)" : ""}.</p> :
        <table class="msgs"><thead><tr><th>offset</th><th>timestamp</th><th>key</th><th>value</th><th>headers</th></tr></thead>
          <tbody>{page.messages.map((m: any) => <tr data-offset={m.offset}>
            <td>{m.offset}</td><td title={String(m.timestamp)}>{m.time}</td><td>{show(m.key, view === "json" ? "text" : view)}</td>
            <td class="value">{show(m.value, view)}</td>
            <td>{m.headers.map((h: any) => <div><b>{h.key}</b>: {show(h.value, view === "json" ? "text" : view)}</div>)}</td></tr>)}
          </tbody></table>}
    </div>}
    <Send topic={topic} onSent={() => page && browse(page.start_offset)} />
  </div>;
}

function Send({ topic, onSent }: { topic: string; onSent: () => void }) {
  const [key, setKey] = useState("");
  const [value, setValue] = useState("");
  const [partition, setPartition] = useState("");
  const [headers, setHeaders] = useState("");
  const [res, setRes] = useState<string | null>(null);
  const [err, setErr] = useState<any>(null);
  const send = async (e: Event) => {
    e.preventDefault();
    // One header per line, `name: value` (or `name=value`).
    const hs = headers.split("\n").map((l) => l.trim()).filter(Boolean).map((l) => {
      const i = l.search(/[:=]/);
      return i < 0 ? { key: l, value: null } : { key: l.slice(0, i).trim(), value: l.slice(i + 1).trim() };
    });
    try {
      const r = await api("POST", `/topics/${enc(topic)}/messages`, { key: key === "" ? null : key, value,
        partition: partition === "" ? undefined : Number(partition), headers: hs });
      setRes(`Sent to partition ${r.partition} at offset ${r.offset}.`);
      setErr(null);
      onSent();
    } catch (e) { setErr(e); setRes(null); }
  };
  return <form class="send" aria-label="send" onSubmit={send}>
    <h2>Send a message{topic ? ` to ${topic}` : ""}</h2>
    <label>key <input name="send-key" value={key} onInput={(e) => setKey(e.currentTarget.value)} placeholder="none" /></label>
    <label>partition <input name="send-partition" type="number" min="0" value={partition} onInput={(e) => setPartition(e.currentTarget.value)} placeholder="by key" /></label>
    <label>value <textarea name="send-value" rows={3} value={value} onInput={(e) => setValue(e.currentTarget.value)} /></label>
    <label>headers (one per line, name: value) <textarea name="send-headers" rows={2} value={headers} onInput={(e) => setHeaders(e.currentTarget.value)} /></label>
    <button type="submit" disabled={!topic}>Send</button>
    {res && <p class="ok" role="status">{res}</p>}
    <Err e={err} />
  </form>;
}
