import { useEffect, useState, useCallback } from "preact/hooks";
import { ApiError } from "./api";

/** Load `f` now, again on `reload()` and when `deps` change; errors kept for display. */
export function useLoad<T>(f: () => Promise<T>, deps: unknown[], everyMs = 0) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<ApiError | Error | null>(null);
  const [n, setN] = useState(0);
  const reload = useCallback(() => setN((x) => x + 1), []);
  useEffect(() => {
    let live = true;
    const run = () => f().then((d) => { if (live) { setData(d); setError(null); } },
                               (e) => { if (live) setError(e); });
    run();
    const t = everyMs ? setInterval(run, everyMs) : undefined;
    return () => { live = false; if (t) clearInterval(t); };
  }, [...deps, n]);
  return { data, error, reload };
}
