//! One file per command: thin glue between the CLI, the container state and the process model.

pub mod checkpoint;
pub mod create;
pub mod delete;
pub mod events;
pub mod exec;
pub mod features;
pub mod kill;
pub mod list;
pub mod pause;
pub mod ps;
pub mod restore;
pub mod spec;
pub mod start;
pub mod state;
pub mod update;

use std::path::PathBuf;

/// Write command output to stdout. A reader that went away (EPIPE, e.g. `| head`) ends the
/// output quietly instead of panicking: Rust ignores SIGPIPE, and berth keeps it ignored so a
/// hook that closes its stdin early cannot kill it.
pub fn out(s: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    match o.write_all(s.as_bytes()).and_then(|_| o.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(anyhow::anyhow!("write stdout: {e}")),
    }
}

/// Global flags every command sees.
pub struct Global {
    pub root: PathBuf,
    /// --root was given (not the default): `list` reports it missing, as runc.
    pub root_given: bool,
    /// Unprivileged operation (cgroups that are not delegated are skipped): Some for an explicit
    /// --rootless=true/false, None for "auto" (see `rootless`).
    pub rootless: Option<bool>,
    pub systemd_cgroup: bool,
    pub cgroup_manager: Option<String>,
}

impl Global {
    /// runc: "auto" (the default) means rootless when not root, or root of a user namespace.
    /// Decided on use: only create and run need it, and the user-namespace check reads a file.
    pub fn rootless(&self) -> bool {
        self.rootless
            .unwrap_or_else(|| !nix::unistd::geteuid().is_root() || crate::namespaces::running_in_userns())
    }

    /// cgroupfs unless told otherwise (`--systemd-cgroup` or `--cgroup-manager systemd`: the
    /// systemd driver; `disabled`: no cgroups).
    pub fn use_cgroups(&self) -> anyhow::Result<bool> {
        if self.systemd_cgroup {
            return Ok(true);
        }
        match self.cgroup_manager.as_deref() {
            None | Some("cgroupfs") | Some("systemd") => Ok(true),
            Some("disabled") => Ok(false),
            Some(m) => anyhow::bail!("unknown cgroup manager {m:?} (cgroupfs, systemd or disabled)"),
        }
    }

    /// The systemd cgroup driver was asked for.
    pub fn systemd(&self) -> bool {
        self.systemd_cgroup || self.cgroup_manager.as_deref() == Some("systemd")
    }
}
