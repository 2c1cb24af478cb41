//! Idmapped bind mounts (`idmap`/`ridmap` options, per-mount uidMappings/gidMappings).
//!
//! The kernel only idmaps a mount for a caller with CAP_SYS_ADMIN over the source filesystem's
//! user namespace (the host's), and only while the mount is detached (never visible in any
//! namespace). A container init inside its own user namespace has neither, so the parent makes
//! the idmapped tree before the clone, as runc's mount sources do: open_tree(OPEN_TREE_CLONE),
//! then mount_setattr(MOUNT_ATTR_IDMAP) with a user namespace carrying the mappings. The child
//! only move_mount()s the inherited fd onto its in-root destination (setup.rs).

use super::{Kind, MountPlan};
use crate::process::spawn::{self, PidGuard};
use crate::process::sync::Msg;
use crate::sys;
use anyhow::{anyhow, bail, Result};
use nix::mount::MsFlags;
use oci_spec::runtime::{Linux, LinuxIdMapping, LinuxNamespaceType};
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A detached, idmapped mount tree made by the parent; the child attaches it.
#[derive(Clone)]
pub struct Tree(pub Arc<OwnedFd>);

impl PartialEq for Tree {
    fn eq(&self, o: &Self) -> bool {
        Arc::ptr_eq(&self.0, &o.0)
    }
}

impl std::fmt::Debug for Tree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tree(fd {})", std::os::fd::AsRawFd::as_raw_fd(&*self.0))
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Idmap {
    /// `ridmap`: every submount of an rbind is idmapped too, not only the top one.
    pub recursive: bool,
    /// uid_map/gid_map text of the mount's own mappings; empty: the container's.
    pub uid_map: String,
    pub gid_map: String,
    /// The container joins a user namespace by path: its mappings are used directly.
    pub userns_path: Option<PathBuf>,
}

fn map_text(m: &Option<Vec<LinuxIdMapping>>) -> String {
    m.iter()
        .flatten()
        .map(|e| format!("{} {} {}\n", e.container_id(), e.host_id(), e.size()))
        .collect()
}

/// The idmap request of one config mount (None when it is not idmapped). A mount with
/// mappings of its own is idmapped even without the option (runtime-spec config.md).
pub fn parse(m: &oci_spec::runtime::Mount, option: Option<bool>) -> Result<Option<Idmap>> {
    let dest = m.destination().display();
    let uid_map = map_text(m.uid_mappings());
    let gid_map = map_text(m.gid_mappings());
    if uid_map.is_empty() != gid_map.is_empty() {
        bail!("mounts: {dest}: an idmapped mount needs both uidMappings and gidMappings");
    }
    if option.is_none() && uid_map.is_empty() {
        return Ok(None);
    }
    Ok(Some(Idmap {
        recursive: option.unwrap_or(false),
        uid_map,
        gid_map,
        userns_path: None,
    }))
}

/// Idmapped mounts must be binds; mounts without mappings of their own take the container's.
pub fn check(m: &MountPlan, linux: &Linux) -> Result<Option<Idmap>> {
    let Some(mut idm) = m.idmap.clone() else {
        return Ok(None);
    };
    let dest = format!("/{}", m.dest.display());
    if !matches!(m.kind, Kind::Bind { .. }) {
        bail!("mounts: {dest}: idmapped mounts are only supported for bind mounts");
    }
    if !idm.uid_map.is_empty() {
        return Ok(Some(idm));
    }
    let userns = linux
        .namespaces()
        .iter()
        .flatten()
        .find(|n| n.typ() == LinuxNamespaceType::User);
    match userns
        .and_then(|n| n.path().clone())
        .filter(|p| !p.as_os_str().is_empty())
    {
        Some(p) => idm.userns_path = Some(p),
        None if userns.is_some() => {
            idm.uid_map = map_text(linux.uid_mappings());
            idm.gid_map = map_text(linux.gid_mappings());
        }
        None => {}
    }
    if idm.uid_map.is_empty() && idm.userns_path.is_none() {
        bail!("mounts: {dest}: idmap needs uidMappings and gidMappings on the mount or a container user namespace");
    }
    Ok(Some(idm))
}

/// A user namespace fd carrying `uid_map`/`gid_map`: a helper process is cloned into a new
/// user namespace only to be its first member while the maps are written, then killed.
fn userns_with(uid_map: &str, gid_map: &str) -> Result<OwnedFd> {
    let parent = nix::unistd::getpid();
    let mut guard = PidGuard::default();
    let pid = match spawn::clone(libc::CLONE_NEWUSER)? {
        None => {
            // Never outlive berth: the namespace is only needed while the parent holds it.
            let _ = sys::set_pdeathsig(libc::SIGKILL);
            if nix::unistd::getppid() != parent {
                sys::exit_now(0);
            }
            loop {
                nix::unistd::pause();
            }
        }
        Some(pid) => pid,
    };
    guard.push(pid);
    let ns = crate::namespaces::NsPlan {
        new: libc::CLONE_NEWUSER,
        join: Vec::new(),
        joins: Vec::new(),
        uid_map: uid_map.to_string(),
        gid_map: gid_map.to_string(),
        time_offsets: String::new(),
    };
    crate::namespaces::write_maps(pid, &ns).map_err(|e| anyhow!("{e:#}"))?;
    sys::open(format!("/proc/{pid}/ns/user").as_str(), libc::O_RDONLY, 0)
        .map_err(|e| anyhow!("open user namespace of helper {pid}: {e}"))
    // The guard kills and reaps the helper: the fd keeps the namespace alive.
}

/// The user namespace whose mappings an idmapped mount shows.
fn idmap_userns(idm: &Idmap, dest: &Path) -> Result<OwnedFd> {
    match &idm.userns_path {
        Some(p) => sys::open(p.as_path(), libc::O_RDONLY, 0)
            .map_err(|e| anyhow!("open user namespace {} for idmapped mounts: {e}", p.display())),
        None => userns_with(&idm.uid_map, &idm.gid_map)
            .map_err(|e| anyhow!("mounts: /{}: user namespace for the idmap: {e:#}", dest.display())),
    }
}

/// The propagation of a detached tree: the rootfs's (MS_SLAVE or MS_PRIVATE). An open_tree
/// clone joins its source's peer group, and the container's mounts must never propagate back
/// to the host.
fn tree_propagation(root_propagation: MsFlags) -> u64 {
    if root_propagation.contains(MsFlags::MS_PRIVATE) {
        MsFlags::MS_PRIVATE.bits()
    } else {
        MsFlags::MS_SLAVE.bits()
    }
}

/// Make the detached idmapped tree of every idmapped bind whose source is on the host. A
/// source inside the rootfs is made when its turn comes (`host_source`): earlier mounts of the
/// list may make it.
pub fn make_trees(mounts: &mut [MountPlan], propagation: MsFlags) -> Result<()> {
    let prop = tree_propagation(propagation);
    let mut cache: HashMap<(String, String, Option<PathBuf>), OwnedFd> = HashMap::new();
    for m in mounts.iter_mut().filter(|m| m.in_root.is_none()) {
        let (Some(idm), Kind::Bind { src, recursive }) = (m.idmap.as_ref(), &m.kind) else {
            continue;
        };
        let key = (idm.uid_map.clone(), idm.gid_map.clone(), idm.userns_path.clone());
        if !cache.contains_key(&key) {
            cache.insert(key.clone(), idmap_userns(idm, &m.dest)?);
        }
        let userns = cache[&key].as_fd();
        let c = cpath(src)?;
        let tree = sys::open_tree_clone(&c, *recursive)
            .map_err(|e| anyhow!("open_tree {}: {e}{}", src.display(), hint(e)))
            .and_then(|t| idmap_tree(t, src, idm.recursive, userns, prop))
            .map_err(|e| anyhow!("mounts: /{}: {e:#}", m.dest.display()))?;
        m.tree = Some(Tree(Arc::new(tree)));
    }
    Ok(())
}

/// The init asks for mount `i`'s source when the container's root cannot make it itself: an
/// idmapped bind from inside the rootfs (idmapping needs CAP_SYS_ADMIN over the source's
/// filesystem, which a container's root lacks), or a bind source the container's root may not
/// reach (a host directory only host root may search). runc's host side does the same
/// (procMountPlease). A helper forked from berth joins the init's mount namespace, where the
/// earlier mounts of the list exist, and clones the source there with berth's host
/// credentials; a source inside the rootfs is resolved inside it. The detached (and, when
/// asked, idmapped) tree comes back to the init, which attaches it at its in-root destination.
pub fn host_source(plan: &super::RootfsPlan, i: usize, init_pid: i32) -> Result<OwnedFd> {
    let Some(m) = plan.mounts.get(i) else {
        bail!("sync: mount source {i} requested, the config has {}", plan.mounts.len());
    };
    let Kind::Bind { src, recursive } = &m.kind else {
        bail!("sync: mount source {i} requested for a mount that is not a bind");
    };
    let what = |e: anyhow::Error| anyhow!("mounts: /{}: {e:#}", m.dest.display());
    let mntns = sys::open(format!("/proc/{init_pid}/ns/mnt").as_str(), libc::O_RDONLY, 0)
        .map_err(|e| what(anyhow!("open the mount namespace of {init_pid}: {e}")))?;
    let userns = m.idmap.as_ref().map(|idm| idmap_userns(idm, &m.dest)).transpose()?;
    let (ours, theirs) = crate::process::sync::Sync::pair()?;
    let mut guard = PidGuard::default();
    let Some(pid) = spawn::clone(0)? else {
        drop(ours);
        let r = sys::setns(mntns.as_fd(), libc::CLONE_NEWNS)
            .map_err(|e| anyhow!("join the container's mount namespace: {e}"))
            .and_then(|()| clone_source(plan, m, src, *recursive, userns.as_ref().map(|u| u.as_fd())));
        let sent = match r {
            Ok(tree) => theirs.send_fd(&Msg::MountSourceFd, tree.as_fd()),
            Err(e) => theirs.send(&Msg::Error(format!("{e:#}"))),
        };
        sys::exit_now(i32::from(sent.is_err()));
    };
    guard.push(pid);
    drop(theirs);
    // On return the guard reaps the helper, which exits once it has answered.
    match ours.recv_fd()? {
        Some((Msg::MountSourceFd, Some(fd))) => Ok(fd),
        Some((Msg::Error(e), _)) => Err(what(anyhow!(e))),
        other => Err(what(anyhow!("mount source helper: unexpected {other:?}"))),
    }
}

/// In the helper, inside the container's mount namespace: the source as a detached tree.
fn clone_source(
    plan: &super::RootfsPlan,
    m: &MountPlan,
    src: &Path,
    recursive: bool,
    userns: Option<std::os::fd::BorrowedFd>,
) -> Result<OwnedFd> {
    let fd = match &m.in_root {
        Some(rel) => {
            let root = sys::open(&plan.rootfs, libc::O_PATH | libc::O_DIRECTORY, 0)
                .map_err(|e| anyhow!("open rootfs {}: {e}", plan.rootfs.display()))?;
            super::resolve::open(root.as_fd(), rel, 0)
        }
        None => sys::open(src, libc::O_PATH, 0),
    }
    .map_err(|e| anyhow!("bind mount source {}: {e}", src.display()))?;
    let tree = sys::open_tree_clone_fd(fd.as_fd(), recursive)
        .map_err(|e| anyhow!("open_tree {}: {e}{}", src.display(), hint(e)))?;
    let prop = tree_propagation(plan.root_propagation);
    match (userns, &m.idmap) {
        (Some(userns), Some(idm)) => idmap_tree(tree, src, idm.recursive, userns, prop),
        _ => {
            sys::mount_setattr(tree.as_fd(), true, 0, 0, prop)
                .map_err(|e| anyhow!("set propagation of {}: {e}", src.display()))?;
            Ok(tree)
        }
    }
}

/// Bind sources inside berth's state root (the NOTIFY_SOCKET directory) for a container with a
/// user namespace: the root is 0700, so the init, already the container's root, cannot reach
/// them by path. The parent clones them as detached trees (runc opens such mount sources before
/// it enters the user namespace) and the child attaches them.
pub fn detach_private(mounts: &mut [MountPlan], state_root: &Path, propagation: MsFlags) -> Result<()> {
    let prop = tree_propagation(propagation);
    for m in mounts.iter_mut().filter(|m| m.tree.is_none()) {
        let Kind::Bind { src, recursive } = &m.kind else {
            continue;
        };
        if !src.starts_with(state_root) {
            continue;
        }
        let c = cpath(src)?;
        let tree = match sys::open_tree_clone(&c, *recursive) {
            Ok(t) => t,
            // Rootless: no CAP_SYS_ADMIN here, but then the root is the user's, whom the
            // container's root maps to; the child opens the path as before.
            Err(nix::errno::Errno::EPERM) => continue,
            Err(e) => bail!("open_tree {}: {e}", src.display()),
        };
        sys::mount_setattr(tree.as_fd(), true, 0, 0, prop)
            .map_err(|e| anyhow!("set propagation of {}: {e}", src.display()))?;
        m.tree = Some(Tree(Arc::new(tree)));
    }
    Ok(())
}

fn cpath(src: &Path) -> Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(src.as_os_str().as_bytes()).map_err(|_| anyhow!("{} contains a NUL byte", src.display()))
}

/// open_tree and the idmap need CAP_SYS_ADMIN over the source's mount and superblock (runc
/// refuses idmap for rootless containers outright).
fn hint(e: nix::errno::Errno) -> &'static str {
    match e {
        nix::errno::Errno::EINVAL => " (does the filesystem support idmapped mounts?)",
        nix::errno::Errno::EPERM => " (idmapped mounts need root in the filesystem's user namespace)",
        _ => "",
    }
}

fn idmap_tree(tree: OwnedFd, src: &Path, ridmap: bool, userns: std::os::fd::BorrowedFd, prop: u64) -> Result<OwnedFd> {
    sys::mount_setattr_idmap(tree.as_fd(), ridmap, userns)
        .map_err(|e| anyhow!("set MOUNT_ATTR_IDMAP on {}: {e}{}", src.display(), hint(e)))?;
    sys::mount_setattr(tree.as_fd(), true, 0, 0, prop)
        .map_err(|e| anyhow!("set propagation of idmapped {}: {e}", src.display()))?;
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::super::plan_mount;
    use super::super::MountPlan;
    use std::path::Path;

    fn mount(json: &str) -> MountPlan {
        plan_mount(&serde_json::from_str(json).unwrap(), Path::new("/bundle")).unwrap()
    }

    #[test]
    fn parses_idmap_requests() {
        let m = mount(r#"{"destination":"/a","type":"bind","source":"/s","options":["rbind","ridmap"]}"#);
        let i = m.idmap.unwrap();
        assert!(i.recursive && i.uid_map.is_empty());
        // Mappings alone make an idmapped mount (runtime-spec), non-recursive.
        let m = mount(
            r#"{"destination":"/a","type":"bind","source":"/s","options":["bind"],
                "uidMappings":[{"containerID":0,"hostID":1000,"size":1}],
                "gidMappings":[{"containerID":0,"hostID":2000,"size":2}]}"#,
        );
        let i = m.idmap.unwrap();
        assert!(!i.recursive);
        assert_eq!((i.uid_map.as_str(), i.gid_map.as_str()), ("0 1000 1\n", "0 2000 2\n"));
        assert_eq!(mount(r#"{"destination":"/a","type":"bind","source":"/s"}"#).idmap, None);
    }
}
