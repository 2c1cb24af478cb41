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

/// The empty path is the root itself; a NUL byte is EINVAL (config validation refuses them
/// first), never cut short or turned into the root.
fn c(p: &Path) -> nix::Result<CString> {
    let b = p.as_os_str().as_bytes();
    CString::new(if b.is_empty() { b"." as &[u8] } else { b }).map_err(|_| Errno::EINVAL)
}

/// O_PATH fd of `path` (relative to the container root), resolved inside the root.
pub fn open(root: BorrowedFd, path: &Path, extra: i32) -> nix::Result<OwnedFd> {
    sys::openat2(
        root,
        &c(path)?,
        libc::O_PATH | extra,
        0,
        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    )
}

/// A readable directory fd (not O_PATH) resolved inside the root.
pub fn open_dir(root: BorrowedFd, path: &Path) -> nix::Result<OwnedFd> {
    sys::openat2(
        root,
        &c(path)?,
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
        RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    )
}

fn show(path: &Path) -> String {
    format!("/{}", path.display())
}

/// mkdir -p inside the root; returns an O_PATH fd of the directory.
///
/// A dangling symlink on the way (an image's `/var/run -> /run` without `/run`) is followed by
/// hand: its target's directories are created inside the root, as runc's securejoin does, so
/// the mount lands in the rootfs rather than failing (and never on the host).
pub fn mkdir_all(root: BorrowedFd, path: &Path, mode: u32) -> Result<OwnedFd> {
    match open(root, path, libc::O_DIRECTORY) {
        Ok(fd) => return Ok(fd),
        Err(Errno::ENOENT) => {}
        Err(e) => bail!("open {} in the container: {e}", show(path)),
    }
    let comps: Vec<std::ffi::OsString> = path.iter().map(|c| c.to_os_string()).collect();
    // The deepest existing ancestor, searched from the bottom: a mount target usually lacks
    // only its last component, so this is one resolve instead of one per component.
    let mut have = comps.len();
    let mut parent = None;
    while have > 0 {
        have -= 1;
        let cand: std::path::PathBuf = comps[..have].iter().collect();
        match open(root, &cand, libc::O_DIRECTORY) {
            Ok(fd) => {
                parent = Some(fd);
                break;
            }
            Err(Errno::ENOENT) => {}
            Err(e) => bail!("open {} in the container: {e}", show(&cand)),
        }
    }
    let mut prefix: std::path::PathBuf = comps[..have].iter().collect();
    let mut rest: std::collections::VecDeque<std::ffi::OsString> = comps[have..].iter().cloned().collect();
    let mut links = 0;
    // `parent` is the open prefix and its next component is known to be missing.
    while let Some(name) = rest.pop_front() {
        let cand = prefix.join(&name);
        let dir = match parent.take() {
            Some(fd) => fd,
            None => {
                match open(root, &cand, libc::O_DIRECTORY) {
                    Ok(fd) => {
                        prefix = cand;
                        parent = Some(fd);
                        continue;
                    }
                    Err(Errno::ENOENT) => {}
                    Err(e) => bail!("open {} in the container: {e}", show(&cand)),
                }
                open(root, &prefix, libc::O_DIRECTORY)
                    .map_err(|e| anyhow!("open {} in the container: {e}", show(&prefix)))?
            }
        };
        match nix::sys::stat::mkdirat(Some(dir.as_raw_fd()), name.as_os_str(), Mode::from_bits_truncate(mode)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => bail!("mkdir {} in the container: {e}", show(&cand)),
        }
        // Resolved again from the root: what exists now may be a symlink (EEXIST above).
        match open(root, &cand, libc::O_DIRECTORY) {
            Ok(fd) => {
                prefix = cand;
                parent = Some(fd);
            }
            Err(Errno::ENOENT) => {
                let target = nix::fcntl::readlinkat(Some(dir.as_raw_fd()), name.as_os_str())
                    .map_err(|e| anyhow!("open {} in the container: {e}", show(&cand)))?;
                links += 1;
                if links > 40 {
                    bail!("open {} in the container: {}", show(path), Errno::ELOOP);
                }
                let target = Path::new(&target);
                if target.is_absolute() {
                    prefix = std::path::PathBuf::new();
                }
                // ".." in the target is resolved by the kernel against `prefix`, clamped at the root.
                for c in target.iter().rev().filter(|c| *c != "/") {
                    rest.push_front(c.to_os_string());
                }
            }
            Err(e) => bail!("open {} in the container: {e}", show(&cand)),
        }
    }
    match parent {
        Some(fd) => Ok(fd),
        None => {
            open(root, &prefix, libc::O_DIRECTORY).map_err(|e| anyhow!("open {} in the container: {e}", show(path)))
        }
    }
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
///
/// A dangling symlink there (an image's `/etc/resolv.conf -> ../run/systemd/resolve/...`, which
/// engines bind over) is followed inside the root and its target created, as runc does.
pub fn mkfile(root: BorrowedFd, path: &Path) -> Result<OwnedFd> {
    let mut path = path.to_path_buf();
    for _ in 0..40 {
        match open(root, &path, 0) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(e) => bail!("open {} in the container: {e}", show(&path)),
        }
        let (parent, name) = parent_of(root, &path)?;
        match sys::openat(
            parent.as_fd(),
            name,
            libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_WRONLY,
            0o644,
        ) {
            Ok(_) => return open(root, &path, 0).map_err(|e| anyhow!("open {} in the container: {e}", show(&path))),
            Err(Errno::EEXIST) => {}
            Err(e) => bail!("create {} in the container: {e}", show(&path)),
        }
        match open(root, &path, 0) {
            Ok(fd) => return Ok(fd),
            Err(Errno::ENOENT) => {}
            Err(e) => bail!("open {} in the container: {e}", show(&path)),
        }
        let target = nix::fcntl::readlinkat(Some(parent.as_raw_fd()), name)
            .map_err(|e| anyhow!("open {} in the container: {e}", show(&path)))?;
        // Relative targets start at the link's directory; the kernel resolves any ".." in root.
        path = match Path::new(&target).strip_prefix("/") {
            Ok(abs) => abs.to_path_buf(),
            Err(_) => path.parent().unwrap_or(Path::new("")).join(&target),
        };
    }
    bail!("open {} in the container: {}", show(&path), Errno::ELOOP)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    struct Tmp(std::path::PathBuf);
    impl Drop for Tmp {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn root(name: &str) -> (Tmp, OwnedFd) {
        let d = std::env::temp_dir().join(format!("berth-resolve-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let fd = sys::open(&d, libc::O_PATH | libc::O_DIRECTORY, 0).unwrap();
        (Tmp(d), fd)
    }

    #[test]
    fn mkdir_all_makes_what_is_missing_at_any_depth() {
        let (t, r) = root("depth");
        std::fs::create_dir_all(t.0.join("sys/fs")).unwrap();
        for p in ["sys/fs/cgroup/cpu", "a/b/c", "sys", "a/b/c/d"] {
            let fd = mkdir_all(r.as_fd(), Path::new(p), 0o755).unwrap();
            assert!(t.0.join(p).is_dir(), "{p}");
            assert_eq!(
                std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())).unwrap(),
                t.0.join(p),
                "{p}"
            );
        }
    }

    #[test]
    fn a_nul_byte_is_an_error_not_the_root() {
        let (_t, r) = root("nul");
        for p in ["\0", "tmp\0x", "\0/etc"] {
            assert_eq!(open(r.as_fd(), Path::new(p), 0).err(), Some(Errno::EINVAL), "{p:?}");
            assert_eq!(open_dir(r.as_fd(), Path::new(p)).err(), Some(Errno::EINVAL), "{p:?}");
            assert!(mkdir_all(r.as_fd(), Path::new(p), 0o755).is_err(), "{p:?}");
        }
    }

    #[test]
    fn mkdir_all_follows_dangling_links_inside_the_root() {
        let (t, r) = root("links");
        std::fs::create_dir_all(t.0.join("var")).unwrap();
        // Absolute: /var/run -> /run (missing), as in many images.
        std::os::unix::fs::symlink("/run", t.0.join("var/run")).unwrap();
        mkdir_all(r.as_fd(), Path::new("var/run/lock"), 0o755).unwrap();
        assert!(t.0.join("run/lock").is_dir());
        // Relative with "..", clamped at the root.
        std::os::unix::fs::symlink("../../../../x/y", t.0.join("var/up")).unwrap();
        mkdir_all(r.as_fd(), Path::new("var/up/z"), 0o755).unwrap();
        assert!(t.0.join("x/y/z").is_dir());
        // A link loop ends in ELOOP, not a hang.
        std::os::unix::fs::symlink("/loop2", t.0.join("loop1")).unwrap();
        std::os::unix::fs::symlink("/loop1", t.0.join("loop2")).unwrap();
        let e = mkdir_all(r.as_fd(), Path::new("loop1/d"), 0o755)
            .unwrap_err()
            .to_string();
        assert!(e.contains("ELOOP") || e.contains("symbolic links"), "{e}");
        // A file in the way is an error.
        std::fs::write(t.0.join("file"), b"").unwrap();
        assert!(mkdir_all(r.as_fd(), Path::new("file/d"), 0o755).is_err());
    }
}
