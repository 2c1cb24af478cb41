//! Helpers of `Manager::apply` (mod.rs): which v1 directory holds which controller, probed
//! from the directories themselves (a v1 directory shows its controllers in its file names), so
//! the same code runs against a fake cgroupfs in the unit tests.

use oci_spec::runtime::LinuxResources;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The v1 controllers berth knows, by the prefix of their files.
const V1_CONTROLLERS: [&str; 12] = [
    "memory", "cpu", "cpuacct", "cpuset", "blkio", "pids", "hugetlb", "freezer", "devices", "net_cls", "net_prio",
    "rdma",
];

/// controller -> directory for every v1 hierarchy among `paths`.
pub fn v1_dirs(paths: &[PathBuf]) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for p in paths {
        if p.join("cgroup.controllers").exists() {
            continue;
        }
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some((prefix, _)) = name.split_once('.') else {
                continue;
            };
            if V1_CONTROLLERS.contains(&prefix) {
                out.entry(prefix.to_string()).or_insert_with(|| p.clone());
            }
        }
    }
    out
}

/// No field set: nothing to write (runc's default config has only `devices`).
pub fn is_empty(r: &LinuxResources) -> bool {
    serde_json::to_value(r).is_ok_and(|v| v == serde_json::json!({}))
}

pub fn warn(msg: &str) {
    crate::log::warn(msg);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_resources_are_recognised() {
        assert!(is_empty(&LinuxResources::default()));
        let mut r: LinuxResources =
            serde_json::from_value(serde_json::json!({"devices": [{"allow": false, "access": "rwm"}]})).unwrap();
        assert!(!is_empty(&r));
        r.set_devices(None);
        assert!(is_empty(&r));
        let r: LinuxResources = serde_json::from_value(serde_json::json!({"pids": {"limit": 5}})).unwrap();
        assert!(!is_empty(&r));
    }
}
