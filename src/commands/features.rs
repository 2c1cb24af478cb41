//! `features` (runtime-spec features.md): what this berth really supports. Engines act on it
//! (containerd refuses idmap mounts, CRI-O checks rro), so nothing is claimed before it works.

use anyhow::Result;
use serde_json::json;

pub fn document() -> serde_json::Value {
    let mut caps: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    caps.sort();
    json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": crate::container::state::OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": crate::rootfs::MOUNT_OPTIONS.to_vec(),
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": true, "systemdUser": true, "rdma": false},
            "seccomp": crate::seccomp::features(),
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            // No resctrl support: linux.intelRdt is refused (container/bundle.rs).
            "intelRdt": {"enabled": false, "schemata": false, "monitoring": false},
            "netDevices": {"enabled": true},
            "mountExtensions": {"idmap": {"enabled": true}},
            "memoryPolicy": {
                "modes": crate::process::attrs::MPOL_MODES.iter().map(|m| m.2).collect::<Vec<_>>(),
                "flags": crate::process::attrs::MPOL_FLAGS.iter().map(|f| f.2).collect::<Vec<_>>()
            }
        },
        "annotations": {
            "io.github.berth.version": env!("CARGO_PKG_VERSION"),
            "io.github.berth.commit": option_env!("BERTH_COMMIT").unwrap_or("unknown"),
            "io.github.berth.checkpoint": checkpoint()
        }
    })
}

/// checkpoint/restore drive the `criu` binary: named when it is there. Whether this kernel is
/// one CRIU supports only `criu check` can tell (integration/vm/CRIU.md), so nothing more is
/// claimed.
fn checkpoint() -> String {
    match crate::criu::find() {
        Some(p) => format!("criu ({}); needs a kernel `criu check` accepts", p.display()),
        None => "unavailable: no criu in PATH".into(),
    }
}

pub fn run() -> Result<i32> {
    super::out(&(serde_json::to_string_pretty(&document())? + "\n"))?;
    Ok(0)
}
