//! CVE-2019-5736: the container must never run berth's own binary. berth never execs itself
//! inside the container; while the init is berth it is non-dumpable, and before it waits for
//! `start` it becomes the sealed trampoline (below), so no process in the container can reach
//! berth's binary through `/proc/<pid>/exe`, not even one with CAP_SYS_PTRACE. The one remaining
//! way is the final execve itself: a program path that is (or a `#!` interpreter chain that
//! ends in) `/proc/self/exe` would make the kernel exec berth's binary as the container process.
//!
//! Two layers: the trampoline's exe is the memfd while the kernel resolves the program; and,
//! for a clear error at create (and where there is no trampoline), right before Ready the
//! program and its interpreter chain (the kernel allows 4 levels of `#!`) are followed and
//! refused when any of them is berth's inode (st_dev/st_ino recorded in the parent).

use anyhow::{bail, Result};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The trampoline binary (src/process/trampoline.c, built by build.rs; empty where it cannot be).
const TRAMPOLINE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/trampoline"));

/// A sealed memfd with the trampoline, made in the parent. The init ends by exec'ing it, with
/// every other fd closed: the trampoline waits for `start`, runs the startContainer hooks and
/// execs the container's program. So a created container's pid 1 is this immutable copy, never
/// berth's binary, and while the kernel resolves the container's program — including a
/// `#!/proc/self/exe` that the stat chain below could not see (an unreadable, execute-only
/// script; a swap between the check and the exec by a process already in the container) — the
/// process's exe is this copy too. Costs one memfd of ~10 KB per create.
pub fn trampoline() -> Result<Option<std::os::fd::OwnedFd>> {
    if TRAMPOLINE.is_empty() {
        return Ok(None);
    }
    match crate::sys::sealed_memfd(c"berth-exec", TRAMPOLINE, true) {
        Ok(fd) => Ok(Some(fd)),
        // vm.memfd_noexec=2 forbids executable memfds: berth then waits and execs itself.
        Err(nix::errno::Errno::EACCES) => {
            crate::log::debug("exec trampoline memfd refused (vm.memfd_noexec): berth waits for start itself");
            Ok(None)
        }
        Err(e) => Err(anyhow::anyhow!("create exec trampoline memfd: {e}")),
    }
}

/// Whether `filter` (loaded before the trampoline runs) lets the trampoline fork into a pid
/// namespace (trampoline.c "p"): the syscalls it makes there that berth's own init never made
/// after the filter, with the arguments it uses (fds it cannot know yet as 0). `execveat` is
/// among them: outside the container's pid namespace there is no `/proc/self/fd` to fall back
/// on. x86_64 numbers: there is no trampoline elsewhere.
pub fn filter_lets_trampoline_fork(filter: &[libc::sock_filter], terminal: bool, trampoline: i32) -> bool {
    use crate::seccomp::eval::{lets_through, Data};
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    let mut calls: Vec<(u32, [u64; 6])> = vec![
        (322, [trampoline as u64, 0, 0, 0, libc::AT_EMPTY_PATH as u64, 0]),
        (56, [libc::CLONE_PARENT as u64, 0, 0, 0, 0, 0]),
        (1, [0, 0, 5, 0, 0, 0]),
        (157, [libc::PR_SET_PDEATHSIG as u64, libc::SIGKILL as u64, 0, 0, 0, 0]),
        (60, [0; 6]),
        (60, [255, 0, 0, 0, 0, 0]),
    ];
    if terminal {
        calls.push((112, [0; 6]));
        calls.push((16, [0, libc::TIOCSCTTY as u64, 0, 0, 0, 0]));
    }
    calls.iter().all(|&(nr, args)| {
        lets_through(
            filter,
            &Data {
                nr,
                arch: AUDIT_ARCH_X86_64,
                args,
            },
        )
    })
}

/// st_dev/st_ino of the running berth binary (taken in the parent).
pub fn self_id() -> Option<(u64, u64)> {
    std::fs::metadata("/proc/self/exe").ok().map(|m| (m.dev(), m.ino()))
}

/// The interpreter named by a `#!` line, if `head` starts with one.
pub fn interpreter(head: &[u8]) -> Option<PathBuf> {
    let rest = head.strip_prefix(b"#!")?;
    let line = rest.split(|&b| b == b'\n').next()?;
    let s = String::from_utf8_lossy(line);
    let p = s.split_whitespace().next()?;
    Some(PathBuf::from(p))
}

/// Refuse a program whose exec would run the file identified by `me`.
pub fn check(program: &Path, me: (u64, u64)) -> Result<()> {
    let mut p = program.to_path_buf();
    // The program plus at most 4 interpreters (BINPRM_MAX_RECURSION), one more to be safe.
    for _ in 0..6 {
        let Ok(mut f) = std::fs::File::open(&p) else {
            // Unreadable: compare the inode alone (the kernel would refuse an unreadable
            // script's interpreter access the same way for a non-root user).
            if let Ok(m) = std::fs::metadata(&p) {
                if (m.dev(), m.ino()) == me {
                    bail!(
                        "refusing to execute berth's own binary in the container ({}): CVE-2019-5736",
                        p.display()
                    );
                }
            }
            return Ok(());
        };
        let m = f.metadata()?;
        if (m.dev(), m.ino()) == me {
            bail!(
                "refusing to execute berth's own binary in the container ({} via {}): CVE-2019-5736",
                p.display(),
                program.display()
            );
        }
        let mut head = [0u8; 256];
        let n = f.read(&mut head).unwrap_or(0);
        match interpreter(&head[..n]) {
            Some(next) => p = next,
            None => return Ok(()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_shebang_lines() {
        assert_eq!(interpreter(b"#!/proc/self/exe\n"), Some("/proc/self/exe".into()));
        assert_eq!(interpreter(b"#! /bin/sh -e\necho"), Some("/bin/sh".into()));
        assert_eq!(interpreter(b"\x7fELF"), None);
    }

    #[test]
    fn refuses_a_chain_that_ends_in_self() {
        let me = self_id().unwrap();
        let dir = std::env::temp_dir().join(format!("berth-exe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a"), b"#!/proc/self/exe\n").unwrap();
        std::fs::write(dir.join("b"), format!("#!{}/a -x\n", dir.display())).unwrap();
        std::fs::write(dir.join("ok"), b"#!/bin/sh\n").unwrap();
        assert!(check(&dir.join("a"), me).is_err());
        assert!(check(&dir.join("b"), me).is_err());
        assert!(check(Path::new("/proc/self/exe"), me).is_err());
        assert!(check(&dir.join("ok"), me).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
