//! One file per command: thin glue between the CLI, the container state and the process model.

pub mod create;
pub mod delete;
pub mod exec;
pub mod features;
pub mod kill;
pub mod list;
pub mod spec;
pub mod start;
pub mod state;

use std::path::PathBuf;

/// Global flags every command sees.
pub struct Global {
    pub root: PathBuf,
    /// Unprivileged operation: cgroups that are not delegated are skipped.
    pub rootless: bool,
    pub systemd_cgroup: bool,
    pub cgroup_manager: Option<String>,
}

impl Global {
    /// cgroupfs unless told otherwise; the systemd driver is not built yet.
    pub fn use_cgroups(&self) -> anyhow::Result<bool> {
        if self.systemd_cgroup || self.cgroup_manager.as_deref() == Some("systemd") {
            anyhow::bail!("the systemd cgroup driver is not supported yet; use the default cgroupfs driver");
        }
        match self.cgroup_manager.as_deref() {
            None | Some("cgroupfs") => Ok(true),
            Some("disabled") => Ok(false),
            Some(m) => anyhow::bail!("unknown cgroup manager {m:?} (cgroupfs or disabled)"),
        }
    }
}
