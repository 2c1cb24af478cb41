//! Directory copy for `tmpcopyup`, fd-relative and never following a symlink, so a hostile
//! image cannot redirect the copy onto the host.

use anyhow::{anyhow, Result};
use nix::fcntl::AtFlags;
use nix::sys::stat::{fstatat, mknodat, Mode, SFlag};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

const DEPTH: u32 = 64;

pub fn tree(src: BorrowedFd, dst: BorrowedFd) -> Result<()> {
    copy_dir(src, dst, 0)
}

fn copy_dir(src: BorrowedFd, dst: BorrowedFd, depth: u32) -> Result<()> {
    if depth > DEPTH {
        return Err(anyhow!("directory tree deeper than {DEPTH} levels"));
    }
    let dup = nix::unistd::dup(src.as_raw_fd())?;
    let mut dir = nix::dir::Dir::from_fd(dup)?;
    let names: Vec<std::ffi::CString> = dir
        .iter()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect();
    for name in names {
        let st = fstatat(Some(src.as_raw_fd()), name.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW)?;
        let kind = st.st_mode & libc::S_IFMT;
        let mode = Mode::from_bits_truncate(st.st_mode & 0o7777);
        match kind {
            libc::S_IFDIR => {
                match nix::sys::stat::mkdirat(Some(dst.as_raw_fd()), name.as_c_str(), mode) {
                    Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                    Err(e) => return Err(anyhow!("mkdir {name:?}: {e}")),
                }
                let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
                let s = crate::sys::openat(src, name.as_c_str(), flags, 0)?;
                let d = crate::sys::openat(dst, name.as_c_str(), flags, 0)?;
                copy_dir(s.as_fd(), d.as_fd(), depth + 1)?;
            }
            libc::S_IFREG => {
                let s = crate::sys::openat(src, name.as_c_str(), libc::O_RDONLY | libc::O_NOFOLLOW, 0)?;
                let d = crate::sys::openat(
                    dst,
                    name.as_c_str(),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                    mode.bits(),
                )?;
                std::io::copy(&mut std::fs::File::from(s), &mut std::fs::File::from(d))
                    .map_err(|e| anyhow!("copy {name:?}: {e}"))?;
            }
            libc::S_IFLNK => {
                let target = nix::fcntl::readlinkat(Some(src.as_raw_fd()), name.as_c_str())?;
                nix::unistd::symlinkat(target.as_os_str(), Some(dst.as_raw_fd()), name.as_c_str())?;
            }
            _ => {
                mknodat(
                    Some(dst.as_raw_fd()),
                    name.as_c_str(),
                    SFlag::from_bits_truncate(kind),
                    mode,
                    st.st_rdev,
                )?;
            }
        }
        nix::unistd::fchownat(
            Some(dst.as_raw_fd()),
            name.as_c_str(),
            Some(st.st_uid.into()),
            Some(st.st_gid.into()),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
        if kind != libc::S_IFLNK {
            // chown clears set-id bits: restore the exact mode.
            nix::sys::stat::fchmodat(
                Some(dst.as_raw_fd()),
                name.as_c_str(),
                mode,
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )?;
        }
    }
    Ok(())
}
