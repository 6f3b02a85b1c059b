//! What an app's `resources:` mean in cgroup files, for v1 and v2: pure, so every
//! value and conversion is tested exactly, and a resource the kernel cannot enforce
//! is refused here, before anything is created.

use crate::manifest::model::Resources;

/// The cgroup version a setting is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// One file to write in the app's cgroup (on v1, in the hierarchy of `controller`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub controller: &'static str,
    pub file: &'static str,
    pub value: String,
}

/// What the kernel offers, as far as settings depend on it.
#[derive(Debug, Clone, Default)]
pub struct Offer {
    /// Controllers berth can use.
    pub controllers: Vec<String>,
    /// Swap accounting: `memory.memsw.limit_in_bytes` (v1) / `memory.swap.max` (v2).
    pub swap: bool,
    /// An I/O weight file: `blkio.weight` (v1) / `io.weight` (v2).
    pub io_weight: bool,
}

impl Offer {
    fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// The CFS period berth uses: 100 ms, the kernel's default.
pub const PERIOD_US: u64 = 100_000;

/// cpu.weight (1–10000, v2) as cpu.shares (2–262144, v1): the conversion the kernel
/// documents and runc/crun use (`weight = 1 + (shares - 2) * 9999 / 262142`),
/// inverted so that converting back gives the same weight.
pub fn weight_to_shares(weight: u64) -> u64 {
    2 + (weight.saturating_sub(1) * 262_142).div_ceil(9999)
}

/// cpu.shares as cpu.weight.
pub fn shares_to_weight(shares: u64) -> u64 {
    1 + (shares.saturating_sub(2) * 9999) / 262_142
}

/// io.weight (1–10000) as blkio.weight (10–1000).
pub fn weight_to_blkio(weight: u64) -> u64 {
    10 + (weight.saturating_sub(1) * 990) / 9999
}

/// The settings of `resources`, in the order they must be written (v1's memsw limit
/// after the memory limit it may not be below). `app` names the app in a refusal:
/// `gateway: resources.cpu needs the cpu controller, which this kernel does not provide`.
pub fn settings(
    app: &str,
    version: Version,
    resources: &Resources,
    offer: &Offer,
) -> Result<Vec<Setting>, String> {
    let need = |key: &str, controller: &str| {
        if offer.has(controller) {
            Ok(())
        } else {
            Err(format!(
                "{app}: resources.{key} needs the {controller} controller, which this kernel does not provide"
            ))
        }
    };
    let mut out = Vec::new();
    let mut set = |controller: &'static str, file: &'static str, value: String| {
        out.push(Setting {
            controller,
            file,
            value,
        });
    };
    let v1 = version == Version::V1;
    if let Some(memory) = resources.memory {
        need("memory", "memory")?;
        let bytes = memory.bytes();
        let swap = resources.memory_swap.bytes();
        if v1 {
            set("memory", "memory.limit_in_bytes", bytes.to_string());
        } else {
            set("memory", "memory.max", bytes.to_string());
            // An OOM kills the whole app, not one random process in it.
            set("memory", "memory.oom.group", "1".into());
        }
        match (offer.swap, swap) {
            (true, _) if v1 => set(
                "memory",
                "memory.memsw.limit_in_bytes",
                bytes.saturating_add(swap).to_string(),
            ),
            (true, _) => set("memory", "memory.swap.max", swap.to_string()),
            // No swap accounting: "no swap" cannot be enforced either, but it only
            // matters where swap is on, which berth's boards do not use; a swap
            // allowance that cannot be enforced is refused.
            (false, 0) => {}
            (false, _) => {
                return Err(format!(
                    "{app}: resources.memory_swap needs swap accounting ({}), which this kernel does not provide",
                    if v1 {
                        "memory.memsw.limit_in_bytes"
                    } else {
                        "memory.swap.max"
                    }
                ));
            }
        }
    }
    if let Some(cpu) = resources.cpu {
        need("cpu", "cpu")?;
        let quota = u64::from(cpu.millis()) * PERIOD_US / 1000;
        if v1 {
            set("cpu", "cpu.cfs_period_us", PERIOD_US.to_string());
            set("cpu", "cpu.cfs_quota_us", quota.to_string());
        } else {
            set("cpu", "cpu.max", format!("{quota} {PERIOD_US}"));
        }
    }
    if let Some(weight) = resources.cpu_weight {
        need("cpu_weight", "cpu")?;
        let weight = u64::from(weight.get());
        if v1 {
            set("cpu", "cpu.shares", weight_to_shares(weight).to_string());
        } else {
            set("cpu", "cpu.weight", weight.to_string());
        }
    }
    if let Some(pids) = resources.pids {
        need("pids", "pids")?;
        set("pids", "pids.max", pids.get().to_string());
    }
    if let Some(cpuset) = &resources.cpuset {
        need("cpuset", "cpuset")?;
        set("cpuset", "cpuset.cpus", cpuset.as_str().to_owned());
    }
    if let Some(weight) = resources.io_weight {
        let controller = if v1 { "blkio" } else { "io" };
        need("io_weight", controller)?;
        if !offer.io_weight {
            return Err(format!(
                "{app}: resources.io_weight needs an I/O weight ({}), which this kernel does not provide (no BFQ or iocost scheduler)",
                if v1 { "blkio.weight" } else { "io.weight" }
            ));
        }
        let weight = u64::from(weight.get());
        if v1 {
            set("blkio", "blkio.weight", weight_to_blkio(weight).to_string());
        } else {
            set("io", "io.weight", format!("default {weight}"));
        }
    }
    Ok(out)
}

/// The `default_pids` of berth.yaml for an app whose `resources.pids` is unset, so a
/// fork bomb in any app stops at its own limit, not at the host's. Where the kernel
/// has no pids controller nothing is set: the manifest did not ask for a limit, and
/// refusing every app on such a kernel would take the device down.
pub fn default_pids(
    resources: &Resources,
    default: Option<crate::manifest::model::Count>,
    offer: &Offer,
) -> Option<Setting> {
    let limit = default.filter(|_| resources.pids.is_none() && offer.has("pids"))?;
    Some(Setting {
        controller: "pids",
        file: "pids.max",
        value: limit.get().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{self, Manifest};

    fn resources(yaml: &str) -> Resources {
        let text = format!(
            "name: gateway\nimage: {{ path: g.tar, sha256: {} }}\nresources: {yaml}\n",
            "ab".repeat(32)
        );
        let mut loaded = manifest::load_texts([("g.yaml".into(), text)]);
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        let m: Manifest = loaded.apps.pop().unwrap();
        m.resources
    }

    fn all() -> Offer {
        Offer {
            controllers: ["memory", "cpu", "pids", "cpuset", "io", "blkio"]
                .map(String::from)
                .to_vec(),
            swap: true,
            io_weight: true,
        }
    }

    fn files(s: &[Setting]) -> Vec<(&str, &str, &str)> {
        s.iter()
            .map(|s| (s.controller, s.file, s.value.as_str()))
            .collect()
    }

    const FULL: &str = "{ memory: 64M, memory_swap: 16M, cpu: 0.25, cpu_weight: 300, pids: 32, cpuset: \"0-1\", io_weight: 500 }";

    #[test]
    fn v1_files_and_values() {
        let s = settings("gateway", Version::V1, &resources(FULL), &all()).unwrap();
        assert_eq!(
            files(&s),
            [
                ("memory", "memory.limit_in_bytes", "67108864"),
                ("memory", "memory.memsw.limit_in_bytes", "83886080"),
                ("cpu", "cpu.cfs_period_us", "100000"),
                ("cpu", "cpu.cfs_quota_us", "25000"),
                ("cpu", "cpu.shares", "7841"),
                ("pids", "pids.max", "32"),
                ("cpuset", "cpuset.cpus", "0-1"),
                ("blkio", "blkio.weight", "59"),
            ]
        );
    }

    #[test]
    fn v2_files_and_values() {
        let s = settings("gateway", Version::V2, &resources(FULL), &all()).unwrap();
        assert_eq!(
            files(&s),
            [
                ("memory", "memory.max", "67108864"),
                ("memory", "memory.oom.group", "1"),
                ("memory", "memory.swap.max", "16777216"),
                ("cpu", "cpu.max", "25000 100000"),
                ("cpu", "cpu.weight", "300"),
                ("pids", "pids.max", "32"),
                ("cpuset", "cpuset.cpus", "0-1"),
                ("io", "io.weight", "default 500"),
            ]
        );
    }

    #[test]
    fn no_resources_no_settings() {
        assert!(
            settings(
                "gateway",
                Version::V2,
                &Resources::default(),
                &Offer::default()
            )
            .unwrap()
            .is_empty()
        );
    }

    #[test]
    fn default_pids_only_where_the_manifest_sets_none() {
        let limit: crate::manifest::model::Count = "1024".parse().unwrap();
        let set = default_pids(&Resources::default(), Some(limit), &all()).unwrap();
        assert_eq!(files(&[set]), [("pids", "pids.max", "1024")]);
        assert_eq!(
            default_pids(&resources("{ pids: 64 }"), Some(limit), &all()),
            None
        );
        assert_eq!(default_pids(&Resources::default(), None, &all()), None);
        assert_eq!(
            default_pids(&Resources::default(), Some(limit), &Offer::default()),
            None
        );
    }

    #[test]
    fn conversions_are_exact_and_round_trip() {
        assert_eq!(weight_to_shares(1), 2);
        assert_eq!(weight_to_shares(100), 2598);
        assert_eq!(weight_to_shares(10000), 262_144);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10000);
        for w in 1..=10000 {
            assert_eq!(shares_to_weight(weight_to_shares(w)), w, "weight {w}");
        }
        assert_eq!(weight_to_blkio(1), 10);
        assert_eq!(weight_to_blkio(10000), 1000);
        // cpu → quota: millicpus exactly.
        let s = settings("g", Version::V2, &resources("{ cpu: 1.5 }"), &all()).unwrap();
        assert_eq!(s[0].value, "150000 100000");
        let s = settings("g", Version::V1, &resources("{ cpu: 0.001 }"), &all()).unwrap();
        assert_eq!(s[1].value, "100");
    }

    #[test]
    fn missing_controllers_are_refused_by_name() {
        let none = Offer::default();
        let refuse = |yaml: &str, version| {
            settings("gateway", version, &resources(yaml), &none).unwrap_err()
        };
        assert_eq!(
            refuse("{ cpu: 0.5 }", Version::V2),
            "gateway: resources.cpu needs the cpu controller, which this kernel does not provide"
        );
        assert_eq!(
            refuse("{ memory: 1M }", Version::V1),
            "gateway: resources.memory needs the memory controller, which this kernel does not provide"
        );
        assert_eq!(
            refuse("{ pids: 3 }", Version::V1),
            "gateway: resources.pids needs the pids controller, which this kernel does not provide"
        );
        assert_eq!(
            refuse("{ io_weight: 3 }", Version::V1),
            "gateway: resources.io_weight needs the blkio controller, which this kernel does not provide"
        );
        let mut offer = all();
        offer.swap = false;
        offer.io_weight = false;
        assert_eq!(
            settings(
                "gateway",
                Version::V1,
                &resources("{ memory: 1M, memory_swap: 1M }"),
                &offer
            )
            .unwrap_err(),
            "gateway: resources.memory_swap needs swap accounting (memory.memsw.limit_in_bytes), which this kernel does not provide"
        );
        // No swap asked for: nothing to enforce.
        let s = settings("gateway", Version::V1, &resources("{ memory: 1M }"), &offer).unwrap();
        assert_eq!(files(&s), [("memory", "memory.limit_in_bytes", "1048576")]);
        assert_eq!(
            settings(
                "gateway",
                Version::V2,
                &resources("{ io_weight: 5 }"),
                &offer
            )
            .unwrap_err(),
            "gateway: resources.io_weight needs an I/O weight (io.weight), which this kernel does not provide (no BFQ or iocost scheduler)"
        );
    }
}
