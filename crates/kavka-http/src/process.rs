//! The process's own resource use, read from `/proc/self` at scrape time and rendered in
//! the names every Prometheus client library uses (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_open_fds`, ...), so stock dashboards work.
//!
//! Rendered as text beside the recorder's output (the `metrics` facade's counters are
//! integers; CPU seconds are not). Parsing is pure and tested; where `/proc` is missing
//! (not Linux) nothing is rendered. Must not depend on anything but `/proc` and libc.

use std::fmt::Write;

/// What `/proc/self/stat` tells, in its units (clock ticks, pages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stat {
    pub utime_ticks: u64,
    pub stime_ticks: u64,
    /// Ticks after boot.
    pub start_ticks: u64,
    pub vsize_bytes: u64,
    pub rss_pages: u64,
}

/// Parses `/proc/self/stat`: the fields after the command name, which is in parentheses
/// and may hold spaces and parentheses itself (so split after the last `)`).
pub(crate) fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // Fields from 3 (state) on; utime is field 14, stime 15, starttime 22, vsize 23, rss 24.
    let f: Vec<&str> = rest.split_whitespace().collect();
    let at = |n: usize| -> Option<u64> { f.get(n - 3)?.parse().ok() };
    Some(Stat {
        utime_ticks: at(14)?,
        stime_ticks: at(15)?,
        start_ticks: at(22)?,
        vsize_bytes: at(23)?,
        rss_pages: at(24)?,
    })
}

/// The boot time (`btime` in `/proc/stat`), seconds since the epoch.
pub(crate) fn parse_btime(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft limit on open files (`Max open files` in `/proc/self/limits`).
pub(crate) fn parse_max_fds(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// What the process metrics show.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Sample {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub start_time_seconds: Option<f64>,
}

impl Sample {
    pub(crate) fn new(
        stat: Stat,
        ticks_per_second: u64,
        page_bytes: u64,
        btime: Option<u64>,
    ) -> Self {
        let tps = ticks_per_second.max(1) as f64;
        Sample {
            cpu_seconds: (stat.utime_ticks + stat.stime_ticks) as f64 / tps,
            resident_bytes: stat.rss_pages.saturating_mul(page_bytes),
            virtual_bytes: stat.vsize_bytes,
            open_fds: None,
            max_fds: None,
            start_time_seconds: btime.map(|b| b as f64 + stat.start_ticks as f64 / tps),
        }
    }
}

/// The Prometheus text of `s`.
pub(crate) fn render(s: &Sample) -> String {
    let mut out = String::new();
    let mut one = |name: &str, kind: &str, help: &str, value: String| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n\n"
        );
    };
    one(
        "process_cpu_seconds_total",
        "counter",
        "Total user and system CPU time spent in seconds.",
        s.cpu_seconds.to_string(),
    );
    one(
        "process_resident_memory_bytes",
        "gauge",
        "Resident memory size in bytes.",
        s.resident_bytes.to_string(),
    );
    one(
        "process_virtual_memory_bytes",
        "gauge",
        "Virtual memory size in bytes.",
        s.virtual_bytes.to_string(),
    );
    if let Some(v) = s.open_fds {
        one(
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
            v.to_string(),
        );
    }
    if let Some(v) = s.max_fds {
        one(
            "process_max_fds",
            "gauge",
            "Maximum number of open file descriptors.",
            v.to_string(),
        );
    }
    if let Some(v) = s.start_time_seconds {
        one(
            "process_start_time_seconds",
            "gauge",
            "Start time of the process since unix epoch in seconds.",
            v.to_string(),
        );
    }
    out
}

/// Reads `/proc` now and renders it; empty where there is no `/proc/self/stat`.
pub(crate) fn render_now() -> String {
    let Some(stat) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .as_deref()
        .and_then(parse_stat)
    else {
        return String::new();
    };
    // SAFETY: sysconf reads a constant of the running system; no memory is touched.
    let (tps, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let btime = std::fs::read_to_string("/proc/stat")
        .ok()
        .as_deref()
        .and_then(parse_btime);
    let mut sample = Sample::new(
        stat,
        u64::try_from(tps).unwrap_or(100),
        u64::try_from(page).unwrap_or(4096),
        btime,
    );
    sample.open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64);
    sample.max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .as_deref()
        .and_then(parse_max_fds);
    render(&sample)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_after_the_command_name() {
        // A command name with spaces and a parenthesis, as `/proc` shows it.
        let line = "4242 (kavka (x) y) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 50 0 0 20 0 9 0 777 123456789 3000 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                utime_ticks: 250,
                stime_ticks: 50,
                start_ticks: 777,
                vsize_bytes: 123_456_789,
                rss_pages: 3000,
            })
        );
        for bad in ["", "1 (x)", "1 (x) S 1 2 3", "no parens at all"] {
            assert_eq!(parse_stat(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn limits_and_btime() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \nMax cpu time              unlimited            unlimited            seconds   \nMax open files            65536                524288               files     \n";
        assert_eq!(parse_max_fds(limits), Some(65536));
        assert_eq!(
            parse_max_fds("Max open files  unlimited unlimited files"),
            None
        );
        assert_eq!(
            parse_btime("cpu 1 2 3\nbtime 1700000000\nprocesses 9\n"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_btime("cpu 1 2 3\n"), None);
    }

    #[test]
    fn sample_units_and_text() {
        let stat = Stat {
            utime_ticks: 250,
            stime_ticks: 50,
            start_ticks: 1000,
            vsize_bytes: 10,
            rss_pages: 3,
        };
        let mut s = Sample::new(stat, 100, 4096, Some(1_700_000_000));
        assert_eq!(s.cpu_seconds, 3.0);
        assert_eq!(s.resident_bytes, 3 * 4096);
        assert_eq!(s.start_time_seconds, Some(1_700_000_010.0));
        s.open_fds = Some(7);
        let text = render(&s);
        assert!(
            text.contains(
                "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 3\n"
            ),
            "{text}"
        );
        assert!(text.contains("process_open_fds 7\n"), "{text}");
        assert!(!text.contains("process_max_fds"), "{text}");
    }

    #[test]
    fn this_process_is_measured() {
        let text = render_now();
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(text.contains("process_resident_memory_bytes "), "{text}");
            assert!(text.contains("process_open_fds "), "{text}");
        }
    }
}
