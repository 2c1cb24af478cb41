//! Containers without a mount namespace of their own. The runtime-spec says an omitted `mount`
//! namespace is the runtime's, and one given by `path` is joined: the container's mounts are
//! then made in a namespace that outlives the container (the host's, or the one joined).
//!
//! runc makes them under the rootfs there, chroots, and leaves them behind for ever (and makes
//! the host's `/` rslave on the way). berth touches no existing mount: the init clones the
//! rootfs (open_tree, recursive, so mounts already under it stay visible) into a detached tree,
//! makes it a slave (or private), has the parent record the tree's mount id in state.json, and
//! only then attaches it over the rootfs path (setup::prepare). Every mount of the container is
//! made on that tree, and the init chroots into it (pivot_root would move the root of every
//! process in the namespace). `delete` (and `run`, and a failed create) detach the tree with
//! everything on it, in that namespace. A crash before the record is saved leaves nothing: the
//! tree is still detached and goes with the init.

use crate::sys;
use anyhow::{anyhow, bail, Result};
use serde::{Deserialize, Serialize};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What `delete` needs to find the container's mounts again (state.json `in_place`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct InPlace {
    /// The mount id of the tree attached over the rootfs (mountinfo's first field).
    pub mount_id: u64,
    /// The rootfs path it is attached at (in that namespace).
    pub rootfs: PathBuf,
    /// The mount namespace joined by path; None: berth's own at create.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ns_path: Option<PathBuf>,
    /// Device and inode of that namespace: a path that names another namespace by now (a pid
    /// reused under /proc) is not the one the mounts are in.
    pub ns_dev: u64,
    pub ns_ino: u64,
}

/// (st_dev, st_ino) of a namespace file.
pub fn ns_id(fd: BorrowedFd) -> Result<(u64, u64)> {
    let st = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&fd)).map_err(|e| anyhow!("stat namespace: {e}"))?;
    Ok((st.st_dev, st.st_ino))
}

fn own_ns() -> Result<OwnedFd> {
    sys::open("/proc/self/ns/mnt", libc::O_RDONLY | libc::O_CLOEXEC, 0)
        .map_err(|e| anyhow!("open /proc/self/ns/mnt: {e}"))
}

/// The record of a tree the init is about to attach: `ns` is the mount namespace it joins
/// (None: ours, which it inherits).
pub fn record(mount_id: u64, rootfs: &Path, ns: Option<(&Path, BorrowedFd)>) -> Result<InPlace> {
    let own;
    let (ns_path, fd) = match ns {
        Some((p, fd)) => (Some(p.to_path_buf()), fd),
        None => {
            own = own_ns()?;
            (None, own.as_fd())
        }
    };
    let (ns_dev, ns_ino) = ns_id(fd)?;
    Ok(InPlace {
        mount_id,
        rootfs: rootfs.to_path_buf(),
        ns_path,
        ns_dev,
        ns_ino,
    })
}

/// Detach the container's tree and everything mounted on it, in the namespace it is in.
/// Nothing to do when it is gone, or when the joined namespace itself is gone (its mounts went
/// with it). Entering a joined namespace needs a single-threaded process (setns(2)); berth is
/// one wherever this runs, and `run` joins its notify thread first.
pub fn remove(r: &InPlace) -> Result<()> {
    let own = own_ns()?;
    let Some(path) = &r.ns_path else {
        if ns_id(own.as_fd())? != (r.ns_dev, r.ns_ino) {
            bail!(
                "the container's mounts under {} are in mount namespace mnt:[{}], not this one: run delete there",
                r.rootfs.display(),
                r.ns_ino
            );
        }
        return detach(r);
    };
    let ns = match sys::open(path.as_path(), libc::O_RDONLY | libc::O_CLOEXEC, 0) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENOENT | nix::errno::Errno::ESRCH) => return Ok(()),
        Err(e) => bail!("open mount namespace {}: {e}", path.display()),
    };
    let id = ns_id(ns.as_fd())?;
    if id != (r.ns_dev, r.ns_ino) {
        return Ok(());
    }
    if id == ns_id(own.as_fd())? {
        return detach(r);
    }
    // setns resets the root and working directory to the namespace's: both are restored after
    // coming back (a relative --root or bundle path must still mean what it meant).
    let open_dir = |p: &str| {
        sys::open(p, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0).map_err(|e| anyhow!("open {p}: {e}"))
    };
    let (root, cwd) = (open_dir("/")?, open_dir(".")?);
    sys::setns(ns.as_fd(), libc::CLONE_NEWNS).map_err(|e| {
        anyhow!(
            "join mount namespace {} to remove the container's mounts: {e}",
            path.display()
        )
    })?;
    let done = detach(r);
    let back = sys::setns(own.as_fd(), libc::CLONE_NEWNS)
        .and_then(|()| nix::unistd::fchdir(std::os::fd::AsRawFd::as_raw_fd(&root)))
        .and_then(|()| nix::unistd::chroot("."))
        .and_then(|()| nix::unistd::fchdir(std::os::fd::AsRawFd::as_raw_fd(&cwd)));
    if let Err(e) = back {
        // Carrying on in the container's namespace would act on the wrong files.
        eprintln!("berth: return to the original mount namespace: {e}");
        sys::exit_now(1);
    }
    done
}

/// Every mount of this namespace: (id, mount point).
fn mounts() -> Result<Vec<(u64, PathBuf)>> {
    let text = std::fs::read("/proc/self/mountinfo").map_err(|e| anyhow!("read /proc/self/mountinfo: {e}"))?;
    Ok(parse(&text))
}

fn parse(text: &[u8]) -> Vec<(u64, PathBuf)> {
    text.split(|b| *b == b'\n')
        .filter_map(|l| {
            let mut f = l.split(|b| *b == b' ');
            let id = std::str::from_utf8(f.next()?).ok()?.parse().ok()?;
            let point = f.nth(3)?;
            Some((
                id,
                PathBuf::from(std::ffi::OsStr::from_bytes(&super::unescape_mountinfo(point))),
            ))
        })
        .collect()
}

/// Detach the tree at its mount point, lazily with everything on it. Whatever a container
/// process stacked over its own `/` sits on the tree and is the topmost mount there, so this
/// repeats until the tree itself is gone. Only a mount with the recorded id *at the rootfs
/// path* is the tree: ids are reused once a mount is gone.
fn detach(r: &InPlace) -> Result<()> {
    let at = std::fs::canonicalize(&r.rootfs).unwrap_or_else(|_| r.rootfs.clone());
    for _ in 0..64 {
        if !mounts()?.iter().any(|(id, p)| *id == r.mount_id && *p == at) {
            return Ok(());
        }
        nix::mount::umount2(
            &at,
            nix::mount::MntFlags::MNT_DETACH | nix::mount::MntFlags::UMOUNT_NOFOLLOW,
        )
        .map_err(|e| anyhow!("unmount the container's mounts at {}: {e}", at.display()))?;
    }
    bail!(
        "the container's mounts at {} are still there after 64 unmounts",
        at.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ids_and_escaped_mount_points() {
        let text = b"27 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
            77 27 254:0 /tmp/a\\040b /tmp/a\\040b/root\\134x rw - ext4 /dev/vda rw\n\
            garbage\n";
        assert_eq!(
            parse(text),
            vec![(27, PathBuf::from("/")), (77, PathBuf::from("/tmp/a b/root\\x"))]
        );
        assert_eq!(super::super::unescape_mountinfo(b"a\\01"), b"a\\01");
    }
}
