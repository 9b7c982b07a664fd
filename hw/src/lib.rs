//! CPU probe and media-thread pinning.
//!
//! Media threads run 20 ms deadlines; pinning them to dedicated cores keeps the scheduler
//! from migrating them (cache loss, jitter). The probe is reported at start-up and via the
//! API so field issues ("no AVX on this box") are visible without shell access.

use serde::Serialize;

/// Why a thread could not be pinned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HwError {
    /// The platform offers no affinity API (or it failed to list cores).
    #[error("CPU affinity is not supported on this platform")]
    Unsupported,
    /// The core id is not among the cores this process may run on.
    #[error("core {core} does not exist or is not allowed (allowed: {allowed:?})")]
    NoSuchCore { core: usize, allowed: Vec<usize> },
    /// The OS refused to set the affinity.
    #[error("failed to pin thread to core {core}")]
    PinFailed { core: usize },
}

/// SIMD features relevant to codecs and resampling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CpuFeatures {
    pub sse4_2: bool,
    pub avx: bool,
    pub avx2: bool,
    pub avx512f: bool,
    pub fma: bool,
    pub neon: bool,
}

impl CpuFeatures {
    /// Features detected at run time on this CPU.
    pub fn detect() -> Self {
        #[allow(unused_mut)]
        let mut f = CpuFeatures::default();
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        {
            f.sse4_2 = std::arch::is_x86_feature_detected!("sse4.2");
            f.avx = std::arch::is_x86_feature_detected!("avx");
            f.avx2 = std::arch::is_x86_feature_detected!("avx2");
            f.avx512f = std::arch::is_x86_feature_detected!("avx512f");
            f.fma = std::arch::is_x86_feature_detected!("fma");
        }
        #[cfg(target_arch = "aarch64")]
        {
            f.neon = std::arch::is_aarch64_feature_detected!("neon");
        }
        f
    }

    /// Names of the detected features, for logs.
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.sse4_2, "sse4.2"),
            (self.avx, "avx"),
            (self.avx2, "avx2"),
            (self.avx512f, "avx512f"),
            (self.fma, "fma"),
            (self.neon, "neon"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

/// What the appliance is running on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HwInfo {
    /// Logical cores this process may use (affinity/cgroup aware).
    pub logical_cores: usize,
    /// Target architecture, e.g. `x86_64`, `aarch64`.
    pub arch: &'static str,
    /// `model name` (x86) or `Model`/`Hardware` (Arm boards) from /proc/cpuinfo.
    pub cpu_model: Option<String>,
    pub features: CpuFeatures,
}

/// Probes the CPU. Reads /proc/cpuinfo where present; never fails (unknowns stay `None`).
pub fn probe() -> HwInfo {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    HwInfo {
        logical_cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        arch: std::env::consts::ARCH,
        cpu_model: cpu_model_from_cpuinfo(&cpuinfo),
        features: CpuFeatures::detect(),
    }
}

/// Extracts a human-readable CPU model from /proc/cpuinfo text.
pub fn cpu_model_from_cpuinfo(cpuinfo: &str) -> Option<String> {
    // x86 has "model name"; many Arm kernels only have "Model" (board) or "Hardware".
    ["model name", "Model", "Hardware", "cpu model"]
        .iter()
        .find_map(|wanted| {
            cpuinfo.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                let value = value.trim();
                (key.trim() == *wanted && !value.is_empty()).then(|| value.to_string())
            })
        })
}

/// Pins the calling thread to `core`. Call it from the media thread itself, never from
/// the main thread (threads spawned afterwards would inherit the single-core mask).
pub fn pin_current_thread(core: usize) -> Result<(), HwError> {
    let ids = core_affinity::get_core_ids().ok_or(HwError::Unsupported)?;
    let Some(id) = ids.iter().copied().find(|c| c.id == core) else {
        return Err(HwError::NoSuchCore {
            core,
            allowed: ids.iter().map(|c| c.id).collect(),
        });
    };
    if core_affinity::set_for_current(id) {
        Ok(())
    } else {
        Err(HwError::PinFailed { core })
    }
}

/// Decides which core each media thread is pinned to: element `i` is thread `i`'s core.
///
/// * `threads`: configured media threads; 0 means one per explicit core, or one per
///   available core when `explicit` is empty.
/// * `explicit`: configured core ids; ids `>= available` are skipped (see
///   [`invalid_cores`] to report them) and duplicates are ignored.
/// * `available`: logical cores ([`HwInfo::logical_cores`]); 0 is treated as 1.
///
/// With more threads than cores, cores are reused round-robin.
pub fn media_core_plan(threads: usize, explicit: &[usize], available: usize) -> Vec<usize> {
    let available = available.max(1);
    let mut cores: Vec<usize> = Vec::with_capacity(explicit.len());
    for &c in explicit {
        if c < available && !cores.contains(&c) {
            cores.push(c);
        }
    }
    if cores.is_empty() {
        // No usable explicit list: the first N cores (also when all explicit ids were bad).
        let n = if threads == 0 {
            available
        } else {
            threads.min(available)
        };
        cores = (0..n).collect();
    }
    let n = if threads == 0 { cores.len() } else { threads };
    cores.iter().copied().cycle().take(n).collect()
}

/// Explicit core ids [`media_core_plan`] skipped because they do not exist.
pub fn invalid_cores(explicit: &[usize], available: usize) -> Vec<usize> {
    let available = available.max(1);
    explicit
        .iter()
        .copied()
        .filter(|&c| c >= available)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_reports_this_machine() {
        let info = probe();
        let expected = std::thread::available_parallelism().unwrap().get();
        assert_eq!(info.logical_cores, expected);
        assert_eq!(info.arch, std::env::consts::ARCH);
        if cfg!(target_arch = "x86_64") {
            // x86_64 baseline implies SSE2 only; but if AVX2 is there, AVX must be too.
            assert!(!info.features.avx2 || info.features.avx);
            assert!(!info.features.neon);
        }
        if std::path::Path::new("/proc/cpuinfo").exists() && cfg!(target_arch = "x86_64") {
            assert!(info.cpu_model.is_some());
        }
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["logical_cores"], expected);
        assert!(json["features"]["avx2"].is_boolean());
    }

    #[test]
    fn cpu_model_parsing() {
        let x86 = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel\t\t: 85\nmodel name\t: Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz\n";
        assert_eq!(
            cpu_model_from_cpuinfo(x86).as_deref(),
            Some("Intel(R) Xeon(R) Gold 6230 CPU @ 2.10GHz")
        );
        let pi = "processor\t: 0\nBogoMIPS\t: 108.00\n\nHardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n";
        assert_eq!(
            cpu_model_from_cpuinfo(pi).as_deref(),
            Some("Raspberry Pi 4 Model B Rev 1.4")
        );
        assert_eq!(cpu_model_from_cpuinfo("model name\t:\n"), None);
        assert_eq!(cpu_model_from_cpuinfo(""), None);
        assert_eq!(cpu_model_from_cpuinfo("garbage without colon"), None);
    }

    #[test]
    fn feature_names() {
        let f = CpuFeatures {
            avx: true,
            fma: true,
            ..CpuFeatures::default()
        };
        assert_eq!(f.names(), ["avx", "fma"]);
    }

    #[test]
    fn pinning_valid_and_invalid_cores() {
        // In a fresh thread so the test harness thread keeps its mask.
        std::thread::spawn(|| {
            let Some(ids) = core_affinity::get_core_ids() else {
                assert_eq!(pin_current_thread(0), Err(HwError::Unsupported));
                return;
            };
            let last = ids.last().unwrap().id;
            pin_current_thread(last).unwrap();
            let now = core_affinity::get_core_ids().unwrap();
            assert_eq!(now.iter().map(|c| c.id).collect::<Vec<_>>(), [last]);
            match pin_current_thread(100_000) {
                Err(HwError::NoSuchCore { core, allowed }) => {
                    assert_eq!(core, 100_000);
                    assert_eq!(allowed, [last]);
                }
                other => panic!("{other:?}"),
            }
        })
        .join()
        .unwrap();
    }

    #[test]
    fn plan_defaults_to_one_thread_per_core() {
        assert_eq!(media_core_plan(0, &[], 4), [0, 1, 2, 3]);
        assert_eq!(media_core_plan(2, &[], 4), [0, 1]);
        assert_eq!(media_core_plan(0, &[], 0), [0]);
    }

    #[test]
    fn plan_round_robins_when_oversubscribed() {
        assert_eq!(media_core_plan(5, &[], 2), [0, 1, 0, 1, 0]);
        assert_eq!(media_core_plan(3, &[3], 8), [3, 3, 3]);
    }

    #[test]
    fn plan_uses_explicit_cores() {
        assert_eq!(media_core_plan(0, &[2, 3], 4), [2, 3]);
        assert_eq!(media_core_plan(4, &[3, 1], 4), [3, 1, 3, 1]);
        assert_eq!(media_core_plan(1, &[3, 1], 4), [3]);
        // Duplicates and non-existent ids are dropped; reported separately.
        assert_eq!(media_core_plan(0, &[1, 1, 9, 2], 4), [1, 2]);
        assert_eq!(invalid_cores(&[1, 1, 9, 2], 4), [9]);
        // Nothing usable: fall back to the first cores.
        assert_eq!(media_core_plan(0, &[9, 10], 2), [0, 1]);
        assert_eq!(media_core_plan(3, &[9], 2), [0, 1, 0]);
    }
}
