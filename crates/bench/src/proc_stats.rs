//! CPU time and resident memory of a process, read from `/proc`.

use std::time::{Duration, Instant};

/// Clock ticks per second of `/proc/<pid>/stat` times (`_SC_CLK_TCK`, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// user + system CPU seconds the process has used so far.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SECOND)
}

/// Resident set size in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// CPU use of each of `pids` over the same `window`, as a percentage of one core.
pub async fn cpu_percent_over(pids: &[u32], window: Duration) -> Vec<Option<f64>> {
    let (c0, t0): (Vec<_>, _) = (
        pids.iter().map(|p| cpu_seconds(*p)).collect(),
        Instant::now(),
    );
    tokio::time::sleep(window).await;
    let secs = t0.elapsed().as_secs_f64().max(1e-9);
    pids.iter()
        .zip(c0)
        .map(|(p, c0)| Some(100.0 * (cpu_seconds(*p)? - c0?) / secs))
        .collect()
}

/// This process's (the load generator's) CPU seconds so far.
pub fn own_cpu_seconds() -> f64 {
    cpu_seconds(std::process::id()).unwrap_or(0.0)
}
