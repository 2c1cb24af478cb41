//! fd passing: socket activation (LISTEN_FDS/LISTEN_PID) and NOTIFY_SOCKET passthrough.
mod common;
use common::*;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

#[test]
fn listen_fds_reach_the_container_as_runc_passes_them() {
    require_root!();
    let env = Env::new(&["sh", "-c", "echo $LISTEN_FDS $LISTEN_PID; cat <&3; cat <&4"]);
    std::fs::write(env.dir.join("a"), "first\n").unwrap();
    std::fs::write(env.dir.join("b"), "preserved\n").unwrap();
    let b = env.bundle.to_string_lossy().into_owned();
    let id = env.id("listen");
    let d = env.dir.display();
    // fd 3 is the activation socket stand-in, fd 4 comes from --preserve-fds after it.
    let script = format!(
        "exec 3<{d}/a 4<{d}/b; LISTEN_FDS=1 LISTEN_PID=$$ exec {BERTH} --root {} run --preserve-fds 1 -b {b} {id}",
        env.root.display()
    );
    let o = std::process::Command::new("sh")
        .args(["-c", &script])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "1 1\nfirst\npreserved\n");
    // LISTEN_PID naming another process: the fds are not ours to pass.
    let id = env.id("listen2");
    let script = format!(
        "exec 3<{d}/a; LISTEN_FDS=1 LISTEN_PID=1 exec {BERTH} --root {} run -b {b} {id}",
        env.root.display()
    );
    let o = std::process::Command::new("sh")
        .args(["-c", &script])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).lines().next(),
        Some(""),
        "no LISTEN_* for the container"
    );
    env.assert_root_empty();
}

const NOTIFIER: &str = r#"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
int main(void) {
    const char *p = getenv("NOTIFY_SOCKET");
    if (!p) return 2;
    usleep(300000);
    int s = socket(AF_UNIX, SOCK_DGRAM, 0);
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    strncpy(a.sun_path, p, sizeof a.sun_path - 1);
    const char *m = "STATUS=starting\nREADY=1\n";
    if (sendto(s, m, strlen(m), 0, (struct sockaddr *)&a, sizeof a) < 0) return 3;
    pause();
    return 0;
}
"#;

#[test]
fn notify_socket_ready_reaches_the_caller() {
    require_root!();
    let env = Env::new(&["/notifier"]);
    if cc_static(NOTIFIER, &env.rootfs().join("notifier")).is_none() {
        skip("needs gcc and libc6-dev to build the static notifier");
        return;
    }
    notify_ready(&env);
}

/// The socket's directory sits in the 0700 state root, which the container's root (host uid
/// 100000 here) cannot traverse: the parent hands the init the mount, not the path.
#[test]
fn notify_socket_ready_reaches_the_caller_from_a_user_namespace() {
    require_root!();
    let mut env = Env::new(&["/notifier"]);
    if cc_static(NOTIFIER, &env.rootfs().join("notifier")).is_none() {
        skip("needs gcc and libc6-dev to build the static notifier");
        return;
    }
    env.map_root_to(100000);
    notify_ready(&env);
}

/// create + start and run -d with NOTIFY_SOCKET: READY=1 and MAINPID reach the caller's socket.
fn notify_ready(env: &Env) {
    let host = env.dir.join("host-notify.sock");
    let sock = UnixDatagram::bind(&host).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let b = env.bundle.to_string_lossy().into_owned();
    for detach_run in [false, true] {
        let id = env.id("notify");
        let mut c = if detach_run {
            env.cmd(&["run", "-d", "-b", &b, &id])
        } else {
            env.cmd(&["create", "-b", &b, &id])
        };
        let st = c
            .env("NOTIFY_SOCKET", &host)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        let t = Instant::now();
        if !detach_run {
            let st = env.cmd(&["start", &id]).env("NOTIFY_SOCKET", &host).status().unwrap();
            assert!(st.success());
        }
        // Like runc, start / run -d return once the container said READY=1.
        assert!(
            t.elapsed() >= Duration::from_millis(250) || detach_run,
            "start returned before READY"
        );
        let mut buf = [0u8; 256];
        let n = sock.recv(&mut buf).expect("READY forwarded to the caller's socket");
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        let pid = env.state(&id)["pid"].as_i64().unwrap();
        assert_eq!(msg, format!("READY=1\nMAINPID={pid}\n"));
        env.berth(&["delete", "-f", &id]).ok();
        env.assert_gone(&id);
    }
}
