//! The system side of every app's root: which paths of its procfs and sysfs are
//! masked or read-only (runc's lists, and what current Docker adds), and the check
//! that the image gives `/proc`, `/sys` and `/dev` as real directories.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Masked inside `/proc`: hidden behind `/dev/null` or an empty read-only tmpfs.
/// runc's list, and `interrupts` (Docker).
pub const MASKED_PROC: [&str; 10] = [
    "acpi",
    "asound",
    "interrupts",
    "kcore",
    "keys",
    "latency_stats",
    "timer_list",
    "timer_stats",
    "sched_debug",
    "scsi",
];

/// Masked inside `/sys`: runc's `firmware`, Docker's `devices/virtual/powercap`
/// (RAPL energy counters, a power side channel), and each CPU's `thermal_throttle`
/// (see [`thermal_throttle`]).
pub const MASKED_SYS: [&str; 2] = ["firmware", "devices/virtual/powercap"];

/// Read-only inside `/proc` (runc's list).
pub const READ_ONLY_PROC: [&str; 5] = ["bus", "fs", "irq", "sys", "sysrq-trigger"];

/// The system mount points, which must be real directories of the app's root.
pub const MOUNT_POINTS: [&str; 3] = ["proc", "sys", "dev"];

/// Docker's per-CPU masks: `devices/system/cpu/cpuN/thermal_throttle` (relative to
/// the sysfs at `sys_root`) for each CPU that has one, in CPU order. They differ
/// per host, so they are looked up when the plan is made.
pub fn thermal_throttle(sys_root: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(sys_root.join("devices/system/cpu")) else {
        return Vec::new();
    };
    let mut cpus: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_prefix("cpu")?.parse().ok())
        .collect();
    cpus.sort_unstable();
    cpus.iter()
        .map(|n| format!("devices/system/cpu/cpu{n}/thermal_throttle"))
        .filter(|p| sys_root.join(p).is_dir())
        .collect()
}

/// Refuses an image (or an app's writable layer) whose `/proc`, `/sys` or `/dev` is
/// anything but a directory: procfs on `proc -> /` would land on the app's root,
/// outside the paths the masks name (CVE-2019-19921). The child refuses such a
/// mount point too (it opens them without following symlinks); this says why before
/// anything starts. The writable layer wins over the image, and a whiteout there
/// (a 0:0 character device) means the image's entry is gone.
pub fn check_mount_points(app: &str, image_root: &Path, upper: &Path) -> Result<(), String> {
    for name in MOUNT_POINTS {
        let seen = match fs::symlink_metadata(upper.join(name)) {
            Ok(meta) if meta.file_type().is_char_device() && meta.rdev() == 0 => None,
            Ok(meta) => Some(meta),
            Err(_) => fs::symlink_metadata(image_root.join(name)).ok(),
        };
        let what = match seen {
            Some(meta) if meta.is_dir() => continue,
            None => continue,
            Some(meta) if meta.file_type().is_symlink() => "a symbolic link",
            Some(_) => "not a directory",
        };
        return Err(format!(
            "{app}: the image's /{name} is {what}: berth mounts {} only on a real directory",
            match name {
                "proc" => "procfs",
                "sys" => "sysfs",
                _ => "/dev",
            }
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    struct Tmp(PathBuf);
    impl Tmp {
        fn new(tag: &str) -> Tmp {
            let d = std::env::temp_dir().join(format!("berth-system-{}-{tag}", std::process::id()));
            let _ = fs::remove_dir_all(&d);
            fs::create_dir_all(&d).unwrap();
            Tmp(d)
        }
    }
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn thermal_throttle_directories_are_found_per_cpu() {
        let sys = Tmp::new("thermal");
        let cpu = sys.0.join("devices/system/cpu");
        for dir in [
            "cpu0/thermal_throttle",
            "cpu1",
            "cpu10/thermal_throttle",
            "cpufreq",
        ] {
            fs::create_dir_all(cpu.join(dir)).unwrap();
        }
        fs::write(cpu.join("cpu2"), "").unwrap();
        assert_eq!(
            thermal_throttle(&sys.0),
            [
                "devices/system/cpu/cpu0/thermal_throttle",
                "devices/system/cpu/cpu10/thermal_throttle"
            ]
        );
        assert!(thermal_throttle(&sys.0.join("absent")).is_empty());
    }

    #[test]
    fn mount_points_must_be_directories_in_the_image_and_the_upper_layer() {
        let t = Tmp::new("points");
        let (image, upper) = (t.0.join("image"), t.0.join("upper"));
        fs::create_dir_all(image.join("sys")).unwrap();
        fs::create_dir_all(&upper).unwrap();
        // Missing is fine: berth creates it.
        assert_eq!(check_mount_points("a", &image, &upper), Ok(()));
        std::os::unix::fs::symlink("/", image.join("proc")).unwrap();
        assert_eq!(
            check_mount_points("a", &image, &upper),
            Err("a: the image's /proc is a symbolic link: berth mounts procfs only on a real directory".into())
        );
        // A real directory in the writable layer hides the image's link.
        fs::create_dir(upper.join("proc")).unwrap();
        assert_eq!(check_mount_points("a", &image, &upper), Ok(()));
        fs::write(upper.join("dev"), "").unwrap();
        assert_eq!(
            check_mount_points("a", &image, &upper),
            Err("a: the image's /dev is not a directory: berth mounts /dev only on a real directory".into())
        );
        fs::remove_file(upper.join("dev")).unwrap();
        std::os::unix::fs::symlink("..", upper.join("sys")).unwrap();
        assert_eq!(
            check_mount_points("a", &image, &upper),
            Err("a: the image's /sys is a symbolic link: berth mounts sysfs only on a real directory".into())
        );
    }
}
