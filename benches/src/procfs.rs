//! CPU time and memory of processes and threads, from `/proc` (Linux).

use std::path::Path;
use std::time::Duration;

/// Clock ticks per second of `/proc/*/stat` times.
fn ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// User + system CPU time from a `stat` line (fields 14 and 15, after the parenthesised name, which
/// may itself contain spaces and parentheses).
pub fn parse_stat_cpu(stat: &str) -> Option<Duration> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14 → index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / ticks_per_sec(),
    ))
}

/// CPU time used so far by process `pid` (all threads).
pub fn process_cpu(pid: u32) -> Option<Duration> {
    parse_stat_cpu(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU time of this process, from `getrusage` (finer than clock ticks).
pub fn self_cpu() -> Duration {
    // SAFETY: rusage is plain data; getrusage only writes into it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: valid pointer to a rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// A `Key:   value kB` field of `/proc/PID/status`, in KiB.
pub fn parse_status_kib(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix(':')?;
        v.split_whitespace().next()?.parse().ok()
    })
}

/// Resident set size of `pid` in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    parse_status_kib(
        &std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?,
        "VmRSS",
    )
}

/// CPU time per thread name of `pid` (threads with the same name are summed).
pub fn thread_cpu(pid: u32) -> Vec<(String, Duration)> {
    let mut out: Vec<(String, Duration)> = Vec::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for entry in dir.flatten() {
        let p = entry.path();
        let name = std::fs::read_to_string(p.join("comm"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default();
        let Some(cpu) = std::fs::read_to_string(p.join("stat"))
            .ok()
            .and_then(|s| parse_stat_cpu(&s))
        else {
            continue;
        };
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some(e) => e.1 += cpu,
            None => out.push((name, cpu)),
        }
    }
    out.sort_by_key(|t| std::cmp::Reverse(t.1));
    out
}

/// One line about the machine: CPU model, cores, memory, kernel.
pub fn machine_description() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|x| x.1.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| parse_status_kib(&m, "MemTotal"))
        .map_or(0.0, |k| k as f64 / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let flags = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("flags"))
        .unwrap_or_default();
    let simd: Vec<&str> = ["avx2", "fma", "avx512f"]
        .into_iter()
        .filter(|f| flags.split_whitespace().any(|x| x == *f))
        .collect();
    format!(
        "{model}, {cores} logical cores ({}), {mem_gib:.0} GiB RAM, Linux {kernel}",
        if simd.is_empty() {
            "no AVX2".to_string()
        } else {
            simd.join("+")
        }
    )
}

/// The load average line, to show how quiet the machine was.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Soft and hard limits on open files.
pub fn nofile_limit() -> (u64, u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid pointer to an rlimit.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    (r.rlim_cur, r.rlim_max)
}

/// Sets the open-file limits (failure leaves them as they were).
pub fn set_nofile_limit(soft: u64, hard: u64) {
    let r = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: valid pointer to an rlimit.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) };
}

/// True when `path` exists and is executable by someone.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_parsing_survives_odd_process_names() {
        let line =
            "1234 (media (0) x) S 1 1 1 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 100 1000 200";
        let hz = ticks_per_sec();
        let cpu = parse_stat_cpu(line).unwrap();
        assert!((cpu.as_secs_f64() - 300.0 / hz).abs() < 1e-9);
        assert!(parse_stat_cpu("garbage").is_none());
        assert!(parse_stat_cpu("1 (x) S 1").is_none());
    }

    #[test]
    fn status_fields() {
        let s = "Name:\tvoxgate\nVmPeak:\t  100 kB\nVmRSS:\t   20480 kB\n";
        assert_eq!(parse_status_kib(s, "VmRSS"), Some(20_480));
        assert_eq!(parse_status_kib(s, "VmSwap"), None);
    }

    #[test]
    fn own_process_is_visible() {
        let pid = std::process::id();
        assert!(rss_kib(pid).is_some_and(|k| k > 0));
        assert!(process_cpu(pid).is_some());
        assert!(!thread_cpu(pid).is_empty());
        assert!(machine_description().contains("logical cores"));
    }
}
