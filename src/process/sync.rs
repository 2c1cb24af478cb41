//! The parent <-> child protocol over one `socketpair(AF_UNIX, SOCK_SEQPACKET|SOCK_CLOEXEC)`.
//! SEQPACKET keeps message boundaries, and EOF (a zero-length read) means the peer died or
//! exec'd: the socket is CLOEXEC, so a successful execve closes the child's end.
//!
//! | # | direction      | message            | when                                                        |
//! |---|----------------|--------------------|-------------------------------------------------------------|
//! | 1 | parent → child | `Go`               | cgroups joined, id maps written (userns at clone), oom score |
//! | 2 | child → parent | `MapRequest`       | only when the child unshared a user ns itself (join path)    |
//! | 3 | parent → child | `MapDone`          | answer to 2: uid_map / gid_map written                      |
//! | 4 | child → parent | `Pid(n)`           | only on the fork path: host pid of the real init (then the intermediate exits) |
//! | 4'| child → parent | `SeccompFd` + fd   | only with SCMP_ACT_NOTIFY: the listener fd (SCM_RIGHTS) right after the filter is loaded; the parent passes it to the agent at listenerPath |
//! | 5 | child → parent | `Ready`            | the container is set up and waits for start                 |
//! | 5'| child → parent | `Error(errno,msg)` | any step failed; the child exits right after                |
//! | 6 | parent → child | `Committed`        | create: state written; child drops pdeathsig, closes its end (parent sees EOF) |
//! | 6'| parent → child | `Start`            | run: exec now; EOF on the parent's side confirms the execve  |

use anyhow::{anyhow, bail, Result};
use nix::sys::socket::{recv, send, MsgFlags};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

#[derive(Debug, PartialEq, Eq)]
pub enum Msg {
    Go,
    MapRequest,
    MapDone,
    Pid(i32),
    Ready,
    Error(i32, String),
    Committed,
    Start,
    SeccompFd,
}

impl Msg {
    fn encode(&self) -> Vec<u8> {
        let (tag, num, text): (u8, i32, &str) = match self {
            Msg::Go => (1, 0, ""),
            Msg::MapRequest => (2, 0, ""),
            Msg::MapDone => (3, 0, ""),
            Msg::Pid(p) => (4, *p, ""),
            Msg::Ready => (5, 0, ""),
            Msg::Error(e, m) => (6, *e, m.as_str()),
            Msg::Committed => (7, 0, ""),
            Msg::Start => (8, 0, ""),
            Msg::SeccompFd => (9, 0, ""),
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
            4 => Msg::Pid(num),
            5 => Msg::Ready,
            6 => Msg::Error(num, String::from_utf8_lossy(&b[5..]).into_owned()),
            7 => Msg::Committed,
            8 => Msg::Start,
            9 => Msg::SeccompFd,
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
    pub fn send_fd(&self, m: &Msg, fd: BorrowedFd) -> Result<()> {
        loop {
            match crate::sys::send_with_fds(self.fd.as_fd(), &m.encode(), &[fd]) {
                Ok(_) => return Ok(()),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => bail!("sync send {m:?}: {e}"),
            }
        }
    }

    /// Next message, or None on EOF.
    pub fn recv(&self) -> Result<Option<Msg>> {
        let mut buf = [0u8; 4096];
        loop {
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Ok(0) => return Ok(None),
                Ok(n) => return Msg::decode(&buf[..n]).map(Some),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => bail!("sync recv: {e}"),
            }
        }
    }

    /// Next message with the fd it carries, if any (None message on EOF).
    pub fn recv_fd(&self) -> Result<(Option<Msg>, Option<OwnedFd>)> {
        let mut buf = [0u8; 4096];
        loop {
            match crate::sys::recv_with_fds(self.fd.as_fd(), &mut buf) {
                Ok((0, _)) => return Ok((None, None)),
                Ok((n, fds)) => return Ok((Some(Msg::decode(&buf[..n])?), fds.into_iter().next())),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => bail!("sync recv: {e}"),
            }
        }
    }

    /// Wait for one specific message; an Error from the peer becomes this side's error.
    pub fn expect(&self, want: Msg) -> Result<()> {
        match self.recv()? {
            Some(m) if m == want => Ok(()),
            Some(Msg::Error(_, msg)) => Err(anyhow!(msg)),
            Some(m) => bail!("sync: expected {want:?}, got {m:?}"),
            None => bail!("sync: peer exited while waiting for {want:?}"),
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
            Msg::Error(13, "mount proc on /proc: EACCES".into()),
            Msg::Start,
        ] {
            a.send(&m).unwrap();
            assert_eq!(b.recv().unwrap(), Some(m));
        }
        let (r, _w) = nix::unistd::pipe().unwrap();
        a.send_fd(&Msg::SeccompFd, r.as_fd()).unwrap();
        let (m, fd) = b.recv_fd().unwrap();
        assert_eq!(m, Some(Msg::SeccompFd));
        assert!(fd.is_some());
        drop(a);
        assert_eq!(b.recv().unwrap(), None);
    }
}
