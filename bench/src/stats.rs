//! Measurements: latency histograms and CPU / memory of processes, read from `/proc`.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Clock ticks per second of `/proc/<pid>/stat` times (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;
/// A generator busier than this (percent of one core) may have been the bottleneck.
pub const SATURATED_PCT: f64 = 90.0;

/// A latency histogram in microseconds, from 1 µs to 60 s, 3 significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    // Bounds are constants known to be valid.
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Records a latency, clamping what is out of range so that nothing is lost.
pub fn record(h: &mut Histogram<u64>, micros: u64) {
    h.saturating_record(micros.max(1));
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// Count and percentiles in milliseconds.
pub fn summary(h: &Histogram<u64>) -> Value {
    if h.is_empty() {
        return json!({"count": 0});
    }
    json!({
        "count": h.len(),
        "p50_ms": ms(h.value_at_quantile(0.50)),
        "p90_ms": ms(h.value_at_quantile(0.90)),
        "p99_ms": ms(h.value_at_quantile(0.99)),
        "p999_ms": ms(h.value_at_quantile(0.999)),
        "max_ms": ms(h.max()),
        "mean_ms": ms(h.mean() as u64),
    })
}

/// The p-quantile in milliseconds, `None` when empty.
pub fn quantile_ms(h: &Histogram<u64>, q: f64) -> Option<f64> {
    (!h.is_empty()).then(|| ms(h.value_at_quantile(q)))
}

/// `utime + stime` of a process (`"self"` or a pid), in ticks.
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: fields start after the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // after ')' : state(3) ppid(4) … utime(14) stime(15) → indexes 11 and 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Resident set size of a process in KiB (`VmRSS` in `/proc/<pid>/status`).
pub fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Sum of the RSS of several processes, KiB; `None` if any could not be read.
pub fn rss_sum_kib(pids: &[u32]) -> Option<u64> {
    pids.iter().map(|p| rss_kib(&p.to_string())).sum()
}

/// CPU use of the generator and of the servers over a window.
pub struct CpuWindow {
    start: Instant,
    own: Option<u64>,
    servers: Vec<(u32, Option<u64>)>,
}

impl CpuWindow {
    /// Starts a window now.
    pub fn start(server_pids: &[u32]) -> Self {
        CpuWindow {
            start: Instant::now(),
            own: cpu_ticks("self"),
            servers: server_pids
                .iter()
                .map(|p| (*p, cpu_ticks(&p.to_string())))
                .collect(),
        }
    }

    /// Ends the window: `gen_cpu_pct` (percent of one core), `gen_saturated` and, when server
    /// pids were given, `server_cpu_pct` (their sum).
    pub fn finish(&self) -> Value {
        let wall = self
            .start
            .elapsed()
            .max(Duration::from_millis(1))
            .as_secs_f64();
        let pct = |from: Option<u64>, to: Option<u64>| -> Option<f64> {
            let d = to?.checked_sub(from?)?;
            Some(round1(d as f64 / TICKS_PER_SEC / wall * 100.0))
        };
        let own = pct(self.own, cpu_ticks("self"));
        let mut out = json!({
            "window_s": round1(wall),
            "gen_cpu_pct": own,
            "gen_saturated": own.is_some_and(|p| p >= SATURATED_PCT),
        });
        if !self.servers.is_empty() {
            let server: Option<f64> = self
                .servers
                .iter()
                .map(|(pid, from)| pct(*from, cpu_ticks(&pid.to_string())))
                .sum();
            out["server_cpu_pct"] = json!(server);
        }
        out
    }
}

/// Rounds to one decimal.
pub fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cpu_and_rss() {
        assert!(cpu_ticks("self").is_some());
        assert!(rss_kib("self").is_some_and(|k| k > 0));
        assert!(rss_sum_kib(&[std::process::id()]).is_some());
    }

    #[test]
    fn summarises_in_milliseconds() {
        let mut h = latency_histogram();
        for us in 1..=1000 {
            record(&mut h, us);
        }
        let s = summary(&h);
        assert_eq!(s["count"], 1000);
        let p50 = s["p50_ms"].as_f64().unwrap_or_default();
        assert!((0.49..=0.51).contains(&p50), "{s}");
        assert_eq!(summary(&latency_histogram())["count"], 0);
    }
}
