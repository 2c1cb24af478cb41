//! The only clone/fork site. A raw clone(2) with a NULL stack has fork semantics: the child
//! runs on a copy of our stack, and because berth is single-threaded up to here no lock can be
//! held by a thread that does not exist in the child.

use anyhow::{anyhow, Result};
use nix::errno::Errno;

/// clone(2) with `flags` (namespaces, CLONE_PARENT); the exit signal is SIGCHLD unless
/// CLONE_PARENT makes the kernel inherit the caller's. Returns None in the child.
pub fn clone(flags: i32) -> Result<Option<i32>> {
    let sig = if flags & libc::CLONE_PARENT != 0 {
        0
    } else {
        libc::SIGCHLD
    };
    // SAFETY: fork-like clone (NULL stack, no CLONE_VM): the child gets a private copy of the
    // address space and continues from here; no threads exist that could hold locks.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | sig) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match Errno::result(ret) {
        Ok(0) => Ok(None),
        Ok(pid) => Ok(Some(pid as i32)),
        Err(e) => Err(anyhow!("clone with flags {flags:#x}: {e}")),
    }
}

/// Kills and reaps the processes it holds unless disarmed: any early error in the parent
/// leaves no half-made container process behind.
#[derive(Default)]
pub struct PidGuard {
    pids: Vec<i32>,
}

impl PidGuard {
    pub fn push(&mut self, pid: i32) {
        self.pids.push(pid);
    }
    pub fn disarm(&mut self) {
        self.pids.clear();
    }
}

impl Drop for PidGuard {
    fn drop(&mut self) {
        for &pid in &self.pids {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        }
    }
}
