//! Child side of the rootfs: runs inside the container's new mount namespace (or on a clone
//! of the rootfs in the namespace it shares: inplace.rs), before pivot_root, with the host's
//! /proc and /dev still visible (trusted: the config's mounts all
//! land under the rootfs, resolved in-root, so nothing the container controls covers them).

use super::resolve;
use super::{Kind, MountPlan, RootfsPlan};
use crate::sys::{self, fd_path};
use anyhow::{anyhow, bail, Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

const NONE: Option<&str> = None;

fn show(p: &Path) -> String {
    format!("/{}", p.display())
}

/// Make the host's mounts unreachable for propagation, then make the rootfs a mount point of
/// its own (pivot_root needs one). Returns an O_PATH fd of the new root mount. `record` is
/// called with the mount id of a tree about to be attached in a namespace the container
/// shares (`in_place`); it returns once the parent has saved it.
pub fn prepare(plan: &RootfsPlan, record: &dyn Fn(u64) -> Result<()>) -> Result<OwnedFd> {
    if plan.in_place {
        return prepare_in_place(plan, record);
    }
    mount(NONE, "/", NONE, plan.root_propagation, NONE)
        .map_err(|e| anyhow!("make / {:?}: {e}", plan.root_propagation))?;
    if plan.root_propagation.contains(MsFlags::MS_SHARED) {
        private_parent(&plan.rootfs)?;
    }
    mount(
        Some(&plan.rootfs),
        &plan.rootfs,
        NONE,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        NONE,
    )
    .map_err(|e| anyhow!("bind rootfs {} onto itself: {e}", plan.rootfs.display()))?;
    sys::open(&plan.rootfs, libc::O_PATH | libc::O_DIRECTORY, 0)
        .map_err(|e| anyhow!("open rootfs {}: {e}", plan.rootfs.display()))
}

/// The rootfs in a mount namespace the container shares (inplace.rs): no existing mount is
/// touched (not the propagation of `/`, not the rootfs's parent); the init's root is a clone of
/// the rootfs attached over it, and everything the container mounts lands on that clone.
fn prepare_in_place(plan: &RootfsPlan, record: &dyn Fn(u64) -> Result<()>) -> Result<OwnedFd> {
    let path = crate::rootfs::cstr(&plan.rootfs.to_string_lossy())?;
    let shown = plan.rootfs.display();
    // Recursive, as runc's rbind of the rootfs: mounts already under it stay visible.
    let tree = sys::open_tree_clone(&path, true).map_err(|e| anyhow!("clone the mount of rootfs {shown}: {e}"))?;
    // The clone is a peer of the mounts it copies: made a slave (private for `private`, and
    // for `shared`, which runc applies to a private root after pivot_root: `enter` does it
    // here after chroot), nothing the container mounts on it reaches the namespace's other
    // mounts, while theirs still reach the container (runc's default rslave).
    let prop = if plan
        .root_propagation
        .intersects(MsFlags::MS_PRIVATE | MsFlags::MS_SHARED)
    {
        MsFlags::MS_PRIVATE
    } else {
        MsFlags::MS_SLAVE
    };
    sys::mount_setattr(tree.as_fd(), true, 0, 0, prop.bits())
        .map_err(|e| anyhow!("set propagation of the rootfs clone: {e}"))?;
    let id = sys::mount_id(tree.as_fd()).map_err(|e| anyhow!("mount id of the rootfs clone: {e}"))?;
    // Saved in state.json before it is attached: from then on delete can find and remove it.
    record(id)?;
    let at = sys::open(&plan.rootfs, libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW, 0)
        .map_err(|e| anyhow!("open rootfs {shown}: {e}"))?;
    sys::move_mount(tree.as_fd(), at.as_fd()).map_err(|e| anyhow!("attach the rootfs clone over {shown}: {e}"))?;
    // Attached under a shared mount, the kernel made the tree shared again (a new peer group,
    // with copies in the parent's peers, e.g. every namespace cloned from a systemd host):
    // once more a slave, before anything is mounted on it, so nothing of the container's
    // reaches them. The copies of the tree itself go when delete detaches it.
    sys::mount_setattr(tree.as_fd(), true, 0, 0, prop.bits())
        .map_err(|e| anyhow!("set propagation of the rootfs clone: {e}"))?;
    // The tree's fd now names the root of the attached mount.
    Ok(tree)
}

/// runc's rootfsParentMountPrivate: with a shared `/`, the mount the rootfs lives on is made
/// private (that mount alone), so binding the rootfs and everything mounted under it stays in
/// the container; pivot_root also refuses a shared parent. EINVAL: not a mount point, go up.
fn private_parent(rootfs: &Path) -> Result<()> {
    let mut p = rootfs;
    loop {
        match mount(NONE, p, NONE, MsFlags::MS_PRIVATE, NONE) {
            Ok(()) => return Ok(()),
            Err(nix::errno::Errno::EINVAL) if p != Path::new("/") => {
                p = p.parent().unwrap_or(Path::new("/"));
            }
            Err(e) => bail!("make the mount of {} private: {e}", rootfs.display()),
        }
    }
}

fn apply_attrs(root: BorrowedFd, m: &MountPlan) -> Result<()> {
    if m.attrs.set == 0 && m.attrs.clr == 0 && m.rattrs.set == 0 && m.rattrs.clr == 0 && m.propagation.is_empty() {
        return Ok(());
    }
    // Re-open: the fd used as mount target still names the covered directory, not the new mount.
    let fd = resolve::open(root, &m.dest, 0).map_err(|e| anyhow!("reopen {}: {e}", show(&m.dest)))?;
    if m.attrs.set != 0 || m.attrs.clr != 0 {
        bind_attrs(fd.as_fd(), m).map_err(|e| anyhow!("set mount attributes on {}: {e}", show(&m.dest)))?;
    }
    if m.rattrs.set != 0 || m.rattrs.clr != 0 {
        sys::mount_setattr(fd.as_fd(), true, m.rattrs.set, m.rattrs.clr, 0)
            .map_err(|e| anyhow!("set recursive mount attributes on {}: {e}", show(&m.dest)))?;
    }
    for p in &m.propagation {
        mount(NONE, fd_path(fd.as_fd()).as_str(), NONE, *p, NONE)
            .map_err(|e| anyhow!("set propagation on {}: {e}", show(&m.dest)))?;
    }
    Ok(())
}

const LOCKABLE: u64 = sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC;

/// A bind mount's attributes (mod.rs `bind_attrs`). In a user namespace the kernel locks the
/// flags a mount had when it came from a more privileged namespace (MNT_LOCK_*), and a bind of
/// it inherits the locks: clearing one is EPERM. As runc, the set ones are then kept (read
/// with statfs of the new mount, which has its source's flags), unless the options explicitly
/// clear one or ask for another access-time mode: that mount would not be what was asked for.
fn bind_attrs(fd: BorrowedFd, m: &MountPlan) -> nix::Result<()> {
    use nix::sys::statvfs::FsFlags;
    // The kernel reports MNT_RELATIME as bit 4096 of statfs' f_flags on every libc; nix names it
    // only for glibc, musl's headers not at all.
    const ST_RELATIME: libc::c_ulong = 4096;
    let denied = match sys::mount_setattr(fd, false, m.attrs.set, m.attrs.clr, 0) {
        Err(nix::errno::Errno::EPERM) => nix::errno::Errno::EPERM,
        r => return r,
    };
    let f = nix::sys::statvfs::fstatvfs(fd)?.flags();
    let mut have = 0;
    for (st, attr) in [
        (FsFlags::ST_RDONLY, sys::MOUNT_ATTR_RDONLY),
        (FsFlags::ST_NOSUID, sys::MOUNT_ATTR_NOSUID),
        (FsFlags::ST_NODEV, sys::MOUNT_ATTR_NODEV),
        (FsFlags::ST_NOEXEC, sys::MOUNT_ATTR_NOEXEC),
    ] {
        if f.contains(st) {
            have |= attr;
        }
    }
    if have & super::flags_to_attrs(MsFlags::empty(), m.cleared).clr & LOCKABLE != 0 {
        return Err(denied);
    }
    if m.attrs.clr & sys::MOUNT_ATTR__ATIME != 0 {
        let mut atime = if f.contains(FsFlags::ST_NOATIME) {
            sys::MOUNT_ATTR_NOATIME
        } else if f.contains(FsFlags::from_bits_retain(ST_RELATIME)) {
            sys::MOUNT_ATTR_RELATIME
        } else {
            sys::MOUNT_ATTR_STRICTATIME
        };
        if f.contains(FsFlags::ST_NODIRATIME) {
            atime |= sys::MOUNT_ATTR_NODIRATIME;
        }
        if m.attrs.set & (sys::MOUNT_ATTR__ATIME | sys::MOUNT_ATTR_NODIRATIME) != atime {
            return Err(denied);
        }
    }
    sys::mount_setattr(fd, false, m.attrs.set | have, m.attrs.clr & !have, 0)
}

/// The rootfs as the mount namespace names it: resolved destinations are checked against it.
fn root_path(root: BorrowedFd) -> Result<std::path::PathBuf> {
    std::fs::read_link(fd_path(root)).map_err(|e| anyhow!("read the rootfs path: {e}"))
}

/// Make (or open) a mount's destination inside the root, then check where it really is: the
/// path after resolution and the filesystem it is on (`check_resolved`), never the config's
/// string. `src_fs`: the filesystem of a bind's source.
fn target(
    root: BorrowedFd,
    rootp: &Path,
    m: &MountPlan,
    dest: &Path,
    dir: bool,
    src: Option<BorrowedFd>,
) -> Result<OwnedFd> {
    let fd = if dir {
        resolve::mkdir_all(root, dest, 0o755)?
    } else {
        resolve::mkfile(root, dest)?
    };
    let at = std::fs::read_link(fd_path(fd.as_fd())).map_err(|e| anyhow!("read the path of {}: {e}", show(dest)))?;
    let Ok(rel) = at.strip_prefix(rootp) else {
        bail!(
            "mount destination {} resolved outside the rootfs ({})",
            show(dest),
            at.display()
        );
    };
    let fs = sys::fs_type(fd.as_fd()).map_err(|e| anyhow!("statfs {}: {e}", show(dest)))?;
    // The source's filesystem matters only for a bind onto /proc itself.
    let src_fs = src
        .filter(|_| rel == Path::new("proc"))
        .and_then(|s| sys::fs_type(s).ok());
    super::check_resolved(rel, dest, fs, &m.kind, src_fs).map_err(|why| anyhow!("{:?} {why}", at))?;
    Ok(fd)
}

/// An O_PATH fd of a host path used as a bind source.
fn host_path(src: &Path) -> Result<OwnedFd> {
    sys::open(src, libc::O_PATH, 0).map_err(|e| anyhow!("bind mount source {}: {e}", src.display()))
}

/// Bind `srcfd` (`src` names it in messages) at `dest`, resolved in the root.
fn bind(
    srcfd: OwnedFd,
    src: &Path,
    root: BorrowedFd,
    rootp: &Path,
    m: &MountPlan,
    dest: &Path,
    recursive: bool,
) -> Result<()> {
    let is_dir = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&srcfd))
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
        .map_err(|e| anyhow!("stat {}: {e}", src.display()))?;
    let destfd = target(root, rootp, m, dest, is_dir, Some(srcfd.as_fd()))?;
    let mut flags = MsFlags::MS_BIND;
    if recursive {
        flags |= MsFlags::MS_REC;
    }
    mount(
        Some(fd_path(srcfd.as_fd()).as_str()),
        fd_path(destfd.as_fd()).as_str(),
        NONE,
        flags,
        NONE,
    )
    .map_err(|e| anyhow!("bind mount {} on {}: {e}", src.display(), show(dest)))
}

/// Attach a detached tree the parent made (idmap.rs) at `dest`, resolved in the root.
fn attach(tree: BorrowedFd, src: &Path, root: BorrowedFd, rootp: &Path, m: &MountPlan) -> Result<()> {
    let dest = &m.dest;
    let is_dir = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&tree))
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
        .map_err(|e| anyhow!("stat detached {}: {e}", src.display()))?;
    let destfd = target(root, rootp, m, dest, is_dir, Some(tree))?;
    sys::move_mount(tree, destfd.as_fd())
        .map_err(|e| anyhow!("move detached mount of {} onto {}: {e}", src.display(), show(dest)))
}

/// runc (CVE-2019-19921 hardening): procfs and sysfs only on a real directory of the image,
/// never through a symlink in its place (lstat of the destination's last component).
fn ordinary_dir(root: BorrowedFd, dest: &Path, typ: &str) -> Result<()> {
    let (Some(parent), Some(name)) = (dest.parent(), dest.file_name()) else {
        return Ok(());
    };
    let dir = match resolve::open(root, parent, libc::O_DIRECTORY) {
        Ok(d) => d,
        Err(nix::errno::Errno::ENOENT) => return Ok(()),
        Err(e) => bail!("open {} in the container: {e}", show(parent)),
    };
    match nix::sys::stat::fstatat(
        Some(std::os::fd::AsRawFd::as_raw_fd(&dir)),
        name,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    ) {
        Ok(st) if st.st_mode & libc::S_IFMT != libc::S_IFDIR => {
            bail!("filesystem {typ:?} must be mounted on ordinary directory")
        }
        Ok(_) | Err(nix::errno::Errno::ENOENT) => Ok(()),
        Err(e) => bail!("lstat {}: {e}", show(dest)),
    }
}

/// The mode bits of an existing directory at `dest`.
fn dir_mode(root: BorrowedFd, dest: &Path) -> Option<u32> {
    let fd = resolve::open(root, dest, libc::O_DIRECTORY).ok()?;
    let st = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&fd)).ok()?;
    Some(st.st_mode & 0o7777)
}

/// runc mounts a read-only tmpfs, and a read-only /dev, writable: they are filled first (device
/// nodes, pts and the other mount points under /dev, tmpcopyup) and made read-only by
/// `finalize`.
fn read_only_later(m: &MountPlan) -> bool {
    m.flags.contains(MsFlags::MS_RDONLY)
        && match &m.kind {
            Kind::Fs { typ, .. } => typ == "tmpfs" || m.dest == Path::new("dev"),
            _ => false,
        }
}

/// The last step before entering the root (runc's finalizeRootfs): read-only tmpfs and /dev
/// mounts become read-only (that mount alone, as runc's remount).
pub fn finalize(root: BorrowedFd, plan: &RootfsPlan) -> Result<()> {
    for m in plan.mounts.iter().filter(|m| read_only_later(m)) {
        let fd = resolve::open(root, &m.dest, 0).map_err(|e| anyhow!("reopen {}: {e}", show(&m.dest)))?;
        sys::mount_setattr(fd.as_fd(), false, sys::MOUNT_ATTR_RDONLY, 0, 0)
            .map_err(|e| anyhow!("make {} read-only: {e}", show(&m.dest)))?;
    }
    Ok(())
}

fn mount_fs(root: BorrowedFd, rootp: &Path, m: &MountPlan, typ: &str, src: &str, userns: bool) -> Result<()> {
    if typ == "proc" || typ == "sysfs" {
        ordinary_dir(root, &m.dest, typ)?;
    }
    let mut data = m.data.clone();
    if typ == "tmpfs" {
        // runc: a tmpfs over an existing directory takes its mode (set-id and sticky bits
        // too); a `mode=` in the options comes later and wins.
        if let Some(mode) = dir_mode(root, &m.dest) {
            data = if data.is_empty() {
                format!("mode={mode:04o}")
            } else {
                format!("mode={mode:04o},{data}")
            };
        }
    }
    let destfd = target(root, rootp, m, &m.dest, true, None)?;
    let data = if data.is_empty() { None } else { Some(data.as_str()) };
    let flags = if read_only_later(m) {
        m.flags - MsFlags::MS_RDONLY
    } else {
        m.flags
    };
    // Opened before the mount: afterwards this still reads the directory the tmpfs covers.
    let under = if m.copy_up {
        Some(resolve::open_dir(root, &m.dest).map_err(|e| anyhow!("open {} for tmpcopyup: {e}", show(&m.dest)))?)
    } else {
        None
    };
    match mount(Some(src), fd_path(destfd.as_fd()).as_str(), Some(typ), flags, data) {
        Ok(()) => {
            if let Some(under) = under {
                let top =
                    resolve::open_dir(root, &m.dest).map_err(|e| anyhow!("open new tmpfs {}: {e}", show(&m.dest)))?;
                super::copy::tree(under.as_fd(), top.as_fd())
                    .map_err(|e| anyhow!("tmpcopyup {}: {e:#}", show(&m.dest)))?;
            }
            Ok(())
        }
        // sysfs needs the network namespace, mqueue the IPC namespace, to be owned by our user
        // namespace; when they are the host's, runc bind-mounts the host's instead.
        Err(nix::errno::Errno::EPERM) if userns && (typ == "sysfs" || typ == "mqueue") => {
            let host = Path::new(if typ == "sysfs" { "/sys" } else { "/dev/mqueue" });
            bind(host_path(host)?, host, root, rootp, m, &m.dest, true)?;
            let fd = resolve::open(root, &m.dest, 0)?;
            let attrs = super::flags_to_attrs(m.flags, MsFlags::empty());
            sys::mount_setattr(fd.as_fd(), true, attrs.set, attrs.clr, 0)
                .map_err(|e| anyhow!("set attributes on {}: {e}", show(&m.dest)))
        }
        Err(e) => Err(anyhow!("mount {typ} on {}: {e}", show(&m.dest))),
    }
}

fn mount_cgroup(root: BorrowedFd, rootp: &Path, m: &MountPlan, plan: &RootfsPlan) -> Result<()> {
    let destfd = target(root, rootp, m, &m.dest, true, None)?;
    let ro = m.flags.contains(MsFlags::MS_RDONLY);
    let sub_flags = m.flags;
    if plan.cgroup_mounts.len() == 1 && plan.cgroup_mounts[0].name.is_empty() {
        let s = &plan.cgroup_mounts[0];
        if plan.cgroup_ns {
            mount(
                Some("cgroup2"),
                fd_path(destfd.as_fd()).as_str(),
                Some("cgroup2"),
                sub_flags,
                NONE,
            )
            .map_err(|e| anyhow!("mount cgroup2 on {}: {e}", show(&m.dest)))?;
        } else {
            bind(host_path(&s.host_dir)?, &s.host_dir, root, rootp, m, &m.dest, false)?;
            let fd = resolve::open(root, &m.dest, 0)?;
            let attrs = super::flags_to_attrs(m.flags, MsFlags::empty());
            sys::mount_setattr(fd.as_fd(), false, attrs.set, 0, 0)
                .map_err(|e| anyhow!("set attributes on {}: {e}", show(&m.dest)))?;
        }
        return Ok(());
    }
    // cgroup v1 or hybrid: a tmpfs with one directory per hierarchy, as runc builds it.
    mount(
        Some("tmpfs"),
        fd_path(destfd.as_fd()).as_str(),
        Some("tmpfs"),
        m.flags - MsFlags::MS_RDONLY,
        Some("mode=755"),
    )
    .map_err(|e| anyhow!("mount tmpfs on {}: {e}", show(&m.dest)))?;
    let tmp = resolve::open(root, &m.dest, libc::O_DIRECTORY)?;
    for s in &plan.cgroup_mounts {
        let sub = m.dest.join(&s.name);
        let subfd = resolve::mkdir_all(root, &sub, 0o755)?;
        if plan.cgroup_ns {
            let (typ, data) = if s.v2 {
                ("cgroup2", None)
            } else {
                ("cgroup", Some(s.options.as_str()))
            };
            mount(
                Some("cgroup"),
                fd_path(subfd.as_fd()).as_str(),
                Some(typ),
                sub_flags,
                data,
            )
            .map_err(|e| anyhow!("mount {typ} ({}) on {}: {e}", s.options, show(&sub)))?;
        } else {
            bind(host_path(&s.host_dir)?, &s.host_dir, root, rootp, m, &sub, false)?;
            let fd = resolve::open(root, &sub, 0)?;
            let attrs = super::flags_to_attrs(m.flags, MsFlags::empty());
            sys::mount_setattr(fd.as_fd(), false, attrs.set, 0, 0)
                .map_err(|e| anyhow!("set attributes on {}: {e}", show(&sub)))?;
        }
        for l in &s.links {
            resolve::symlink(root, &s.name, &m.dest.join(l))?;
        }
    }
    if ro {
        sys::mount_setattr(tmp.as_fd(), false, sys::MOUNT_ATTR_RDONLY, 0, 0)
            .map_err(|e| anyhow!("make {} read-only: {e}", show(&m.dest)))?;
    }
    Ok(())
}

/// Every configured mount, in order: each source is looked up when its turn comes, after the
/// mounts before it (runc). The init is in the container's cgroups (and cgroup namespace) from
/// the start, which the cgroupfs mounts show. `host_source(i)` asks berth's host side for mount i's source as a detached
/// tree (idmap.rs `host_source`).
pub fn mount_all(root: BorrowedFd, plan: &RootfsPlan, host_source: &dyn Fn(usize) -> Result<OwnedFd>) -> Result<()> {
    let rootp = root_path(root)?;
    for (i, m) in plan.mounts.iter().enumerate() {
        match &m.kind {
            Kind::Bind { src, recursive } => {
                if let Some(tree) = &m.tree {
                    attach(tree.0.as_fd(), src, root, &rootp, m)?;
                } else if m.idmap.is_some() {
                    // Idmapped, from inside the rootfs: only the host side may idmap it.
                    attach(host_source(i)?.as_fd(), src, root, &rootp, m)?;
                } else {
                    let opened = match &m.in_root {
                        Some(rel) => resolve::open(root, rel, 0),
                        None => sys::open(src.as_path(), libc::O_PATH, 0),
                    };
                    match opened {
                        Ok(fd) => bind(fd, src, root, &rootp, m, &m.dest, *recursive)?,
                        // A source the container's root may not reach (a host directory only
                        // host root may search): runc's host side opens it.
                        Err(nix::errno::Errno::EACCES | nix::errno::Errno::EPERM)
                            if plan.userns && plan.host_sources =>
                        {
                            attach(host_source(i)?.as_fd(), src, root, &rootp, m)?
                        }
                        Err(e) => bail!("bind mount source {}: {e}", src.display()),
                    }
                }
            }
            Kind::Fs { typ, src } => mount_fs(root, &rootp, m, typ, src, plan.userns)?,
            Kind::Cgroup => mount_cgroup(root, &rootp, m, plan)?,
        }
        apply_attrs(root, m)?;
    }
    Ok(())
}

/// Default and configured device nodes, plus runc's /dev links.
pub fn setup_dev(root: BorrowedFd, plan: &RootfsPlan) -> Result<()> {
    if !plan.setup_dev {
        return Ok(());
    }
    for d in &plan.devices {
        if plan.userns {
            // mknod is refused in a user namespace: bind the host's node (runc does the same).
            let host = Path::new("/").join(&d.path);
            let fd = resolve::mkfile(root, &d.path)?;
            mount(Some(&host), fd_path(fd.as_fd()).as_str(), NONE, MsFlags::MS_BIND, NONE)
                .map_err(|e| anyhow!("bind device {} on {}: {e}", host.display(), show(&d.path)))?;
        } else {
            let dev = nix::sys::stat::makedev(d.major, d.minor);
            resolve::mknod(root, &d.path, d.kind, d.mode, dev, d.uid, d.gid)?;
        }
    }
    let links: [(&str, &str); 4] = [
        ("/proc/self/fd", "dev/fd"),
        ("/proc/self/fd/0", "dev/stdin"),
        ("/proc/self/fd/1", "dev/stdout"),
        ("/proc/self/fd/2", "dev/stderr"),
    ];
    for (target, path) in links {
        resolve::symlink(root, target, Path::new(path))?;
    }
    if Path::new("/proc/kcore").exists() {
        resolve::symlink(root, "/proc/kcore", Path::new("dev/core"))?;
    }
    // A devpts newinstance has its own ptmx; /dev/ptmx must point at it.
    resolve::unlink(root, Path::new("dev/ptmx"))?;
    resolve::symlink(root, "pts/ptmx", Path::new("dev/ptmx"))?;
    Ok(())
}

/// sysctls are written through the host's /proc of this mount namespace, which no container
/// mount can cover (CVE-2019-19921 class); each table follows the writer's namespaces.
pub fn write_sysctls(sysctls: &[(String, String)]) -> Result<()> {
    for (k, v) in sysctls {
        let path = format!("/proc/sys/{}", k.replace('.', "/"));
        let fd = sys::openat2(
            sys::open("/proc/sys", libc::O_PATH | libc::O_DIRECTORY, 0)
                .map_err(|e| anyhow!("open /proc/sys: {e}"))?
                .as_fd(),
            &crate::rootfs::cstr(&path["/proc/sys/".len()..])?,
            libc::O_WRONLY,
            0,
            sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_NO_XDEV,
        )
        .map_err(|e| anyhow!("open sysctl {k}: {e}"))?;
        if sys::fs_type(fd.as_fd()).ok() != Some(libc::PROC_SUPER_MAGIC) {
            bail!("sysctl {k}: not on procfs");
        }
        nix::unistd::write(&fd, v.as_bytes()).map_err(|e| anyhow!("write sysctl {k}={v}: {e}"))?;
    }
    Ok(())
}

/// maskedPaths and readonlyPaths, resolved inside the root. The mask source is the host's
/// /dev/null, opened without following links and checked to be the 1:3 char device
/// (CVE-2025-31133: a container /dev/null symlink made masked files writable).
pub fn mask_and_protect(root: BorrowedFd, plan: &RootfsPlan) -> Result<()> {
    for p in &plan.readonly_paths {
        let rp = super::rel(Path::new(p));
        let fd = match resolve::open(root, &rp, 0) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(e) => bail!("readonly path {p}: {e}"),
        };
        let fp = fd_path(fd.as_fd());
        mount(
            Some(fp.as_str()),
            fp.as_str(),
            NONE,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            NONE,
        )
        .map_err(|e| anyhow!("bind readonly path {p}: {e}"))?;
        let fd = resolve::open(root, &rp, 0).map_err(|e| anyhow!("reopen readonly path {p}: {e}"))?;
        sys::mount_setattr(fd.as_fd(), true, sys::MOUNT_ATTR_RDONLY, 0, 0)
            .map_err(|e| anyhow!("make {p} read-only: {e}"))?;
    }
    if plan.masked.is_empty() {
        return Ok(());
    }
    let null =
        sys::open("/dev/null", libc::O_PATH | libc::O_NOFOLLOW, 0).map_err(|e| anyhow!("open /dev/null: {e}"))?;
    let st = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&null)).context("stat /dev/null")?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != nix::sys::stat::makedev(1, 3) {
        bail!("/dev/null is not the null device: refusing to use it to mask paths");
    }
    // runc 1.4: a path listed twice is masked once, and masked directories share one read-only
    // tmpfs (binds of it are read-only too), not one superblock each.
    let mut seen = std::collections::HashSet::new();
    let mut shared: Option<OwnedFd> = None;
    for p in &plan.masked {
        let rp = super::rel(Path::new(p));
        if !seen.insert(rp.clone()) {
            continue;
        }
        let fd = match resolve::open(root, &rp, 0) {
            Ok(fd) => fd,
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(e) => bail!("masked path {p}: {e}"),
        };
        let is_dir = std::fs::metadata(fd_path(fd.as_fd()))
            .map(|m| m.is_dir())
            .unwrap_or(false);
        let r = if is_dir {
            mask_dir(root, &rp, fd.as_fd(), &mut shared)
        } else {
            mount(
                Some(fd_path(null.as_fd()).as_str()),
                fd_path(fd.as_fd()).as_str(),
                NONE,
                MsFlags::MS_BIND,
                NONE,
            )
        };
        r.map_err(|e| anyhow!("mask {p}: {e}"))?;
    }
    Ok(())
}

/// A masked directory: a bind of the shared read-only tmpfs (a bind keeps its source's
/// read-only flag), or a new read-only tmpfs, which the next ones share, for the first one or
/// when the bind fails (runc falls back the same way).
fn mask_dir(root: BorrowedFd, rp: &Path, at: BorrowedFd, shared: &mut Option<OwnedFd>) -> nix::Result<()> {
    let at = fd_path(at);
    if let Some(t) = shared {
        if mount(
            Some(fd_path(t.as_fd()).as_str()),
            at.as_str(),
            NONE,
            MsFlags::MS_BIND,
            NONE,
        )
        .is_ok()
        {
            return Ok(());
        }
    }
    mount(Some("tmpfs"), at.as_str(), Some("tmpfs"), MsFlags::MS_RDONLY, NONE)?;
    if shared.is_none() {
        *shared = resolve::open(root, rp, 0).ok();
    }
    Ok(())
}

/// A missing process.cwd is created (inside the root, before a read-only remount), as runc does:
/// engines pass image working directories that need not exist.
pub fn make_cwd(root: BorrowedFd, cwd: &std::ffi::CStr) -> Result<()> {
    use std::os::unix::ffi::OsStrExt;
    // Not normalised: "a/../b" makes a, then b, and chdir later resolves it the same way.
    let p = Path::new(std::ffi::OsStr::from_bytes(cwd.to_bytes()));
    resolve::mkdir_all(root, p.strip_prefix("/").unwrap_or(p), 0o755).map(drop)
}

/// --no-pivot (runc's msMoveRoot): the host's procfs and sysfs mounts stay in this mount
/// namespace under the moved rootfs, and while one of them is fully visible the kernel lets a
/// nested user namespace mount a fresh, unmasked procfs or sysfs. Each is made a slave (the
/// unmount must not reach the host) and detached, or covered with a tmpfs where it cannot be
/// unmounted (locked in a user namespace). ENOENT: under one detached already.
fn hide_host_pseudo_fs(plan: &RootfsPlan) -> Result<()> {
    for p in &plan.host_pseudo_fs {
        match mount(NONE, p, NONE, MsFlags::MS_SLAVE | MsFlags::MS_REC, NONE) {
            Ok(()) => {}
            Err(nix::errno::Errno::ENOENT) => continue,
            Err(e) => bail!("make host {} rslave: {e}", p.display()),
        }
        match umount2(p, MntFlags::MNT_DETACH) {
            Ok(()) => {}
            Err(nix::errno::Errno::EINVAL | nix::errno::Errno::EPERM) => {
                mount(Some("tmpfs"), p, Some("tmpfs"), MsFlags::empty(), NONE)
                    .map_err(|e| anyhow!("cover host {} with a tmpfs: {e}", p.display()))?
            }
            Err(e) => bail!("detach host {}: {e}", p.display()),
        }
    }
    Ok(())
}

/// pivot_root(".", ".") then detach the old root, so nothing of the host stays reachable
/// (a chroot alone can be escaped). With --no-pivot: MS_MOVE + chroot, as runc does.
pub fn enter(root: OwnedFd, plan: &RootfsPlan) -> Result<()> {
    if plan.in_place {
        // The namespace is shared (inplace.rs): pivot_root would change the root of every
        // process in it, and MS_MOVE would move the rootfs over theirs.
        nix::unistd::fchdir(std::os::fd::AsRawFd::as_raw_fd(&root)).context("chdir to rootfs")?;
        nix::unistd::chroot(".").map_err(|e| anyhow!("chroot into {}: {e}", plan.rootfs.display()))?;
    } else if plan.no_pivot {
        nix::unistd::fchdir(std::os::fd::AsRawFd::as_raw_fd(&root)).context("chdir to rootfs")?;
        hide_host_pseudo_fs(plan)?;
        mount(Some("."), "/", NONE, MsFlags::MS_MOVE, NONE).map_err(|e| anyhow!("move rootfs to /: {e}"))?;
        nix::unistd::chroot(".").map_err(|e| anyhow!("chroot: {e}"))?;
    } else {
        let old = sys::open("/", libc::O_DIRECTORY | libc::O_RDONLY, 0).map_err(|e| anyhow!("open old root: {e}"))?;
        nix::unistd::fchdir(std::os::fd::AsRawFd::as_raw_fd(&root)).context("chdir to rootfs")?;
        nix::unistd::pivot_root(".", ".").map_err(|e| anyhow!("pivot_root {}: {e}", plan.rootfs.display()))?;
        nix::unistd::fchdir(std::os::fd::AsRawFd::as_raw_fd(&old)).context("chdir to old root")?;
        // The old root is stacked on "."; make it a slave so the detach never reaches the host.
        mount(NONE, ".", NONE, MsFlags::MS_SLAVE | MsFlags::MS_REC, NONE)
            .map_err(|e| anyhow!("make old root rslave: {e}"))?;
        umount2(".", MntFlags::MNT_DETACH).map_err(|e| anyhow!("detach old root: {e}"))?;
    }
    nix::unistd::chdir("/").context("chdir /")?;
    if let Some(p) = plan.post_propagation {
        mount(NONE, "/", NONE, p, NONE).map_err(|e| anyhow!("set rootfs propagation: {e}"))?;
    }
    if plan.readonly {
        let fd = sys::open("/", libc::O_PATH | libc::O_DIRECTORY, 0).map_err(|e| anyhow!("open /: {e}"))?;
        sys::mount_setattr(fd.as_fd(), false, sys::MOUNT_ATTR_RDONLY, 0, 0)
            .map_err(|e| anyhow!("make rootfs read-only: {e}"))?;
    }
    Ok(())
}
