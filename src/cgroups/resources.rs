//! `linux.resources` (and `berth update`) written to the container's cgroups: the v1 writers in
//! v1.rs, the v2 ones in v2.rs. Which layout applies is probed from the directories themselves
//! (a cgroup2 directory has `cgroup.controllers`; a v1 directory shows its controllers in its
//! file names), so the same code runs against a fake cgroupfs in the unit tests.

use crate::container::state::CgroupState;
use anyhow::Result;
use oci_spec::runtime::{Linux, LinuxDevice, LinuxDeviceCgroup, LinuxResources};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

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

/// Apply linux.resources at create time (linux.devices are checked with the device rules).
pub fn apply_resources(cg: Option<&CgroupState>, linux: &Linux) -> Result<()> {
    let Some(cg) = cg else { return Ok(()) };
    let mut r = linux.resources().clone().unwrap_or_default();
    let devices = linux.devices().clone().unwrap_or_default();
    if !cg.v2_only() {
        // v1: create writes the complete device list itself right after (devices::rules: these
        // rules, then runc's defaults); writing these first only costs syscalls.
        r.set_devices(None);
        if is_empty(&r) {
            return Ok(());
        }
    }
    apply_with_devices(cg, &r, false, Some(&devices))
}

/// No field set: nothing to write (runc's default config has only `devices`).
fn is_empty(r: &LinuxResources) -> bool {
    serde_json::to_value(r).is_ok_and(|v| v == serde_json::json!({}))
}

/// `update`: write every field of `r`, with runc's update-only checks (checkBeforeUpdate).
pub fn apply(cg: &CgroupState, r: &LinuxResources, update: bool) -> Result<()> {
    apply_with_devices(cg, r, update, None)
}

/// `devices`: at create, the config's device nodes (then the v2 device filter is attached
/// whatever the rules); None: `update`, which replaces the filter only when given rules.
fn apply_with_devices(
    cg: &CgroupState,
    r: &LinuxResources,
    update: bool,
    devices: Option<&[LinuxDevice]>,
) -> Result<()> {
    if cg.v2_only() {
        let dir = cg.unified().expect("v2_only implies a unified dir");
        super::v2::apply(&dir, r, update)?;
        // At create rules or none: the default allowlist (and its deny-all) holds on v2 as on v1.
        if devices.is_some() || r.devices().is_some() {
            let rules =
                super::devices::effective(r.devices().as_deref().unwrap_or_default(), devices.unwrap_or_default())?;
            match super::bpf::attach(&dir, &rules) {
                // As runc: rootless cannot load BPF programs (nor mknod a host device).
                Err(e) if cg.rootless => warn(&format!("device filter not applied (rootless): {e:#}")),
                res => res?,
            }
        }
        return Ok(());
    }
    let dirs = v1_dirs(&cg.paths);
    if dirs.is_empty() {
        if cg.paths.is_empty() {
            return Ok(());
        }
        anyhow::bail!(
            "no cgroup controllers found for the container (cgroups: {:?})",
            cg.paths
        );
    }
    super::v1::apply(&dirs, r, update)
}

/// The v1 device allowlist (devices.allow / devices.deny), written by devices.rs.
pub fn apply_devices(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    super::devices::apply_v1(dir, &super::devices::from_resources(rules)?)
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
