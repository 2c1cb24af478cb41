//! The process model: the parent builds a `Plan` (everything validated and converted), clones
//! once, and drives the child through the protocol in sync.rs. The child (init.rs) only
//! executes the plan and never returns into the parent's code.

pub mod attrs;
pub mod caps;
pub mod console;
pub mod exe_guard;
pub mod init;
pub mod lsm;
pub mod rlimits;
pub mod spawn;
pub mod sync;

use crate::container::state::CgroupState;
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
    pub new_cgroupns: bool,
    pub become_root: bool,
    /// The container has a user namespace (new or joined).
    pub userns: bool,
    /// linux.netDevices, resolved on the host (empty for exec).
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
    /// The host's cap_last_cap, read here: never by the init inside the container.
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
    pub fifo: Option<OwnedFd>,
    pub oom_score_adj: Option<i32>,
    /// `_ses.<id>` unless --no-new-keyring.
    pub session_keyring: Option<CString>,
    /// The state-dir lock fd, closed first thing in the child.
    pub lock_fd: Option<std::os::fd::RawFd>,
    /// The BPF program, compiled here so libseccomp never runs in the child.
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

pub struct PlanInput<'a> {
    pub spec: &'a Spec,
    pub bundle: &'a std::path::Path,
    pub rootfs: &'a std::path::Path,
    pub mode: Mode,
    pub no_pivot: bool,
    pub preserve_fds: u32,
    pub fifo: Option<OwnedFd>,
    pub cgroup_paths: &'a [std::path::PathBuf],
    pub id: &'a str,
    pub no_new_keyring: bool,
    pub lock_fd: Option<std::os::fd::RawFd>,
    /// Join a running container (every namespace by path) instead of making one.
    pub exec: bool,
    /// The state root, home of the compiled-seccomp cache (None: no cache).
    pub state_root: Option<&'a std::path::Path>,
}

impl Plan {
    pub fn build(i: PlanInput) -> Result<Plan> {
        let linux = i
            .spec
            .linux()
            .as_ref()
            .ok_or_else(|| anyhow!("config.json: linux must be set"))?;
        let ns = namespaces::plan(linux)?;
        Self::build_with(i, ns)
    }

    /// `build` with the namespaces already opened (exec: the init's, see namespaces::join_process).
    pub fn build_with(i: PlanInput, ns: NsPlan) -> Result<Plan> {
        let net_devices = match (i.exec, i.spec.linux()) {
            (false, Some(linux)) => namespaces::netdev::plan(linux, &ns)?,
            _ => Vec::new(),
        };
        let spec = i.spec;
        let linux = spec
            .linux()
            .as_ref()
            .ok_or_else(|| anyhow!("config.json: linux must be set"))?;
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
        let fast = ns.joins.is_empty() && ns.new & CLONE_NEWTIME == 0;
        let (clone_flags, unshare_flags) = if fast {
            // The init is pid 1 and in its own mount (and user) namespace from the clone; the
            // network, IPC and UTS namespaces it unshares itself after Go, so their creation
            // (a new network namespace is the costliest part of a clone) runs while the
            // parent makes and joins the cgroups. Owner and result are the same either way.
            let own = libc::CLONE_NEWNET | libc::CLONE_NEWIPC | libc::CLONE_NEWUTS;
            (ns.new & !libc::CLONE_NEWCGROUP & !own, ns.new & own)
        } else {
            (0, ns.new & !(libc::CLONE_NEWUSER | libc::CLONE_NEWCGROUP))
        };
        let joins_pid_or_time = ns
            .joins
            .iter()
            .any(|j| j.flag == libc::CLONE_NEWPID || j.flag == CLONE_NEWTIME);
        let fork_after = !fast && (unshare_flags & (libc::CLONE_NEWPID | CLONE_NEWTIME) != 0 || joins_pid_or_time);
        // Either the container gets a user namespace or berth already runs in one (rootless
        // engines): both forbid mknod and some filesystem mounts.
        let userns = has(LinuxNamespaceType::User) || namespaces::running_in_userns();
        // A joined user namespace too: our host uid is unmapped there, and files we create on its
        // mounts would be refused (EOVERFLOW); runc's init does setuid(0) after joining as well.
        let become_root = (ns.new & libc::CLONE_NEWUSER != 0
            && ns.uid_map.lines().any(|l| l.split_whitespace().next() == Some("0")))
            || ns.joins.iter().any(|j| j.flag == libc::CLONE_NEWUSER);
        let new_cgroupns = ns.new & libc::CLONE_NEWCGROUP != 0;
        let lsm = lsm::plan(
            process.apparmor_profile(),
            process.selinux_label(),
            linux.mount_label(),
            lsm::detect(),
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
                i.cgroup_paths,
            )?)
        };
        if let Some(r) = rootfs.as_mut() {
            // runtime-spec: an omitted mount namespace is the runtime's, a path is joined.
            r.in_place = ns.new & libc::CLONE_NEWNS == 0;
            lsm::label_mounts(&mut r.mounts, linux.mount_label());
            if let (true, Some(dir)) = (userns, i.state_root) {
                crate::rootfs::idmap::detach_private(&mut r.mounts, dir, r.root_propagation)?;
            }
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
        let (seccomp, seccomp_listener) = crate::seccomp::for_container(spec, i.id, i.bundle, i.state_root)?;
        let cap_last_cap = caps::last_cap();
        let (caps, ignored) = caps::sets(process, cap_last_cap);
        caps::warn_ignored(ignored);
        let mut sysctls: Vec<(String, String)> = linux.sysctl().clone().unwrap_or_default().into_iter().collect();
        sysctls.sort();
        Ok(Plan {
            mode: i.mode,
            clone_flags,
            unshare_flags,
            userns_in_child: !fast && ns.new & libc::CLONE_NEWUSER != 0,
            net_devices,
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
            cap_last_cap,
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
            fifo: i.fifo,
            oom_score_adj: process.oom_score_adj(),
            lock_fd: i.lock_fd,
            seccomp,
            seccomp_listener,
            self_exe: exe_guard::self_id(),
            trampoline: exe_guard::trampoline()?,
            lsm,
            session_keyring: if i.no_new_keyring {
                None
            } else {
                Some(cstr(&format!("_ses.{}", i.id))?)
            },
        })
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

/// Move the container's init into its cgroups and tell it (`Joined`; sync.rs). The init runs
/// meanwhile; if the write fails because it already died of its own error, that error is the
/// one to report.
fn join_cgroups(sync: &Sync, cgroup: Option<&CgroupState>, pid: i32) -> Result<()> {
    cgroup
        .map_or(Ok(()), |cg| cg.join(pid))
        .and_then(|()| sync.send(&Msg::Joined))
        .map_err(|e| sync.pending_error().map_or(e, |m| anyhow!(m)))
}

/// Clone the init (`spawn::clone`'s result), straight into its cgroup on cgroup v2, whose
/// directory create has made by then; true when it went there, so no join is needed.
/// `exec` with execCPUAffinity.initial: the child starts on those CPUs (this thread's, which it
/// inherits) until it is in the container's cgroups.
fn clone_init(plan: &Plan, cgroup: Option<&CgroupState>) -> Result<(Option<i32>, bool)> {
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

fn clone_into(plan: &Plan, cgroup: Option<&CgroupState>) -> Result<(Option<i32>, bool)> {
    let dir = cgroup
        .filter(|cg| cg.pure_v2())
        .and_then(|cg| crate::sys::open(&cg.paths[0], libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC, 0).ok());
    if let Some(dir) = dir {
        match spawn::clone_into_cgroup(plan.clone_flags, std::os::fd::AsFd::as_fd(&dir)) {
            Ok(child) => return Ok((child, true)),
            Err(e) => crate::log::debug(&format!("clone3 into the cgroup: {e}; clone, then join")),
        }
    }
    Ok((spawn::clone(plan.clone_flags)?, false))
}

/// What `launch` asks of its caller while the init sets up.
pub enum Event {
    /// Right after Go: make the cgroups the init then joins (create), so that kernel work
    /// overlaps the init's.
    BeforeJoin,
    /// The init is about to attach a rootfs clone with this mount id in a namespace the
    /// container shares (rootfs/inplace.rs): record it before the init goes on.
    RootMount(u64),
}

/// Clone the container's init and drive it to Ready (protocol steps 1-5 in sync.rs).
pub fn launch(plan: &Plan, cgroup: Option<&CgroupState>, on: &mut dyn FnMut(Event) -> Result<()>) -> Result<Launched> {
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
    // The child waits for Go: its maps exist before it acts. Its cgroups are joined after Go,
    // while it sets up (join_cgroups).
    if plan.clone_flags & libc::CLONE_NEWUSER != 0 {
        namespaces::write_maps(pid, &plan.ns)?;
    }
    if let Some(v) = plan.oom_score_adj {
        write_oom(pid, v)?;
    }
    ours.send(&Msg::Go)?;
    on(Event::BeforeJoin)?;
    if in_cgroup {
        ours.send(&Msg::Joined)?;
    } else if !plan.fork_after {
        join_cgroups(&ours, cgroup, pid)?;
    }
    let mut init_pid = pid;
    let mut console = None;
    let mut net_devices = None;
    loop {
        let (msg, fd) = match ours.recv_fd()? {
            Some((m, fd)) => (Some(m), fd),
            None => (None, None),
        };
        match msg {
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
                ours.send(&Msg::HooksDone(init_pid))?;
            }
            Some(Msg::Console) => {
                console = Some(fd.ok_or_else(|| anyhow!("sync: console message without the pty fd"))?);
            }
            Some(Msg::SeccompFd) => {
                let (Some(fd), Some(l)) = (fd, &plan.seccomp_listener) else {
                    bail!("sync: seccomp listener fd without a listener configured");
                };
                crate::seccomp::notify::send_to_agent(l, init_pid, std::os::fd::AsFd::as_fd(&fd))?;
            }
            Some(Msg::NetDevices) => {
                net_devices = Some(namespaces::netdev::move_in(&plan.net_devices, init_pid)?);
                ours.send(&Msg::NetDevicesDone)?;
            }
            Some(Msg::MountSource(i)) => {
                let r = plan
                    .rootfs
                    .as_ref()
                    .ok_or_else(|| anyhow!("sync: mount source requested without a rootfs"))?;
                let i = usize::try_from(i).map_err(|_| anyhow!("sync: mount source {i} requested"))?;
                let tree = crate::rootfs::idmap::host_source(r, i, init_pid)?;
                ours.send_fd(&Msg::MountSourceFd, std::os::fd::AsFd::as_fd(&tree))?;
            }
            Some(Msg::MapRequest) => {
                namespaces::write_maps(pid, &plan.ns)?;
                ours.send(&Msg::MapDone)?;
            }
            Some(Msg::Pid(p)) => {
                init_pid = p;
                guard.push(p);
                // The intermediate exits right after sending the pid.
                let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
                ours.send(&Msg::PidSeen)?;
                // The real init, not the intermediate: it was forked outside the cgroups (unless
                // the intermediate was cloned into them, and the init with it).
                if !in_cgroup {
                    join_cgroups(&ours, cgroup, p)?;
                }
            }
            Some(Msg::RootMount(id)) => {
                let id = u64::try_from(id).map_err(|_| anyhow!("sync: bad mount id {id}"))?;
                on(Event::RootMount(id))?;
                ours.send(&Msg::RootMountSaved)?;
            }
            Some(Msg::Ready) => break,
            Some(Msg::Error(_, m)) => bail!("{m}"),
            Some(m) => bail!("sync: unexpected {m:?} during setup"),
            None => bail!("container init exited during setup"),
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
    use super::dedup_env;

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
