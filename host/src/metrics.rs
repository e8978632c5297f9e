//! Prometheus metrics. Code anywhere records through the `metrics` facade;
//! the exporter's recorder, installed once per process, renders them, and
//! the gauges that describe state (rewrap progress, keys) are read from the
//! service when scraped.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::service::Service;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// How often recorded histogram samples are folded into their buckets.
/// The recorder queues every sample until then: with no upkeep and no
/// scrape the queue grows by each request's samples for as long as the
/// server runs.
const UPKEEP: std::time::Duration = std::time::Duration::from_secs(1);

/// The thread that folds samples in, named so a test can see it runs.
const UPKEEP_THREAD: &str = "metrics-upkeep";

const LATENCY: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];
const PLUGIN: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0,
    5.0, 30.0, 60.0,
];

/// Installs the recorder (once; later calls are no-ops).
pub fn install() {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("credhost_http_request_duration_seconds".into()),
                LATENCY,
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("credhost_pool_wait_seconds".into()),
                    LATENCY,
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("credhost_plugin_call_duration_seconds".into()),
                    PLUGIN,
                )
            })
            .map(|b| b.build_recorder());
        match recorder {
            Ok(recorder) => {
                let handle = recorder.handle();
                // Another recorder may be installed already (a test
                // harness); then metrics go there and /metrics shows only
                // the gauges set below.
                if metrics::set_global_recorder(recorder).is_err() {
                    tracing::warn!("a metrics recorder was installed already");
                }
                metrics::gauge!("credhost_build_info", "version" => env!("CARGO_PKG_VERSION"))
                    .set(1.0);
                let upkeep = handle.clone();
                let spawned = std::thread::Builder::new()
                    .name(UPKEEP_THREAD.into())
                    .spawn(move || {
                        loop {
                            std::thread::sleep(UPKEEP);
                            upkeep.run_upkeep();
                        }
                    });
                if let Err(e) = spawned {
                    tracing::error!("cannot start the metrics upkeep thread: {e}");
                }
                Some(handle)
            }
            Err(e) => {
                tracing::error!("cannot set up metrics: {e}");
                None
            }
        }
    });
}

/// The text Prometheus scrapes.
pub fn render(service: &Service) -> String {
    install();
    let rewrap = service.rewrap_status();
    metrics::gauge!("credhost_rewrap_rows_done").set(rewrap.done as f64);
    metrics::gauge!("credhost_rewrap_rows_remaining").set(rewrap.remaining as f64);
    metrics::gauge!("credhost_rewrap_rows_per_second").set(rewrap.rows_per_second);
    metrics::gauge!("credhost_rewrap_running").set(f64::from(u8::from(
        rewrap.state == crate::service::RewrapState::Running,
    )));
    // From the keyring in memory: a scrape must cost no scan of the
    // store, since the metrics listener answers without authentication.
    let (mut current, mut active, mut retired) = (0.0, 0.0, 0.0);
    for key in service.key_states() {
        match (key.current, key.retired) {
            (true, _) => current += 1.0,
            (_, true) => retired += 1.0,
            _ => active += 1.0,
        }
    }
    metrics::gauge!("credhost_keys", "state" => "current").set(current);
    metrics::gauge!("credhost_keys", "state" => "active").set(active);
    metrics::gauge!("credhost_keys", "state" => "retired").set(retired);
    metrics::gauge!("credhost_audit_healthy").set(f64::from(u8::from(service.audit().healthy())));
    HANDLE
        .get()
        .and_then(Option::as_ref)
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn threads_named(name: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|comm| comm.trim_end() == name)
            .count()
    }

    /// Without upkeep, histogram samples pile up in memory until someone
    /// scrapes `/metrics`, which nobody may ever do.
    #[test]
    fn samples_are_folded_in_without_a_scrape() {
        install();
        install();
        // A thread names itself once it runs, which may be after `spawn`
        // has returned.
        let named = std::time::Instant::now();
        while threads_named(UPKEEP_THREAD) == 0 && named.elapsed() < UPKEEP * 5 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(threads_named(UPKEEP_THREAD), 1);
        let histogram = metrics::histogram!("credhost_plugin_call_duration_seconds",
            "plugin" => "upkeep-test", "export" => "run");
        for _ in 0..1_000 {
            histogram.record(0.001);
        }
        // Folding them in loses none.
        std::thread::sleep(UPKEEP * 2);
        let handle = HANDLE.get().unwrap().as_ref().unwrap();
        let text = handle.render();
        let count = text
            .lines()
            .find(|l| {
                l.starts_with("credhost_plugin_call_duration_seconds_count")
                    && l.contains("upkeep-test")
            })
            .and_then(|l| l.rsplit_once(' '))
            .map(|(_, v)| v.parse::<f64>().unwrap());
        assert_eq!(count, Some(1_000.0));
    }
}
