import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { Series } from "./api";

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04"];

/** A uPlot time chart of some `[epoch ms, value]` series (aligned on a shared x axis). */
export function TimeChart({ title, series, unit = "", height = 180 }:
  { title: string; series: Series; unit?: string; height?: number }) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!el.current) return;
    const names = Object.keys(series).sort();
    // uPlot wants one x array: the union of timestamps, gaps as null.
    const xs = Array.from(new Set(names.flatMap((n) => series[n].map((p) => p[0])))).sort((a, b) => a - b);
    const idx = new Map(xs.map((x, i) => [x, i]));
    const ys = names.map((n) => {
      const col: (number | null)[] = new Array(xs.length).fill(null);
      for (const [t, v] of series[n]) col[idx.get(t)!] = v;
      return col;
    });
    const width = Math.max(300, el.current.clientWidth || 600);
    const plot = new uPlot({
      width, height, title,
      series: [{}, ...names.map((n, i) => ({ label: n, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: true }))],
      axes: [{}, { label: unit, size: 60 }],
      // A chart with a few points (a broker just started) would span
      // years around them, and one with none starts in 1970: show at
      // least the last 10 minutes.
      scales: { x: { time: true, range: (_u, min, max) => {
        if (min == null || max == null || !isFinite(min) || !isFinite(max)) {
          const now = Date.now() / 1000;
          return [now - 600, now + 10];
        }
        return max - min < 600 ? [max - 600, max + 10] : [min, max];
      } } },
    }, [xs.map((x) => x / 1000), ...ys] as uPlot.AlignedData, el.current);
    return () => plot.destroy();
  }, [title, JSON.stringify(series), unit, height]);
  const empty = Object.values(series).every((s) => s.length === 0);
  return <div class="chart" data-chart={title}>
    <div ref={el} />
    {empty && <p class="muted">No points yet: the broker samples every 10 s (group lag every 30 s).</p>}
  </div>;
}
