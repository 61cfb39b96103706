//! Helpers for tests that need real shard threads.

/// For tests of code shared by shards: run `task(shard)` on `shards` executors at once,
/// each on its own thread marked as a shard thread (so a blocking write
/// reached on it fails a debug build), and collect their results.
pub fn on_test_shards<T, Fut>(
    shards: usize,
    task: impl Fn(usize) -> Fut + Clone + Send + 'static,
) -> Vec<T>
where
    T: Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
{
    let threads: Vec<_> = (0..shards)
        .map(|shard| {
            let task = task.clone();
            std::thread::spawn(move || {
                crate::runtime::run_local(move || async move {
                    crate::blocking::forbid_here();
                    task(shard).await
                })
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("a test shard panicked"))
        .collect()
}
