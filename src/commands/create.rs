//! `create` and `run`: the one path that makes a container.

use super::Global;
use crate::cgroups::Manager;
use crate::cli::CreateOpts;
use crate::container::bundle;
use crate::container::state::{set_mode, Container, FIFO, FIFO_MODE};
use crate::process::sync::Msg;
use crate::process::{self, HostFacts, Launched, Mode, PlanInput, Resources};
use crate::rootfs::inplace::InPlace;
use anyhow::{anyhow, bail, Result};
use nix::sys::signal::{SigSet, Signal};
use std::os::fd::{AsFd, OwnedFd};

/// sd_listen_fds(): how many fds (from 3) systemd-style socket activation passed to *this*
/// process (LISTEN_PID must be our pid, as go-systemd's activation.Files checks).
fn listen_fds() -> u32 {
    let ours = std::env::var("LISTEN_PID").ok().and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    match std::env::var("LISTEN_FDS").ok().and_then(|n| n.parse::<u32>().ok()) {
        Some(n) if ours => n,
        _ => 0,
    }
}

/// Removes everything a failed create made (process, cgroups, mounts in a namespace the
/// container shares, state dir) unless disarmed.
struct Cleanup {
    dir: Option<std::path::PathBuf>,
    cgroup: Option<Manager>,
    in_place: Option<InPlace>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(cg) = &self.cgroup {
            cg.kill_all_and_wait();
            let _ = cg.destroy();
        }
        if let Some(r) = &self.in_place {
            if let Err(e) = crate::rootfs::inplace::remove(r) {
                crate::log::warn(&format!("{e:#}"));
            }
        }
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

fn make_fifo(c: &Container) -> Result<OwnedFd> {
    let path = c.dir.join(FIFO);
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(FIFO_MODE))
        .map_err(|e| anyhow!("mkfifo {}: {e}", path.display()))?;
    // Our own read end, inherited by the init: start's non-blocking open only succeeds while
    // the init is alive to hold it.
    let fd = crate::sys::open(&path, libc::O_RDONLY | libc::O_NONBLOCK, 0)
        .map_err(|e| anyhow!("open {}: {e}", path.display()))?;
    set_mode(fd.as_fd(), FIFO_MODE).map_err(|e| anyhow!("chmod {}: {e}", path.display()))?;
    Ok(fd)
}

struct Made {
    container: Container,
    launched: Launched,
    _cleanup: Cleanup,
}

impl Made {
    fn disarm(&mut self) {
        self.launched.guard.disarm();
        if let Some(n) = self.launched.net_devices.as_mut() {
            n.disarm();
        }
        self._cleanup.dir = None;
        self._cleanup.cgroup = None;
        self._cleanup.in_place = None;
    }
}

fn make(g: &Global, opts: &CreateOpts, id: &str, mode: Mode, foreground: bool) -> Result<Made> {
    crate::container::state::validate_id(id)?;
    let use_cgroups = g.use_cgroups()?;
    let mut b = bundle::load(&opts.bundle)?;
    let listen = listen_fds();
    if listen > 0 {
        // Socket activation (runc): the listen fds reach the container at 3.. (ahead of
        // --preserve-fds), and its init is pid 1 as far as sd_listen_fds() is concerned.
        if let Some(p) = b.spec.process_mut() {
            let mut env = p.env().clone().unwrap_or_default();
            env.retain(|e| !e.starts_with("LISTEN_FDS=") && !e.starts_with("LISTEN_PID="));
            env.push(format!("LISTEN_FDS={listen}"));
            env.push("LISTEN_PID=1".to_string());
            p.set_env(Some(env));
        }
    }
    let device_rules = crate::cgroups::devices::rules(&b.spec)?;
    let pidfd_socket = process::console::connect_pidfd_socket(opts.pidfd_socket.as_deref())?;
    let terminal = b.spec.process().as_ref().and_then(|p| p.terminal()).unwrap_or(false);
    check_terminal(terminal, opts.console_socket.is_some(), foreground)?;
    let mut container = Container::create(&g.root, id)?;
    if let Some(host) = std::env::var("NOTIFY_SOCKET").ok().filter(|s| !s.is_empty()) {
        crate::notify::prepare(&container.dir, &mut b.spec)?;
        container.state.notify_socket = Some(host);
    }
    let mut cleanup = Cleanup {
        dir: Some(container.dir.clone()),
        cgroup: None,
        in_place: None,
    };
    let linux = b
        .spec
        .linux()
        .as_ref()
        .ok_or_else(|| anyhow!("config.json: linux must be set"))?;
    let cgroup = if use_cgroups {
        let cp = linux.cgroups_path().as_ref().map(|p| p.to_string_lossy().into_owned());
        let cg = if g.systemd() {
            let annotations = b.spec.annotations().clone().unwrap_or_default().into_iter().collect();
            Manager::plan_systemd(cp.as_deref(), id, g.rootless(), annotations)?
        } else {
            if cp
                .as_deref()
                .is_some_and(crate::cgroups::systemd::path::looks_like_unit_path)
            {
                bail!(
                    "linux.cgroupsPath {:?} is a systemd path (slice:prefix:name): it needs --systemd-cgroup",
                    cp.unwrap_or_default()
                );
            }
            Manager::plan(cp.as_deref(), id, g.rootless())?
        };
        // Before the cleanup owns it: a refused cgroup is someone else's, never killed.
        cg.check_unused()?;
        Some(cg)
    } else {
        None
    };
    container.record_bundle(&b, linux)?;
    crate::fault::point("before-state");
    if let Some(cg) = &cgroup {
        container.state.cgroup = cg.clone();
        cleanup.cgroup = Some(cg.clone());
    }
    // Recorded (with the cgroup directories about to be made) before any cgroup exists, so a
    // create killed from here on is cleaned up by `delete --force`.
    container.save()?;
    // Before the clone: the init is placed in them before it runs (process::launch), and
    // rootless may drop hierarchies the user cannot write to, from whose remains the init's
    // cgroup mounts are planned.
    if cgroup.is_some() {
        make_cgroups(&mut container, &mut cleanup, linux, &device_rules)?;
    }
    let fifo = if mode == Mode::Create {
        Some(make_fifo(&container)?)
    } else {
        None
    };
    let input = PlanInput {
        spec: &b.spec,
        bundle: &b.dir,
        rootfs: &b.rootfs,
        mode,
        no_pivot: opts.no_pivot,
        preserve_fds: opts.preserve_fds + listen,
        id,
        no_new_keyring: opts.no_new_keyring,
        lock_fd: container.lock_fd(),
        exec: false,
    };
    let plan = process::plan(&input, &HostFacts::read())?.acquire(
        &input,
        Resources {
            fifo,
            cgroup_paths: &container.state.cgroup.paths,
            state_root: Some(&g.root),
            ..Resources::default()
        },
    )?;
    crate::log::debug(&format!(
        "create {id}: clone flags {:#x}, unshare {:#x}, fork {}, {} joins, {} mounts",
        plan.clone_flags,
        plan.unshare_flags,
        plan.fork_after,
        plan.ns.joins.len(),
        plan.rootfs.as_ref().map_or(0, |r| r.mounts.len())
    ));
    let cg = cleanup.cgroup.clone();
    let joined_mntns = plan
        .ns
        .joins
        .iter()
        .find(|j| j.flag == libc::CLONE_NEWNS)
        .map(|j| (j.path.as_path(), j.fd.as_fd()));
    let launched = process::launch(&plan, cg.as_ref(), &mut |id| {
        let r = crate::rootfs::inplace::record(id, &b.rootfs, joined_mntns)?;
        container.state.in_place = Some(r.clone());
        container.save()?;
        cleanup.in_place = Some(r);
        Ok(())
    })?;
    crate::fault::point("after-ready");
    let (start, _) = crate::container::state::proc_stat(launched.pid)
        .ok_or_else(|| anyhow!("container init exited during setup"))?;
    process::console::send_pidfd(pidfd_socket, launched.pid, "standard")?;
    container.state.pid = launched.pid;
    container.state.start_time = start;
    crate::log::debug(&format!("create {id}: init pid {} is ready", launched.pid));
    container.save()?;
    if let Some(p) = &opts.pid_file {
        process::write_pid_file(p, launched.pid)?;
    }
    crate::fault::point("after-state");
    Ok(Made {
        container,
        launched,
        _cleanup: cleanup,
    })
}

/// mkdir the container's cgroups, record what was really made, write linux.resources and the
/// device allowlist. Before the clone: no process of the container ever runs in a cgroup
/// without its limits or sees a host disk.
fn make_cgroups(
    container: &mut Container,
    cleanup: &mut Cleanup,
    linux: &oci_spec::runtime::Linux,
    device_rules: &[crate::cgroups::devices::Rule],
) -> Result<()> {
    let mut cg = container.state.cgroup.clone();
    crate::fault::point("before-cgroups");
    cg.create()?;
    if cg.paths != container.state.cgroup.paths || cg.created != container.state.cgroup.created {
        // Rootless dropped hierarchies the user may not write to, or a directory appeared
        // meanwhile (then it is not ours to remove).
        container.state.cgroup = cg.clone();
        container.save()?;
    }
    crate::fault::point("after-cgroups");
    let r = linux.resources().clone().unwrap_or_default();
    cleanup.cgroup.insert(cg).apply(&r, Some(device_rules), false)
}

/// runc's rules: a terminal needs somewhere to go, and a console socket needs a terminal.
pub fn check_terminal(terminal: bool, socket: bool, foreground: bool) -> Result<()> {
    if terminal && !socket && !foreground {
        bail!("cannot allocate tty if berth will detach without setting console socket");
    }
    if socket && !terminal {
        bail!("cannot use console socket if berth will not allocate a tty (process.terminal is false)");
    }
    Ok(())
}

pub fn create(g: &Global, opts: &CreateOpts, id: &str) -> Result<i32> {
    let mut m = make(g, opts, id, Mode::Create, false)?;
    process::console::hand_over(m.launched.console.take(), opts.console_socket.as_deref())?;
    m.launched.sync.send(&Msg::Committed)?; // sync 19
                                            // EOF: the init dropped its parent-death signal and closed its end; we may exit.
    m.launched.sync.expect_eof()?;
    m.disarm();
    Ok(0)
}

/// Signals `run` relays to the container (all but the ones that make no sense to forward).
pub fn forward_set() -> SigSet {
    let mut s = SigSet::all();
    for sig in [
        Signal::SIGSEGV,
        Signal::SIGBUS,
        Signal::SIGILL,
        Signal::SIGFPE,
        Signal::SIGTRAP,
        Signal::SIGABRT,
        Signal::SIGSYS,
    ] {
        s.remove(sig);
    }
    s
}

fn wait_status(st: nix::sys::wait::WaitStatus) -> Option<i32> {
    use nix::sys::wait::WaitStatus::*;
    match st {
        Exited(_, code) => Some(code),
        Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

pub fn run(g: &Global, opts: &CreateOpts, id: &str, detach: bool, keep: bool) -> Result<i32> {
    // Blocked before the clone: a container that exits at once must not lose its SIGCHLD
    // (youki's `run` hung on exactly that); the child unblocks before exec.
    let set = forward_set();
    let old = crate::sys::block_signals(&set).map_err(|e| anyhow!("block signals: {e}"))?;
    let mut m = make(g, opts, id, Mode::Run, !detach)?;
    let master = process::console::hand_over(m.launched.console.take(), opts.console_socket.as_deref())?;
    let listener = crate::notify::listen_if(&m.container.dir, m.container.state.notify_socket.as_deref())?;
    m.launched.sync.send(&Msg::Start)?; // sync 21
                                        // EOF: the program runs; or sync 22 or 23 from the trampoline.
    m.launched.sync.expect_eof()?;
    m.disarm();
    if let Err(e) = m.container.run_poststart() {
        // runtime-spec 1.3: the container is stopped and the lifecycle goes on with its
        // destruction (and poststop hooks), which --keep leaves to `delete`, as runc does.
        super::delete::stop(&m.container);
        if !keep {
            super::delete::destroy(&m.container)?;
        }
        return Err(e);
    }
    m.container.unlock();
    let pid = m.launched.pid;
    let mut relay = None;
    if let Some(l) = listener {
        let alive = move || crate::container::state::proc_stat(pid).is_some_and(|(_, s)| s != 'Z');
        if detach {
            l.forward_ready(pid, alive)?;
        } else {
            // The foreground run waits for the process meanwhile; READY is relayed beside it.
            relay = Some(std::thread::spawn(move || {
                let _ = l.forward_ready(pid, alive);
            }));
        }
    }
    if detach {
        let _ = nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(&old), None);
        return Ok(0);
    }
    let code = match master {
        Some(master) => process::console::relay(pid, &set, master)?,
        None => wait_forward(pid, &set),
    };
    if !keep {
        let joined_mntns = m.container.state.in_place.as_ref().is_some_and(|r| r.ns_path.is_some());
        if let (Some(t), true) = (relay, joined_mntns) {
            // Its mounts are removed from inside the joined namespace, and setns(2) wants a
            // single-threaded process: the relay ends within 100 ms of the process's exit.
            let _ = t.join();
        }
        // Re-read under the lock: a concurrent `delete --force` may have removed it already.
        if let Ok(c) = Container::load(&g.root, id, true) {
            super::delete::destroy(&c)?;
        }
    }
    Ok(code)
}

/// Relay every signal in `set` to `pid` until it exits; its exit code (128+N after signal N).
/// The set was blocked before the clone, so no SIGCHLD can be lost.
pub fn wait_forward(pid: i32, set: &SigSet) -> i32 {
    loop {
        let sig = match set.wait() {
            Ok(s) => s,
            Err(_) => continue,
        };
        if sig == Signal::SIGCHLD {
            let mut done = None;
            loop {
                match nix::sys::wait::waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                    Ok(nix::sys::wait::WaitStatus::StillAlive) | Err(_) => break,
                    Ok(st) if st.pid() == Some(nix::unistd::Pid::from_raw(pid)) => done = wait_status(st),
                    Ok(_) => {}
                }
            }
            if let Some(c) = done {
                return c;
            }
        } else {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
        }
    }
}
