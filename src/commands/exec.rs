//! `exec`: a new process in a running (or created) container. It goes through the same plan and
//! clone as `create`, with every namespace of the container joined through its init and its
//! cgroups joined before the clone is released; no rootfs work. The namespaces and the seccomp
//! profile are the ones create recorded (state.rs `Inherited`), not config.json's as it is now.

use super::Global;
use crate::cli::Exec;
use crate::container::bundle;
use crate::container::state::{Container, Op};
use crate::namespaces;
use crate::process::sync::Msg;
use crate::process::{self, HostFacts, Mode, PlanInput, Resources};
use anyhow::{anyhow, bail, Result};
use oci_spec::runtime::{Capabilities, Capability, Linux, LinuxNamespace, LinuxNamespaceType, Process, Spec};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// `-p process.json`'s bytes as exec reads them (the fuzz targets' seam).
pub fn parse_process(data: &[u8]) -> Result<Process> {
    match serde_json::from_slice(data) {
        Ok(p) => Ok(p),
        Err(e) => match crate::process::attrs::mend(data, false)? {
            Some(v) => Ok(serde_json::from_value(v)?),
            None => Err(e.into()),
        },
    }
}

/// The process to run, validated as create validates config.json's: `-p process.json`, or
/// config.json's process with the command line's overrides (config.json is read only then, as
/// in runc).
fn load_process(e: &Exec, bundle_dir: &Path) -> Result<Process> {
    let p = match &e.process {
        Some(path) => {
            let data = std::fs::read(path).map_err(|err| anyhow!("read process {path}: {err}"))?;
            let p = parse_process(&data).map_err(|err| anyhow!("parse process {path}: {err}"))?;
            bundle::refuse_nul(&data, path)?;
            p
        }
        None => process_for(e, &read_config(bundle_dir)?)?,
    };
    bundle::validate_process(&p, process::lsm::detect())?;
    Ok(p)
}

fn read_config(bundle_dir: &Path) -> Result<Spec> {
    let path = bundle_dir.join("config.json");
    let data = std::fs::read(&path).map_err(|err| anyhow!("read {}: {err}", path.display()))?;
    bundle::parse(&data)
}

/// The container's process with the CLI's overrides (runc's rules).
pub fn process_for(e: &Exec, spec: &Spec) -> Result<Process> {
    if e.args.is_empty() {
        bail!("exec args cannot be empty");
    }
    let mut p = spec.process().clone().unwrap_or_default();
    p.set_args(Some(e.args.clone()));
    p.set_terminal(Some(e.tty));
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(e.env.iter().cloned());
    p.set_env(Some(env));
    if let Some(cwd) = &e.cwd {
        p.set_cwd(cwd.into());
    }
    if let Some(u) = &e.user {
        let (uid, gid) = match u.split_once(':') {
            Some((a, b)) => (a, Some(b)),
            None => (u.as_str(), None),
        };
        let mut user = p.user().clone();
        user.set_uid(
            uid.parse()
                .map_err(|_| anyhow!("invalid user {u:?}: expected uid[:gid]"))?,
        );
        if let Some(g) = gid {
            user.set_gid(
                g.parse()
                    .map_err(|_| anyhow!("invalid user {u:?}: expected uid[:gid]"))?,
            );
        }
        p.set_user(user);
    }
    if !e.additional_gids.is_empty() {
        let mut user = p.user().clone();
        user.set_additional_gids(Some(e.additional_gids.clone()));
        p.set_user(user);
    }
    if e.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if !e.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        let mut unknown = Vec::new();
        for name in &e.cap {
            let Ok(c) = serde_json::from_value::<Capability>(serde_json::Value::String(name.clone())) else {
                // runc passes --cap on to its init, which warns about an unknown name and
                // leaves it out.
                unknown.push(name.clone());
                continue;
            };
            // runc adds --cap to every set but inheritable (CVE-2022-29162).
            let add = |s: &Option<Capabilities>| {
                let mut s = s.clone().unwrap_or_default();
                s.insert(c);
                Some(s)
            };
            let (b, ef, p, a) = (
                add(caps.bounding()),
                add(caps.effective()),
                add(caps.permitted()),
                add(caps.ambient()),
            );
            caps.set_bounding(b).set_effective(ef).set_permitted(p).set_ambient(a);
        }
        process::caps::warn_ignored(unknown);
        p.set_capabilities(Some(caps));
    }
    // Applied (or refused when the host lacks the LSM) by the same code as create's labels.
    if let Some(profile) = &e.apparmor {
        p.set_apparmor_profile(Some(profile.clone()));
    }
    if let Some(label) = &e.process_label {
        p.set_selinux_label(Some(label.clone()));
    }
    Ok(p)
}

/// The namespace types and the seccomp profile the container got at create. A container made
/// by an older berth recorded neither: config.json as it is now is all there is.
/// What the exec'd process inherits from the container, as create applied it: namespace types,
/// the seccomp profile, and the container-wide personality and memory policy (in a `Linux`).
fn inherited(c: &Container) -> Result<(Vec<oci_spec::runtime::LinuxNamespaceType>, Linux)> {
    let mut linux = Linux::default();
    let list = match &c.state.inherit {
        Some(i) => {
            linux
                .set_seccomp(c.inherited_seccomp()?)
                .set_personality(i.personality.clone())
                .set_memory_policy(i.memory_policy.clone());
            i.namespaces.clone()
        }
        None => {
            let config = read_config(Path::new(&c.state.bundle))?
                .linux()
                .clone()
                .unwrap_or_default();
            linux
                .set_seccomp(config.seccomp().clone())
                .set_personality(config.personality().clone())
                .set_memory_policy(config.memory_policy().clone());
            config.namespaces().clone().unwrap_or_default()
        }
    };
    Ok((list.iter().map(|n| n.typ()).collect(), linux))
}

/// A container without a mount namespace of its own (rootfs/inplace.rs) has the host's (or a
/// joined) one, whose root is not the container's: the process is chrooted into its init's
/// root, opened here through the verified /proc directory. When this berth runs in another
/// mount namespace than the init (an inherited one is otherwise not joined), it joins the
/// init's too.
fn in_place_root(proc_dir: BorrowedFd, pid: i32, types: &mut Vec<LinuxNamespaceType>) -> Result<OwnedFd> {
    let mnt = LinuxNamespaceType::Mount;
    if !types.contains(&mnt) {
        let theirs = crate::sys::openat(proc_dir, "ns/mnt", libc::O_RDONLY, 0)
            .map_err(|e| anyhow!("open /proc/{pid}/ns/mnt: {e}"))?;
        let ours = crate::sys::open("/proc/self/ns/mnt", libc::O_RDONLY, 0)
            .map_err(|e| anyhow!("open /proc/self/ns/mnt: {e}"))?;
        let id = crate::rootfs::inplace::ns_id;
        if id(theirs.as_fd())? != id(ours.as_fd())? {
            types.push(mnt);
        }
    }
    crate::sys::openat(proc_dir, "root", libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(|e| anyhow!("open the root of the container's init (/proc/{pid}/root): {e}"))
}

pub fn run(g: &Global, e: &Exec) -> Result<i32> {
    let c = Container::load(&g.root, &e.id, false)?;
    let ignore_paused = e.ignore_paused;
    c.status().require(Op::Exec { ignore_paused }, &e.id)?;
    let bundle_dir = Path::new(&c.state.bundle);
    let process = load_process(e, bundle_dir)?;
    let terminal = process.terminal().unwrap_or(false);
    if terminal && e.console_socket.is_none() && e.detach {
        bail!("cannot allocate tty if berth will detach without setting console socket");
    }
    if !terminal && e.console_socket.is_some() {
        bail!("cannot use console socket if berth will not allocate a tty");
    }
    let pidfd_socket = process::console::connect_pidfd_socket(e.pidfd_socket.as_deref())?;
    let (mut types, mut linux) = inherited(&c)?;
    // Every namespace of the container, new or joined at create, through the init we checked:
    // its /proc directory is verified after opening, and the namespaces are opened through it.
    let pid = c.state.pid;
    let proc_dir = c
        .init_proc_dir()
        .ok_or_else(|| anyhow!("cannot exec in a stopped container"))?;
    let exec_root = match &c.state.in_place {
        Some(_) => Some(in_place_root(proc_dir.as_fd(), pid, &mut types)?),
        None => None,
    };
    let joins = namespaces::join_process(proc_dir.as_fd(), pid, &types)?;
    linux.set_namespaces(Some(
        types
            .iter()
            .map(|t| {
                let mut n = LinuxNamespace::default();
                let path = format!("/proc/{pid}/ns/{}", namespaces::name(namespaces::flag(*t)));
                n.set_typ(*t).set_path(Some(path.into()));
                n
            })
            .collect(),
    ));
    let mut spec = Spec::default();
    spec.set_process(Some(process))
        .set_linux(Some(linux))
        .set_hooks(None)
        .set_hostname(None)
        .set_annotations(Some(c.state.annotations.clone().into_iter().collect()));
    let cgroup = if e.cgroup.is_empty() {
        c.state.cgroup.clone()
    } else {
        c.state.cgroup.with_sub_paths(&e.cgroup)?
    };
    let set = super::create::forward_set();
    let old = crate::sys::block_signals(&set).map_err(|err| anyhow!("block signals: {err}"))?;
    let input = PlanInput {
        spec: &spec,
        bundle: bundle_dir,
        rootfs: Path::new(&c.state.rootfs),
        mode: Mode::Run,
        no_pivot: false,
        preserve_fds: e.preserve_fds,
        id: &e.id,
        no_new_keyring: false,
        lock_fd: None,
        exec: true,
    };
    let plan = process::plan(&input, &HostFacts::read())?.acquire(
        &input,
        Resources {
            joins: Some(joins),
            state_root: Some(&g.root),
            exec_root,
            ..Resources::default()
        },
    )?;
    let cg = (!cgroup.paths.is_empty()).then_some(&cgroup);
    let mut launched = process::launch(&plan, cg, &mut |_| Ok(()))?;
    if let Some(p) = &e.pid_file {
        process::write_pid_file(p, launched.pid)?;
    }
    process::console::send_pidfd(pidfd_socket, launched.pid, "setns")?;
    let master = process::console::hand_over(launched.console.take(), e.console_socket.as_deref())?;
    launched.sync.send(&Msg::Start)?; // sync 21
                                      // EOF: the program runs; or sync 22 or 23 from the trampoline.
    launched.sync.expect_eof()?;
    launched.guard.disarm();
    if e.detach {
        let _ = nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(&old), None);
        return Ok(0);
    }
    match master {
        Some(m) => process::console::relay(launched.pid, &set, m),
        None => Ok(super::create::wait_forward(launched.pid, &set)),
    }
}
