//! The parent <-> child protocol over one `socketpair(AF_UNIX, SOCK_SEQPACKET|SOCK_CLOEXEC)`.
//! SEQPACKET keeps message boundaries, and EOF (a zero-length read) means the peer died or
//! exec'd: the socket is CLOEXEC, so a successful execve closes the child's end.
//!
//! Every message is one step; its number is its tag on the wire and the order in which the
//! steps can occur (a step whose condition does not hold is left out). Each place that sends
//! or waits for one is marked `// sync N` at both ends: the parent (`launch` in mod.rs,
//! commands/create.rs, commands/exec.rs), the init (init.rs) and the trampoline
//! (trampoline.c, whose `MSG_*` numbers a unit test below checks against these).
//!
//! | # | direction      | message            | when                                                        |
//! |---|----------------|--------------------|-------------------------------------------------------------|
//! | 1 | parent → child | `Go`               | id maps written (userns at clone), oom score, the child in the container's cgroups (cloned into them on v2; cgroup.procs written on v1 and hybrid) unless 10 or the fork path (6) places it |
//! | 2 | child → parent | `MapRequest`       | only when the child unshared a user ns itself (join path)    |
//! | 3 | parent → child | `MapDone`          | answer to 2: uid_map / gid_map written                      |
//! | 4 | child → parent | `NetDevices`       | only with linux.netDevices: the child is in the container's network namespace (joined, or made at clone or by its unshare), before its fork and anything else; the parent moves the devices into /proc/<pid>/ns/net |
//! | 5 | parent → child | `NetDevicesDone`   | answer to 4: the devices are in, renamed, with their addresses, up |
//! | 6 | child → parent | `Pid(n)`           | only on the fork path (not exec's `fork_last`, see 20): host pid of the real init, sent by the intermediate, which then exits |
//! | 7 | parent → child | `PidSeen`          | answer to 6: the real init is in the container's cgroups (unless the intermediate was cloned into them); it waits for this, so it acts in its cgroups and nothing it sends can overtake its pid |
//! | 8 | child → parent | `RootMount(id)`    | no mount namespace of the container's own: the mount id of the rootfs clone about to be attached (rootfs/inplace.rs) |
//! | 9 | parent → child | `RootMountSaved`   | answer to 8: recorded in state.json, so delete finds it even if create dies now |
//! |10 | child → parent | `JoinWait`         | the one exception, on the fast path only (`Plan::joins_cgroups_after_go`: no joins, no fork): the parent places the init right after Go (cgroup.procs on v1 and hybrid: the first write after a quiet spell waits for an RCU grace period) while it unshares its network, IPC and UTS namespaces and prepares its rootfs mount; then the init asks, before its first mount in the rootfs and its cgroup namespace |
//! |11 | parent → child | `Joined`           | answer to 10: the init is in its cgroups (the parent placed it before reading any message) |
//! |12 | child → parent | `MountSource(i)`   | mount `i`'s source must come from the host side (idmap.rs `host_source`): an idmapped bind from inside the rootfs, or a source the container's root cannot reach |
//! |13 | parent → child | `MountSourceFd` + fd | answer to 12: the source as a detached mount tree (SCM_RIGHTS); the parent fails create instead when it cannot make it |
//! |14 | child → parent | `Console` + fd     | process.terminal: the pty master (SCM_RIGHTS); create: in the rootfs, after its mounts; exec: from the container's devpts |
//! |15 | child → parent | `Hooks`            | mounts done, before pivot_root: parent runs prestart + createRuntime |
//! |16 | parent → child | `HooksDone(pid)`   | answer to 15: the init's host pid, for the state JSON the child's createContainer/startContainer hooks read (the child builds it: with annotations it can outgrow one message) |
//! |17 | child → parent | `SeccompFd` + fd   | only with SCMP_ACT_NOTIFY: the listener fd (SCM_RIGHTS) right after the filter is loaded; the parent passes it to the agent at listenerPath |
//! |18 | child → parent | `Ready`            | the container is set up and waits for start                 |
//! |19 | parent → child | `Committed`        | create: state written; the child drops pdeathsig and execs the trampoline, whose exec closes the child's end (the parent sees EOF: the created init is the trampoline) |
//! |20 | child → parent | `ForkedPid(n)`     | exec with `fork_last`: the trampoline (trampoline.c "p") forked the process into the pid namespace; its host pid, sent by the trampoline, which then exits (no answer) |
//! |21 | parent → child | `Start`            | run/exec: read by the trampoline (it holds a dup of the socket); EOF on the parent's side confirms the program's execve |
//! |22 | child → parent | `ExecFailed(errno, path)` | run/exec: the trampoline (trampoline.c) could not exec the program; a startContainer hook failure comes as `Error` |
//! |23 | child → parent | `Error(msg)`       | at any step: it failed, in runc's words where engines parse them; the child (init, intermediate or trampoline) exits right after. Only text: every failure ends as berth's error message, which no caller branches on by errno (an exec failure, whose errno picks the text, is 22) |

use anyhow::{anyhow, bail, Result};
use nix::sys::socket::{recv, send, MsgFlags};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

#[derive(Debug, PartialEq, Eq)]
pub enum Msg {
    Go,
    MapRequest,
    MapDone,
    NetDevices,
    NetDevicesDone,
    Pid(i32),
    PidSeen,
    RootMount(i32),
    RootMountSaved,
    JoinWait,
    Joined,
    MountSource(i32),
    MountSourceFd,
    Console,
    Hooks,
    HooksDone(i32),
    SeccompFd,
    Ready,
    Committed,
    ForkedPid(i32),
    Start,
    ExecFailed(i32, String),
    Error(String),
}

impl Msg {
    fn encode(&self) -> Vec<u8> {
        let (tag, num, text): (u8, i32, &str) = match self {
            Msg::Go => (1, 0, ""),
            Msg::MapRequest => (2, 0, ""),
            Msg::MapDone => (3, 0, ""),
            Msg::NetDevices => (4, 0, ""),
            Msg::NetDevicesDone => (5, 0, ""),
            Msg::Pid(p) => (6, *p, ""),
            Msg::PidSeen => (7, 0, ""),
            Msg::RootMount(id) => (8, *id, ""),
            Msg::RootMountSaved => (9, 0, ""),
            Msg::JoinWait => (10, 0, ""),
            Msg::Joined => (11, 0, ""),
            Msg::MountSource(i) => (12, *i, ""),
            Msg::MountSourceFd => (13, 0, ""),
            Msg::Console => (14, 0, ""),
            Msg::Hooks => (15, 0, ""),
            Msg::HooksDone(p) => (16, *p, ""),
            Msg::SeccompFd => (17, 0, ""),
            Msg::Ready => (18, 0, ""),
            Msg::Committed => (19, 0, ""),
            Msg::ForkedPid(p) => (20, *p, ""),
            Msg::Start => (21, 0, ""),
            Msg::ExecFailed(e, p) => (22, *e, p.as_str()),
            Msg::Error(m) => (23, 0, m.as_str()),
        };
        let mut v = Vec::with_capacity(5 + text.len());
        v.push(tag);
        v.extend_from_slice(&num.to_le_bytes());
        v.extend_from_slice(text.as_bytes());
        v
    }

    fn decode(b: &[u8]) -> Result<Msg> {
        if b.len() < 5 {
            bail!("short sync message ({} bytes)", b.len());
        }
        let num = i32::from_le_bytes([b[1], b[2], b[3], b[4]]);
        Ok(match b[0] {
            1 => Msg::Go,
            2 => Msg::MapRequest,
            3 => Msg::MapDone,
            4 => Msg::NetDevices,
            5 => Msg::NetDevicesDone,
            6 => Msg::Pid(num),
            7 => Msg::PidSeen,
            8 => Msg::RootMount(num),
            9 => Msg::RootMountSaved,
            10 => Msg::JoinWait,
            11 => Msg::Joined,
            12 => Msg::MountSource(num),
            13 => Msg::MountSourceFd,
            14 => Msg::Console,
            15 => Msg::Hooks,
            16 => Msg::HooksDone(num),
            17 => Msg::SeccompFd,
            18 => Msg::Ready,
            19 => Msg::Committed,
            20 => Msg::ForkedPid(num),
            21 => Msg::Start,
            22 => Msg::ExecFailed(num, String::from_utf8_lossy(&b[5..]).into_owned()),
            23 => Msg::Error(String::from_utf8_lossy(&b[5..]).into_owned()),
            t => bail!("unknown sync message tag {t}"),
        })
    }
}

pub struct Sync {
    pub fd: OwnedFd,
}

impl Sync {
    pub fn pair() -> Result<(Sync, Sync)> {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        let (a, b) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
            .map_err(|e| anyhow!("socketpair: {e}"))?;
        Ok((Sync { fd: a }, Sync { fd: b }))
    }

    pub fn send(&self, m: &Msg) -> Result<()> {
        loop {
            match send(self.fd.as_raw_fd(), &m.encode(), MsgFlags::MSG_NOSIGNAL) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => bail!("sync send {m:?}: {e}"),
            }
        }
    }

    /// Send a message with one fd attached (SCM_RIGHTS).
    pub fn send_fd(&self, m: &Msg, fd: std::os::fd::BorrowedFd) -> Result<()> {
        send_with_fd(self.fd.as_raw_fd(), &m.encode(), fd)
    }

    /// Next message and the fd that came with it, or None on EOF.
    pub fn recv_fd(&self) -> Result<Option<(Msg, Option<OwnedFd>)>> {
        let mut buf = vec![0u8; 65536];
        let Some((n, fd)) = recv_with_fd(self.fd.as_fd(), &mut buf)? else {
            return Ok(None);
        };
        Ok(Some((Msg::decode(&buf[..n])?, fd)))
    }

    /// Next message, or None on EOF.
    pub fn recv(&self) -> Result<Option<Msg>> {
        let mut buf = vec![0u8; 65536];
        loop {
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(0) => return Ok(None),
                Ok(n) => return Msg::decode(&buf[..n]).map(Some),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => bail!("sync recv: {e}"),
            }
        }
    }

    /// Wait for the peer to close its end (the init exec'd, or closed it on purpose); an Error
    /// from it becomes this side's error.
    pub fn expect_eof(&self) -> Result<()> {
        match self.recv()? {
            None => Ok(()),
            // sync 23
            Some(Msg::Error(msg)) => Err(anyhow!(msg)),
            // sync 22
            Some(Msg::ExecFailed(e, path)) => Err(anyhow!(
                "unable to start container process: exec {path:?}: {}",
                crate::errtext::errno(nix::errno::Errno::from_raw(e))
            )),
            Some(m) => bail!("sync: unexpected {m:?}"),
        }
    }

    /// Wait for one specific message; an Error from the peer becomes this side's error.
    pub fn expect(&self, want: Msg) -> Result<()> {
        match self.recv()? {
            Some(m) if m == want => Ok(()),
            // sync 23
            Some(Msg::Error(msg)) => Err(anyhow!(msg)),
            Some(m) => bail!("sync: expected {want:?}, got {m:?}"),
            None => bail!("sync: peer exited while waiting for {want:?}"),
        }
    }

    /// Like `expect`, for a message that carries an fd.
    pub fn expect_fd(&self, want: Msg) -> Result<OwnedFd> {
        match self.recv_fd()? {
            Some((m, Some(fd))) if m == want => Ok(fd),
            Some((m, None)) if m == want => bail!("sync: {want:?} without its fd"),
            // sync 23
            Some((Msg::Error(msg), _)) => Err(anyhow!(msg)),
            Some((m, _)) => bail!("sync: expected {want:?}, got {m:?}"),
            None => bail!("sync: peer exited while waiting for {want:?}"),
        }
    }

    /// An Error the peer already sent, without waiting (None if nothing is queued). Used when a
    /// step on the peer's pid failed: if the peer died of its own error, that is the real cause.
    pub fn pending_error(&self) -> Option<String> {
        let mut buf = vec![0u8; 65536];
        match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
            Ok(n) if n > 0 => match Msg::decode(&buf[..n]) {
                // sync 23
                Ok(Msg::Error(m)) => Some(m),
                _ => None,
            },
            _ => None,
        }
    }
}

/// sendmsg with `data` and one fd in SCM_RIGHTS (also how the pty master reaches a console
/// socket, as runc sends it: the payload is the pty's name).
pub fn send_with_fd(sock: std::os::fd::RawFd, data: &[u8], fd: std::os::fd::BorrowedFd) -> Result<()> {
    use nix::sys::socket::{sendmsg, ControlMessage};
    let fds = [fd.as_raw_fd()];
    let iov = [std::io::IoSlice::new(data)];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    loop {
        match sendmsg::<()>(sock, &iov, &cmsg, MsgFlags::MSG_NOSIGNAL, None) {
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => bail!("send fd: {e}"),
        }
    }
}

fn recv_with_fd(sock: std::os::fd::BorrowedFd, buf: &mut [u8]) -> Result<Option<(usize, Option<OwnedFd>)>> {
    loop {
        match crate::sys::recv_with_fd(sock, buf) {
            Ok((0, _)) => return Ok(None),
            Ok(got) => return Ok(Some(got)),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => bail!("sync recv: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let (a, b) = Sync::pair().unwrap();
        for m in [
            Msg::Go,
            Msg::Pid(42),
            Msg::Error("mount proc on /proc: EACCES".into()),
            Msg::Start,
            Msg::RootMount(77),
            Msg::RootMountSaved,
            Msg::MountSource(7),
            Msg::Joined,
            Msg::JoinWait,
        ] {
            a.send(&m).unwrap();
            assert_eq!(b.recv().unwrap(), Some(m));
        }
        let (r, _w) = nix::unistd::pipe().unwrap();
        a.send_fd(&Msg::SeccompFd, r.as_fd()).unwrap();
        let (m, fd) = b.recv_fd().unwrap().unwrap();
        assert_eq!(m, Msg::SeccompFd);
        assert!(fd.is_some());
        a.send_fd(&Msg::MountSourceFd, r.as_fd()).unwrap();
        assert!(b.expect_fd(Msg::MountSourceFd).is_ok());
        drop(a);
        assert_eq!(b.recv().unwrap(), None);
    }

    /// The tags are the steps 1..N of the table, in its order, and the trampoline's C
    /// constants name the same ones.
    #[test]
    fn tags_are_the_table_and_the_trampoline_agrees() {
        let steps = [
            Msg::Go,
            Msg::MapRequest,
            Msg::MapDone,
            Msg::NetDevices,
            Msg::NetDevicesDone,
            Msg::Pid(0),
            Msg::PidSeen,
            Msg::RootMount(0),
            Msg::RootMountSaved,
            Msg::JoinWait,
            Msg::Joined,
            Msg::MountSource(0),
            Msg::MountSourceFd,
            Msg::Console,
            Msg::Hooks,
            Msg::HooksDone(0),
            Msg::SeccompFd,
            Msg::Ready,
            Msg::Committed,
            Msg::ForkedPid(0),
            Msg::Start,
            Msg::ExecFailed(0, String::new()),
            Msg::Error(String::new()),
        ];
        let table = include_str!("sync.rs");
        for (i, m) in steps.iter().enumerate() {
            let n = i + 1;
            let e = m.encode();
            assert_eq!(usize::from(e[0]), n, "{m:?}");
            assert_eq!(&Msg::decode(&e).unwrap(), m);
            let name = format!("{m:?}");
            let name = name.split('(').next().unwrap();
            let row = format!("//! |{n:>2} |");
            let row = table
                .lines()
                .find(|l| l.starts_with(&row) || l.starts_with(&format!("//! | {n} |")));
            assert!(
                row.is_some_and(|r| r.contains(&format!("`{name}"))),
                "table row {n} is not {name}"
            );
        }
        let c = include_str!("trampoline.c");
        let define = |name: &str| {
            let l = c
                .lines()
                .find_map(|l| l.strip_prefix(&format!("#define {name} ")))
                .unwrap_or_else(|| panic!("trampoline.c defines no {name}"));
            l.trim().parse::<u8>().unwrap()
        };
        assert_eq!(define("MSG_FORKED_PID"), Msg::ForkedPid(0).encode()[0]);
        assert_eq!(define("MSG_EXEC_FAILED"), Msg::ExecFailed(0, String::new()).encode()[0]);
        assert_eq!(define("MSG_ERROR"), Msg::Error(String::new()).encode()[0]);
    }
}
