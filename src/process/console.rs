//! process.terminal: a pty from the container's own devpts instance. The child opens it, mounts
//! the peer on /dev/console and sends the master to the parent, which hands it to the caller's
//! `--console-socket` (runc's contract) or, for a foreground `run`, relays it itself.

use crate::rootfs::resolve;
use crate::sys::{self, fd_path};
use anyhow::{anyhow, bail, Result};
use nix::sys::signal::{SigSet, Signal};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// Unix98 pty slaves have majors 136..=143.
fn is_pty(fd: BorrowedFd) -> bool {
    nix::sys::stat::fstat(fd.as_raw_fd()).is_ok_and(|st| {
        st.st_mode & libc::S_IFMT == libc::S_IFCHR && (136..=143).contains(&nix::sys::stat::major(st.st_rdev))
    })
}

/// (master, peer) from the devpts reached through `ptmx` (inside the container).
pub fn open_pty(ptmx: OwnedFd, size: Option<(u16, u16)>) -> Result<(OwnedFd, OwnedFd)> {
    sys::unlockpt(ptmx.as_fd()).map_err(|e| anyhow!("unlock pty: {e}"))?;
    let peer = sys::pty_peer(ptmx.as_fd()).map_err(|e| anyhow!("open pty peer: {e}"))?;
    if !is_pty(peer.as_fd()) {
        bail!("pty peer is not a pty device");
    }
    if let Some((rows, cols)) = size {
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        sys::set_winsize(peer.as_fd(), &ws).map_err(|e| anyhow!("set console size: {e}"))?;
    }
    Ok((ptmx, peer))
}

/// Before pivot_root: open the container's ptmx in-root and bind the peer onto /dev/console,
/// by fd, so no /dev/pts/N path is ever looked up (CVE-2025-52565).
pub fn open_in_rootfs(root: BorrowedFd, size: Option<(u16, u16)>) -> Result<(OwnedFd, OwnedFd)> {
    let ptmx = sys::openat2(
        root,
        c"dev/pts/ptmx",
        libc::O_RDWR | libc::O_NOCTTY,
        0,
        sys::RESOLVE_IN_ROOT | sys::RESOLVE_NO_MAGICLINKS,
    )
    .map_err(|e| anyhow!("open /dev/pts/ptmx in the container (process.terminal needs a devpts mount): {e}"))?;
    let (master, peer) = open_pty(ptmx, size)?;
    let console = resolve::mkfile(root, Path::new("dev/console"))?;
    nix::mount::mount(
        Some(fd_path(peer.as_fd()).as_str()),
        fd_path(console.as_fd()).as_str(),
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| anyhow!("bind pty on /dev/console: {e}"))?;
    Ok((master, peer))
}

/// runc (fixStdioPermissions): the process's uid owns its pty, so a non-root process can use
/// its terminal (stty, a shell's job control). The group stays what devpts gave it (the
/// mount's gid=, the tty group). A uid the kernel refuses (unmapped in the user namespace:
/// EINVAL; an owner unmapped there: EPERM; EROFS) leaves the pty as it is, as in runc.
pub fn give_to_user(peer: &OwnedFd, uid: u32) -> Result<()> {
    use nix::errno::Errno;
    let st = nix::sys::stat::fstat(peer.as_raw_fd()).map_err(|e| anyhow!("stat the pty: {e}"))?;
    if st.st_uid == uid {
        return Ok(());
    }
    match nix::unistd::fchown(peer.as_raw_fd(), Some(nix::unistd::Uid::from_raw(uid)), None) {
        Ok(()) | Err(Errno::EINVAL | Errno::EPERM | Errno::EROFS) => Ok(()),
        Err(e) => bail!("chown the pty to uid {uid}: {e}"),
    }
}

/// The peer becomes stdin/stdout/stderr and, with `ctty`, our controlling terminal (otherwise
/// that of the process the trampoline forks, in a session of its own: trampoline.c "P").
pub fn attach(peer: &OwnedFd, ctty: bool) -> Result<()> {
    for target in 0..3 {
        sys::dup_onto(peer.as_fd(), target).map_err(|e| anyhow!("dup pty onto fd {target}: {e}"))?;
    }
    if !ctty {
        return Ok(());
    }
    sys::set_ctty(peer.as_fd()).map_err(|e| anyhow!("set controlling terminal: {e}"))
}

/// Hand the master to the caller's console socket, runc-style: payload is the pty's name.
pub fn send_to_socket(path: &str, master: &OwnedFd) -> Result<()> {
    let stream =
        std::os::unix::net::UnixStream::connect(path).map_err(|e| anyhow!("connect console socket {path}: {e}"))?;
    let name = format!("/dev/pts/{}", sys::pty_number(master.as_fd()).unwrap_or(0));
    super::sync::send_with_fd(stream.as_raw_fd(), name.as_bytes(), master.as_fd())
        .map_err(|e| anyhow!("send pty master to {path}: {e}"))
}

/// `--pidfd-socket` (runc 1.2): connected before anything is made, so a bad path fails early.
pub fn connect_pidfd_socket(path: Option<&str>) -> Result<Option<std::os::unix::net::UnixStream>> {
    path.map(|p| std::os::unix::net::UnixStream::connect(p).map_err(|e| anyhow!("failed to dial {p}: {e}")))
        .transpose()
}

/// Send a pidfd of `pid` (the container's init, or an exec'd process) on the pidfd socket, as
/// runc's setupPidfd: the payload names the kind of process, "standard" (create, run) or
/// "setns" (exec). `pid` is our child (or, after CLONE_PARENT, our grandchild made our child),
/// so it cannot be reaped and reused before we open it.
pub fn send_pidfd(stream: Option<std::os::unix::net::UnixStream>, pid: i32, kind: &str) -> Result<()> {
    let Some(stream) = stream else { return Ok(()) };
    let fd = sys::pidfd_open(pid).map_err(|e| anyhow!("failed to pidfd_open: {e}"))?;
    super::sync::send_with_fd(stream.as_raw_fd(), kind.as_bytes(), fd.as_fd())
        .map_err(|e| anyhow!("failed to send pidfd on socket: {e}"))
}

/// Where the pty master goes: the caller's console socket (runc's contract), or back to the
/// caller of this function (a foreground run/exec relays it itself).
pub fn hand_over(master: Option<OwnedFd>, socket: Option<&str>) -> Result<Option<OwnedFd>> {
    match (master, socket) {
        (Some(m), Some(path)) => {
            send_to_socket(path, &m)?;
            Ok(None)
        }
        (Some(m), None) => {
            // runc's foreground relay (tty.go recvtty): the process's "\n" reaches our stdout
            // as it is; a terminal there adds its own "\r" (RawMode keeps OPOST), a file or a
            // pipe gets the bytes the process wrote.
            clear_onlcr(m.as_fd()).map_err(|e| anyhow!("clear ONLCR on the pty: {e}"))?;
            Ok(Some(m))
        }
        (None, _) => Ok(None),
    }
}

fn clear_onlcr(master: BorrowedFd) -> nix::Result<()> {
    use nix::sys::termios::{tcgetattr, tcsetattr, OutputFlags, SetArg};
    let mut t = tcgetattr(master)?;
    t.output_flags.remove(OutputFlags::ONLCR);
    tcsetattr(master, SetArg::TCSANOW, &t)
}

/// Restores the caller's terminal settings when the relay ends.
struct RawMode(Option<nix::sys::termios::Termios>);

impl RawMode {
    fn enter() -> RawMode {
        let stdin = std::io::stdin();
        let Ok(orig) = nix::sys::termios::tcgetattr(stdin.as_fd()) else {
            return RawMode(None);
        };
        let mut raw = orig.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        // As containerd/console's SetRaw (runc): output processing stays on, so the pty's bare
        // "\n" (ONLCR is off there, see hand_over) still starts a new line on our terminal.
        raw.output_flags.insert(nix::sys::termios::OutputFlags::OPOST);
        let _ = nix::sys::termios::tcsetattr(stdin.as_fd(), nix::sys::termios::SetArg::TCSANOW, &raw);
        RawMode(Some(orig))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(std::io::stdin().as_fd(), nix::sys::termios::SetArg::TCSANOW, t);
        }
    }
}

fn copy_size(master: BorrowedFd) {
    if let Ok(ws) = sys::get_winsize(std::io::stdin().as_fd()) {
        let _ = sys::set_winsize(master, &ws);
    }
}

fn write_all(fd: BorrowedFd, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(nix::errno::Errno::EINTR) | Err(nix::errno::Errno::EAGAIN) => continue,
            Err(_) => return false,
        }
    }
    true
}

/// Foreground `run`/`exec` with a terminal and no console socket: relay between our stdio and
/// the pty, forward signals (SIGWINCH resizes), and return the process's exit code.
pub fn relay(pid: i32, set: &SigSet, master: OwnedFd) -> Result<i32> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    let sfd = SignalFd::with_flags(set, SfdFlags::SFD_CLOEXEC).map_err(|e| anyhow!("signalfd: {e}"))?;
    let _raw = RawMode::enter();
    copy_size(master.as_fd());
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut stdin_open = true;
    let mut code = None;
    let mut buf = [0u8; 8192];
    loop {
        let mut fds = vec![
            PollFd::new(sfd.as_fd(), PollFlags::POLLIN),
            PollFd::new(master.as_fd(), PollFlags::POLLIN),
        ];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => bail!("poll: {e}"),
        }
        let ready = |i: usize| fds.get(i).and_then(|f| f.revents()).unwrap_or(PollFlags::empty());
        let (sig_ev, pty_ev, in_ev) = (ready(0), ready(1), ready(2));
        if !pty_ev.is_empty() {
            match nix::unistd::read(master.as_raw_fd(), &mut buf) {
                Ok(n) if n > 0 => {
                    write_all(stdout.as_fd(), &buf[..n]);
                }
                // EIO: every peer fd is closed; the process is gone or going.
                _ => {
                    if code.is_some() {
                        break;
                    }
                }
            }
        }
        if !in_ev.is_empty() {
            match nix::unistd::read(stdin.as_raw_fd(), &mut buf) {
                Ok(n) if n > 0 => {
                    write_all(master.as_fd(), &buf[..n]);
                }
                _ => stdin_open = false,
            }
        }
        if !sig_ev.is_empty() {
            if let Ok(Some(info)) = sfd.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGCHLD) => {
                        while let Ok(st) = nix::sys::wait::waitpid(None, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
                            match st {
                                nix::sys::wait::WaitStatus::StillAlive => break,
                                nix::sys::wait::WaitStatus::Exited(p, c) if p.as_raw() == pid => code = Some(c),
                                nix::sys::wait::WaitStatus::Signaled(p, s, _) if p.as_raw() == pid => {
                                    code = Some(128 + s as i32)
                                }
                                _ => {}
                            }
                        }
                    }
                    Ok(Signal::SIGWINCH) => copy_size(master.as_fd()),
                    Ok(s) => {
                        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), s);
                    }
                    Err(_) => {}
                }
            }
        }
        if code.is_some() && pty_ev.is_empty() {
            // Exited and nothing more to read right now: drain without blocking, then stop.
            let _ = nix::fcntl::fcntl(
                master.as_raw_fd(),
                nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
            );
            while let Ok(n) = nix::unistd::read(master.as_raw_fd(), &mut buf) {
                if n == 0 || !write_all(stdout.as_fd(), &buf[..n]) {
                    break;
                }
            }
            break;
        }
    }
    Ok(code.unwrap_or(0))
}
