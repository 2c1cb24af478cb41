//! The process model: the parent decides a `Plan` (`plan`: everything validated and converted,
//! no I/O), takes its resources (`Plan::acquire`), clones once, and drives the child through
//! the protocol in sync.rs. The child (init.rs) only executes the plan and never returns into
//! the parent's code.

pub mod attrs;
pub mod caps;
pub mod console;
pub mod exe_guard;
pub mod init;
pub mod lsm;
pub mod rlimits;
pub mod spawn;
pub mod sync;

use crate::cgroups::Manager;
use crate::namespaces::{self, NsPlan, CLONE_NEWTIME};
use crate::rootfs::{cstr, RootfsPlan};
use anyhow::{anyhow, bail, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use spawn::PidGuard;
use std::ffi::CString;
use std::os::fd::OwnedFd;
use sync::{Msg, Sync};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Wait on exec.fifo for `berth start` from another process.
    Create,
    /// The parent itself sends Start over the socket.
    Run,
}

/// Everything the init will do, decided in the parent before the clone. `plan` fills the
/// decisions from the config and the host's facts without any I/O; `Plan::acquire` adds the
/// resources (fds, the compiled seccomp filter, the trampoline, idmapped mount trees, net
/// devices), and only a `Ready` plan is launched.
pub struct Plan {
    pub mode: Mode,
    pub ns: NsPlan,
    /// Flags given to clone(2) itself (the fast path: no joins, no time namespace).
    pub clone_flags: i32,
    /// Namespaces the child unshares itself (after its joins), user and cgroup excluded.
    pub unshare_flags: i32,
    pub userns_in_child: bool,
    /// unshare/setns of pid or time only affect children: one more fork is needed.
    pub fork_after: bool,
    /// exec (with `fork_after`): that fork is the last step, made by the trampoline once berth
    /// has set everything up outside the pid namespace (init.rs), so no process running berth's
    /// binary is ever in a pid namespace with the container's processes (CVE-2019-5736).
    /// False where the trampoline cannot do it: no trampoline, or a seccomp filter that would
    /// refuse its syscalls (exe_guard::filter_lets_trampoline_fork).
    pub fork_last: bool,
    pub new_cgroupns: bool,
    pub become_root: bool,
    /// The container has a user namespace (new or joined).
    pub userns: bool,
    /// linux.netDevices, resolved on the host (acquire; empty for exec).
    pub net_devices: Vec<namespaces::netdev::Dev>,
    /// None for `exec`: the process joins a container whose rootfs is already set up.
    pub rootfs: Option<RootfsPlan>,
    pub exec: bool,
    /// process.terminal: allocate a pty (rows, cols from consoleSize).
    pub terminal: bool,
    pub console_size: Option<(u16, u16)>,
    /// Hooks run during create (None for exec, or when the config has none of them).
    pub hooks: Option<crate::hooks::HookCtx>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub sysctls: Vec<(String, String)>,
    pub rlimits: Vec<rlimits::Rlimit>,
    pub caps: caps::CapSets,
    /// Capability names this kernel lacks, left out of `caps` (warned about by acquire).
    pub caps_ignored: Vec<String>,
    /// The host's cap_last_cap, read in the parent (HostFacts): never by the init inside the
    /// container.
    pub cap_last_cap: u32,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub umask: u32,
    pub no_new_privs: bool,
    pub cwd: CString,
    pub args: Vec<CString>,
    pub env: Vec<CString>,
    pub path_env: String,
    pub preserve_fds: u32,
    /// The exec fifo's read end (acquire, create only).
    pub fifo: Option<OwnedFd>,
    pub oom_score_adj: Option<i32>,
    /// `_ses.<id>` unless --no-new-keyring.
    pub session_keyring: Option<CString>,
    /// The state-dir lock fd, closed first thing in the child.
    pub lock_fd: Option<std::os::fd::RawFd>,
    /// The BPF program, compiled by acquire so libseccomp never runs in the child.
    pub seccomp: Option<crate::seccomp::Compiled>,
    /// AppArmor profile / SELinux label for the container's process.
    pub lsm: lsm::LsmPlan,
    /// st_dev/st_ino of berth's binary: the final exec must not reach it (CVE-2019-5736).
    pub self_exe: Option<(u64, u64)>,
    /// The sealed exec trampoline (exe_guard.rs): the final exec goes through it.
    pub trampoline: Option<OwnedFd>,
    /// Where the parent sends the SCMP_ACT_NOTIFY listener fd.
    pub seccomp_listener: Option<crate::seccomp::notify::Listener>,
    /// Personality, scheduler, I/O priority, memory policy, exec CPU affinity.
    pub attrs: attrs::Attrs,
    /// exec into a container without a mount namespace of its own: its init's root (opened
    /// through the verified /proc/<pid>), which joining the namespace does not give.
    pub exec_root: Option<OwnedFd>,
}

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What `plan` decides from: the config and the command line.
pub struct PlanInput<'a> {
    pub spec: &'a Spec,
    pub bundle: &'a std::path::Path,
    pub rootfs: &'a std::path::Path,
    pub mode: Mode,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    pub id: &'a str,
    pub no_new_keyring: bool,
    pub lock_fd: Option<std::os::fd::RawFd>,
    /// Join a running container (every namespace by path) instead of making one.
    pub exec: bool,
}

/// What the plan needs to know about the host, read once by the caller (`HostFacts::read`)
/// so that `plan` itself reads nothing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// /proc/sys/kernel/cap_last_cap.
    pub cap_last_cap: u32,
    /// The LSMs the kernel enforces.
    pub lsm: lsm::HostLsm,
    /// berth runs in a user namespace other than the initial one (rootless engines).
    pub in_userns: bool,
    /// berth runs as root (euid 0).
    pub root: bool,
}

impl HostFacts {
    pub fn read() -> HostFacts {
        HostFacts {
            cap_last_cap: caps::last_cap(),
            lsm: lsm::detect(),
            in_userns: namespaces::running_in_userns(),
            root: nix::unistd::geteuid().is_root(),
        }
    }
}

/// What only `Plan::acquire` takes: fds the caller made and where the plan's resources live.
#[derive(Default)]
pub struct Resources<'a> {
    /// The exec fifo's read end (create), inherited by the init.
    pub fifo: Option<OwnedFd>,
    /// The namespaces already opened (exec: through the init's /proc directory,
    /// namespaces::join_process); None: open the plan's paths.
    pub joins: Option<Vec<namespaces::Join>>,
    /// The container's cgroup directories (its cgroup mounts show them).
    pub cgroup_paths: &'a [std::path::PathBuf],
    /// The state root, home of the compiled-seccomp cache (None: no cache).
    pub state_root: Option<&'a std::path::Path>,
    /// exec into a container without a mount namespace of its own: the init's root.
    pub exec_root: Option<OwnedFd>,
}

/// A plan with its resources: the only thing `launch` takes.
pub struct Ready(Plan);

impl std::ops::Deref for Ready {
    type Target = Plan;
    fn deref(&self) -> &Plan {
        &self.0
    }
}

/// Decide everything from the config, the command line and the host's facts. No I/O: no path
/// is opened, nothing is compiled or forked (that is `Plan::acquire`).
pub fn plan(i: &PlanInput, host: &HostFacts) -> Result<Plan> {
    let spec = i.spec;
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| anyhow!("config.json: linux must be set"))?;
    let ns = namespaces::plan(linux);
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| anyhow!("config.json: process must be set"))?;
    if !i.exec && ns.new & libc::CLONE_NEWNS == 0 && ns.new & libc::CLONE_NEWUSER != 0 {
        // The mount namespace (the runtime's, or a joined one) is owned by another user
        // namespace: a process in the new one may not mount there at all.
        bail!("linux.namespaces: a new user namespace needs a new mount namespace: it cannot mount in the runtime's or a joined one");
    }
    let has = |t: LinuxNamespaceType| linux.namespaces().iter().flatten().any(|n| n.typ() == t);
    let joined = ns.joined();
    let fast = joined == 0 && ns.new & CLONE_NEWTIME == 0;
    let (clone_flags, unshare_flags) = if fast {
        // The init is pid 1 and in its own mount (and user) namespace from the clone; the
        // network, IPC and UTS namespaces it unshares itself after Go, so their creation
        // (a new network namespace is the costliest part of a clone) runs while the
        // parent places it in its cgroups (`joins_cgroups_after_go`). Owner and result are
        // the same either way.
        let own = libc::CLONE_NEWNET | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
        (ns.new & !libc::CLONE_NEWCGROUP & !own, ns.new & own)
    } else {
        (0, ns.new & !(libc::CLONE_NEWUSER | libc::CLONE_NEWCGROUP))
    };
    let joins_pid_or_time = joined & (libc::CLONE_NEWPID | CLONE_NEWTIME) != 0;
    let fork_after = !fast && (unshare_flags & (libc::CLONE_NEWPID | CLONE_NEWTIME) != 0 || joins_pid_or_time);
    // Either the container gets a user namespace or berth already runs in one (rootless
    // engines): both forbid mknod and some filesystem mounts.
    let userns = has(LinuxNamespaceType::User) || host.in_userns;
    // A joined user namespace too: our host uid is unmapped there, and files we create on its
    // mounts would be refused (EOVERFLOW); runc's init does setuid(0) after joining as well.
    let become_root = (ns.new & libc::CLONE_NEWUSER != 0
        && ns.uid_map.lines().any(|l| l.split_whitespace().next() == Some("0")))
        || joined & libc::CLONE_NEWUSER != 0;
    let new_cgroupns = ns.new & libc::CLONE_NEWCGROUP != 0;
    let lsm = lsm::plan(
        process.apparmor_profile(),
        process.selinux_label(),
        linux.mount_label(),
        host.lsm,
    )?;
    let mut rootfs = if i.exec {
        None
    } else {
        Some(RootfsPlan::build(
            spec,
            i.bundle,
            i.rootfs,
            i.no_pivot,
            userns,
            new_cgroupns,
            host.root,
        )?)
    };
    if let Some(r) = rootfs.as_mut() {
        // runtime-spec: an omitted mount namespace is the runtime's, a path is joined.
        r.in_place = ns.new & libc::CLONE_NEWNS == 0;
        lsm::label_mounts(&mut r.mounts, linux.mount_label());
    }
    let user = process.user();
    let mut env = Vec::new();
    let mut path_env = None;
    for e in dedup_env(process.env().as_deref().unwrap_or_default()) {
        if let Some(p) = e.strip_prefix("PATH=") {
            path_env = Some(p.to_string());
        }
        env.push(cstr(e).map_err(|e| anyhow!("process.env: {e}"))?);
    }
    let args = process
        .args()
        .iter()
        .flatten()
        .map(|a| cstr(a))
        .collect::<Result<Vec<_>>>()
        .map_err(|e| anyhow!("process.args: {e}"))?;
    if args.is_empty() {
        bail!("process.args must not be empty");
    }
    let (caps, caps_ignored) = caps::sets(process, host.cap_last_cap);
    let mut sysctls: Vec<(String, String)> = linux.sysctl().clone().unwrap_or_default().into_iter().collect();
    sysctls.sort();
    Ok(Plan {
        mode: i.mode,
        clone_flags,
        unshare_flags,
        userns_in_child: !fast && ns.new & libc::CLONE_NEWUSER != 0,
        net_devices: Vec::new(),
        fork_after,
        new_cgroupns,
        become_root,
        userns,
        ns,
        rootfs,
        exec: i.exec,
        terminal: process.terminal().unwrap_or(false),
        console_size: process.console_size().map(|b| (b.height() as u16, b.width() as u16)),
        hooks: spec
            .hooks()
            .clone()
            .filter(|_| !i.exec)
            .map(|hooks| crate::hooks::HookCtx {
                id: i.id.to_string(),
                bundle: i.bundle.to_string_lossy().into_owned(),
                annotations: spec.annotations().clone().unwrap_or_default().into_iter().collect(),
                hooks,
            })
            .filter(|h| h.during_create()),
        hostname: spec.hostname().clone().filter(|h| !h.is_empty()),
        domainname: spec.domainname().clone().filter(|h| !h.is_empty()),
        sysctls,
        rlimits: rlimits::list(process)?,
        attrs: attrs::plan(linux, process, i.exec)?,
        exec_root: None,
        caps,
        caps_ignored,
        cap_last_cap: host.cap_last_cap,
        uid: user.uid(),
        gid: user.gid(),
        groups: user.additional_gids().clone().unwrap_or_default(),
        umask: user.umask().unwrap_or(0o022),
        no_new_privs: process.no_new_privileges().unwrap_or(false),
        cwd: cstr(&process.cwd().to_string_lossy())?,
        args,
        env,
        path_env: path_env.unwrap_or_else(|| DEFAULT_PATH.to_string()),
        preserve_fds: i.preserve_fds,
        fifo: None,
        oom_score_adj: process.oom_score_adj(),
        lock_fd: i.lock_fd,
        seccomp: None,
        seccomp_listener: None,
        self_exe: None,
        trampoline: None,
        fork_last: false,
        lsm,
        session_keyring: if i.no_new_keyring {
            None
        } else {
            Some(cstr(&format!("_ses.{}", i.id))?)
        },
    })
}

impl Plan {
    /// Take what the plan needs from the host, in the parent before the clone: the joined
    /// namespaces opened, net devices resolved, the rootfs's host side (RootfsPlan::acquire),
    /// the seccomp filter compiled (and cached), berth's own inode and the trampoline memfd.
    /// `i` is the input the plan was made from.
    pub fn acquire(mut self, i: &PlanInput, r: Resources) -> Result<Ready> {
        self.ns.joins = match r.joins {
            Some(joins) => {
                let flags = joins.iter().fold(0, |m, j| m | j.flag);
                if flags != self.ns.joined() {
                    bail!(
                        "namespaces opened ({flags:#x}) are not the ones planned ({:#x})",
                        self.ns.joined()
                    );
                }
                joins
            }
            None => namespaces::open(&self.ns.join)?,
        };
        if let (false, Some(linux)) = (i.exec, i.spec.linux()) {
            self.net_devices = namespaces::netdev::plan(linux, &self.ns)?;
        }
        if let Some(rootfs) = self.rootfs.as_mut() {
            rootfs.acquire(r.cgroup_paths, r.state_root)?;
        }
        let (seccomp, listener) = crate::seccomp::for_container(i.spec, i.id, i.bundle, r.state_root)?;
        caps::warn_ignored(std::mem::take(&mut self.caps_ignored));
        self.seccomp = seccomp;
        self.seccomp_listener = listener;
        self.self_exe = exe_guard::self_id();
        self.trampoline = exe_guard::trampoline()?;
        self.fork_last = i.exec
            && self.fork_after
            && self.trampoline.as_ref().is_some_and(|t| {
                use std::os::fd::AsRawFd;
                self.seccomp.as_ref().is_none_or(|s| {
                    let ok = exe_guard::filter_lets_trampoline_fork(&s.program, self.terminal, t.as_raw_fd());
                    if !ok {
                        crate::log::debug(
                            "the seccomp profile refuses what the trampoline needs to fork into the pid namespace: exec forks as berth before loading it",
                        );
                    }
                    ok
                })
            });
        self.fifo = r.fifo;
        self.exec_root = r.exec_root;
        Ok(Ready(self))
    }
}

impl Plan {
    /// The one exception to "placed before Go" (sync.rs `JoinWait`): on the fast path (every
    /// namespace made at clone or by the init's own unshare, no fork) the parent places the
    /// init right after Go, while it creates its network, IPC and UTS namespaces and prepares
    /// its rootfs mount; then it asks (`JoinWait`) and waits for `Joined` before its first
    /// mount in the rootfs. On v1 the first cgroup.procs write after a quiet spell waits for an
    /// RCU grace period (cgroup_threadgroup_rwsem), milliseconds that would otherwise be added
    /// to every `run`. Not for exec, whose init never asks (exec_init).
    pub fn joins_cgroups_after_go(&self) -> bool {
        !self.exec && self.ns.joins.is_empty() && !self.fork_after
    }
}

/// runc's prepareEnv: a key given twice (in process.env, or again by `exec -e`) reaches the
/// process once, with its last value, where that last one stood; an empty `HOME=` counts as
/// unset, so the init fills in the user's home.
pub fn dedup_env(env: &[String]) -> Vec<&str> {
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<&str> = env
        .iter()
        .rev()
        .filter(|e| seen.insert(e.split_once('=').map_or(e.as_str(), |(k, _)| k)))
        .filter(|e| e.as_str() != "HOME=")
        .map(String::as_str)
        .collect();
    out.reverse();
    out
}

/// What the parent holds once the container's init is set up and waiting.
pub struct Launched {
    pub pid: i32,
    /// The pty master, when process.terminal is set.
    pub console: Option<OwnedFd>,
    pub sync: Sync,
    pub guard: PidGuard,
    /// linux.netDevices moved in: given back if the create fails (netdev.rs).
    pub net_devices: Option<namespaces::netdev::Moved>,
}

fn write_oom(pid: i32, v: i32) -> Result<()> {
    std::fs::write(format!("/proc/{pid}/oom_score_adj"), v.to_string())
        .map_err(|e| anyhow!("set oom_score_adj {v}: {e}"))
}

/// Clone the init (`spawn::clone`'s result), straight into its cgroup on cgroup v2, whose
/// directory create has made by then; true when it went there, so no cgroup.procs write is
/// needed.
/// `exec` with execCPUAffinity.initial: the child starts on those CPUs (this thread's, which it
/// inherits) until it is in the container's cgroups.
fn clone_init(plan: &Plan, cgroup: Option<&Manager>) -> Result<(Option<i32>, bool)> {
    let saved = attrs::enter_initial(&plan.attrs)?;
    let r = clone_into(plan, cgroup);
    if let Ok((None, _)) = r {
        // The child: it keeps the initial CPUs.
        return r;
    }
    attrs::restore(saved);
    if let (Ok((Some(pid), _)), Some(c), true) = (&r, &plan.attrs.affinity_initial, crate::log::debug_enabled()) {
        let now = crate::sys::sched_getaffinity(*pid).map_or_else(|e| e.to_string(), |m| attrs::list_text(&m));
        crate::log::debug(&format!(
            "pid {pid} starts on CPUs {now} (execCPUAffinity.initial {})",
            c.text
        ));
    }
    r
}

fn clone_into(plan: &Plan, cgroup: Option<&Manager>) -> Result<(Option<i32>, bool)> {
    // Only when the clone is the container's process itself. On the fork path the process
    // forked later would count against pids.max (an exec into a container at its limit would
    // fail, where runc's succeeds): that one is migrated in once it exists (a migration is not
    // a fork), and the intermediate stays outside.
    let dir = cgroup
        .filter(|_| !plan.fork_after)
        .and_then(Manager::clone_target)
        .and_then(|p| crate::sys::open(p, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC, 0).ok());
    if let Some(dir) = dir {
        match spawn::clone_into_cgroup(plan.clone_flags, std::os::fd::AsFd::as_fd(&dir)) {
            Ok(child) => return Ok((child, true)),
            Err(e) => crate::log::debug(&format!("clone3 into the cgroup: {e}; clone, then join")),
        }
    }
    Ok((spawn::clone(plan.clone_flags)?, false))
}

/// Clone the container's init and drive it to Ready (protocol steps 1-18 in sync.rs; with
/// `fork_last`, 20).
/// `root_mount(id)`: the init is about to attach a rootfs clone with this mount id in a
/// namespace the container shares (rootfs/inplace.rs); the caller records it before the init
/// goes on.
pub fn launch(
    plan: &Ready,
    cgroup: Option<&Manager>,
    root_mount: &mut dyn FnMut(u64) -> Result<()>,
) -> Result<Launched> {
    let (ours, theirs) = Sync::pair()?;
    let mut guard = PidGuard::default();
    let (child, in_cgroup) = clone_init(plan, cgroup)?;
    let pid = match child {
        None => {
            drop(ours);
            init::child_main(plan, theirs)
        }
        Some(pid) => pid,
    };
    if in_cgroup {
        crate::log::debug(&format!("pid {pid} cloned into its cgroup (CLONE_INTO_CGROUP)"));
    }
    drop(theirs);
    guard.push(pid);
    crate::fault::point("after-clone");
    // The init is in its cgroups before it acts: cloned into them, or placed before Go; on the
    // fork path the real init is placed before PidSeen, which it waits for (forked outside the
    // cgroup, it is not refused by a pids.max the container has used up: an exec then still
    // runs, as runc's, which joins after the fork too). If it died of its own error meanwhile,
    // that error (sync 23) is the one to report.
    let place = |p| match (cgroup, in_cgroup) {
        (Some(cg), false) => cg
            .add_process(p)
            .map_err(|e| ours.pending_error().map_or(e, |m| anyhow!(m))),
        _ => Ok(()),
    };
    if plan.clone_flags & libc::CLONE_NEWUSER != 0 {
        namespaces::write_maps(pid, &plan.ns)?;
    }
    if let Some(v) = plan.oom_score_adj {
        write_oom(pid, v)?;
    }
    if !plan.fork_after && !plan.joins_cgroups_after_go() {
        place(pid)?;
    }
    ours.send(&Msg::Go)?; // sync 1
    if plan.joins_cgroups_after_go() {
        // Before any request is read: the answer to 10 (11) says this is done.
        place(pid)?;
    }
    let mut init_pid = pid;
    let mut console = None;
    let mut net_devices = None;
    // The child's requests, by step (sync.rs); each answer goes back before the next request.
    loop {
        let (msg, fd) = match ours.recv_fd()? {
            Some((m, fd)) => (Some(m), fd),
            None => (None, None),
        };
        match msg {
            // sync 2
            Some(Msg::MapRequest) => {
                namespaces::write_maps(pid, &plan.ns)?;
                ours.send(&Msg::MapDone)?; // sync 3
            }
            // sync 4
            Some(Msg::NetDevices) => {
                net_devices = Some(namespaces::netdev::move_in(&plan.net_devices, init_pid)?);
                ours.send(&Msg::NetDevicesDone)?; // sync 5
            }
            // sync 6
            Some(Msg::Pid(p)) => {
                // Only from the fork path's intermediate, once, naming a child of ours: the
                // socket can be copied by a process in a pid namespace the init shares (see
                // ForkedPid below), and the pid is placed in the cgroups and killed on error.
                if !plan.fork_after || plan.fork_last || init_pid != pid || !our_child(p, pid) {
                    bail!("sync: pid {p} from the container's init is not a process berth started");
                }
                init_pid = p;
                guard.push(p);
                // The intermediate exits right after sending the pid.
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                guard.reaped(pid);
                place(p)?;
                ours.send(&Msg::PidSeen)?; // sync 7
            }
            // sync 8
            Some(Msg::RootMount(id)) => {
                let id = u64::try_from(id).map_err(|_| anyhow!("sync: bad mount id {id}"))?;
                root_mount(id)?;
                ours.send(&Msg::RootMountSaved)?; // sync 9
            }
            // sync 10, 11: placed right after Go (joins_cgroups_after_go), before this loop.
            Some(Msg::JoinWait) => ours.send(&Msg::Joined)?,
            // sync 12
            Some(Msg::MountSource(i)) => {
                let r = plan
                    .rootfs
                    .as_ref()
                    .ok_or_else(|| anyhow!("sync: mount source requested without a rootfs"))?;
                let i = usize::try_from(i).map_err(|_| anyhow!("sync: mount source {i} requested"))?;
                let tree = crate::rootfs::idmap::host_source(r, i, init_pid)?;
                ours.send_fd(&Msg::MountSourceFd, std::os::fd::AsFd::as_fd(&tree))?;
                // sync 13
            }
            // sync 14
            Some(Msg::Console) => {
                console = Some(fd.ok_or_else(|| anyhow!("sync: console message without the pty fd"))?);
            }
            // sync 15
            Some(Msg::Hooks) => {
                let h = plan
                    .hooks
                    .as_ref()
                    .ok_or_else(|| anyhow!("sync: hooks requested but none configured"))?;
                // prestart (deprecated) and createRuntime run in the runtime's namespaces, after
                // the container's mounts exist and before pivot_root.
                let state = h.state("creating", init_pid);
                let dir = crate::hooks::bundle_dir(&h.bundle);
                crate::hooks::run_all("prestart", crate::hooks::list(h.hooks.prestart()), &state, dir)?;
                crate::hooks::run_all(
                    "createRuntime",
                    crate::hooks::list(h.hooks.create_runtime()),
                    &state,
                    dir,
                )?;
                ours.send(&Msg::HooksDone(init_pid))?; // sync 16
            }
            // sync 17
            Some(Msg::SeccompFd) => {
                let (Some(fd), Some(l)) = (fd, &plan.seccomp_listener) else {
                    bail!("sync: seccomp listener fd without a listener configured");
                };
                // Handed over at once: a syscall the init makes after loading the filter may
                // wait for the agent. (With fork_last the pid the agent is told is the init's,
                // which forks the process and exits: the process does not exist yet.)
                crate::seccomp::notify::send_to_agent(l, init_pid, std::os::fd::AsFd::as_fd(&fd))?;
            }
            // sync 18
            Some(Msg::Ready) => break,
            // sync 23
            Some(Msg::Error(m)) => bail!("{m}"),
            Some(m) => bail!("sync: unexpected {m:?} during setup"),
            None => bail!("container init exited during setup"),
        }
    }
    if plan.fork_last {
        // After Ready the init execs the trampoline, which forks the process into the pid
        // namespace (our child, by CLONE_PARENT), sends its pid and exits.
        init_pid = match ours.recv()? {
            // sync 20
            Some(Msg::ForkedPid(p)) => p,
            // sync 23
            Some(Msg::Error(m)) => bail!("{m}"),
            Some(m) => bail!("sync: expected ForkedPid, got {m:?}"),
            None => bail!("container init exited before forking the process"),
        };
        // The child holds its end of the socket inside the container, where a process with
        // CAP_SYS_PTRACE can take a copy (pidfd_getfd) and write to us: a pid is believed only
        // if it is a child of ours (the guard would otherwise kill whatever process it names).
        if !our_child(init_pid, pid) {
            bail!("sync: pid {init_pid} from the container's init is not a process berth started");
        }
        guard.push(init_pid);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
        guard.reaped(pid);
        // It waits for Start: nothing of the program runs before it is inside. (The init was
        // not cloned into the cgroups: fork_last implies fork_after, see clone_into.)
        place(init_pid)?;
        if let Some(c) = &plan.attrs.affinity_final {
            // Joining a cpuset resets the affinity before Linux 6.2.
            crate::sys::sched_setaffinity(init_pid, &c.mask)
                .map_err(|e| anyhow!("set CPU affinity {} (execCPUAffinity.final): {e}", c.text))?;
        }
    }
    Ok(Launched {
        pid: init_pid,
        console,
        sync: ours,
        guard,
        net_devices,
    })
}

/// `p` is a live child of ours other than the init we cloned (`init`): the processes the
/// intermediate or the trampoline fork with CLONE_PARENT are.
fn our_child(p: i32, init: i32) -> bool {
    use nix::sys::wait::{waitid, Id, WaitPidFlag};
    let flags = WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT;
    p > 0 && p != init && waitid(Id::Pid(nix::unistd::Pid::from_raw(p)), flags).is_ok()
}

/// Write the pid file atomically (runc writes the bare number, no newline).
pub fn write_pid_file(path: &str, pid: i32) -> Result<()> {
    let p = std::path::Path::new(path);
    let tmp = p.with_file_name(format!(
        ".{}.tmp",
        p.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
    ));
    std::fs::write(&tmp, pid.to_string()).map_err(|e| anyhow!("write pid file {}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, p).map_err(|e| anyhow!("write pid file {path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PID: i32 = libc::CLONE_NEWPID;
    const NS: i32 = libc::CLONE_NEWNS;
    const NET: i32 = libc::CLONE_NEWNET;
    const IPC: i32 = libc::CLONE_NEWIPC;
    const UTS: i32 = libc::CLONE_NEWUTS;
    const USER: i32 = libc::CLONE_NEWUSER;
    const TIME: i32 = CLONE_NEWTIME;

    fn spec(v: serde_json::Value) -> Spec {
        serde_json::from_value(v).unwrap()
    }

    /// A config with `namespaces` (a JSON list) and, when given, uidMappings.
    fn config(namespaces: serde_json::Value, uid_map: Option<serde_json::Value>) -> Spec {
        let mut c = json!({
            "ociVersion": "1.2.0",
            "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "env": ["A=1"]},
            "root": {"path": "rootfs"},
            "linux": {"namespaces": namespaces},
        });
        if let Some(m) = uid_map {
            c["linux"]["uidMappings"] = m.clone();
            c["linux"]["gidMappings"] = m;
        }
        spec(c)
    }

    fn input(spec: &Spec, exec: bool) -> PlanInput<'_> {
        PlanInput {
            spec,
            bundle: std::path::Path::new("/bundle"),
            rootfs: std::path::Path::new("/bundle/rootfs"),
            mode: Mode::Create,
            no_pivot: false,
            preserve_fds: 0,
            id: "c1",
            no_new_keyring: false,
            lock_fd: None,
            exec,
        }
    }

    fn host() -> HostFacts {
        HostFacts {
            cap_last_cap: 40,
            lsm: lsm::HostLsm::default(),
            in_userns: false,
            root: true,
        }
    }

    fn decide(spec: &Spec, exec: bool) -> Result<Plan> {
        plan(&input(spec, exec), &host())
    }

    fn err(spec: &Spec, exec: bool) -> String {
        match decide(spec, exec) {
            Ok(_) => panic!("the plan should be refused"),
            Err(e) => format!("{e:#}"),
        }
    }

    /// clone/unshare flags, the second fork, where the user namespace is made, setuid(0) and
    /// the cgroup namespace: from the namespaces alone. A path is a join; nothing is opened,
    /// so a path that does not exist plans fine (Plan::acquire fails on it).
    #[test]
    fn flag_algebra() {
        struct Case {
            name: &'static str,
            ns: serde_json::Value,
            uid_map: Option<serde_json::Value>,
            exec: bool,
            clone: i32,
            unshare: i32,
            fork_after: bool,
            userns_in_child: bool,
            become_root: bool,
            new_cgroupns: bool,
        }
        let root_map = Some(json!([{"containerID": 0, "hostID": 100000, "size": 65536}]));
        let no_root_map = Some(json!([{"containerID": 1, "hostID": 100000, "size": 65536}]));
        let cases = [
            Case {
                name: "fast path: pid and mount in the clone, net/ipc/uts unshared after Go",
                ns: json!([{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}]),
                uid_map: None,
                exec: false,
                clone: PID | NS,
                unshare: NET | IPC | UTS,
                fork_after: false,
                userns_in_child: false,
                become_root: false,
                new_cgroupns: true,
            },
            Case {
                name: "fast path with a user namespace mapping container root",
                ns: json!([{"type": "user"}, {"type": "pid"}, {"type": "mount"}, {"type": "network"}]),
                uid_map: root_map.clone(),
                exec: false,
                clone: USER | PID | NS,
                unshare: NET,
                fork_after: false,
                userns_in_child: false,
                become_root: true,
                new_cgroupns: false,
            },
            Case {
                name: "fast path with a user namespace without container id 0",
                ns: json!([{"type": "user"}, {"type": "mount"}]),
                uid_map: no_root_map.clone(),
                exec: false,
                clone: USER | NS,
                unshare: 0,
                fork_after: false,
                userns_in_child: false,
                become_root: false,
                new_cgroupns: false,
            },
            Case {
                name: "a join: everything unshared by the child, a new pid namespace forks",
                ns: json!([{"type": "pid"}, {"type": "mount"}, {"type": "cgroup"}, {"type": "network", "path": "/nonexistent/netns"}]),
                uid_map: None,
                exec: false,
                clone: 0,
                unshare: PID | NS,
                fork_after: true,
                userns_in_child: false,
                become_root: false,
                new_cgroupns: true,
            },
            Case {
                name: "a join without a new pid namespace: no second fork",
                ns: json!([{"type": "mount"}, {"type": "uts"}, {"type": "network", "path": "/proc/1/ns/net"}]),
                uid_map: None,
                exec: false,
                clone: 0,
                unshare: NS | UTS,
                fork_after: false,
                userns_in_child: false,
                become_root: false,
                new_cgroupns: false,
            },
            Case {
                name: "a new time namespace takes the slow path and forks",
                ns: json!([{"type": "mount"}, {"type": "time"}]),
                uid_map: None,
                exec: false,
                clone: 0,
                unshare: NS | TIME,
                fork_after: true,
                userns_in_child: false,
                become_root: false,
                new_cgroupns: false,
            },
            Case {
                name: "a joined pid namespace forks",
                ns: json!([{"type": "mount"}, {"type": "pid", "path": "/proc/1/ns/pid"}]),
                uid_map: None,
                exec: false,
                clone: 0,
                unshare: NS,
                fork_after: true,
                userns_in_child: false,
                become_root: false,
                new_cgroupns: false,
            },
            Case {
                name: "a joined time namespace forks",
                ns: json!([{"type": "mount"}, {"type": "time", "path": "/proc/1/ns/time"}]),
                uid_map: None,
                exec: false,
                clone: 0,
                unshare: NS,
                fork_after: true,
                userns_in_child: false,
                become_root: false,
                new_cgroupns: false,
            },
            Case {
                name: "slow path with a new user namespace: the child makes it",
                ns: json!([{"type": "user"}, {"type": "mount"}, {"type": "pid"}, {"type": "cgroup"}, {"type": "ipc", "path": "/proc/1/ns/ipc"}]),
                uid_map: root_map.clone(),
                exec: false,
                clone: 0,
                unshare: NS | PID,
                fork_after: true,
                userns_in_child: true,
                become_root: true,
                new_cgroupns: true,
            },
            Case {
                name: "slow path, new user namespace without container id 0",
                ns: json!([{"type": "user"}, {"type": "mount"}, {"type": "uts", "path": "/proc/1/ns/uts"}]),
                uid_map: no_root_map,
                exec: false,
                clone: 0,
                unshare: NS,
                fork_after: false,
                userns_in_child: true,
                become_root: false,
                new_cgroupns: false,
            },
            Case {
                name: "a joined user namespace: setuid(0) after joining",
                ns: json!([{"type": "user", "path": "/proc/1/ns/user"}, {"type": "mount"}]),
                uid_map: None,
                exec: false,
                clone: 0,
                unshare: NS,
                fork_after: false,
                userns_in_child: false,
                become_root: true,
                new_cgroupns: false,
            },
            Case {
                name: "exec: joins only, the pid namespace forks",
                ns: json!([
                    {"type": "user", "path": "/proc/9/ns/user"}, {"type": "pid", "path": "/proc/9/ns/pid"},
                    {"type": "mount", "path": "/proc/9/ns/mnt"}, {"type": "cgroup", "path": "/proc/9/ns/cgroup"},
                    {"type": "network", "path": "/proc/9/ns/net"}]),
                uid_map: None,
                exec: true,
                clone: 0,
                unshare: 0,
                fork_after: true,
                userns_in_child: false,
                become_root: true,
                new_cgroupns: false,
            },
            Case {
                name: "exec without pid or user namespaces",
                ns: json!([{"type": "mount", "path": "/proc/9/ns/mnt"}, {"type": "network", "path": "/proc/9/ns/net"}]),
                uid_map: None,
                exec: true,
                clone: 0,
                unshare: 0,
                fork_after: false,
                userns_in_child: false,
                become_root: false,
                new_cgroupns: false,
            },
        ];
        for c in cases {
            let p = decide(&config(c.ns, c.uid_map), c.exec).unwrap_or_else(|e| panic!("{}: {e:#}", c.name));
            let got = (
                p.clone_flags,
                p.unshare_flags,
                p.fork_after,
                p.userns_in_child,
                p.become_root,
                p.new_cgroupns,
            );
            let want = (
                c.clone,
                c.unshare,
                c.fork_after,
                c.userns_in_child,
                c.become_root,
                c.new_cgroupns,
            );
            assert_eq!(
                got, want,
                "{} (clone, unshare, fork_after, userns_in_child, become_root, new_cgroupns)",
                c.name
            );
            assert_eq!(p.exec, c.exec, "{}", c.name);
            assert_eq!(p.rootfs.is_none(), c.exec, "{}: a rootfs plan only for create", c.name);
            assert!(p.ns.joins.is_empty(), "{}: nothing opened before acquire", c.name);
            assert!(
                p.fifo.is_none() && p.trampoline.is_none() && p.seccomp.is_none(),
                "{}",
                c.name
            );
        }
    }

    /// The paths are opened by acquire, with the config's field in the error; exec's
    /// namespaces, opened through the init's /proc directory, must be the planned ones.
    #[test]
    fn acquire_opens_what_the_plan_joins() {
        let s = config(
            json!([{"type": "mount"}, {"type": "network", "path": "/nonexistent/netns"}]),
            None,
        );
        let i = input(&s, false);
        let e = match plan(&i, &host()).unwrap().acquire(&i, Resources::default()) {
            Ok(_) => panic!("a namespace path that does not exist was acquired"),
            Err(e) => e.to_string(),
        };
        assert!(
            e.starts_with("linux.namespaces: open net namespace /nonexistent/netns: "),
            "{e}"
        );
        let s = config(json!([{"type": "network", "path": "/proc/self/ns/net"}]), None);
        let i = input(&s, true);
        let ready = plan(&i, &host()).unwrap().acquire(&i, Resources::default()).unwrap();
        let flags: Vec<i32> = ready.ns.joins.iter().map(|j| j.flag).collect();
        assert_eq!(flags, [NET]);
        let e = match plan(&i, &host()).unwrap().acquire(
            &i,
            Resources {
                joins: Some(Vec::new()),
                ..Resources::default()
            },
        ) {
            Ok(_) => panic!("exec's opened namespaces differ from the plan's"),
            Err(e) => e.to_string(),
        };
        assert_eq!(e, "namespaces opened (0x0) are not the ones planned (0x40000000)");
    }

    /// What exec_init (init.rs) leaves out: an exec plan, every namespace a path as
    /// commands/exec.rs builds it, makes nothing and has no rootfs or hooks.
    #[test]
    fn exec_plans_only_join() {
        let mut s = config(
            json!([{"type": "user", "path": "/u"}, {"type": "pid", "path": "/p"}, {"type": "mount", "path": "/m"}, {"type": "network", "path": "/n"}, {"type": "cgroup", "path": "/c"}]),
            None,
        );
        s.set_hooks(Some(
            serde_json::from_value(json!({"createContainer": [{"path": "/bin/true"}]})).unwrap(),
        ));
        let p = decide(&s, true).unwrap();
        assert_eq!((p.clone_flags, p.unshare_flags), (0, 0));
        assert!(!p.userns_in_child && !p.new_cgroupns && p.fork_after && p.become_root);
        assert!(p.rootfs.is_none() && p.hooks.is_none() && p.net_devices.is_empty());
    }

    #[test]
    fn joins_are_planned_in_setns_order() {
        let p = decide(
            &config(
                json!([{"type": "mount", "path": "/m"}, {"type": "network", "path": "/n"}, {"type": "user", "path": "/u"}, {"type": "pid"}]),
                None,
            ),
            false,
        )
        .unwrap();
        let order: Vec<_> =
            p.ns.join
                .iter()
                .map(|j| (j.typ, j.path.to_string_lossy().into_owned()))
                .collect();
        assert_eq!(
            order,
            [
                (LinuxNamespaceType::User, "/u".to_string()),
                (LinuxNamespaceType::Network, "/n".to_string()),
                (LinuxNamespaceType::Mount, "/m".to_string()),
            ]
        );
        assert_eq!(p.ns.new, PID);
        assert_eq!(p.ns.joined(), USER | NET | NS);
    }

    /// The container has a user namespace when it asks for one (new or joined) or when berth
    /// already runs in one; the rootfs plan follows, and in_place without a mount namespace.
    #[test]
    fn userns_follows_the_config_and_the_host() {
        let s = config(json!([{"type": "pid"}, {"type": "mount"}]), None);
        let p = decide(&s, false).unwrap();
        assert!(!p.userns);
        assert!(!p.rootfs.as_ref().unwrap().userns);
        let p = plan(
            &input(&s, false),
            &HostFacts {
                in_userns: true,
                root: false,
                ..host()
            },
        )
        .unwrap();
        assert!(p.userns && p.rootfs.as_ref().unwrap().userns);
        assert!(!p.rootfs.as_ref().unwrap().host_sources);
        assert!(
            !p.become_root,
            "setuid(0) only for a user namespace of the container's own"
        );
        let p = decide(&config(json!([{"type": "pid"}]), None), false).unwrap();
        assert!(
            p.rootfs.unwrap().in_place,
            "no mount namespace: the rootfs is attached in place"
        );
    }

    #[test]
    fn a_new_user_namespace_needs_a_new_mount_namespace() {
        let want = "linux.namespaces: a new user namespace needs a new mount namespace: it cannot mount in the runtime's or a joined one";
        let map = Some(json!([{"containerID": 0, "hostID": 100000, "size": 1}]));
        assert_eq!(
            err(&config(json!([{"type": "user"}, {"type": "pid"}]), map.clone()), false),
            want
        );
        assert_eq!(
            err(
                &config(
                    json!([{"type": "user"}, {"type": "mount", "path": "/proc/1/ns/mnt"}]),
                    map.clone()
                ),
                false
            ),
            want
        );
        // Joined, the user namespace brings its own mappings and mounts: allowed.
        decide(
            &config(
                json!([{"type": "user", "path": "/proc/1/ns/user"}, {"type": "mount", "path": "/proc/1/ns/mnt"}]),
                None,
            ),
            false,
        )
        .unwrap();
    }

    #[test]
    fn invalid_configs_name_what_is_wrong() {
        let base = || serde_json::to_value(config(json!([{"type": "mount"}]), None)).unwrap();
        type Edit = fn(&mut serde_json::Value);
        let cases: [(Edit, &str); 8] = [
            (
                |c| c["linux"] = serde_json::Value::Null,
                "config.json: linux must be set",
            ),
            (
                |c| c["process"] = serde_json::Value::Null,
                "config.json: process must be set",
            ),
            (|c| c["process"]["args"] = json!([]), "process.args must not be empty"),
            (
                |c| c["process"]["args"] = json!(["a\0b"]),
                r#"process.args: "a\0b" contains a NUL byte"#,
            ),
            (
                |c| c["process"]["env"] = json!(["A=1", "B=\0"]),
                r#"process.env: "B=\0" contains a NUL byte"#,
            ),
            (
                |c| c["process"]["cwd"] = json!("/x\0y"),
                r#""/x\0y" contains a NUL byte"#,
            ),
            (
                |c| {
                    c["mounts"] = json!([{"destination": "/d", "type": "bind", "source": "/tmp", "options": ["bind", "tmpcopyup"]}])
                },
                "mounts: /d: tmpcopyup is only valid for tmpfs",
            ),
            (
                |c| c["process"]["apparmorProfile"] = json!("p"),
                r#"process.apparmorProfile "p": apparmor is not enabled on this host"#,
            ),
        ];
        for (edit, want) in cases {
            let mut c = base();
            edit(&mut c);
            assert_eq!(err(&spec(c), false), want);
        }
        // A missing args list is as empty as an empty one.
        let mut c = base();
        c["process"].as_object_mut().unwrap().remove("args");
        assert_eq!(err(&spec(c), false), "process.args must not be empty");
    }

    /// Host facts decide: the LSM the host enforces, the capabilities this kernel has.
    #[test]
    fn host_facts_steer_lsm_and_capabilities() {
        let mut c = serde_json::to_value(config(json!([{"type": "mount"}]), None)).unwrap();
        c["process"]["apparmorProfile"] = json!("prof");
        c["process"]["capabilities"] = json!({"bounding": ["CAP_CHOWN", "CAP_BPF"], "effective": ["CAP_CHOWN"]});
        let s = spec(c);
        let h = HostFacts {
            cap_last_cap: 38,
            lsm: lsm::HostLsm {
                apparmor: true,
                selinux: false,
            },
            ..host()
        };
        // CAP_CHOWN is capability 0, CAP_BPF 39.
        const CHOWN: u64 = 1;
        let p = plan(&input(&s, false), &h).unwrap();
        assert_eq!(p.lsm.apparmor.as_deref(), Some("exec prof"));
        assert_eq!(p.cap_last_cap, 38);
        assert_eq!(p.caps.bounding, CHOWN);
        assert_eq!(p.caps.effective, CHOWN);
        assert_eq!(p.caps_ignored, ["CAP_BPF"]);
        let p = plan(&input(&s, false), &HostFacts { cap_last_cap: 40, ..h }).unwrap();
        assert_eq!(p.caps.bounding, CHOWN | (1 << 39));
        assert!(p.caps_ignored.is_empty());
    }

    #[test]
    fn process_fields_are_converted() {
        let mut c = serde_json::to_value(config(json!([{"type": "mount"}]), None)).unwrap();
        c["process"]["env"] = json!(["PATH=/a", "X=1", "PATH=/b"]);
        c["process"]["user"] = json!({"uid": 5, "gid": 6, "additionalGids": [7], "umask": 63});
        let p = decide(&spec(c), false).unwrap();
        assert_eq!(p.env, [c"X=1", c"PATH=/b"]);
        assert_eq!(p.path_env, "/b");
        assert_eq!((p.uid, p.gid, p.groups.as_slice(), p.umask), (5, 6, &[7][..], 0o77));
        assert_eq!(p.session_keyring.as_deref(), Some(c"_ses.c1"));
        let p = decide(&config(json!([{"type": "mount"}]), None), false).unwrap();
        assert_eq!(p.path_env, DEFAULT_PATH);
        assert_eq!(p.umask, 0o022);
    }

    #[test]
    fn env_keeps_the_last_value_of_a_key_where_it_stood() {
        let env: Vec<String> = ["A=1", "PATH=/bin", "B=2", "A=3", "HOME=", "C"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(dedup_env(&env), ["PATH=/bin", "B=2", "A=3", "C"]);
        let home: Vec<String> = vec!["HOME=/root".into(), "HOME=".into()];
        assert!(dedup_env(&home).is_empty());
        let home: Vec<String> = vec!["HOME=".into(), "HOME=/x".into()];
        assert_eq!(dedup_env(&home), ["HOME=/x"]);
    }
}
