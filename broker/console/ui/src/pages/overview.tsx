import { useState } from "preact/hooks";
import { get, fmtBytes, type Series } from "../api";
import { useLoad } from "../hooks";
import { Err, Table } from "../common";
import { TimeChart } from "../chart";

const HOUR = 3600_000;

/** A broker the charts could not get the history of, and why. */
type Missing = { id: number; error: string };

/**
 * The last hour of the series whose names pass `pick`: this broker's
 * (`broker` ""), one broker's (its id) or every broker's ("all", each
 * series named with its broker), fetched by this broker from the others.
 */
async function history(broker: string, pick: (n: string) => boolean): Promise<{ series: Series; missing: Missing[] }> {
  const names: string[] = (await get("/metrics/series")).series.filter(pick);
  if (!names.length) return { series: {}, missing: [] };
  const q = { series: names.join(","), since: Date.now() - HOUR };
  if (!broker) return { series: (await get("/metrics/history", q)).series, missing: [] };
  const out = await get("/metrics/cluster-history", { ...q, broker });
  const series: Series = {};
  const many = out.brokers.length > 1;
  for (const b of out.brokers)
    for (const [n, pts] of Object.entries(b.series as Series)) series[many ? `${n} (broker ${b.id})` : n] = pts;
  return { series, missing: out.brokers.filter((b: any) => b.status !== "ok").map((b: any) => ({ id: b.id, error: b.error })) };
}

const only = (s: Series | null | undefined, re: RegExp): Series =>
  Object.fromEntries(Object.entries(s ?? {}).filter(([k]) => re.test(k)));
/** A series name, with the " (broker N)" of the all-brokers view. */
const OF = String.raw`(?: \(broker \d+\))?$`;

export function Overview() {
  const c = useLoad(() => get("/cluster"), [], 10_000);
  // "" this broker, "all", or a broker id.
  const [broker, setBroker] = useState("");
  const h = useLoad(() => history(broker, (n) => /^(bytes_(in|out)_per_s|(produce|fetch)_requests_per_s|request_p99_ms:)/.test(n)), [broker], 10_000);
  const d = c.data;
  const title = broker === "" ? "This broker" : broker === "all" ? "Every broker" : `Broker ${broker}`;
  return <div>
    <h1>Overview</h1>
    <Err e={c.error} />
    {d && <>
      <div class="cards">
        <div class="card"><b>{d.brokers.filter((b: any) => b.status === "up").length}</b> brokers up</div>
        <div class="card"><b>{d.brokers.filter((b: any) => b.status !== "up").length}</b> fenced or unavailable</div>
        <div class="card"><b>{d.controller_id}</b> controller</div>
        <div class="card"><b>{d.topics}</b> topics</div>
        <div class="card"><b>{d.partitions}</b> partitions</div>
        <div class={"card" + (d.under_replicated_partitions ? " warn" : "")}><b>{d.under_replicated_partitions}</b> under-replicated</div>
        <div class={"card" + (d.offline_partitions ? " bad" : "")}><b>{d.offline_partitions}</b> offline</div>
      </div>
      <h2>Brokers</h2>
      <Table head={["id", "address", "rack", "status", "controller", "leaders", "replicas", "disk used", "disk free", "log bytes"]}
        rows={d.brokers.map((b: any) => [b.id, b.host ? `${b.host}:${b.port}` : "—", b.rack ?? "—",
          <span class={b.status === "up" ? "ok" : "bad"}>{b.status}</span>, b.controller ? "yes" : "",
          b.leaders, b.replicas,
          b.disk?.error ? <span class="muted" title={b.disk.error.error}>{b.disk.error.code}</span> : fmtBytes(b.disk?.used_bytes),
          fmtBytes(b.disk?.free_bytes), fmtBytes(b.disk?.log_bytes)])} />
    </>}
    <h2>{title}, last hour</h2>
    <label>broker <select name="history-broker" value={broker} onChange={(e) => setBroker(e.currentTarget.value)}>
      <option value="">this broker{d ? ` (${d.this_node})` : ""}</option>
      <option value="all">every broker, one line each</option>
      {(d?.brokers ?? []).filter((b: any) => b.id !== d.this_node).map((b: any) => <option value={String(b.id)}>broker {b.id}</option>)}
    </select></label>
    <Err e={h.error} />
    {h.data?.missing.map((m) => <p class="warn" data-missing-broker={m.id}>Broker {m.id}: no history (missing). {m.error}</p>)}
    <div class="charts">
      <TimeChart title="Throughput (bytes/s)" unit="B/s" series={only(h.data?.series, new RegExp(`^bytes_(in|out)_per_s${OF}`))} />
      <TimeChart title="Requests/s" unit="req/s" series={only(h.data?.series, new RegExp(`_requests_per_s${OF}`))} />
      <TimeChart title="Request latency p99 (ms)" unit="ms" series={only(h.data?.series, new RegExp(`^request_p99_ms:(Produce|Fetch|Metadata|OffsetCommit|JoinGroup)${OF}`))} />
    </div>
  </div>;
}
