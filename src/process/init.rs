//! The init: the cloned child, which only executes the plan. It never returns into the
//! parent's frames: errors go back over the sync socket, then `_exit`.
//!
//! Two jobs, as runc's standard and setns inits: `container_init` makes a new container
//! (create, run) and `exec_init` puts a process into a running one (exec). Each is one flat,
//! ordered list of steps; the steps both take are the functions after them. `// sync N`
//! marks where a step of the protocol (process/sync.rs) is sent or waited for.

use super::sync::{Msg, Sync};
use super::{console, Mode, Plan};
use crate::rootfs::setup;
use crate::sys;
use anyhow::{anyhow, bail, Context, Result};
use std::convert::Infallible;
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;

pub fn child_main(plan: &Plan, sync: Sync) -> ! {
    let mut sync = Some(sync);
    let r = if plan.exec {
        exec_init(plan, &mut sync)
    } else {
        container_init(plan, &mut sync)
    };
    match r {
        Ok(never) => match never {},
        Err(e) => {
            let sent = sync
                .as_ref()
                .is_some_and(|s| s.send(&Msg::Error(format!("{e:#}"))).is_ok()); // sync 23
            if !sent {
                // After create returned there is nobody on the socket: the container's stderr
                // is all that is left.
                eprintln!("berth: {e:#}");
            }
            sys::exit_now(1)
        }
    }
}

/// create and run: set up the container (namespaces, rootfs, process) and wait for start.
fn container_init(plan: &Plan, sync_slot: &mut Option<Sync>) -> Result<Infallible> {
    let Some(rootfs) = &plan.rootfs else {
        bail!("no rootfs plan")
    };
    let sync = begin(plan, sync_slot)?;
    join_namespaces(&plan.ns.joins)?;
    if plan.userns_in_child {
        // Joined namespaces first (they need our host capabilities), then the new user namespace.
        step("unshare user namespace", sys::unshare(libc::CLONE_NEWUSER))?;
        // Dumpable only while the parent writes our maps (runc does the same).
        step("set dumpable", sys::set_dumpable(true))?;
        sync.send(&Msg::MapRequest)?; // sync 2
        sync.expect(Msg::MapDone)?; // sync 3
        step("set non-dumpable", sys::set_dumpable(false))?;
    }
    if plan.unshare_flags != 0 {
        step("unshare namespaces", sys::unshare(plan.unshare_flags))?;
    }
    if !plan.net_devices.is_empty() {
        // The container's network namespace exists from here on (joined, or made at clone or
        // by the unshare above): the parent moves linux.netDevices into it now, before any
        // hook or process of the container runs (runc moves them at the same point).
        sync.send(&Msg::NetDevices)?; // sync 4
        sync.expect(Msg::NetDevicesDone)?; // sync 5
    }
    if !plan.ns.time_offsets.is_empty() {
        // Offsets can only be set before any process enters the new time namespace.
        std::fs::write("/proc/self/timens_offsets", &plan.ns.time_offsets).context("write timens_offsets")?;
    }
    // Only now: /proc/self of a non-dumpable process belongs to the host's root, so in a new
    // user namespace timens_offsets can be opened only before our uid changes.
    become_root(plan)?;
    if plan.fork_after {
        fork_real_init(sync)?;
    }
    // A new session: the container's init must not share the caller's controlling terminal.
    step("setsid", nix::unistd::setsid().map(drop))?;
    join_session_keyring(plan)?;

    // The rootfs. Device nodes and mount points get exactly the modes the config asks for.
    nix::sys::stat::umask(nix::sys::stat::Mode::empty());
    let root = setup::prepare(rootfs, &|id| {
        let id = i32::try_from(id).map_err(|_| anyhow!("mount id {id} of the rootfs clone is out of range"))?;
        sync.send(&Msg::RootMount(id))?; // sync 8
        sync.expect(Msg::RootMountSaved) // sync 9
    })?;
    if plan.joins_cgroups_after_go() {
        // The parent placed us in the container's cgroups meanwhile (the one exception to
        // "placed before Go": Plan::joins_cgroups_after_go); its answer says it is done.
        sync.send(&Msg::JoinWait)?; // sync 10
        sync.expect(Msg::Joined)?; // sync 11
    }
    if plan.new_cgroupns {
        // In the container's cgroups by now: they become the namespace's root, which the
        // cgroupfs mounts show. (Only create makes a cgroup namespace, always with a rootfs.)
        step("unshare cgroup namespace", sys::unshare(libc::CLONE_NEWCGROUP))?;
    }
    setup::mount_all(root.as_fd(), rootfs, &|i| mount_source(sync, i))?;
    setup::setup_dev(root.as_fd(), rootfs)?;
    let tty = match plan.terminal {
        true => {
            let (master, peer) = console::open_in_rootfs(root.as_fd(), plan.console_size)?;
            sync.send_fd(&Msg::Console, master.as_fd())?; // sync 14
            Some(peer)
        }
        false => None,
    };
    let hook_state = match &plan.hooks {
        Some(h) => Some(create_container_hooks(h, sync, root.as_fd())?),
        None => None,
    };
    setup::write_sysctls(&plan.sysctls)?;
    setup::mask_and_protect(root.as_fd(), rootfs)?;
    if let Some(h) = &plan.hostname {
        step("sethostname", nix::unistd::sethostname(h))?;
    }
    if let Some(d) = &plan.domainname {
        step("setdomainname", sys::setdomainname(d))?;
    }
    setup::make_cwd(root.as_fd(), &plan.cwd)?;
    setup::finalize(root.as_fd(), rootfs)?;
    setup::enter(root, rootfs)?;
    reopen_dev_null();

    // The process.
    let (keep, path, home) = the_process(plan, sync, tty, hook_state.as_deref(), true)?;
    if plan.mode == Mode::Create {
        sync.expect(Msg::Committed)?; // sync 19
                                      // `create` returns now: the container must outlive it.
        step("clear parent death signal", sys::set_pdeathsig(0))?;
    }
    let envp = envp(plan, home.as_ref());
    exec_trampoline(plan, keep, &path, &envp)?;
    match plan.mode {
        Mode::Run => wait_for_start_message(sync)?,
        Mode::Create => {
            *sync_slot = None;
            wait_for_start(plan)?;
        }
    }
    if let (Some(h), Some(state)) = (&plan.hooks, &hook_state) {
        // startContainer: in the container, after start, right before the process runs.
        // In the process's cwd (entered above), as runc's.
        crate::hooks::run_all(
            "startContainer",
            crate::hooks::list(h.hooks.start_container()),
            state,
            None,
        )?;
    }
    exec_program(plan, &path, &envp)
}

/// The process's own steps, the same for both inits, up to Ready (sync 18): every fd but the
/// kept ones closed, rlimits and attributes, seccomp, credentials, the pty as stdio, the program
/// looked up. `own_tty`: this process takes the pty as its controlling terminal and writes the
/// LSM exec label now (false only for exec's fork_last, where the forked process takes the
/// terminal and the label was written before the joins).
fn the_process(
    plan: &Plan,
    sync: &Sync,
    tty: Option<std::os::fd::OwnedFd>,
    hook_state: Option<&[u8]>,
    own_tty: bool,
) -> Result<(Kept, CString, Option<CString>)> {
    let home = home_env(plan);
    let keep = Kept::prepare(plan, sync, tty.as_ref(), hook_state)?;
    process_attributes(plan)?;
    if !plan.no_new_privs {
        // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: before the capability
        // drop (runc's standard_init_linux.go order).
        load_seccomp(plan, sync)?;
    }
    become_user(plan, tty.as_ref())?;
    if plan.no_new_privs {
        step("set no_new_privs", sys::set_no_new_privs())?;
    }
    if let Some(peer) = tty {
        // The pty is the process's stdio now; the peer fd itself is not kept.
        console::attach(&peer, own_tty)?;
    }
    let path = lookup_checked(plan)?;
    step("set parent death signal", sys::set_pdeathsig(libc::SIGKILL))?;
    if own_tty {
        // The exec attribute only labels the next execve, which is the container's process;
        // it is written before the filter so profiles need not allow berth's procfs write.
        super::lsm::apply(&plan.lsm)?;
    }
    if plan.no_new_privs {
        // As late as possible, so profiles need not allow berth's own setup syscalls; still
        // before Ready, so a notify listener fd reaches the agent during create (as runc).
        load_seccomp(plan, sync)?;
    }
    sync.send(&Msg::Ready)?; // sync 18
    Ok((keep, path, home))
}

/// exec: join the running container's namespaces and start a process there. The plan joins
/// every namespace (commands/exec.rs; process/mod.rs `exec_plans_only_join`), so none of
/// create's unshares, user namespace maps, network devices, time offsets, rootfs or hooks
/// apply, and a session of its own only comes with a terminal.
///
/// With `fork_last`, every step below runs outside the container's pid namespace (setns only
/// marks our children): the trampoline we end as forks the process into it (SECURITY.md).
fn exec_init(plan: &Plan, sync_slot: &mut Option<Sync>) -> Result<Infallible> {
    let sync = begin(plan, sync_slot)?;
    if plan.fork_last {
        // Labels the next execve: the trampoline's, as on the other path (the process it forks
        // keeps the label). Written now, through the host's procfs: once in the container's
        // mount namespace our /proc/thread-self is not there (we are not in its pid namespace).
        super::lsm::apply(&plan.lsm)?;
    }
    join_namespaces(&plan.ns.joins)?;
    if let Some(root) = &plan.exec_root {
        // exec into a container without a mount namespace of its own: the namespace joined
        // (the host's, or the one create joined) has the host's root, not the container's;
        // the container's is its init's, a chroot (rootfs/inplace.rs). runc leaves the
        // process at the namespace's root, in the host's filesystem.
        step("chdir to the container's root", nix::unistd::fchdir(root.as_raw_fd()))?;
        step("chroot into the container's root", nix::unistd::chroot("."))?;
    }
    become_root(plan)?;
    if plan.fork_after && !plan.fork_last {
        // (With fork_last the trampoline makes this fork, after everything else: see
        // exec_trampoline.)
        fork_real_init(sync)?;
    }
    join_session_keyring(plan)?;
    let tty = match plan.terminal {
        true => {
            // Its own session, and a pty from the container's devpts. With fork_last the
            // session is the forked process's own (trampoline.c "P").
            if !plan.fork_last {
                step("setsid", nix::unistd::setsid().map(drop))?;
            }
            let ptmx = sys::open("/dev/pts/ptmx", libc::O_RDWR | libc::O_NOCTTY, 0)
                .map_err(|e| anyhow!("open /dev/pts/ptmx in the container: {e}"))?;
            let (master, peer) = console::open_pty(ptmx, plan.console_size)?;
            sync.send_fd(&Msg::Console, master.as_fd())?; // sync 14
            Some(peer)
        }
        false => None,
    };

    // The process: create's steps, in create's order. With fork_last the forked process
    // takes the pty as its controlling terminal, and the LSM label was written above.
    let (keep, path, home) = the_process(plan, sync, tty, None, !plan.fork_last)?;
    let envp = envp(plan, home.as_ref());
    exec_trampoline(plan, keep, &path, &envp)?;
    wait_for_start_message(sync)?;
    exec_program(plan, &path, &envp)
}

/// The first steps of both inits. Returns the sync socket.
fn begin<'a>(plan: &Plan, sync_slot: &'a Option<Sync>) -> Result<&'a Sync> {
    if let Some(fd) = plan.lock_fd {
        // Our copy of the parent's state-dir lock: holding it would block every later command.
        let _ = nix::unistd::close(fd);
    }
    let Some(sync) = sync_slot.as_ref() else {
        bail!("no sync socket")
    };
    // Die with the parent while being set up; re-armed below after credential changes
    // (the kernel clears it on every uid/gid/capability change).
    step("set parent death signal", sys::set_pdeathsig(libc::SIGKILL))?;
    sync.expect(Msg::Go)?; // sync 1
                           // No process in the container may reach berth's memory, fds or binary (CVE-2016-9962):
                           // non-dumpable before joining any namespace. Not earlier: an unprivileged parent writes
                           // our uid_map before Go, and that file belongs to root while we are non-dumpable.
    step("set non-dumpable", sys::set_dumpable(false))?;
    Ok(sync)
}

/// Mount `i`'s source, made by berth's host side (sync.rs `MountSource`).
fn mount_source(sync: &Sync, i: usize) -> Result<OwnedFd> {
    sync.send(&Msg::MountSource(i32::try_from(i).context("mount index")?))?; // sync 12
    sync.expect_fd(Msg::MountSourceFd) // sync 13
}

fn step<T>(what: &str, r: nix::Result<T>) -> Result<T> {
    r.map_err(|e| anyhow!("{what}: {e}"))
}

/// runc 1.2's order (nsexec.c join_namespaces): every namespace our host capabilities let us
/// join, then the user namespace, then the ones that refused us with EPERM until then. Before
/// the user namespace we hold every capability over namespaces owned by it or by the initial
/// one (a host network namespace, which the joined user namespace does not own, is only
/// reachable then); after it, those owned by it alone (one it shares with a process we hold no
/// capability over).
fn join_namespaces(joins: &[crate::namespaces::Join]) -> Result<()> {
    let join = |j: &crate::namespaces::Join| sys::setns(j.fd.as_fd(), j.flag);
    let fail = |j: &crate::namespaces::Join, e| {
        anyhow!(
            "join {} namespace {}: {e}",
            crate::namespaces::name(j.flag),
            j.path.display()
        )
    };
    let (user, rest): (Vec<_>, Vec<_>) = joins.iter().partition(|j| j.flag == libc::CLONE_NEWUSER);
    let mut refused = Vec::new();
    for j in rest {
        match join(j) {
            Ok(()) => {}
            Err(nix::errno::Errno::EPERM) if !user.is_empty() => refused.push(j),
            Err(e) => return Err(fail(j, e)),
        }
    }
    for j in user.into_iter().chain(refused) {
        join(j).map_err(|e| fail(j, e))?;
    }
    Ok(())
}

/// root in the container's user namespace (Plan::become_root).
fn become_root(plan: &Plan) -> Result<()> {
    if plan.become_root {
        step("setresgid 0 in the user namespace", sys::setresgid(0))?;
        step("setresuid 0 in the user namespace", sys::setresuid(0))?;
    }
    Ok(())
}

/// pid and time namespaces apply to children only: the real init is our child, made a child
/// of the berth parent (CLONE_PARENT) so `run` can wait for it. The intermediate (us) sends
/// its pid and exits; the child returns.
fn fork_real_init(sync: &Sync) -> Result<()> {
    match super::spawn::clone(libc::CLONE_PARENT)? {
        Some(pid) => {
            sync.send(&Msg::Pid(pid))?; // sync 6
            sys::exit_now(0);
        }
        None => {
            step("set parent death signal", sys::set_pdeathsig(libc::SIGKILL))?;
            // The intermediate's Pid and our own messages share the socket: wait until the
            // parent has our pid (and placed us in the cgroups), or a fast Ready could
            // overtake it.
            sync.expect(Msg::PidSeen) // sync 7
        }
    }
}

fn join_session_keyring(plan: &Plan) -> Result<()> {
    if let Some(name) = &plan.session_keyring {
        match sys::join_session_keyring(name) {
            // Kernels without keyrings, or a seccomp filter of the caller that denies keyctl.
            Ok(()) | Err(nix::errno::Errno::ENOSYS) | Err(nix::errno::Errno::EPERM) => {}
            Err(e) => bail!("join session keyring: {e}"),
        }
    }
    Ok(())
}

/// prestart and createRuntime (run by the parent), then createContainer; returns the state
/// JSON the startContainer hooks will read.
fn create_container_hooks(h: &crate::hooks::HookCtx, sync: &Sync, root: BorrowedFd) -> Result<Vec<u8>> {
    sync.send(&Msg::Hooks)?; // sync 15
    let pid = match sync.recv()? {
        Some(Msg::HooksDone(pid)) => pid,    // sync 16
        Some(Msg::Error(m)) => bail!("{m}"), // sync 23
        other => bail!("sync: expected HooksDone, got {other:?}"),
    };
    let state = h.state("creating", pid);
    // createContainer: in the container's namespaces, before pivot_root (the path is
    // still resolved in the runtime's mount view), in the container's root as runc's
    // (its prepareRootfs chdirs there): hooks write paths relative to it.
    step("chdir to the rootfs", nix::unistd::fchdir(root.as_raw_fd()))?;
    crate::hooks::run_all(
        "createContainer",
        crate::hooks::list(h.hooks.create_container()),
        &state,
        None,
    )?;
    // startContainer hooks run after `start`: they see the container as runc shows it
    // to them, `created`.
    Ok(h.state("created", pid))
}

/// rlimits, then personality, scheduler, I/O priority, memory policy and the CPU affinity
/// (the cpuset's CPUs, or exec's execCPUAffinity.final), which all survive execve. Set now:
/// inside the cgroups (joining a cpuset resets the affinity), while still privileged
/// (SCHED_FIFO needs CAP_SYS_NICE, IOPRIO_CLASS_RT CAP_SYS_ADMIN) and before any seccomp
/// filter, which may deny these syscalls (runc sets them before its filter too).
fn process_attributes(plan: &Plan) -> Result<()> {
    super::rlimits::apply(&plan.rlimits)?;
    super::attrs::apply(&plan.attrs)
}

/// The cwd, the bounding set, groups, gid and uid, the capabilities and the umask.
fn become_user(plan: &Plan, tty: Option<&OwnedFd>) -> Result<()> {
    // runc (finalizeNamespace): the cwd is entered while still privileged, so a user that
    // cannot search it still starts there; only a permission error is retried as the user
    // (a cwd on a volume owned by the container's user that root may not search, e.g. NFS).
    let cwd_as_user = enter_cwd(plan, true)?;
    if let Some(peer) = tty {
        console::give_to_user(peer, plan.uid)?;
    }
    super::caps::drop_bounding(&plan.caps, plan.cap_last_cap)?;
    step("keep capabilities across setuid", sys::set_keepcaps())?;
    match sys::setgroups(&plan.groups) {
        Ok(()) => {}
        // A rootless user namespace has setgroups "deny": there are no groups to drop anyway.
        Err(nix::errno::Errno::EPERM) if plan.groups.is_empty() && plan.userns => {}
        Err(e) => bail!("setgroups {:?}: {e}", plan.groups),
    }
    step(&format!("setgid {}", plan.gid), sys::setresgid(plan.gid))?;
    step(&format!("setuid {}", plan.uid), sys::setresuid(plan.uid))?;
    if cwd_as_user {
        // Before the configured capabilities: the retry is the user's own access.
        enter_cwd(plan, false)?;
    }
    check_cwd()?;
    super::caps::apply(&plan.caps)?;
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(plan.umask));
    Ok(())
}

/// The program's path, resolved now, so a missing binary fails `create`, not `start` (as
/// runc), and checked not to be berth's own binary (CVE-2019-5736).
fn lookup_checked(plan: &Plan) -> Result<CString> {
    let path = lookup(plan)?;
    if let Some(me) = plan.self_exe {
        use std::os::unix::ffi::OsStrExt;
        super::exe_guard::check(std::path::Path::new(std::ffi::OsStr::from_bytes(path.to_bytes())), me)?;
    }
    Ok(path)
}

/// The program's environment: process.env, and HOME unless it sets it.
fn envp<'a>(plan: &'a Plan, home: Option<&'a CString>) -> Vec<&'a CStr> {
    plan.env.iter().chain(home).map(|e| e.as_c_str()).collect()
}

/// Exec the trampoline, which waits for start, runs the startContainer hooks and execs the
/// program: from here on the container's pid 1 is a sealed ~10 KB memfd, not berth's binary,
/// and holds only the fds it needs (trampoline.c). Our copy of the sync socket closes at this
/// exec: the parent sees EOF once the trampoline runs. Returns only where the trampoline
/// cannot run and berth itself waits for start, with `keep` closed. With fork_last the
/// trampoline sends the forked process's pid (sync 20); run and exec's trampoline waits for
/// Start (21) and reports an exec failure (22) or a startContainer hook's (23).
fn exec_trampoline(plan: &Plan, keep: Kept, path: &CString, envp: &[&CStr]) -> Result<()> {
    sys::reset_signal_dispositions();
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
    if let (Some(t), Some(wait)) = (&plan.trampoline, &keep.wait) {
        let targs = trampoline_args(plan, wait.as_raw_fd(), keep.state.as_ref(), path)?;
        let targv: Vec<&CStr> = targs.iter().chain(&plan.args).map(|a| a.as_c_str()).collect();
        let denied = |e| {
            matches!(
                e,
                nix::errno::Errno::EPERM | nix::errno::Errno::ENOSYS | nix::errno::Errno::EACCES
            )
        };
        let e = sys::execveat_fd(t.as_fd(), &targv, envp);
        if !denied(e) || plan.fork_last {
            // fork_last: we are outside the container's pid namespace, so neither its
            // /proc/self nor waiting ourselves can stand in (the program would run outside it).
            bail!("exec the init trampoline: {}", crate::errtext::errno(e));
        }
        // A seccomp profile may deny execveat: the same memfd through the container's procfs
        // (only a real one: the image's own /proc/self/fd/N must never run before `start`);
        // without one, berth waits and execs itself.
        let procfs = sys::open("/proc", libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)
            .and_then(|p| sys::fs_type(p.as_fd()))
            .is_ok_and(|t| t == libc::PROC_SUPER_MAGIC);
        if procfs {
            let via_proc = CString::new(format!("/proc/self/fd/{}", t.as_raw_fd()))?;
            let e = sys::execve(&via_proc, &targv, envp);
            if !denied(e) {
                bail!("exec the init trampoline: {}", crate::errtext::errno(e));
            }
        }
        crate::log::debug(&format!("exec the init trampoline: {e}; berth waits for start itself"));
    }
    drop(keep);
    Ok(())
}

/// run and exec, where berth itself waits: the parent's Start.
fn wait_for_start_message(sync: &Sync) -> Result<()> {
    sync.expect(Msg::Start)?; // sync 21
    step("clear parent death signal", sys::set_pdeathsig(0))?;
    // The socket stays open: it is CLOEXEC, so the parent's EOF confirms the execve, and an
    // exec error still reaches the parent.
    Ok(())
}

fn exec_program(plan: &Plan, path: &CString, envp: &[&CStr]) -> Result<Infallible> {
    let argv: Vec<&CStr> = plan.args.iter().map(|a| a.as_c_str()).collect();
    let e = sys::execve(path, &argv, envp);
    Err(anyhow!(
        "unable to start container process: exec {:?}: {}",
        path,
        crate::errtext::errno(e)
    ))
}

/// The fds the init keeps past the point where it closes all others: the ones the trampoline
/// inherits (dups without close-on-exec). Everything else it still uses (the sync socket, the
/// trampoline, the pty peer) is close-on-exec and gone once the trampoline runs.
struct Kept {
    /// What the trampoline waits on: the exec fifo (create) or the sync socket (run, exec).
    wait: Option<std::os::fd::OwnedFd>,
    /// The state JSON the startContainer hooks read on stdin.
    state: Option<std::os::fd::OwnedFd>,
}

impl Kept {
    fn prepare(
        plan: &Plan,
        sync: &Sync,
        tty: Option<&std::os::fd::OwnedFd>,
        hook_state: Option<&[u8]>,
    ) -> Result<Kept> {
        let mut kept = Kept {
            wait: None,
            state: None,
        };
        if plan.trampoline.is_some() {
            let wait = match plan.mode {
                Mode::Create => plan.fifo.as_ref().map(|f| f.as_fd()),
                Mode::Run => Some(sync.fd.as_fd()),
            };
            if let Some(w) = wait {
                kept.wait = Some(step("dup the start fd", sys::dup_inheritable(w))?);
            }
            let start_hooks = plan
                .hooks
                .as_ref()
                .is_some_and(|h| !crate::hooks::list(h.hooks.start_container()).is_empty());
            if let (true, Some(s)) = (start_hooks, hook_state) {
                kept.state = Some(step(
                    "store the hooks' state",
                    sys::sealed_memfd(c"berth-state", s, false),
                )?);
            }
        }
        let fds = [
            Some(sync.fd.as_raw_fd()),
            plan.fifo.as_ref().map(|f| f.as_raw_fd()),
            plan.trampoline.as_ref().map(|f| f.as_raw_fd()),
            tty.map(|f| f.as_raw_fd()),
            kept.wait.as_ref().map(|f| f.as_raw_fd()),
            kept.state.as_ref().map(|f| f.as_raw_fd()),
        ];
        let keep: Vec<i32> = fds.into_iter().flatten().collect();
        step(
            "close inherited fds",
            sys::close_fds_except(3 + plan.preserve_fds as i32, &keep),
        )?;
        Ok(kept)
    }
}

/// The trampoline's own arguments (trampoline.c), ahead of the program's argv: what to wait
/// on, the startContainer hooks (path, timeout, args, env or "-" for the process's), the
/// state fd, and the program's resolved path.
fn trampoline_args(
    plan: &Plan,
    wait: std::os::fd::RawFd,
    state: Option<&std::os::fd::OwnedFd>,
    path: &CString,
) -> Result<Vec<CString>> {
    let kind = if plan.mode == Mode::Create { 'f' } else { 's' };
    let mut v = Vec::new();
    if plan.fork_last {
        // Fork into the pid namespace first; the pid goes to berth on the socket the child
        // then waits on.
        let fork = if plan.terminal { 'P' } else { 'p' };
        v.push(CString::new(format!("{fork}{wait}"))?);
    }
    v.push(CString::new(format!("{kind}{wait}"))?);
    let hooks = match (&plan.hooks, state) {
        (Some(h), Some(_)) => crate::hooks::list(h.hooks.start_container()),
        _ => &[],
    };
    v.push(CString::new(hooks.len().to_string())?);
    let cs = |s: &str| CString::new(s).map_err(|_| anyhow!("startContainer hook: NUL byte in {s:?}"));
    for h in hooks {
        let p = h.path().to_string_lossy().into_owned();
        v.push(cs(&p)?);
        // Bounded so that the trampoline's poll timeout (ms, a C int) cannot overflow: 24 days.
        v.push(CString::new(h.timeout().unwrap_or(0).clamp(0, 2_000_000).to_string())?);
        // Go's exec.Cmd (runc's hooks) runs `path` as argv[0] when args are empty.
        let args = h
            .args()
            .clone()
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| vec![p.clone()]);
        v.push(CString::new(args.len().to_string())?);
        for a in &args {
            v.push(cs(a)?);
        }
        match h.env() {
            // runc runs them from its init, whose environment is the process's.
            None => v.push(CString::new("-")?),
            Some(env) => {
                v.push(CString::new(env.len().to_string())?);
                for e in env {
                    v.push(cs(e)?);
                }
            }
        }
    }
    if let Some(s) = state.filter(|_| !hooks.is_empty()) {
        v.push(CString::new(s.as_raw_fd().to_string())?);
    }
    v.push(path.clone());
    Ok(v)
}

/// `HOME=...` to add to the process env, unless it sets HOME itself.
fn home_env(plan: &Plan) -> Option<CString> {
    if plan.env.iter().any(|e| e.to_bytes().starts_with(b"HOME=")) {
        return None;
    }
    let home = passwd_home(plan.uid)
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "/".to_string());
    CString::new(format!("HOME={home}")).ok()
}

/// The home directory of `uid` in the container's /etc/passwd. The file is the image's: only a
/// regular file is read (a FIFO would block the init), and at most 1 MiB of it.
fn passwd_home(uid: u32) -> Option<String> {
    use std::io::Read;
    let fd = sys::open(
        "/etc/passwd",
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC,
        0,
    )
    .ok()?;
    let f = std::fs::File::from(fd);
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = Vec::new();
    f.take(1 << 20).read_to_end(&mut text).ok()?;
    crate::passwd::field_for_uid(&String::from_utf8_lossy(&text), uid, 5).map(str::to_string)
}

/// runc (reOpenDevNull): stdio that is the caller's /dev/null (a node on a mount the
/// container does not have) is replaced by the container's own /dev/null, opened in its root.
/// Nothing else about the container changes, and CRIU can then dump those fds (it cannot dump
/// an fd of a mount outside the container: "Can't lookup mount"). A container without a
/// /dev/null keeps its stdio.
fn reopen_dev_null() {
    use std::os::fd::AsRawFd;
    let Ok(null) = sys::open("/dev/null", libc::O_RDWR | libc::O_CLOEXEC, 0) else {
        return;
    };
    let Ok(ns) = nix::sys::stat::fstat(null.as_raw_fd()) else {
        return;
    };
    if ns.st_mode & libc::S_IFMT != libc::S_IFCHR {
        return;
    }
    for fd in 0..3 {
        let same = nix::sys::stat::fstat(fd)
            .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == ns.st_rdev);
        if same {
            let _ = sys::dup_onto(null.as_fd(), fd);
        }
    }
}

fn load_seccomp(plan: &Plan, sync: &Sync) -> Result<()> {
    let Some(s) = &plan.seccomp else { return Ok(()) };
    let listener = step("load seccomp filter", sys::seccomp_filter(&s.program, s.flags))?;
    if let Some(fd) = listener {
        // Our copy closes when `fd` drops: the container process must not hold its own listener.
        sync.send_fd(&Msg::SeccompFd, fd.as_fd())?; // sync 17
    }
    Ok(())
}

/// chdir to process.cwd. `privileged`: the first attempt, whose EACCES/EPERM is not an error
/// yet (true: try again as the user, after setuid).
fn enter_cwd(plan: &Plan, privileged: bool) -> Result<bool> {
    match nix::unistd::chdir(plan.cwd.as_c_str()) {
        Ok(()) => Ok(false),
        Err(nix::errno::Errno::EACCES | nix::errno::Errno::EPERM) if privileged => Ok(true),
        Err(e) => bail!("chdir to cwd ({:?}) set in config.json failed: {e}", plan.cwd),
    }
}

/// The final cwd must be inside the container's root: one reached through a leaked fd would
/// lie outside it (CVE-2024-21626), and getcwd(2) then answers "(unreachable)/...".
fn check_cwd() -> Result<()> {
    let cwd = nix::unistd::getcwd().context("getcwd")?;
    if !cwd.is_absolute() {
        bail!("current working directory is outside of the container root");
    }
    Ok(())
}

/// exec.fifo: the read end was opened by the parent; `berth start` writes one byte.
fn wait_for_start(plan: &Plan) -> Result<()> {
    let Some(fifo) = &plan.fifo else { bail!("no exec fifo") };
    let mut fds = [nix::poll::PollFd::new(fifo.as_fd(), nix::poll::PollFlags::POLLIN)];
    loop {
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
            Ok(_) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => bail!("wait on exec fifo: {e}"),
        }
    }
    let mut b = [0u8; 1];
    let _ = nix::unistd::read(fifo.as_raw_fd(), &mut b);
    Ok(())
}

fn is_exec(p: &std::path::Path) -> std::io::Result<bool> {
    let m = std::fs::metadata(p)?;
    Ok(m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Go's exec.LookPath, as runc uses it, with runc's error texts (engines match
/// "executable file not found" and "no such file or directory" to pick exit codes 127/126).
fn lookup(plan: &Plan) -> Result<CString> {
    let Some(first) = plan.args.first() else {
        bail!("process.args must not be empty");
    };
    let arg0 = first.to_string_lossy().into_owned();
    if arg0.contains('/') {
        return match is_exec(std::path::Path::new(&arg0)) {
            Ok(true) => Ok(first.clone()),
            Ok(false) => bail!("unable to start container process: exec: {arg0:?}: permission denied"),
            Err(e) => bail!(
                "unable to start container process: exec: {arg0:?}: stat {arg0}: {}",
                crate::errtext::io(&e)
            ),
        };
    }
    for dir in plan.path_env.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = std::path::Path::new(dir).join(&arg0);
        if let Ok(true) = is_exec(&cand) {
            return crate::rootfs::cstr(&cand.to_string_lossy());
        }
    }
    bail!("unable to start container process: exec: {arg0:?}: executable file not found in $PATH")
}
