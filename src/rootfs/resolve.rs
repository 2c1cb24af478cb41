//! In-root path operations. Every lookup goes through openat2(RESOLVE_IN_ROOT) from an fd of
//! the container root, so a symlink or `..` in the image (even one swapped in by a racing
//! process) resolves inside the rootfs and never on the host (CVE-2021-30465, CVE-2024-45310,
//! CVE-2026-41579). Creation uses *at() calls on fds resolved that way, never full paths.

use crate::sys::{self, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS};
use anyhow::{anyhow, bail, Result};
use nix::errno::Errno;
use nix::sys::stat::{Mode, SFlag};
use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

fn c(p: &Path) -> CString {
    let b = p.as_os_str().as_bytes();
    CString::new(if b.is_empty() { b"." as &[u8] } else { b }).unwrap_or_else(|_| CString::from(c"."))
}

/// O_PATH fd of `path` (relative to the container root), resolved inside the root.
pub fn open(root: BorrowedFd, path: &Path, extra: i32) -> nix::Result<OwnedFd> {
    sys::openat2(
        root,
        &c(path),
        libc::O_PATH | extra,
        0,
        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    )
}

/// A readable directory fd (not O_PATH) resolved inside the root.
pub fn open_dir(root: BorrowedFd, path: &Path) -> nix::Result<OwnedFd> {
    sys::openat2(
        root,
        &c(path),
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    )
}

fn show(path: &Path) -> String {
    format!("/{}", path.display())
}

/// mkdir -p inside the root; returns an O_PATH fd of the directory.
pub fn mkdir_all(root: BorrowedFd, path: &Path, mode: u32) -> Result<OwnedFd> {
    match open(root, path, libc::O_DIRECTORY) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => bail!("open {} in the container: {e}", show(path)),
    }
    let mut cur = open(root, Path::new(""), libc::O_DIRECTORY).map_err(|e| anyhow!("open container root: {e}"))?;
    let mut prefix = std::path::PathBuf::new();
    for comp in path.components() {
        prefix.push(comp);
        match open(root, &prefix, libc::O_DIRECTORY) {
            Ok(fd) => cur = fd,
            Err(Errno::ENOENT) => {
                let name = comp.as_os_str();
                match nix::sys::stat::mkdirat(Some(cur.as_raw_fd()), name, Mode::from_bits_truncate(mode)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => bail!("mkdir {} in the container: {e}", show(&prefix)),
                }
                cur = open(root, &prefix, libc::O_DIRECTORY)
                    .map_err(|e| anyhow!("open {} in the container: {e}", show(&prefix)))?;
            }
            Err(e) => bail!("open {} in the container: {e}", show(&prefix)),
        }
    }
    Ok(cur)
}

/// Split into (O_PATH fd of the parent directory, created if missing; final name).
pub fn parent_of<'a>(root: BorrowedFd, path: &'a Path) -> Result<(OwnedFd, &'a OsStr)> {
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("invalid container path {}", show(path)))?;
    let parent = mkdir_all(root, path.parent().unwrap_or(Path::new("")), 0o755)?;
    Ok((parent, name))
}

/// Make sure a regular file exists at `path` (a bind-mount target for a file source).
pub fn mkfile(root: BorrowedFd, path: &Path) -> Result<OwnedFd> {
    match open(root, path, 0) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => bail!("open {} in the container: {e}", show(path)),
    }
    let (parent, name) = parent_of(root, path)?;
    match sys::openat(
        parent.as_fd(),
        name,
        libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_WRONLY,
        0o644,
    ) {
        Ok(_) | Err(Errno::EEXIST) => {}
        Err(e) => bail!("create {} in the container: {e}", show(path)),
    }
    open(root, path, 0).map_err(|e| anyhow!("open {} in the container: {e}", show(path)))
}

pub fn mknod(root: BorrowedFd, path: &Path, kind: u32, mode: u32, dev: u64, uid: u32, gid: u32) -> Result<()> {
    let (parent, name) = parent_of(root, path)?;
    let kind = SFlag::from_bits_truncate(kind);
    match nix::sys::stat::mknodat(
        Some(parent.as_raw_fd()),
        name,
        kind,
        Mode::from_bits_truncate(mode),
        dev,
    ) {
        // runc keeps a node the image already has.
        Ok(()) | Err(Errno::EEXIST) => {}
        Err(e) => bail!("mknod {}: {e}", show(path)),
    }
    nix::unistd::fchownat(
        Some(parent.as_raw_fd()),
        name,
        Some(uid.into()),
        Some(gid.into()),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| anyhow!("chown {}: {e}", show(path)))
}

/// symlinkat inside the root; an existing entry is kept.
pub fn symlink(root: BorrowedFd, target: &str, path: &Path) -> Result<()> {
    let (parent, name) = parent_of(root, path)?;
    match nix::unistd::symlinkat(target, Some(parent.as_raw_fd()), name) {
        Ok(()) | Err(Errno::EEXIST) => Ok(()),
        Err(e) => bail!("symlink {} -> {target}: {e}", show(path)),
    }
}

/// Remove a non-directory entry inside the root (never follows a symlink: unlinkat on the name).
pub fn unlink(root: BorrowedFd, path: &Path) -> Result<()> {
    let (parent, name) = parent_of(root, path)?;
    match nix::unistd::unlinkat(Some(parent.as_raw_fd()), name, nix::unistd::UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(e) => bail!("remove {}: {e}", show(path)),
    }
}
