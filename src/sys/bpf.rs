//! bpf(2) for cgroup v2 device filters: load a BPF_PROG_TYPE_CGROUP_DEVICE program, attach it
//! to a cgroup (atomically replacing the previous one), query and detach. The attribute
//! layouts are the kernel's `union bpf_attr` members for each command.

use nix::errno::Errno;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

const BPF_PROG_LOAD: i32 = 5;
const BPF_PROG_ATTACH: i32 = 8;
const BPF_PROG_DETACH: i32 = 9;
const BPF_PROG_GET_FD_BY_ID: i32 = 13;
const BPF_PROG_QUERY: i32 = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
pub const BPF_CGROUP_DEVICE: u32 = 6;
pub const BPF_F_ALLOW_MULTI: u32 = 2;
pub const BPF_F_REPLACE: u32 = 4;

#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct Attach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct Query {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
}

#[repr(C)]
#[derive(Default)]
struct GetFd {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// SAFETY contract (private): `attr` is a fully initialised attribute struct of type `T` whose
/// embedded addresses point to buffers that outlive the call.
unsafe fn bpf<T>(cmd: i32, attr: &mut T) -> nix::Result<i64> {
    // SAFETY: per this function's contract; the size passed is the struct's own.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>()) };
    Errno::result(r)
}

/// Load a device program; on failure the verifier log comes back with the errno.
pub fn prog_load_device(insns: &[u64]) -> Result<OwnedFd, (Errno, String)> {
    let license = b"Apache\0";
    let mut log = vec![0u8; 64 * 1024];
    let mut name = [0u8; 16];
    name[..5].copy_from_slice(b"berth");
    let mut a = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        prog_name: name,
        ..Default::default()
    };
    // SAFETY: insns, license and log live until the call returns; sizes match the buffers.
    match unsafe { bpf(BPF_PROG_LOAD, &mut a) } {
        // SAFETY: the kernel returned a new fd that nothing else owns.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) }),
        Err(e) => {
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            Err((e, String::from_utf8_lossy(&log[..end]).into_owned()))
        }
    }
}

pub fn prog_attach(cgroup: BorrowedFd, prog: BorrowedFd, flags: u32, replace: Option<BorrowedFd>) -> nix::Result<()> {
    let mut a = Attach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: flags,
        replace_bpf_fd: replace.map_or(0, |f| f.as_raw_fd() as u32),
    };
    // SAFETY: plain integers only.
    unsafe { bpf(BPF_PROG_ATTACH, &mut a) }.map(drop)
}

pub fn prog_detach(cgroup: BorrowedFd, prog: BorrowedFd) -> nix::Result<()> {
    let mut a = Attach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    // SAFETY: plain integers only.
    unsafe { bpf(BPF_PROG_DETACH, &mut a) }.map(drop)
}

/// Ids of the device programs attached directly to this cgroup.
pub fn prog_query(cgroup: BorrowedFd) -> nix::Result<Vec<u32>> {
    let mut ids = vec![0u32; 64];
    let mut a = Query {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    // SAFETY: prog_ids points to `prog_cnt` u32s that live until the call returns.
    unsafe { bpf(BPF_PROG_QUERY, &mut a) }?;
    ids.truncate(a.prog_cnt as usize);
    Ok(ids)
}

pub fn prog_fd_by_id(id: u32) -> nix::Result<OwnedFd> {
    let mut a = GetFd {
        id,
        ..Default::default()
    };
    // SAFETY: plain integers only.
    let fd = unsafe { bpf(BPF_PROG_GET_FD_BY_ID, &mut a) }?;
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}
