use super::Global;
use crate::container::state::{Container, NotExist, Op, Status};
use anyhow::Result;
use std::os::fd::AsFd;

/// Kill what is left, wait for the init to be gone, remove cgroups and state.
pub fn destroy(c: &Container) -> Result<()> {
    destroy_with(c, c.init_pidfd())
}

/// `destroy` with the init's pidfd already looked up (None: the init is gone, or its pid now
/// belongs to another process, which must not be signalled).
fn destroy_with(c: &Container, init: Option<std::os::fd::OwnedFd>) -> Result<()> {
    if let Some(fd) = init {
        kill_init(c, fd);
    }
    if !c.state.own_pidns {
        c.state.cgroup.kill_all_and_wait();
    }
    // With its own pid namespace, the init's death took every process of the container with
    // it (the kernel kills the namespace). Anything still in the cgroups came from outside or
    // is not released yet: rmdir then fails (EBUSY), and it is killed and waited for.
    let r = c.state.cgroup.destroy_once().or_else(|_| {
        c.state.cgroup.kill_all_and_wait();
        c.state.cgroup.destroy()
    });
    if let Some(p) = &c.state.in_place {
        // No mount namespace of its own: its mounts outlive it unless removed, and on failure
        // the state that records them stays for another delete.
        crate::rootfs::inplace::remove(p)?;
    }
    c.run_poststop();
    c.remove_dir()?;
    r
}

/// SIGKILL the init (its pidfd) and wait, at most 5 s, until it is gone.
pub fn kill_init(c: &Container, fd: std::os::fd::OwnedFd) {
    let _ = crate::sys::pidfd_send_signal(fd.as_fd(), libc::SIGKILL);
    // A frozen init only dies once thawed (the SIGKILL stays pending meanwhile).
    if c.state.cgroup.is_frozen() {
        let _ = c.state.cgroup.freeze(false);
    }
    // A pidfd polls readable once the process has exited.
    let mut fds = [nix::poll::PollFd::new(fd.as_fd(), nix::poll::PollFlags::POLLIN)];
    let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(5000u16));
}

/// runtime-spec 1.3: a poststart hook failed, so the container is stopped (runc kills its
/// init); its destruction, with the poststop hooks, is `delete`'s (or `run`'s) to do.
pub fn stop(c: &Container) {
    if let Some(fd) = c.init_pidfd() {
        kill_init(c, fd);
    }
    if !c.state.own_pidns {
        // Without its own pid namespace the init's death leaves the other processes alive.
        c.state.cgroup.kill_all_and_wait();
    }
}

pub fn run(g: &Global, id: &str, force: bool) -> Result<i32> {
    let c = match Container::load(&g.root, id, true) {
        Ok(c) => c,
        Err(e) if force && e.is::<NotExist>() => return Ok(0),
        Err(e) => return Err(e),
    };
    let status = c.status();
    if !force {
        status.require(Op::Delete, id)?;
    }
    if status == Status::Stopped && c.state.pid == 0 {
        // A create that died before its init existed: only its cgroups and directory are left.
        c.state.cgroup.kill_all_and_wait();
    }
    // Stopped was decided from /proc/<pid>/stat just now: the init is dead (or its pid reused),
    // so there is no process to signal and no second stat read is needed.
    let init = if status == Status::Stopped {
        None
    } else {
        c.init_pidfd()
    };
    destroy_with(&c, init)?;
    Ok(0)
}
