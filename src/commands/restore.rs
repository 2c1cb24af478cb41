//! `restore`: recreate a container from a checkpoint (runc's restore.go and libcontainer's
//! Restore). CRIU makes the namespaces, mounts and processes; berth makes the state, the
//! cgroups (CRIU's own process joins them first, so the restored tasks land there: cg_root),
//! a bind mount of the rootfs for CRIU's root, runs the prestart and createRuntime hooks when
//! CRIU has the namespaces ("setup-namespaces"), hands a terminal to the console socket, and
//! records the restored init. The container is `running` afterwards.

use super::checkpoint::{external_mounts, external_netns, DESCRIPTORS, NETNS_KEY};
use super::Global;
use crate::cgroups::Manager;
use crate::cli::Restore;
use crate::container::bundle;
use crate::container::state::{Container, Status};
use crate::criu::{self, CgMode, Inherit, Opts, Req, ReqType};
use anyhow::{anyhow, bail, Context, Result};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// What a failed restore made, removed unless disarmed.
struct Cleanup {
    dir: Option<PathBuf>,
    cgroup: Option<Manager>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(cg) = &self.cgroup {
            cg.kill_all_and_wait();
            let _ = cg.destroy();
        }
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// The rootfs bind-mounted at `<state dir>/criu-root`: CRIU wants its root to be a mount
/// point whose parent is not overmounted (runc does the same). Unmounted on drop.
struct CriuRoot(PathBuf);

impl CriuRoot {
    fn mount(dir: &Path, rootfs: &Path) -> Result<CriuRoot> {
        use nix::mount::{mount, MsFlags};
        let p = dir.join("criu-root");
        std::fs::create_dir(&p).with_context(|| format!("mkdir {}", p.display()))?;
        let r = CriuRoot(p);
        mount(
            Some(rootfs),
            &r.0,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| anyhow!("bind {} to {}: {e}", rootfs.display(), r.0.display()))?;
        Ok(r)
    }
}

impl Drop for CriuRoot {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.0);
    }
}

pub fn run(g: &Global, a: &Restore) -> Result<i32> {
    crate::container::state::validate_id(&a.id)?;
    let use_cgroups = g.use_cgroups()?;
    if use_cgroups && g.systemd() {
        // The systemd driver's scope would have to be started with CRIU's pid in it.
        bail!("restore with the systemd cgroup driver is not supported yet; use the default cgroupfs driver");
    }
    let b = bundle::load(&a.bundle)?;
    let flags = &a.criu;
    let mode = match flags.manage_cgroups_mode.as_str() {
        "" => None,
        m => Some(CgMode::parse(m)?),
    };
    let empty = super::checkpoint::empty_ns(&flags.empty_ns)?;
    let terminal = b.spec.process().as_ref().and_then(|p| p.terminal()).unwrap_or(false);
    super::create::check_terminal(terminal, a.console_socket.is_some(), !a.detach)?;
    let images = super::checkpoint::image_path(flags)?;
    let img = crate::sys::open(&images, libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .map_err(|e| anyhow!("open image path {}: {e}", images.display()))?;
    let descriptors = images.join(DESCRIPTORS);
    let fds: Vec<String> = match std::fs::read(&descriptors) {
        Ok(d) => serde_json::from_slice(&d).map_err(|e| anyhow!("corrupt {}: {e}", descriptors.display()))?,
        Err(e) => bail!("read {}: {e} (not a checkpoint's image path?)", descriptors.display()),
    };
    let linux = b
        .spec
        .linux()
        .as_ref()
        .ok_or_else(|| anyhow!("config.json: linux must be set"))?;

    // A container the checkpoint stopped (runc's checkpoint removes it; berth leaves it
    // `stopped`) gives its id to the restored one.
    match Container::load(&g.root, &a.id, true) {
        Ok(old) if old.status() == Status::Stopped => super::delete::destroy(&old)?,
        Ok(_) => bail!("container with given ID already exists"),
        Err(e) if e.is::<crate::container::state::NotExist>() => {}
        Err(e) => return Err(e),
    }
    let set = super::create::forward_set();
    let old_mask = if a.detach {
        None
    } else {
        // Blocked before CRIU runs: the restored init is our child (rst_sibling), and its
        // SIGCHLD must not be lost before the wait.
        Some(crate::sys::block_signals(&set).map_err(|e| anyhow!("block signals: {e}"))?)
    };

    let mut c = Container::create(&g.root, &a.id)?;
    let mut cleanup = Cleanup {
        dir: Some(c.dir.clone()),
        cgroup: None,
    };
    c.record_bundle(&b, linux)?;
    if use_cgroups {
        let cp = linux.cgroups_path().as_ref().map(|p| p.to_string_lossy().into_owned());
        let mut cg = Manager::plan(cp.as_deref(), &a.id, g.rootless())?;
        cg.check_unused()?;
        c.state.cgroup = cg.clone();
        cleanup.cgroup = Some(cg.clone());
        // Recorded before the directories exist: a restore killed from here on is cleaned by
        // `delete --force`.
        c.save()?;
        cg.create()?;
        c.state.cgroup = cg.clone();
        let r = linux.resources().clone().unwrap_or_default();
        let rules = crate::cgroups::devices::rules(&b.spec)?;
        cleanup.cgroup.insert(cg).apply(&r, Some(&rules), false)?;
    }
    c.save()?;

    let root = CriuRoot::mount(&c.dir, &b.rootfs)?;
    let img = Inherit::new(img.as_fd())?;
    let work = (!flags.work_path.is_empty()).then(|| PathBuf::from(&flags.work_path));
    let wd = work.as_deref().map(super::checkpoint::open_dir).transpose()?;
    let log_file = "restore.log";
    let mut o = Opts {
        images_dir_fd: img.num(),
        evasive_devices: true,
        log_level: 4,
        log_file: log_file.into(),
        rst_sibling: true,
        root: Some(root.0.to_string_lossy().into_owned()),
        manage_cgroups: mode != Some(CgMode::Ignore),
        manage_cgroups_mode: mode,
        notify_scripts: true,
        shell_job: flags.shell_job,
        ext_unix_sk: flags.ext_unix_sk,
        tcp_established: flags.tcp_established,
        file_locks: flags.file_locks,
        empty_ns: empty,
        orphan_pts_master: true,
        auto_dedup: flags.auto_dedup,
        lazy_pages: flags.lazy_pages,
        work_dir_fd: wd.as_ref().map(Inherit::num),
        ..Opts::default()
    };
    let mut keep = vec![img];
    keep.extend(wd);
    if let Some((p, _)) = external_netns(&b.spec)? {
        // The netns the checkpoint left out is joined again (runc: the path configured now).
        let ns = crate::sys::open(&p, libc::O_RDONLY, 0).map_err(|e| anyhow!("open {}: {e}", p.display()))?;
        let ns = Inherit::new(ns.as_fd())?;
        o.inherit_fd.push((NETNS_KEY.into(), ns.num()));
        keep.push(ns);
    }
    // Restore: the identifier the dump stored (the mountpoint) -> the host source.
    o.ext_mnt = external_mounts(&b.spec, &b.dir, cleanup.cgroup.as_ref())?;
    if linux.masked_paths().as_ref().is_some_and(|m| !m.is_empty()) {
        o.ext_mnt.push(("/dev/null".into(), "/dev/null".into()));
    }
    // The init's pipes (runc: descriptors.json) become ours: CRIU runs with our stdio.
    for (i, s) in fds.iter().enumerate() {
        if s.contains("pipe:") {
            o.inherit_fd.push((s.clone(), i as i32));
        }
    }
    let req = Req {
        typ: ReqType::Restore,
        opts: Some(o),
        notify_success: false,
    };
    let log = criu::log_path(&images, work.as_deref(), log_file);
    let cg = cleanup.cgroup.clone();
    let mut restored = 0;
    let mut master: Option<OwnedFd> = None;
    let hook_state = |pid: i32, status: &str| {
        crate::hooks::HookState {
            oci_version: crate::container::state::OCI_VERSION,
            id: &a.id,
            status,
            pid,
            bundle: &b.dir.to_string_lossy(),
            annotations: &c.state.annotations,
        }
        .json()
    };
    let hooks = b.spec.hooks().clone().unwrap_or_default();
    let bundle_dir = b.dir.clone();
    let resp = criu::swrk(
        req,
        keep,
        criu::Run {
            log,
            before: &mut |pid, req| {
                // runc's criuApplyCgroups: CRIU itself in the container's cgroups, and those
                // as the restored tasks' cgroup roots.
                if let Some(cg) = &cg {
                    cg.add_process(pid)?;
                    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).context("read criu's cgroups")?;
                    if let Some(o) = req.opts.as_mut() {
                        o.cg_root = criu::cg_roots(&own);
                    }
                }
                Ok(())
            },
            notify: &mut |script, pid, fd| {
                match script {
                    "setup-namespaces" => {
                        // runc runs these here: the namespaces exist, nothing runs in them yet.
                        let s = hook_state(pid, "creating");
                        for (kind, list) in [
                            ("prestart", hooks.prestart()),
                            ("createRuntime", hooks.create_runtime()),
                        ] {
                            let l = crate::hooks::list(list);
                            if !l.is_empty() {
                                crate::hooks::run_all(kind, l, &s, Some(&bundle_dir))?;
                            }
                        }
                    }
                    "post-restore" => restored = pid,
                    "orphan-pts-master" => master = fd,
                    _ => {}
                }
                Ok(())
            },
        },
    )?;
    drop(root);
    let pid = resp.restored_pid.filter(|&p| p > 0).unwrap_or(restored);
    if pid <= 0 {
        bail!("criu restored no process");
    }
    let (start, _) =
        crate::container::state::proc_stat(pid).ok_or_else(|| anyhow!("the restored init {pid} exited at once"))?;
    c.state.pid = pid;
    c.state.start_time = start;
    c.save()?;
    if let Some(p) = &a.pid_file {
        crate::process::write_pid_file(p, pid)?;
    }
    let master = crate::process::console::hand_over(master, a.console_socket.as_deref())?;
    cleanup.dir = None;
    cleanup.cgroup = None;
    let Some(old_mask) = old_mask else {
        return Ok(0);
    };
    // Foreground (runc restore without -d): relay signals, wait, exit with the process's
    // status, and remove the container, as runc does.
    if !a.no_subreaper {
        // Orphans of the container's processes (no own pid namespace) come to us.
        let _ = nix::sys::prctl::set_child_subreaper(true);
    }
    c.unlock();
    let code = match master {
        Some(m) => crate::process::console::relay(pid, &set, m)?,
        None => super::create::wait_forward(pid, &set),
    };
    let _ = nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(&old_mask), None);
    if let Ok(c) = Container::load(&g.root, &a.id, true) {
        super::delete::destroy(&c)?;
    }
    Ok(code)
}
