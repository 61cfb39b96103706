import { get, fmtBytes, type Series } from "../api";
import { useLoad } from "../hooks";
import { Err, Table } from "../common";
import { TimeChart } from "../chart";

const HOUR = 3600_000;

/** The history of this broker's series whose names pass `pick`. */
async function history(pick: (n: string) => boolean): Promise<Series> {
  const names: string[] = (await get("/metrics/series")).series.filter(pick);
  if (!names.length) return {};
  return (await get("/metrics/history", { series: names.join(","), since: Date.now() - HOUR })).series;
}

const only = (s: Series | null, re: RegExp): Series =>
  Object.fromEntries(Object.entries(s ?? {}).filter(([k]) => re.test(k)));

export function Overview() {
  const c = useLoad(() => get("/cluster"), [], 10_000);
  const h = useLoad(() => history((n) => /^(bytes_(in|out)_per_s|(produce|fetch)_requests_per_s|request_p99_ms:)/.test(n)), [], 10_000);
  const d = c.data;
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
    <h2>This broker, last hour</h2>
    <Err e={h.error} />
    <div class="charts">
      <TimeChart title="Throughput (bytes/s)" unit="B/s" series={only(h.data, /^bytes_/)} />
      <TimeChart title="Requests/s" unit="req/s" series={only(h.data, /_requests_per_s$/)} />
      <TimeChart title="Request latency p99 (ms)" unit="ms" series={only(h.data, /^request_p99_ms:(Produce|Fetch|Metadata|OffsetCommit|JoinGroup)$/)} />
    </div>
  </div>;
}
