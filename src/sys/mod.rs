//! Thin syscall wrappers: the home of `unsafe` (with process/spawn.rs). Every wrapper returns
//! `nix::Result` so callers attach context naming the path or value; fds are `OwnedFd`.

pub mod bpf;
pub mod netlink;

use nix::errno::Errno;
use nix::NixPath;
use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

pub use libc::{RESOLVE_BENEATH, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS, RESOLVE_NO_XDEV};

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// `openat2(2)`: the kernel resolves `path` under `dir` with the given RESOLVE_* rules, so a
/// symlink or `..` in a hostile rootfs can never walk out of it (CVE-2021-30465 and kin).
pub fn openat2(dir: BorrowedFd, path: &CStr, flags: i32, mode: u32, resolve: u64) -> nix::Result<OwnedFd> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: mode as u64,
        resolve,
    };
    loop {
        // SAFETY: `how` is a valid open_how of the size passed; path is NUL-terminated.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        match Errno::result(ret) {
            // SAFETY: the kernel returned a new fd that nothing else owns.
            Ok(fd) => return Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        }
    }
}

/// `open(2)` returning an OwnedFd (always O_CLOEXEC).
pub fn open<P: ?Sized + NixPath>(path: &P, flags: i32, mode: u32) -> nix::Result<OwnedFd> {
    let fd = nix::fcntl::open(
        path,
        nix::fcntl::OFlag::from_bits_retain(flags | libc::O_CLOEXEC),
        nix::sys::stat::Mode::from_bits_truncate(mode),
    )?;
    // SAFETY: nix returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat(2)` returning an OwnedFd (always O_CLOEXEC).
pub fn openat<P: ?Sized + NixPath>(dir: BorrowedFd, path: &P, flags: i32, mode: u32) -> nix::Result<OwnedFd> {
    let fd = nix::fcntl::openat(
        Some(dir.as_raw_fd()),
        path,
        nix::fcntl::OFlag::from_bits_retain(flags | libc::O_CLOEXEC),
        nix::sys::stat::Mode::from_bits_truncate(mode),
    )?;
    // SAFETY: nix returned a fresh fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// The magic-link path of an fd, for mount(2) calls that must act on exactly the inode we
/// resolved (mounting onto `/proc/self/fd/N` never re-walks a path an attacker could swap).
pub fn fd_path(fd: BorrowedFd) -> String {
    format!("/proc/self/fd/{}", fd.as_raw_fd())
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x8;
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x0;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x200000;

/// `mount_setattr(2)` on the mount an O_PATH fd points at; `recursive` adds AT_RECURSIVE.
/// Unlike a MS_REMOUNT it only touches the named bits, so locked flags of mounts inherited
/// from a less privileged namespace are never dropped by accident.
pub fn mount_setattr(fd: BorrowedFd, recursive: bool, set: u64, clr: u64, propagation: u64) -> nix::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation,
        userns_fd: 0,
    };
    mount_setattr_raw(fd, recursive, &attr)
}

fn mount_setattr_raw(fd: BorrowedFd, recursive: bool, attr: &MountAttr) -> nix::Result<()> {
    let mut flags = libc::AT_EMPTY_PATH as u64;
    if recursive {
        flags |= libc::AT_RECURSIVE as u64;
    }
    // SAFETY: attr is a valid mount_attr of the size passed; "" is a valid C string.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    Errno::result(ret).map(drop)
}

pub const MOUNT_ATTR_IDMAP: u64 = 0x100000;

/// `mount_setattr(2)` with MOUNT_ATTR_IDMAP: the mount (a detached open_tree clone: the kernel
/// refuses mounts that were ever visible) shows ids through `userns`'s mappings.
pub fn mount_setattr_idmap(fd: BorrowedFd, recursive: bool, userns: BorrowedFd) -> nix::Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    mount_setattr_raw(fd, recursive, &attr)
}

/// `open_tree(2)` with OPEN_TREE_CLONE|OPEN_TREE_CLOEXEC: a detached copy of the mount at
/// `path` (with its submounts when `recursive`), not yet attached anywhere.
pub fn open_tree_clone(path: &CStr, recursive: bool) -> nix::Result<OwnedFd> {
    const OPEN_TREE_CLONE: u32 = 1;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as u32;
    if recursive {
        flags |= libc::AT_RECURSIVE as u32;
    }
    // SAFETY: path is NUL-terminated; plain syscall otherwise.
    let ret = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    let fd = Errno::result(ret)?;
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `open_tree(2)` like `open_tree_clone`, of the mount an fd (O_PATH) names (AT_EMPTY_PATH).
pub fn open_tree_clone_fd(fd: BorrowedFd, recursive: bool) -> nix::Result<OwnedFd> {
    const OPEN_TREE_CLONE: u32 = 1;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as u32 | libc::AT_EMPTY_PATH as u32;
    if recursive {
        flags |= libc::AT_RECURSIVE as u32;
    }
    // SAFETY: "" is a valid C string; plain syscall otherwise.
    let ret = unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), c"".as_ptr(), flags) };
    let fd = Errno::result(ret)?;
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `move_mount(2)` of the detached tree `from` onto the directory (or file) `to` names; both
/// are fds, so no path is walked again.
pub fn move_mount(from: BorrowedFd, to: BorrowedFd) -> nix::Result<()> {
    const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x4;
    const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
    // SAFETY: both paths are the empty C string; plain syscall otherwise.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            to.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    Errno::result(ret).map(drop)
}

/// The mount id (as /proc/<pid>/mountinfo shows it) of the mount `fd` is on: statx(2)
/// STATX_MNT_ID (kernel 5.8), which needs no procfs in the caller's mount namespace.
pub fn mount_id(fd: BorrowedFd) -> nix::Result<u64> {
    let mut st = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: "" is a valid C string; `st` is a statx buffer the kernel fills.
    let ret = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_MNT_ID,
            st.as_mut_ptr(),
        )
    };
    Errno::result(ret)?;
    // SAFETY: statx succeeded, so the buffer is initialised (it was zeroed before anyway).
    let st = unsafe { st.assume_init() };
    if st.stx_mask & libc::STATX_MNT_ID == 0 {
        return Err(Errno::ENOSYS);
    }
    Ok(st.stx_mnt_id)
}

/// `pidfd_open(2)`: a handle that keeps naming this process even if its pid is reused.
pub fn pidfd_open(pid: i32) -> nix::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = Errno::result(ret)?;
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `eventfd(2)` (close-on-exec, non-blocking): the v1 memory controller's OOM notifications.
pub fn eventfd() -> nix::Result<OwnedFd> {
    // SAFETY: plain syscall with integer arguments.
    let fd = Errno::result(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `pidfd_send_signal(2)`.
pub fn pidfd_send_signal(pidfd: BorrowedFd, sig: i32) -> nix::Result<()> {
    // SAFETY: plain syscall; a NULL siginfo means "as kill(2) would".
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            sig,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    Errno::result(ret).map(drop)
}

/// Close every fd from `first` up, except `keep` (CVE-2024-21626, and the created init must hold
/// nothing of its caller). close_range(2) over the gaps; where the caller's own seccomp filter or
/// an old kernel refuses it, each fd listed in /proc/self/fd is closed instead.
pub fn close_fds_except(first: RawFd, keep: &[RawFd]) -> nix::Result<()> {
    let mut keep: Vec<RawFd> = keep.iter().copied().filter(|&k| k >= first).collect();
    keep.sort_unstable();
    let mut lo = first;
    let mut ranges = Vec::new();
    for k in keep.iter().copied().chain([RawFd::MAX]) {
        if k > lo {
            let hi = if k == RawFd::MAX { u32::MAX } else { (k - 1) as u32 };
            ranges.push((lo as u32, hi));
        }
        lo = lo.max(k.saturating_add(1));
    }
    for (a, b) in ranges {
        // SAFETY: plain syscall with integer arguments; the fds still in use are in `keep`.
        let ret = unsafe { libc::syscall(libc::SYS_close_range, a, b, 0) };
        match Errno::result(ret) {
            Ok(_) => {}
            Err(Errno::ENOSYS | Errno::EPERM) => return close_listed(first, &keep),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The fds to close, from /proc/self/fd when that is a procfs (after pivot_root it is the
/// container's: without a proc mount it could be the image's own directory, listing nothing);
/// otherwise every number below the open-files limit.
fn close_listed(first: RawFd, keep: &[RawFd]) -> nix::Result<()> {
    let procfs = open("/proc/self/fd", libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)
        .and_then(|d| fs_type(std::os::fd::AsFd::as_fd(&d)))
        .is_ok_and(|t| t == libc::PROC_SUPER_MAGIC);
    let fds: Vec<RawFd> = match std::fs::read_dir("/proc/self/fd") {
        Ok(d) if procfs => d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect(),
        _ => {
            let (soft, _) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)?;
            (first..RawFd::try_from(soft).unwrap_or(RawFd::MAX)).collect()
        }
    };
    for fd in fds {
        if fd >= first && !keep.contains(&fd) {
            // SAFETY: an fd number the caller gave up (not in `keep`); the listing's own fd is
            // already closed, and EBADF is harmless.
            unsafe { libc::close(fd) };
        }
    }
    Ok(())
}

/// `dup(2)`: a copy without close-on-exec, for an fd the next program must inherit.
pub fn dup_inheritable(fd: BorrowedFd) -> nix::Result<OwnedFd> {
    // SAFETY: plain syscall on a borrowed fd.
    let ret = unsafe { libc::dup(fd.as_raw_fd()) };
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Errno::result(ret).map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `setns(2)` by fd.
pub fn setns(fd: BorrowedFd, nstype: i32) -> nix::Result<()> {
    // SAFETY: plain syscall with an fd we own for the duration of the call.
    let ret = unsafe { libc::setns(fd.as_raw_fd(), nstype) };
    Errno::result(ret).map(drop)
}

/// `unshare(2)` with raw flags (nix has no CLONE_NEWTIME).
pub fn unshare(flags: i32) -> nix::Result<()> {
    // SAFETY: plain syscall with integer arguments.
    let ret = unsafe { libc::unshare(flags) };
    Errno::result(ret).map(drop)
}

/// `setdomainname(2)` (nix only wraps sethostname).
pub fn setdomainname(name: &str) -> nix::Result<()> {
    // SAFETY: pointer and length describe `name`'s bytes.
    let ret = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    Errno::result(ret).map(drop)
}

/// `prctl(PR_SET_PDEATHSIG)`.
pub fn set_pdeathsig(sig: i32) -> nix::Result<()> {
    // SAFETY: plain prctl with integer arguments.
    let ret = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) };
    Errno::result(ret).map(drop)
}

/// `prctl(PR_SET_DUMPABLE, 0|1)`: non-dumpable, /proc/<pid>/{exe,fd,mem} of a berth process are
/// unreachable for the container (CVE-2016-9962, CVE-2019-5736) — and /proc/<pid>/uid_map
/// belongs to root, so an unprivileged parent cannot write it until we are dumpable again.
pub fn set_dumpable(on: bool) -> nix::Result<()> {
    // SAFETY: plain prctl with integer arguments.
    let ret = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, libc::c_ulong::from(on), 0, 0, 0) };
    Errno::result(ret).map(drop)
}

/// keyctl(KEYCTL_JOIN_SESSION_KEYRING, name): a fresh session keyring, so the container cannot
/// read the keys of the session berth was started from.
pub fn join_session_keyring(name: &CStr) -> nix::Result<()> {
    // SAFETY: plain syscall; name is NUL-terminated.
    let ret = unsafe { libc::syscall(libc::SYS_keyctl, libc::KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    Errno::result(ret).map(drop)
}

/// `prctl(PR_SET_NO_NEW_PRIVS, 1)`.
pub fn set_no_new_privs() -> nix::Result<()> {
    // SAFETY: plain prctl with integer arguments.
    let ret = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    Errno::result(ret).map(drop)
}

/// `prctl(PR_SET_KEEPCAPS, 1)`: keep the permitted set across the switch to a non-zero uid.
pub fn set_keepcaps() -> nix::Result<()> {
    // SAFETY: plain prctl with integer arguments.
    let ret = unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
    Errno::result(ret).map(drop)
}

/// `prctl(PR_CAPBSET_DROP, cap)`: drop one capability from the bounding set.
pub fn cap_bounding_drop(cap: u32) -> nix::Result<()> {
    // SAFETY: plain prctl with integer arguments.
    let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
    Errno::result(ret).map(drop)
}

/// `prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap)`.
pub fn cap_ambient_raise(cap: u32) -> nix::Result<()> {
    let raise = libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong;
    // SAFETY: plain prctl with integer arguments.
    let ret = unsafe { libc::prctl(libc::PR_CAP_AMBIENT, raise, libc::c_ulong::from(cap), 0, 0) };
    Errno::result(ret).map(drop)
}

/// `capset(2)` of the calling thread with 64-bit masks (version 3: two 32-bit halves).
pub fn capset(effective: u64, permitted: u64, inheritable: u64) -> nix::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let hdr = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let half = |shift: u32| Data {
        effective: (effective >> shift) as u32,
        permitted: (permitted >> shift) as u32,
        inheritable: (inheritable >> shift) as u32,
    };
    let data = [half(0), half(32)];
    // SAFETY: a header and a two-element data array of the layout capset(2) v3 expects.
    let ret = unsafe { libc::syscall(libc::SYS_capset, &hdr as *const Header, data.as_ptr()) };
    Errno::result(ret).map(drop)
}

/// `prlimit(0, resource, {soft, hard}, NULL)`: set one of our own resource limits.
pub fn set_rlimit(resource: u32, soft: u64, hard: u64) -> nix::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: prlimit on ourselves with a valid rlimit struct and no old-value pointer.
    let ret = unsafe { libc::prlimit(0, resource as _, &lim, std::ptr::null_mut()) };
    Errno::result(ret).map(drop)
}

/// `kill(2)` with any signal number (nix's Signal has no real-time signals).
pub fn kill(pid: i32, sig: i32) -> nix::Result<()> {
    // SAFETY: plain kill(2) with integer arguments.
    let ret = unsafe { libc::kill(pid, sig) };
    Errno::result(ret).map(drop)
}

/// `setgroups(2)` through the raw syscall: glibc's wrapper would try to synchronise every
/// thread, which is meaningless (and unsafe) right after a raw clone.
pub fn setgroups(gids: &[u32]) -> nix::Result<()> {
    // SAFETY: pointer and length describe `gids`.
    let ret = unsafe { libc::syscall(libc::SYS_setgroups, gids.len(), gids.as_ptr()) };
    Errno::result(ret).map(drop)
}

/// `setresuid(2)` as a raw syscall (see setgroups for why not glibc's).
pub fn setresuid(uid: u32) -> nix::Result<()> {
    // SAFETY: plain syscall with integer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_setresuid, uid, uid, uid) };
    Errno::result(ret).map(drop)
}

/// `setresgid(2)` as a raw syscall (see setgroups for why not glibc's).
pub fn setresgid(gid: u32) -> nix::Result<()> {
    // SAFETY: plain syscall with integer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_setresgid, gid, gid, gid) };
    Errno::result(ret).map(drop)
}

/// What berth keeps of std's runtime start-up (main.rs runs without it): ignore SIGPIPE, so a
/// reader or hook that goes away yields EPIPE instead of killing berth, and make sure fds 0-2
/// are open, so no file berth opens lands on a standard stream (std opens /dev/null for the
/// same reason).
pub fn process_start() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: poll reads and writes only the three pollfd entries of the array it is given.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) };
    if n > 0 {
        for p in fds.iter().filter(|p| p.revents & libc::POLLNVAL != 0) {
            // SAFETY: opening /dev/null takes the lowest free fd, which is the closed p.fd; the
            // fd is deliberately left open for the life of the process.
            if unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) } != p.fd {
                exit_now(127);
            }
        }
    }
    // SAFETY: SIG_IGN is a valid disposition for SIGPIPE; no handler code is involved.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
}

/// The command line as the C entry point received it (main.rs). std's `env::args` works
/// without std's runtime only on glibc, which hands argv to constructors; musl does not.
///
/// # Safety
/// `argv` must be the `argv` of `main`: `argc` valid C strings, then NULL, alive for the
/// whole process.
pub unsafe fn args(argc: libc::c_int, argv: *const *const libc::c_char) -> Vec<std::ffi::OsString> {
    use std::os::unix::ffi::OsStrExt;
    (0..usize::try_from(argc).unwrap_or(0))
        // SAFETY: the caller's contract: argv[0..argc] are valid NUL-terminated strings.
        .map(|i| unsafe { CStr::from_ptr(*argv.add(i)) })
        .map(|s| std::ffi::OsStr::from_bytes(s.to_bytes()).to_os_string())
        .collect()
}

/// `_exit(2)`: the child never runs the parent's atexit handlers or destructors.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit never returns and touches no Rust state.
    unsafe { libc::_exit(code) }
}

/// A NULL-terminated pointer array for execve; the pointers borrow from `v`.
fn c_array(v: &[&CStr]) -> Vec<*const libc::c_char> {
    v.iter().map(|s| s.as_ptr()).chain([std::ptr::null()]).collect()
}

/// `execve(2)`; returns only on failure.
pub fn execve(path: &CStr, argv: &[&CStr], envp: &[&CStr]) -> Errno {
    let (a, e) = (c_array(argv), c_array(envp));
    // SAFETY: both arrays are NULL-terminated and point into CStrs that outlive the call.
    unsafe { libc::execve(path.as_ptr(), a.as_ptr(), e.as_ptr()) };
    Errno::last()
}

/// `fstatfs(2)` f_type of an fd.
pub fn fs_type(fd: BorrowedFd) -> nix::Result<i64> {
    let st = nix::sys::statfs::fstatfs(fd)?;
    Ok(st.filesystem_type().0 as i64)
}

/// Block every signal we may forward or wait for; returns the previous mask.
pub fn block_signals(set: &nix::sys::signal::SigSet) -> nix::Result<nix::sys::signal::SigSet> {
    let mut old = nix::sys::signal::SigSet::empty();
    nix::sys::signal::sigprocmask(nix::sys::signal::SigmaskHow::SIG_BLOCK, Some(set), Some(&mut old))?;
    Ok(old)
}

/// Reset every signal disposition to the default: the container must not inherit ignored
/// signals from berth's caller (runc does the same before exec).
pub fn reset_signal_dispositions() {
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP || (32..34).contains(&sig) {
            continue;
        }
        // SAFETY: installing SIG_DFL is always valid for catchable signals.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

/// `flock(fd, LOCK_EX)`, retried on EINTR.
pub fn lock_exclusive(fd: BorrowedFd) -> nix::Result<()> {
    loop {
        // SAFETY: plain syscall on an fd borrowed for the duration of the call.
        let ret = unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX) };
        match Errno::result(ret) {
            Err(Errno::EINTR) => continue,
            r => return r.map(drop),
        }
    }
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, prog)` with a program compiled in the parent.
/// Returns the notify listener fd when `flags` has SECCOMP_FILTER_FLAG_NEW_LISTENER.
pub fn seccomp_filter(prog: &[libc::sock_filter], flags: libc::c_ulong) -> nix::Result<Option<OwnedFd>> {
    let len = u16::try_from(prog.len()).map_err(|_| Errno::E2BIG)?;
    let fprog = libc::sock_fprog {
        len,
        filter: prog.as_ptr().cast_mut(),
    };
    // SAFETY: fprog points at `prog`, which outlives the call; the kernel copies the program.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &fprog as *const libc::sock_fprog,
        )
    };
    let fd = Errno::result(ret)?;
    if flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER == 0 {
        return Ok(None);
    }
    // SAFETY: with NEW_LISTENER the kernel returned a new fd that nothing else owns.
    Ok(Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }))
}

/// recvmsg(MSG_CMSG_CLOEXEC) with room for one fd in SCM_RIGHTS: the bytes read and the fd,
/// if one came. nix hands received fds over as raw numbers; they become OwnedFd here, so
/// nothing outside can wrap one twice (and close it twice).
pub fn recv_with_fd(sock: BorrowedFd, buf: &mut [u8]) -> nix::Result<(usize, Option<OwnedFd>)> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let mut cmsg = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(sock.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC)?;
    let mut fd = None;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            for raw in fds {
                // SAFETY: the kernel installed this fd in our table for this recvmsg; nothing
                // else knows its number yet, so this is its only owner.
                let owned = unsafe { OwnedFd::from_raw_fd(raw) };
                // Only the first is wanted; any other is closed by dropping it.
                fd.get_or_insert(owned);
            }
        }
    }
    Ok((msg.bytes, fd))
}

/// ioctl(TIOCSPTLCK, 0): unlock a pty master's peer.
pub fn unlockpt(master: BorrowedFd) -> nix::Result<()> {
    let zero: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from the pointer we pass.
    let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &zero) };
    Errno::result(r).map(drop)
}

/// ioctl(TIOCGPTPEER): open the peer of a pty master directly, never through a /dev/pts path
/// a container could swap (CVE-2025-52565).
pub fn pty_peer(master: BorrowedFd) -> nix::Result<OwnedFd> {
    // SAFETY: TIOCGPTPEER takes open flags by value and returns a new fd.
    let r = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    let fd = Errno::result(r)?;
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// ioctl(TIOCGPTN): the pty's number (its /dev/pts/N name).
pub fn pty_number(master: BorrowedFd) -> nix::Result<u32> {
    let mut n: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int to the pointer we pass.
    let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut n) };
    Errno::result(r).map(|_| n)
}

pub fn get_winsize(fd: BorrowedFd) -> nix::Result<libc::winsize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize to the pointer we pass.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    Errno::result(r).map(|_| ws)
}

pub fn set_winsize(fd: BorrowedFd, ws: &libc::winsize) -> nix::Result<()> {
    // SAFETY: TIOCSWINSZ reads a winsize from the pointer we pass.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, ws as *const libc::winsize) };
    Errno::result(r).map(drop)
}

/// ioctl(TIOCSCTTY): make the tty on `fd` our controlling terminal (we are a session leader).
pub fn set_ctty(fd: BorrowedFd) -> nix::Result<()> {
    // SAFETY: TIOCSCTTY takes an int argument by value.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) };
    Errno::result(r).map(drop)
}

/// dup2(2) onto a fixed descriptor number (stdio).
pub fn dup_onto(fd: BorrowedFd, target: RawFd) -> nix::Result<()> {
    // SAFETY: dup2 onto 0..2 replaces our stdio; we own the source fd for the call.
    let r = unsafe { libc::dup2(fd.as_raw_fd(), target) };
    Errno::result(r).map(drop)
}

/// Whether the kernel knows a SECCOMP_FILTER_FLAG_* bit: with a NULL program it answers
/// EFAULT for known flags and EINVAL for unknown ones (runc's probe).
pub fn seccomp_flag_supported(flags: libc::c_ulong) -> bool {
    // SAFETY: a NULL program is never dereferenced successfully; the kernel returns EFAULT.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            std::ptr::null::<libc::sock_fprog>(),
        )
    };
    ret < 0 && Errno::last() == Errno::EFAULT
}

/// A memfd holding `data`, sealed against any change (nobody, the container included, can
/// alter it). `exec`: executable (the trampoline; MFD_EXEC is required where vm.memfd_noexec is
/// set); otherwise not executable and inherited across exec (the hooks' state on stdin).
/// MFD_EXEC and MFD_NOEXEC_SEAL are unknown before 6.3: EINVAL, tried again without.
pub fn sealed_memfd(name: &CStr, data: &[u8], exec: bool) -> nix::Result<OwnedFd> {
    const MFD_NOEXEC_SEAL: libc::c_uint = 0x8;
    const MFD_EXEC: libc::c_uint = 0x10;
    let (flags, newer) = if exec {
        (libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING, MFD_EXEC)
    } else {
        (libc::MFD_ALLOW_SEALING, MFD_NOEXEC_SEAL)
    };
    // SAFETY: plain syscall; name is NUL-terminated.
    let mut ret = unsafe { libc::syscall(libc::SYS_memfd_create, name.as_ptr(), flags | newer) };
    if ret < 0 && Errno::last() == Errno::EINVAL {
        // SAFETY: as above.
        ret = unsafe { libc::syscall(libc::SYS_memfd_create, name.as_ptr(), flags) };
    }
    let fd = Errno::result(ret)?;
    // SAFETY: the kernel returned a new fd that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let mut rest = data;
    while !rest.is_empty() {
        let n = nix::unistd::write(&fd, rest)?;
        rest = &rest[n..];
    }
    if exec {
        // Execute-only: a process that cannot read the file it execs is not dumpable from the
        // exec on, so a non-root container process cannot ptrace or read the trampoline.
        nix::sys::stat::fchmod(fd.as_raw_fd(), nix::sys::stat::Mode::from_bits_truncate(0o111))?;
    }
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl F_ADD_SEALS on an fd we own, integer argument.
    Errno::result(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
    Ok(fd)
}

/// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)`; returns only on failure.
pub fn execveat_fd(fd: BorrowedFd, argv: &[&CStr], envp: &[&CStr]) -> Errno {
    let (a, e) = (c_array(argv), c_array(envp));
    // SAFETY: both arrays are NULL-terminated and point into CStrs that outlive the call; ""
    // with AT_EMPTY_PATH executes the fd itself.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            a.as_ptr(),
            e.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    Errno::last()
}

/// `personality(2)`: set the execution domain and flags (they survive execve).
pub fn set_personality(persona: u64) -> nix::Result<()> {
    // SAFETY: plain syscall with an integer argument.
    let ret = unsafe { libc::personality(persona as libc::c_ulong) };
    Errno::result(ret).map(drop)
}

/// `struct sched_attr` as `sched_setattr(2)` takes it (SCHED_ATTR_SIZE_VER1, 56 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SchedAttr {
    pub size: u32,
    pub policy: u32,
    pub flags: u64,
    pub nice: i32,
    pub priority: u32,
    pub runtime: u64,
    pub deadline: u64,
    pub period: u64,
    pub util_min: u32,
    pub util_max: u32,
}

/// `sched_setattr(2)` on the calling thread.
pub fn sched_setattr(attr: &SchedAttr) -> nix::Result<()> {
    let mut a = *attr;
    a.size = std::mem::size_of::<SchedAttr>() as u32;
    // SAFETY: `a` is a valid sched_attr whose size field matches the struct passed.
    let ret = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &a as *const SchedAttr, 0) };
    Errno::result(ret).map(drop)
}

/// `ioprio_set(IOPRIO_WHO_PROCESS, 0, ioprio)`: the calling thread's I/O class and level.
pub fn ioprio_set_self(ioprio: i32) -> nix::Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    // SAFETY: plain syscall with integer arguments.
    let ret = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, ioprio) };
    Errno::result(ret).map(drop)
}

/// `set_mempolicy(2)`: `mode` with its MPOL_F_* flags; `nodes` a bitmask, empty for none.
pub fn set_mempolicy(mode: i32, nodes: &[u64]) -> nix::Result<()> {
    // The kernel reads maxnode - 1 bits.
    let (ptr, maxnode) = if nodes.is_empty() {
        (std::ptr::null(), 0)
    } else {
        (nodes.as_ptr(), nodes.len() as libc::c_ulong * 64 + 1)
    };
    // SAFETY: `ptr` is NULL or points at `nodes`, which holds maxnode - 1 bits.
    let ret = unsafe { libc::syscall(libc::SYS_set_mempolicy, mode, ptr, maxnode) };
    Errno::result(ret).map(drop)
}

/// `sched_setaffinity(2)` of `pid` (0: the calling thread) to the CPUs set in `mask`.
pub fn sched_setaffinity(pid: i32, mask: &[u64]) -> nix::Result<()> {
    // SAFETY: pointer and byte length describe `mask`.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_sched_setaffinity,
            pid,
            std::mem::size_of_val(mask),
            mask.as_ptr(),
        )
    };
    Errno::result(ret).map(drop)
}

/// `sched_getaffinity(2)` of `pid` (0: the calling thread), as a bitmask.
pub fn sched_getaffinity(pid: i32) -> nix::Result<Vec<u64>> {
    // Room for 8192 CPUs; the kernel answers EINVAL if it has more.
    let mut mask = vec![0u64; 128];
    // SAFETY: pointer and byte length describe `mask`, which the kernel fills.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_sched_getaffinity,
            pid,
            std::mem::size_of_val(mask.as_slice()),
            mask.as_mut_ptr(),
        )
    };
    Errno::result(ret)?;
    Ok(mask)
}
