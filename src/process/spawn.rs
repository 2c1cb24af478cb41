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

/// `struct clone_args` of clone3(2), up to `cgroup` (CLONE_ARGS_SIZE_VER2, kernel 5.7).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `clone` with fork semantics, the child starting inside the cgroup v2 directory `cgroup`
/// (CLONE_INTO_CGROUP): no migration afterwards, so no wait for the RCU grace period a first
/// `cgroup.procs` write costs. The raw error lets the caller fall back to `clone` + a join
/// (kernels before 5.7, or a cgroup the caller may not create tasks in).
pub fn clone_into_cgroup(flags: i32, cgroup: std::os::fd::BorrowedFd) -> nix::Result<Option<i32>> {
    use std::os::fd::AsRawFd;
    let mut args = CloneArgs {
        flags: u64::from(flags as u32) | CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup.as_raw_fd() as u64,
        ..Default::default()
    };
    // SAFETY: as in `clone`: no stack given (0), so the child runs on a copy of ours, with fork
    // semantics; `args` is a valid clone_args of the size passed and outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match Errno::result(ret)? {
        0 => Ok(None),
        pid => Ok(Some(pid as i32)),
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
    /// `pid` was reaped: its number may be reused by any process from now on.
    pub fn reaped(&mut self, pid: i32) {
        self.pids.retain(|&p| p != pid);
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
