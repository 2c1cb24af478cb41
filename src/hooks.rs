//! runtime-spec hooks: each gets the container state JSON on stdin, exactly its args and env,
//! and is killed, with its process group, after its timeout. No hook can stall berth past that:
//! its pipes are served by one poll loop, and its exit, not EOF, ends the wait. Only poststop failures are warnings (the spec: all
//! poststop hooks run); any other failure fails the operation.

use anyhow::{anyhow, bail, Result};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use oci_spec::runtime::Hook;
use serde::Serialize;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// What hooks need, carried in the Plan (create) and in state.json (start, delete).
pub struct HookCtx {
    pub id: String,
    pub bundle: String,
    pub annotations: std::collections::BTreeMap<String, String>,
    pub hooks: oci_spec::runtime::Hooks,
}

pub fn list(h: &Option<Vec<Hook>>) -> &[Hook] {
    h.as_deref().unwrap_or(&[])
}

impl HookCtx {
    /// Hooks that run while the container is being created (parent and child meet for them).
    pub fn during_create(&self) -> bool {
        let h = &self.hooks;
        !(list(h.prestart()).is_empty()
            && list(h.create_runtime()).is_empty()
            && list(h.create_container()).is_empty()
            && list(h.start_container()).is_empty())
    }

    pub fn state(&self, status: &str, pid: i32) -> Vec<u8> {
        HookState {
            oci_version: crate::container::state::OCI_VERSION,
            id: &self.id,
            status,
            pid,
            bundle: &self.bundle,
            annotations: &self.annotations,
        }
        .json()
    }
}

/// The state document hooks read (runtime-spec "State").
#[derive(Serialize)]
pub struct HookState<'a> {
    #[serde(rename = "ociVersion")]
    pub oci_version: &'a str,
    pub id: &'a str,
    pub status: &'a str,
    pub pid: i32,
    pub bundle: &'a str,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: &'a std::collections::BTreeMap<String, String>,
}

impl HookState<'_> {
    pub fn json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// How much of each of a hook's stdout and stderr is kept for the error message: the last
/// 4 KiB. runc keeps everything; a hook that writes without end must not grow berth with it.
const KEEP: usize = 4096;

/// The tail of one output stream.
#[derive(Default)]
struct Tail {
    buf: Vec<u8>,
    cut: bool,
}

impl Tail {
    fn push(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
        if self.buf.len() > 2 * KEEP {
            self.buf.drain(..self.buf.len() - KEEP);
            self.cut = true;
        }
    }

    fn text(&self) -> String {
        let start = self.buf.len().saturating_sub(KEEP);
        let s = String::from_utf8_lossy(&self.buf[start..]);
        let dots = if self.cut || start > 0 { "..." } else { "" };
        format!("{dots}{}", s.trim_end())
    }
}

/// Go's text for an exit status, as runc prints it ("exit status 1").
fn status_text(st: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => match nix::sys::signal::Signal::try_from(sig) {
            Ok(s) => format!("signal: {s}"),
            Err(_) => format!("signal: {sig}"),
        },
        _ => format!("{st}"),
    }
}

/// Run one hook to completion (or its timeout), with runc's error texts. `dir`: its working
/// directory (None: ours).
pub fn run_one(kind: &str, i: usize, h: &Hook, state: &[u8], dir: Option<&Path>) -> Result<()> {
    let what = format!("error running {kind} hook #{i}");
    let path = h.path();
    let mut cmd = std::process::Command::new(path);
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    if let Some(args) = h.args() {
        if let Some((a0, rest)) = args.split_first() {
            cmd.arg0(a0).args(rest);
        }
    }
    cmd.env_clear();
    for e in h.env().iter().flatten() {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group: a hook past its timeout is killed with what it forked.
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| anyhow!("{what}: exec {}: {e}", path.display()))?;
    let timeout = h.timeout().filter(|t| *t > 0);
    // A timeout too far away to represent is no timeout (Instant + Duration would panic).
    let deadline = timeout.and_then(|t| Instant::now().checked_add(Duration::from_secs(t as u64)));
    let (mut out, mut err) = (Tail::default(), Tail::default());
    let status = match supervise(&mut child, state, deadline, [&mut out, &mut err]) {
        Ok(Some(st)) => st,
        ended => {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.kill();
            let _ = child.wait();
            ended.map_err(|e| anyhow!("{what}: {e:#}"))?;
            bail!(
                "{what}: hook ran past specified timeout of {:.1}s",
                timeout.unwrap_or(0) as f64
            );
        }
    };
    if !status.success() {
        bail!(
            "{what}: error running hook: {}, stdout: {}, stderr: {}",
            status_text(status),
            out.text(),
            err.text()
        );
    }
    Ok(())
}

/// Our ends of a hook's stdin, stdout and stderr, all non-blocking.
struct Pipes {
    stdin: Option<File>,
    written: usize,
    /// stdout, stderr
    outs: [Option<File>; 2],
}

/// What a poll entry stands for.
#[derive(Clone, Copy)]
enum Slot {
    Exit,
    Stdin,
    Out(usize),
}

impl Pipes {
    fn take(child: &mut std::process::Child, state: &[u8]) -> Result<Pipes> {
        let file = |fd: OwnedFd| File::from(fd);
        let p = Pipes {
            stdin: child.stdin.take().filter(|_| !state.is_empty()).map(|f| file(f.into())),
            written: 0,
            outs: [
                child.stdout.take().map(|f| file(f.into())),
                child.stderr.take().map(|f| file(f.into())),
            ],
        };
        for f in p.stdin.iter().chain(p.outs.iter().flatten()) {
            fcntl(f.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK)).map_err(|e| anyhow!("fcntl O_NONBLOCK: {e}"))?;
        }
        Ok(p)
    }

    /// Wait (at most `ms`, -1: no limit) until the hook exits or one of the pipes is ready.
    fn wait(&self, pidfd: Option<&OwnedFd>, ms: i32) -> Result<Vec<Slot>> {
        let mut fds = Vec::with_capacity(4);
        let mut slots = Vec::with_capacity(4);
        if let Some(p) = pidfd {
            fds.push(PollFd::new(p.as_fd(), PollFlags::POLLIN));
            slots.push(Slot::Exit);
        }
        if let Some(s) = &self.stdin {
            fds.push(PollFd::new(s.as_fd(), PollFlags::POLLOUT));
            slots.push(Slot::Stdin);
        }
        for (k, o) in self.outs.iter().enumerate() {
            if let Some(o) = o {
                fds.push(PollFd::new(o.as_fd(), PollFlags::POLLIN));
                slots.push(Slot::Out(k));
            }
        }
        match poll(&mut fds, PollTimeout::try_from(ms).unwrap_or(PollTimeout::NONE)) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => bail!("poll: {e}"),
        }
        let ready = fds.iter().map(|f| f.revents().is_some_and(|r| !r.is_empty()));
        Ok(slots.iter().zip(ready).filter(|(_, r)| *r).map(|(s, _)| *s).collect())
    }

    /// One write to stdin; it is closed (EOF for the hook) when the state is all written, or
    /// given up when the hook closed its end (EPIPE).
    fn feed(&mut self, state: &[u8]) {
        match self.stdin.as_mut().map(|s| s.write(&state[self.written..])) {
            Some(Ok(n)) => {
                self.written += n;
                if self.written == state.len() {
                    self.stdin = None;
                }
            }
            Some(Err(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
            _ => self.stdin = None,
        }
    }

    /// One read from stdout (0) or stderr (1) into its tail; false when there was nothing.
    fn collect(&mut self, k: usize, tail: &mut Tail, buf: &mut [u8]) -> bool {
        match self.outs[k].as_mut().map(|o| o.read(buf)) {
            Some(Ok(n)) if n > 0 => {
                tail.push(&buf[..n]);
                true
            }
            Some(Err(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => false,
            _ => {
                self.outs[k] = None;
                false
            }
        }
    }
}

/// Feed `state` to the hook's stdin and keep the tails of its stdout and stderr until it exits
/// (its status) or `deadline` passes (None). One poll loop and no thread, because this also
/// runs in the container's init. The hook's exit ends the wait, not EOF on its pipes: a
/// process it left behind may hold them open for ever. A hook that does not read its state is
/// no error (runc ignores EPIPE too).
fn supervise(
    child: &mut std::process::Child,
    state: &[u8],
    deadline: Option<Instant>,
    tails: [&mut Tail; 2],
) -> Result<Option<std::process::ExitStatus>> {
    let mut pipes = Pipes::take(child, state)?;
    // Readable once the hook exits (Linux 5.3); without it the loop looks every 10 ms.
    let pidfd = crate::sys::pidfd_open(child.id() as i32).ok();
    let mut buf = vec![0u8; 16384];
    loop {
        if let Some(st) = child.try_wait().map_err(|e| anyhow!("wait: {e}"))? {
            // What the hook wrote before it exited is in the pipes; a leftover may keep writing,
            // so take a bounded amount more.
            for (k, tail) in tails.into_iter().enumerate() {
                for _ in 0..16 {
                    if !pipes.collect(k, tail, &mut buf) {
                        break;
                    }
                }
            }
            return Ok(Some(st));
        }
        let mut wait = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => Some(left),
                _ => return Ok(None),
            },
            None => None,
        };
        if pidfd.is_none() {
            wait = Some(wait.map_or(Duration::from_millis(10), |w| w.min(Duration::from_millis(10))));
        }
        let ms = wait.map_or(-1, |w| w.as_millis().clamp(1, i32::MAX as u128) as i32);
        for slot in pipes.wait(pidfd.as_ref(), ms)? {
            match slot {
                Slot::Exit => {}
                Slot::Stdin => pipes.feed(state),
                Slot::Out(k) => {
                    pipes.collect(k, tails[k], &mut buf);
                }
            }
        }
    }
}

pub fn run_all(kind: &str, hooks: &[Hook], state: &[u8], dir: Option<&Path>) -> Result<()> {
    for (i, h) in hooks.iter().enumerate() {
        run_one(kind, i, h, state, dir)?;
    }
    Ok(())
}

/// Where runc's runtime-side hooks (prestart, createRuntime, poststart, poststop) run: in runc's
/// own working directory, which is the bundle (runc chdirs there; engines start it there), so
/// hooks written for runc may use paths relative to it. None when the bundle is gone (a
/// poststop after the engine removed it): then ours.
pub fn bundle_dir(bundle: &str) -> Option<&Path> {
    Some(Path::new(bundle)).filter(|p| !bundle.is_empty() && p.is_dir())
}

/// poststop: every hook runs; failures are logged as warnings (runtime-spec).
pub fn run_warn(kind: &str, hooks: &[Hook], state: &[u8], dir: Option<&Path>) {
    for (i, h) in hooks.iter().enumerate() {
        if let Err(e) = run_one(kind, i, h, state, dir) {
            crate::log::warn(&format!("{e:#}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout: Option<i64>) -> Hook {
        let mut v = serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c", script], "env": ["PATH=/usr/bin:/bin"]});
        if let Some(t) = timeout {
            v["timeout"] = serde_json::json!(t);
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn tails_are_bounded() {
        let mut t = Tail::default();
        for _ in 0..1000 {
            t.push(&[b'y'; 1000]);
        }
        t.push(b"end\n");
        assert!(t.buf.len() <= 2 * KEEP);
        let s = t.text();
        assert!(
            s.starts_with("...") && s.ends_with("yend") && s.len() == KEEP + 2,
            "{}",
            s.len()
        );
        let mut short = Tail::default();
        short.push(b"broken\n");
        assert_eq!(short.text(), "broken");
    }

    #[test]
    fn runc_texts_for_a_failure_and_a_timeout() {
        let e = run_one("prestart", 2, &sh("echo out; echo err >&2; exit 3", None), b"{}", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "error running prestart hook #2: error running hook: exit status 3, stdout: out, stderr: err"
        );
        let t = Instant::now();
        let e = run_one("createRuntime", 0, &sh("sleep 100", Some(1)), b"{}", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "error running createRuntime hook #0: hook ran past specified timeout of 1.0s"
        );
        assert!(t.elapsed() < Duration::from_secs(3));
    }

    #[test]
    fn a_big_state_and_a_leftover_holding_the_pipes_do_not_block() {
        let state = vec![b'x'; 1 << 20];
        let t = Instant::now();
        // Reads nothing, leaves a process holding stdout and stderr, exits 0.
        let pidfile = std::env::temp_dir().join(format!("berth-hook-unit-{}", std::process::id()));
        let script = format!("sleep 5 & echo $! > {}; exit 0", pidfile.display());
        run_one("poststop", 0, &sh(&script, None), &state, None).unwrap();
        let leftover: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(leftover), Signal::SIGKILL);
        let _ = std::fs::remove_file(&pidfile);
        // Reads it all and reports its size.
        let e = run_one("poststop", 1, &sh("wc -c; exit 1", None), &state, None).unwrap_err();
        assert!(e.to_string().contains("stdout: 1048576,"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    }
}
