//! Seccomp filters observed from inside real containers: denied syscalls fail with the
//! configured errno, KILL actions kill with SIGSYS, argument conditions select, a Docker-like
//! allowlist runs busybox, and SCMP_ACT_NOTIFY hands the listener to an agent.
mod common;
use common::*;
use serde_json::{json, Value};

fn with_seccomp(args: &[&str], seccomp: Value, nnp: bool) -> Env {
    let mut env = Env::new(args);
    env.config["linux"]["seccomp"] = seccomp;
    env.config["process"]["noNewPrivileges"] = json!(nnp);
    env.save();
    env
}

#[test]
fn errno_rule_denies_mkdir_with_and_without_nnp() {
    require_root!();
    for nnp in [true, false] {
        let env = with_seccomp(
            &["sh", "-c", "mkdir /tmp/x; echo rc=$?; grep Seccomp: /proc/self/status"],
            json!({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}),
            nnp,
        );
        let id = env.id("sc-errno");
        let o = env.run(&id);
        assert_eq!(o.code, 0, "nnp={nnp} {}", o.stderr);
        assert!(o.stderr.contains("Operation not permitted"), "nnp={nnp} {}", o.stderr);
        assert!(o.stdout.contains("rc=1"), "{}", o.stdout);
        assert!(o.stdout.contains("Seccomp:\t2"), "{}", o.stdout);
        assert!(!env.rootfs().join("tmp/x").exists());
    }
}

#[test]
fn errno_ret_and_default_errno_ret_are_used() {
    require_root!();
    // EACCES for mkdir, and the default errno of SCMP_ACT_ERRNO (EPERM) for symlink.
    let env = with_seccomp(
        &["sh", "-c", "mkdir /tmp/x; ln -s a /tmp/l; true"],
        json!({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":13},
            {"names":["symlink","symlinkat"],"action":"SCMP_ACT_ERRNO"}]}),
        true,
    );
    let id = env.id("sc-ret");
    let o = env.run(&id);
    assert!(o.stderr.contains("Permission denied"), "{}", o.stderr);
    assert!(o.stderr.contains("Operation not permitted"), "{}", o.stderr);
    // defaultErrnoRet: an allowlist without mkdir, whose default is ERRNO with ENOSYS (38).
    let mut profile: Value = serde_json::from_str(include_str!("data/docker-like-seccomp.json")).unwrap();
    profile["defaultErrnoRet"] = json!(38);
    let names = profile["syscalls"][0]["names"].as_array_mut().unwrap();
    names.retain(|n| n != "mkdir" && n != "mkdirat");
    let env = with_seccomp(&["/bin/mkdir", "/tmp/y"], profile, true);
    let id = env.id("sc-ret2");
    let o = env.run(&id);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("Function not implemented"), "{}", o.stderr);
}

#[test]
fn filter_flags_and_architectures_load() {
    require_root!();
    let env = with_seccomp(
        &["sh", "-c", "mkdir /tmp/x; echo rc=$?"],
        json!({"defaultAction":"SCMP_ACT_ALLOW",
            "architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
            "flags":["SECCOMP_FILTER_FLAG_TSYNC","SECCOMP_FILTER_FLAG_LOG","SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                     "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
            "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1},
                        {"names":["getpid"],"action":"SCMP_ACT_LOG"},
                        {"names":["uname"],"action":"SCMP_ACT_TRACE"}]}),
        false,
    );
    let id = env.id("sc-flags");
    let o = env.run(&id);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("rc=1"), "{}", o.stdout);
}

#[test]
fn kill_actions_exit_with_sigsys() {
    require_root!();
    // TRAP sends SIGSYS too; busybox has no handler, so it dies of it like the KILL actions.
    for act in [
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_TRAP",
    ] {
        let env = with_seccomp(
            &["/bin/mkdir", "/tmp/x"],
            json!({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":act}]}),
            true,
        );
        let id = env.id("sc-kill");
        let o = env.run(&id);
        assert_eq!(o.code, 159, "{act}: {}", o.stderr);
        env.assert_gone(&id);
    }
}

#[test]
fn argument_conditions_select_by_value() {
    require_root!();
    // kill(pid, sig): argument 1 is the signal. `kill -0` and `kill -28` (SIGWINCH, ignored).
    let cases = [
        (json!({"index":1,"value":28,"op":"SCMP_CMP_EQ"}), true, false),
        (json!({"index":1,"value":0,"op":"SCMP_CMP_NE"}), true, false),
        (json!({"index":1,"value":27,"op":"SCMP_CMP_GT"}), true, false),
        (json!({"index":1,"value":28,"op":"SCMP_CMP_GE"}), true, false),
        (json!({"index":1,"value":1,"op":"SCMP_CMP_LT"}), false, true),
        (json!({"index":1,"value":0,"op":"SCMP_CMP_LE"}), false, true),
        (
            json!({"index":1,"value":0xfc,"valueTwo":28,"op":"SCMP_CMP_MASKED_EQ"}),
            true,
            false,
        ),
    ];
    for (arg, zero_ok, winch_ok) in cases {
        let env = with_seccomp(
            &[
                "sh",
                "-c",
                "kill -0 $$ 2>/dev/null && echo zero-ok; kill -28 $$ 2>/dev/null && echo winch-ok; true",
            ],
            json!({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
                {"names":["kill"],"action":"SCMP_ACT_ERRNO","args":[arg.clone()]}]}),
            true,
        );
        let id = env.id("sc-arg");
        let o = env.run(&id);
        assert_eq!(o.code, 0, "{arg}: {}", o.stderr);
        assert_eq!(o.stdout.contains("zero-ok"), zero_ok, "{arg}: {}", o.stdout);
        assert_eq!(o.stdout.contains("winch-ok"), winch_ok, "{arg}: {}", o.stdout);
    }
}

#[test]
fn docker_like_default_profile_runs_busybox() {
    require_root!();
    let profile: Value = serde_json::from_str(include_str!("data/docker-like-seccomp.json")).unwrap();
    let env = with_seccomp(
        &[
            "sh",
            "-c",
            "echo hi > /tmp/f && cat /tmp/f && ls / >/dev/null && mkdir /tmp/d && ps >/dev/null && \
             grep Seccomp: /proc/self/status; mount -t tmpfs t /mnt 2>/dev/null || echo mount-denied",
        ],
        profile,
        false,
    );
    let id = env.id("sc-docker");
    let o = env.run(&id);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.starts_with("hi\nSeccomp:\t2\n"), "{}", o.stdout);
    assert!(o.stdout.contains("mount-denied"), "{}", o.stdout);
}

/// No root needed: berth refuses this before anything privileged runs.
#[test]
fn unknown_action_or_flag_fails_create_and_leaves_nothing() {
    for bad in [
        json!({"defaultAction":"SCMP_ACT_NOPE"}),
        json!({"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_NOPE"]}),
        json!({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir"],"action":"SCMP_ACT_NOTIFY"}]}),
    ] {
        let env = with_seccomp(&["true"], bad.clone(), true);
        let id = env.id("sc-bad");
        let o = env.create(&id);
        assert_ne!(o.code, 0, "{bad}");
        assert!(
            o.stderr.contains("NOPE") || o.stderr.contains("listenerPath"),
            "{bad}: {}",
            o.stderr
        );
        env.assert_gone(&id);
    }
}

#[test]
fn notify_sends_the_listener_fd_and_state_to_the_agent() {
    require_root!();
    use std::os::unix::net::UnixListener;
    let env = Env::new(&["true"]);
    let sock = env.dir.join("agent.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let mut env = env;
    env.config["linux"]["seccomp"] = json!({
        "defaultAction":"SCMP_ACT_ALLOW",
        "listenerPath": sock.to_str().unwrap(),
        "listenerMetadata": "agent-meta",
        "syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_NOTIFY"}]});
    env.config["process"]["args"] = json!(["sh", "-c", "mkdir /tmp/n; echo rc=$?"]);
    env.save();
    let agent = std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let (conn, _) = listener.accept().unwrap();
        let mut buf = vec![0u8; 8192];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 2]);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let msg = nix::sys::socket::recvmsg::<()>(
            conn.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            nix::sys::socket::MsgFlags::empty(),
        )
        .unwrap();
        let mut fds = Vec::new();
        for c in msg.cmsgs().unwrap() {
            if let nix::sys::socket::ControlMessageOwned::ScmRights(f) = c {
                fds.extend(f);
            }
        }
        let n = msg.bytes;
        let state: Value = serde_json::from_slice(&buf[..n]).unwrap();
        // Closing the listener makes every notified syscall fail with ENOSYS.
        for fd in &fds {
            let _ = nix::unistd::close(*fd);
        }
        (state, fds.len())
    });
    let id = env.id("sc-notify");
    let o = env.run(&id);
    let (state, nfds) = agent.join().unwrap();
    assert_eq!(nfds, 1);
    assert_eq!(state["fds"], json!(["seccompFd"]));
    assert_eq!(state["metadata"], "agent-meta");
    assert_eq!(state["state"]["id"], json!(id));
    assert!(state["pid"].as_i64().unwrap() > 0);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("Function not implemented"), "{}", o.stderr);
    assert!(o.stdout.contains("rc=1"), "{}", o.stdout);
}

#[test]
fn exec_gets_the_same_filter() {
    require_root!();
    let env = with_seccomp(
        &["sleep", "100"],
        json!({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}),
        true,
    );
    let id = env.id("sc-exec");
    let b = env.bundle.to_string_lossy().into_owned();
    env.berth(&["run", "-d", "-b", &b, &id]).ok();
    let o = env.berth(&["exec", &id, "sh", "-c", "mkdir /tmp/e; grep Seccomp: /proc/self/status"]);
    assert!(o.stderr.contains("Operation not permitted"), "{}", o.stderr);
    assert!(o.stdout.contains("Seccomp:\t2"), "{}", o.stdout);
    assert!(!env.rootfs().join("tmp/e").exists());
    env.berth(&["kill", &id, "KILL"]).ok();
}

/// `exec` into a pid namespace: the trampoline forks the process into it after the filter is
/// loaded (CVE-2019-5736, SECURITY.md). A profile that refuses that fork (clone denied, or
/// fatal) still gets its process: berth then forks into the namespace itself, before loading
/// the filter, and says so in the debug log. Docker's rule (clone without namespace flags)
/// lets the trampoline fork.
#[test]
fn exec_runs_under_profiles_that_refuse_the_trampolines_fork() {
    require_root!();
    let docker_clone = json!({"names":["clone"],"action":"SCMP_ACT_ALLOW",
        "args":[{"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]});
    for (rules, fallback) in [
        (json!([{"names":["clone"],"action":"SCMP_ACT_ERRNO"}]), true),
        (json!([{"names":["clone"],"action":"SCMP_ACT_KILL"}]), true),
        (json!([{"names":["execveat"],"action":"SCMP_ACT_ERRNO"}]), true),
        (json!([docker_clone]), false),
    ] {
        for nnp in [true, false] {
            let profile =
                json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"], "syscalls": rules});
            let env = with_seccomp(&["sleep", "100"], profile, nnp);
            let id = env.id("sc-fork");
            let b = env.bundle.to_string_lossy().into_owned();
            env.berth(&["run", "-d", "-b", &b, &id]).ok();
            let log = env.dir.join("exec.log").to_string_lossy().into_owned();
            let o = env.berth(&["--debug", "--log", &log, "exec", &id, "echo", "ran"]);
            assert_eq!(
                (o.code, o.stdout.as_str()),
                (0, "ran\n"),
                "{rules} nnp={nnp}: {}",
                o.stderr
            );
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            assert_eq!(
                text.contains("exec forks as berth before loading it"),
                fallback,
                "{rules} nnp={nnp}: {text}"
            );
            env.berth(&["kill", &id, "KILL"]).ok();
            env.wait_status(&id, "stopped");
        }
    }
}

#[test]
fn compiled_filters_are_cached_reused_and_still_enforced() {
    require_root!();
    let env = with_seccomp(
        &["sh", "-c", "mkdir /tmp/x; echo rc=$?"],
        json!({"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}),
        true,
    );
    let cache = env.root.join("@seccomp-cache");
    let entries = || -> Vec<(std::path::PathBuf, std::time::SystemTime)> {
        std::fs::read_dir(&cache)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| (e.path(), e.metadata().unwrap().modified().unwrap()))
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(entries().is_empty());
    let o = env.run(&env.id("sc-cache1"));
    assert!(o.stdout.contains("rc=1"), "{} {}", o.stdout, o.stderr);
    let first = entries();
    assert_eq!(first.len(), 1, "one compiled filter stored: {first:?}");
    // The second container of the same profile is served from the cache (the entry is not
    // rewritten) and its filter denies mkdir just the same.
    let o = env.run(&env.id("sc-cache2"));
    assert!(o.stdout.contains("rc=1"), "{} {}", o.stdout, o.stderr);
    assert!(!env.rootfs().join("tmp/x").exists());
    assert_eq!(entries(), first);
    // A cache dir is not a container.
    let l = env.berth(&["list", "-q"]);
    assert!(!l.stdout.contains("seccomp"), "{}", l.stdout);
    // Another profile is compiled on its own, not served the first one's program.
    let mut env2 = env;
    env2.config["linux"]["seccomp"]["syscalls"][0]["errnoRet"] = json!(13);
    env2.save();
    let o = env2.run(&env2.id("sc-cache3"));
    assert!(o.stderr.contains("Permission denied"), "{} {}", o.stdout, o.stderr);
    assert_eq!(entries().len(), 2);
}
