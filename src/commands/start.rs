use super::Global;
use crate::container::state::{Container, Status, FIFO};
use anyhow::{anyhow, bail, Result};

pub fn run(g: &Global, id: &str) -> Result<i32> {
    let c = Container::load(&g.root, id, true)?;
    match c.status() {
        s if s.can_start() => {}
        Status::Stopped => bail!("cannot start a container that has stopped"),
        Status::Running => bail!("cannot start an already running container"),
        s => bail!("cannot start a container in the {} state", s.as_str()),
    }
    let listener = crate::notify::listen_if(&c.dir, c.state.notify_socket.as_deref())?;
    let fifo = c.dir.join(FIFO);
    // Non-blocking: if the init died there is no reader and open fails with ENXIO at once.
    let fd = crate::sys::open(&fifo, libc::O_WRONLY | libc::O_NONBLOCK, 0).map_err(|e| match e {
        nix::errno::Errno::ENXIO => anyhow!("cannot start a container that has stopped"),
        e => anyhow!("open {}: {e}", fifo.display()),
    })?;
    nix::unistd::write(&fd, b"0").map_err(|e| anyhow!("write {}: {e}", fifo.display()))?;
    std::fs::remove_file(&fifo).map_err(|e| anyhow!("remove {}: {e}", fifo.display()))?;
    // The init holds the fifo's only read end until its final execve closes it (trampoline.c):
    // once our write end polls POLLERR (no reader left) the startContainer hooks have run and
    // the process is executed (or the init died). poststart hooks run after that (runtime-spec).
    let mut fds = [nix::poll::PollFd::new(
        std::os::fd::AsFd::as_fd(&fd),
        nix::poll::PollFlags::empty(),
    )];
    loop {
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
            Ok(_) if fds[0].any().unwrap_or(true) => break,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => bail!("wait for the container process to start: {e}"),
        }
    }
    drop(fd);
    if let Err(e) = c.run_poststart() {
        super::delete::stop(&c);
        return Err(e);
    }
    if let Some(l) = listener {
        // runc's start returns once the container is ready (sd_notify), or gone.
        l.forward_ready(c.state.pid, || c.init_alive())?;
    }
    Ok(0)
}
