//! process.terminal: the pty master over --console-socket (as conmon and containerd's shim
//! receive it), and the foreground relay when there is no socket.
mod common;
use common::*;
use serde_json::json;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;

/// Accept one connection and take the fd sent with SCM_RIGHTS, plus the payload (pty name).
fn receive_master(listener: &UnixListener) -> (OwnedFd, String) {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let (stream, _) = listener.accept().unwrap();
    let mut buf = [0u8; 256];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let msg = recvmsg::<()>(stream.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty()).unwrap();
    let mut fd = None;
    for c in msg.cmsgs().unwrap() {
        if let ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the fd was just received and is owned by nobody else.
            fd = Some(unsafe { OwnedFd::from_raw_fd(fds[0]) });
        }
    }
    let n = msg.bytes;
    (
        fd.expect("no fd received"),
        String::from_utf8_lossy(&buf[..n]).into_owned(),
    )
}

fn read_until(master: &OwnedFd, needle: &str) -> String {
    let mut f = std::fs::File::from(master.try_clone().unwrap());
    let mut out = String::new();
    let mut buf = [0u8; 1024];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !out.contains(needle) {
        assert!(std::time::Instant::now() < deadline, "no {needle:?} in {out:?}");
        match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    out
}

#[test]
fn console_socket_receives_the_pty_master() {
    require_root!();
    let mut env = Env::new(&["sh", "-c", "tty; stty size; ls -l /dev/console; echo done"]);
    env.config["process"]["terminal"] = json!(true);
    env.config["process"]["consoleSize"] = json!({"height": 30, "width": 100});
    env.save();
    let sock = env.dir.join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let id = env.id("tty");
    let b = env.bundle.to_string_lossy().into_owned();
    let s = sock.to_string_lossy().into_owned();
    let create = std::thread::spawn({
        let cmd = env.cmd(&["create", "-b", &b, "--console-socket", &s, &id]);
        move || {
            let mut cmd = cmd;
            cmd.stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null());
            cmd.status().unwrap()
        }
    });
    let (master, name) = receive_master(&listener);
    assert!(create.join().unwrap().success());
    assert!(name.starts_with("/dev/pts/"), "payload {name:?}");
    env.berth(&["start", &id]).ok();
    let out = read_until(&master, "done");
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(out.contains("30 100"), "consoleSize applied: {out}");
    assert!(out.contains("136,"), "/dev/console is the pty: {out}");
    env.wait_status(&id, "stopped");
    env.berth(&["delete", &id]).ok();
    env.assert_gone(&id);
}

#[test]
fn foreground_run_relays_the_terminal() {
    require_root!();
    if std::process::Command::new("script").arg("--version").output().is_err() {
        skip("needs script(1) from bsdutils");
        return;
    }
    let mut env = Env::new(&["sh", "-c", "tty; test -t 0 && echo stdin-is-tty; exit 3"]);
    env.config["process"]["terminal"] = json!(true);
    env.save();
    let id = env.id("relay");
    let b = env.bundle.to_string_lossy().into_owned();
    let inner = format!("{BERTH} --root {} run -b {b} {id}", env.root.display());
    let (code, out) = in_terminal(&inner);
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert!(out.contains("stdin-is-tty"), "{out}");
    // script(1) reports the command's exit code.
    assert_eq!(code, Some(3), "{out}");
    env.assert_gone(&id);
}

#[test]
fn exec_with_a_terminal() {
    require_root!();
    let env = Env::new(&["sleep", "100"]);
    let id = env.id("exectty");
    let b = env.bundle.to_string_lossy().into_owned();
    env.berth(&["run", "-d", "-b", &b, &id]).ok();
    // The process leads a session of its own whose controlling terminal is the pty (/dev/tty
    // opens), and is its foreground process group: job control works.
    let probe = "tty; (: </dev/tty) 2>/dev/null && echo CTTY; set -- $(cat /proc/$$/stat); \
                 [ $6 = $$ ] && echo LEADER; [ $8 = $5 ] && echo FOREGROUND; exit 4";
    let inner = format!("{BERTH} --root {} exec -t {id} sh -c '{probe}'", env.root.display());
    let (code, out) = in_terminal(&inner);
    assert!(out.contains("/dev/pts/"), "{out}");
    for want in ["CTTY", "LEADER", "FOREGROUND"] {
        assert!(out.contains(want), "{want}: {out}");
    }
    assert_eq!(code, Some(4), "{out}");
}

/// No root needed: berth refuses this before anything privileged runs.
#[test]
fn terminal_rules_follow_runc() {
    let mut env = Env::new(&["true"]);
    env.config["process"]["terminal"] = json!(true);
    env.save();
    let o = env.create(&env.id("notty"));
    assert_eq!(o.code, 1);
    assert!(
        o.stderr
            .contains("cannot allocate tty if berth will detach without setting console socket"),
        "{}",
        o.stderr
    );
    let b = env.bundle.to_string_lossy().into_owned();
    let o = env.berth(&["run", "-d", "-b", &b, &env.id("notty2")]);
    assert!(o.stderr.contains("cannot allocate tty"), "{}", o.stderr);
    env.assert_root_empty();
    let env = Env::new(&["true"]);
    let b = env.bundle.to_string_lossy().into_owned();
    let o = env.berth(&[
        "create",
        "-b",
        &b,
        "--console-socket",
        "/nonexistent.sock",
        &env.id("sock"),
    ]);
    assert!(o.stderr.contains("cannot use console socket"), "{}", o.stderr);
    env.assert_root_empty();
}
