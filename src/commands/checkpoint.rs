//! `checkpoint`: dump a running container with CRIU (runc's checkpoint.go and
//! libcontainer's Checkpoint): the init's process tree, the container's root and the mounts
//! CRIU cannot dump itself described as external (bind mounts, devices, masked files, v1
//! cgroup binds). Without --leave-running or --pre-dump CRIU kills the tree after the dump and
//! the container reads `stopped`; `delete` removes it, `restore` recreates it.

use super::Global;
use crate::cgroups::Manager;
use crate::cli::{Checkpoint, CriuFlags};
use crate::container::bundle;
use crate::container::state::{Container, Status};
use crate::criu::{self, CgMode, Inherit, Opts, Req, ReqType};
use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::{LinuxNamespaceType, Mount, Spec};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// runc's descriptors.json in the image directory: what the init's fds 0-2 were, so restore
/// can hand the caller's pipes in their place (inherit_fd).
pub const DESCRIPTORS: &str = "descriptors.json";

/// The devices runc's configs list for every container (its ext_mnt entries name them too).
const DEFAULT_DEVICES: [&str; 6] = [
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/tty",
    "/dev/urandom",
    "/dev/random",
];

/// --image-path (default ./checkpoint, as runc).
pub fn image_path(flags: &CriuFlags) -> Result<PathBuf> {
    if flags.image_path.is_empty() {
        Ok(std::env::current_dir().context("current directory")?.join("checkpoint"))
    } else {
        Ok(PathBuf::from(&flags.image_path))
    }
}

/// runc's prepareImagePaths: --parent-path is relative to the image path (CRIU resolves it
/// from the images directory) and must name a directory there.
pub fn check_parent(images: &Path, parent: &str) -> Result<Option<String>> {
    if parent.is_empty() {
        return Ok(None);
    }
    if Path::new(parent).is_absolute() {
        bail!("--parent-path must be relative");
    }
    let real = images.join(parent);
    match std::fs::metadata(&real) {
        Ok(m) if m.is_dir() => Ok(Some(parent.to_string())),
        Ok(_) => bail!("invalid --parent-path: stat {}: not a directory", real.display()),
        Err(e) => bail!("invalid --parent-path: stat {}: {e}", real.display()),
    }
}

/// runc's setEmptyNsMask: the network namespace's devices are never dumped (runc does not
/// manage them); "network" is the only namespace --empty-ns takes.
pub fn empty_ns(names: &[String]) -> Result<u32> {
    let mut mask = libc::CLONE_NEWNET as u32;
    for n in names {
        match n.as_str() {
            "network" => mask |= libc::CLONE_NEWNET as u32,
            _ => bail!("namespace {n:?} is not supported"),
        }
    }
    Ok(mask)
}

/// runc's setPageServer: ADDRESS:PORT.
pub fn page_server(s: &str) -> Result<Option<(String, i32)>> {
    if s.is_empty() {
        return Ok(None);
    }
    let parts: Vec<&str> = s.split(':').collect();
    if parts.len() != 2 {
        bail!("Use --page-server ADDRESS:PORT to specify page server");
    }
    let port = parts[1].parse::<i32>().map_err(|_| anyhow!("Invalid port number"))?;
    Ok(Some((parts[0].to_string(), port)))
}

pub fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind") || m.options().iter().flatten().any(|o| o == "bind" || o == "rbind")
}

fn has_ns(spec: &Spec, t: LinuxNamespaceType) -> Option<Option<PathBuf>> {
    spec.linux()
        .as_ref()?
        .namespaces()
        .iter()
        .flatten()
        .find(|n| n.typ() == t)
        .map(|n| n.path().clone())
}

/// The mounts CRIU must be told about, as (destination in the container, host source): bind
/// mounts, the cgroup binds when there is no cgroup namespace, devices. Masked files are added
/// by the callers (dump: the ones that exist; restore: /dev/null).
///
/// Without a cgroup namespace berth bind-mounts the container's own cgroup directory (one per
/// hierarchy on v1, under a tmpfs): a bind of a cgroupfs subdirectory, which CRIU cannot dump
/// ("doesn't have a proper root mount"), so it is external, and a restore binds the new
/// container's directory there (`cg`). With a cgroup namespace it is a real mount CRIU dumps.
pub fn external_mounts(spec: &Spec, bundle_dir: &Path, cg: Option<&Manager>) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let cgroupns = has_ns(spec, LinuxNamespaceType::Cgroup).is_some();
    for m in spec.mounts().iter().flatten() {
        let dest = m.destination().to_string_lossy().into_owned();
        if is_bind(m) {
            let src = m.source().as_ref().map(|s| bundle::mount_source(bundle_dir, s));
            out.push((dest, src.unwrap_or_default().to_string_lossy().into_owned()));
        } else if matches!(m.typ().as_deref(), Some("cgroup" | "cgroup2")) && !cgroupns {
            let hs = crate::cgroups::hierarchies()?;
            let own = |h: &crate::cgroups::detect::Hierarchy| {
                cg.and_then(|c| c.paths.iter().find(|p| p.starts_with(&h.mountpoint)))
                    .map_or_else(String::new, |p| p.to_string_lossy().into_owned())
            };
            if let [h] = hs.as_slice() {
                if h.v2 {
                    out.push((dest, own(h)));
                    continue;
                }
            }
            for h in &hs {
                let Some(name) = h.mountpoint.file_name() else { continue };
                let name = name.to_string_lossy();
                out.push((format!("{}/{name}", dest.trim_end_matches('/')), own(h)));
            }
        }
    }
    let devices = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default();
    let mut paths: Vec<String> = DEFAULT_DEVICES.iter().map(|s| s.to_string()).collect();
    for d in devices {
        let p = d.path().to_string_lossy().into_owned();
        if !paths.contains(&p) {
            paths.push(p);
        }
    }
    out.extend(paths.into_iter().map(|p| (p.clone(), p)));
    Ok(out)
}

/// A namespace the container joined by path (netns set up by an engine's CNI): CRIU must not
/// dump it, and restore joins the one given then (runc's handleCheckpointingExternalNamespaces).
pub fn external_netns(spec: &Spec) -> Result<Option<(PathBuf, u64)>> {
    use std::os::unix::fs::MetadataExt;
    match has_ns(spec, LinuxNamespaceType::Network) {
        Some(Some(p)) => {
            let ino = std::fs::metadata(&p)
                .with_context(|| format!("stat {}", p.display()))?
                .ino();
            Ok(Some((p, ino)))
        }
        _ => Ok(None),
    }
}

pub const NETNS_KEY: &str = "extRootNetNS";

/// Open (making it if missing, 0700) a directory CRIU writes into.
pub fn open_dir(p: &Path) -> Result<Inherit> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(p)
        .with_context(|| format!("mkdir {}", p.display()))?;
    let fd =
        crate::sys::open(p, libc::O_RDONLY | libc::O_DIRECTORY, 0).map_err(|e| anyhow!("open {}: {e}", p.display()))?;
    Inherit::new(fd.as_fd())
}

pub fn run(g: &Global, a: &Checkpoint) -> Result<i32> {
    let c = Container::load(&g.root, &a.id, true)?;
    let status = c.status();
    if matches!(status, Status::Created | Status::Stopped | Status::Creating) {
        bail!("Container cannot be checkpointed in {} state", status.as_str());
    }
    // Every flag is checked before anything is made on disk.
    let ps = page_server(&a.page_server)?;
    let mode = match a.criu.manage_cgroups_mode.as_str() {
        "" => None,
        m => Some(CgMode::parse(m)?),
    };
    let empty = empty_ns(&a.criu.empty_ns)?;
    let status_fd = if a.criu.lazy_pages && a.status_fd >= 0 {
        check_status_fd(a.status_fd)?;
        Some(a.status_fd)
    } else {
        None
    };
    let b = bundle::load(&c.state.bundle).context("the container's bundle")?;
    let images = image_path(&a.criu)?;
    let made_images = !images.exists();
    let r = dump(&c, a, &b, &images, ps, mode, empty, status_fd);
    if r.is_err() && made_images {
        // Nothing of a failed first checkpoint is left (a directory the caller had stays).
        let _ = std::fs::remove_dir_all(&images);
    }
    r?;
    Ok(0)
}

fn check_status_fd(fd: i32) -> Result<()> {
    let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFL)
        .map_err(|e| anyhow!("invalid --status-fd argument {fd}: {e}"))?;
    if flags & (libc::O_WRONLY | libc::O_RDWR) == 0 {
        bail!("invalid --status-fd argument {fd}: not writable");
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn dump(
    c: &Container,
    a: &Checkpoint,
    b: &bundle::Bundle,
    images: &Path,
    ps: Option<(String, i32)>,
    mode: Option<CgMode>,
    empty: u32,
    status_fd: Option<i32>,
) -> Result<()> {
    let img = open_dir(images)?;
    let parent = check_parent(images, &a.parent_path)?;
    let work = (!a.criu.work_path.is_empty()).then(|| PathBuf::from(&a.criu.work_path));
    let wd = work.as_deref().map(open_dir).transpose()?;
    let log_file = "dump.log";
    let pid = c.state.pid;
    let mut o = Opts {
        images_dir_fd: img.num(),
        log_level: 4,
        log_file: log_file.into(),
        root: Some(c.state.rootfs.clone()),
        manage_cgroups: mode != Some(CgMode::Ignore),
        manage_cgroups_mode: mode,
        notify_scripts: true,
        pid: Some(pid),
        shell_job: a.criu.shell_job,
        leave_running: a.leave_running,
        tcp_established: a.criu.tcp_established,
        ext_unix_sk: a.criu.ext_unix_sk,
        file_locks: a.criu.file_locks,
        empty_ns: empty,
        orphan_pts_master: true,
        auto_dedup: a.criu.auto_dedup,
        lazy_pages: a.criu.lazy_pages,
        status_fd,
        work_dir_fd: wd.as_ref().map(Inherit::num),
        page_server: ps,
        ..Opts::default()
    };
    if let Some(p) = parent {
        o.parent_img = Some(p);
        o.track_mem = true;
    }
    // CRIU freezes the tree with the cgroup freezer when told where it is (ptrace otherwise).
    let cg = &c.state.cgroup;
    o.freeze_cgroup = cg
        .unified()
        .or_else(|| cg.freezer.clone())
        .map(|p| p.to_string_lossy().into_owned());
    if let Some((_, ino)) = external_netns(&b.spec)? {
        o.external.push(format!("net[{ino}]:{NETNS_KEY}"));
    }
    if !a.pre_dump {
        // Dump: identifier = the mountpoint (restore maps it to the source).
        o.ext_mnt = external_mounts(&b.spec, &b.dir, None)?
            .into_iter()
            .map(|(d, _)| (d.clone(), d))
            .collect();
        let masked = b
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.masked_paths().clone())
            .unwrap_or_default();
        for m in masked {
            match std::fs::metadata(format!("/proc/{pid}/root/{}", m.trim_start_matches('/'))) {
                Ok(md) if !md.is_dir() => o.ext_mnt.push((m, "/dev/null".into())),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(anyhow!("stat masked path {m}: {e}")),
            }
        }
        let fds: Vec<String> = (0..3)
            .map(|i| {
                std::fs::read_link(format!("/proc/{pid}/fd/{i}"))
                    .map_or_else(|_| "/dev/null".into(), |p| p.to_string_lossy().into_owned())
            })
            .collect();
        let path = images.join(DESCRIPTORS);
        std::fs::write(&path, serde_json::to_vec(&fds)?).with_context(|| format!("write {}", path.display()))?;
    }
    let req = Req {
        typ: if a.pre_dump { ReqType::PreDump } else { ReqType::Dump },
        opts: Some(o),
        notify_success: false,
    };
    let log = criu::log_path(images, work.as_deref(), log_file);
    crate::log::debug(&format!("checkpoint {}: criu {:?}", c.state.id, req.typ));
    let mut fds = vec![img];
    fds.extend(wd);
    criu::swrk(
        req,
        fds,
        criu::Run {
            log,
            before: &mut |_, _| Ok(()),
            notify: &mut |_, _, _| Ok(()),
        },
    )?;
    if !(a.leave_running || a.pre_dump) {
        // CRIU killed the tree; the init is reaped by its parent. Wait (briefly) until the
        // state reads `stopped`, so a `state` right after this command agrees.
        for _ in 0..100 {
            if !c.init_alive() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_path_is_relative_to_the_image_path() {
        let d = std::env::temp_dir().join(format!("berth-ckpt-parent-{}", std::process::id()));
        std::fs::create_dir_all(d.join("img/pre")).unwrap();
        std::fs::write(d.join("img/file"), "").unwrap();
        let img = d.join("img");
        assert_eq!(check_parent(&img, "").unwrap(), None);
        assert_eq!(check_parent(&img, "pre").unwrap().as_deref(), Some("pre"));
        assert_eq!(
            check_parent(&img, "/abs").unwrap_err().to_string(),
            "--parent-path must be relative"
        );
        assert!(check_parent(&img, "missing")
            .unwrap_err()
            .to_string()
            .starts_with("invalid --parent-path: stat"));
        assert!(check_parent(&img, "file")
            .unwrap_err()
            .to_string()
            .ends_with("not a directory"));
        // relative to the image path, not to the current directory
        assert!(check_parent(&d, "pre").is_err());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn flag_parsing_as_runc() {
        assert_eq!(page_server("").unwrap(), None);
        assert_eq!(page_server("10.0.0.1:27").unwrap(), Some(("10.0.0.1".into(), 27)));
        assert_eq!(
            page_server("x").unwrap_err().to_string(),
            "Use --page-server ADDRESS:PORT to specify page server"
        );
        assert_eq!(page_server("x:y").unwrap_err().to_string(), "Invalid port number");
        assert_eq!(empty_ns(&[]).unwrap(), libc::CLONE_NEWNET as u32);
        assert_eq!(empty_ns(&["network".into()]).unwrap(), libc::CLONE_NEWNET as u32);
        assert_eq!(
            empty_ns(&["pid".into()]).unwrap_err().to_string(),
            "namespace \"pid\" is not supported"
        );
    }

    #[test]
    fn external_mounts_are_binds_and_devices() {
        let spec: Spec = serde_json::from_value(serde_json::json!({
            "ociVersion": "1.0.2",
            "root": {"path": "rootfs"},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind"]},
                {"destination": "/rel", "source": "sub", "options": ["bind", "ro"]},
                {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"}
            ],
            "linux": {"namespaces": [{"type": "mount"}, {"type": "cgroup"}],
                      "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]}
        }))
        .unwrap();
        let m = external_mounts(&spec, Path::new("/b"), None).unwrap();
        assert_eq!(m[0], ("/data".into(), "/srv/data".into()));
        assert_eq!(m[1], ("/rel".into(), "/b/sub".into()));
        // with a cgroup namespace the cgroup mount is CRIU's to dump: not listed
        assert_eq!(m[2], ("/dev/null".into(), "/dev/null".into()));
        assert_eq!(m.last().unwrap(), &("/dev/fuse".to_string(), "/dev/fuse".to_string()));
        assert_eq!(m.len(), 2 + DEFAULT_DEVICES.len() + 1);
    }
}
