//! The process metrics, read from `/proc/self` at scrape time (Linux; elsewhere they are left out).

/// CPU, memory, descriptors and start time of this process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub open_fds: u64,
    pub start_time_seconds: f64,
}

/// Clock ticks per second of `/proc/*/stat` times (`USER_HZ`): 100 on every Linux architecture tokenroute
/// builds for; reading it needs `sysconf`, which needs `libc` and `unsafe`.
const TICKS_PER_SECOND: f64 = 100.0;

pub(super) fn read() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime, stime and starttime are fields 14, 15 and 22 of the line; `fields` starts at field 3.
    let ticks = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    let cpu_seconds = (ticks(14)? + ticks(15)?) as f64 / TICKS_PER_SECOND;
    let boot_time: u64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())?;
    let start_time_seconds = boot_time as f64 + ticks(22)? as f64 / TICKS_PER_SECOND;
    let resident_bytes = std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| {
            let kib = l.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim();
            kib.parse::<u64>().ok()
        })?
        * 1024;
    let open_fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some(ProcessStats {
        cpu_seconds,
        resident_bytes,
        open_fds,
        start_time_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_reads_as_started_in_the_past_with_memory_and_descriptors() {
        let Some(stats) = read() else {
            return; // no /proc here
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            stats.start_time_seconds <= now + 1.0
                && stats.start_time_seconds > now - 86_400.0 * 365.0
        );
        assert!(stats.resident_bytes > 1 << 20, "{stats:?}");
        assert!(stats.open_fds >= 3, "{stats:?}");
        assert!(stats.cpu_seconds >= 0.0);
    }
}
