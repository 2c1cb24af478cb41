//! runtime-spec hooks: moments, namespaces, stdin state, env/args, timeouts and failure rules.
mod common;
use common::*;
use serde_json::json;

fn hook(script: &str) -> serde_json::Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", script], "env": ["PATH=/usr/bin:/bin"]})
}

#[test]
fn hooks_run_in_order_with_state_and_namespaces() {
    require_root!();
    let mut env = Env::new(&["sh", "-c", "sleep 100"]);
    let log = env.dir.join("hooklog");
    std::fs::create_dir_all(&log).unwrap();
    let l = log.display().to_string();
    let rec = |name: &str| {
        hook(&format!(
            "cat > {l}/{name}.json; readlink /proc/self/ns/uts > {l}/{name}.uts; echo {name} >> {l}/order"
        ))
    };
    env.config["hooks"] = json!({
        "prestart": [rec("prestart")],
        "createRuntime": [rec("createRuntime")],
        "createContainer": [rec("createContainer")],
        // startContainer runs inside the container, after pivot_root: write into its rootfs.
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /tmp/startContainer.json"]}],
        "poststart": [rec("poststart")],
        "poststop": [rec("poststop")]
    });
    env.config["annotations"] = json!({"org.example": "yes"});
    env.save();
    let id = env.id("hooks");
    env.create(&id).ok();
    let order = || std::fs::read_to_string(log.join("order")).unwrap_or_default();
    assert_eq!(order(), "prestart\ncreateRuntime\ncreateContainer\n");
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(log.join("createRuntime.json")).unwrap()).unwrap();
    assert_eq!(st["id"], json!(id));
    assert_eq!(st["pid"], json!(pid));
    assert_eq!(st["bundle"], json!(env.bundle.to_string_lossy()));
    assert_eq!(st["annotations"]["org.example"], "yes");
    // createRuntime in the runtime's namespaces, createContainer in the container's.
    let host_uts = std::fs::read_link("/proc/self/ns/uts").unwrap();
    let ctr_uts = std::fs::read_link(format!("/proc/{pid}/ns/uts")).unwrap();
    assert_ne!(host_uts, ctr_uts);
    let read = |f: &str| std::fs::read_to_string(log.join(f)).unwrap().trim().to_string();
    assert_eq!(read("createRuntime.uts"), host_uts.to_str().unwrap());
    assert_eq!(read("createContainer.uts"), ctr_uts.to_str().unwrap());
    assert!(
        !env.rootfs().join("tmp/startContainer.json").exists(),
        "startContainer ran before start"
    );
    env.berth(&["start", &id]).ok();
    assert_eq!(order(), "prestart\ncreateRuntime\ncreateContainer\npoststart\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !env.rootfs().join("tmp/startContainer.json").exists() {
        assert!(std::time::Instant::now() < deadline, "startContainer did not run");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    env.berth(&["delete", "-f", &id]).ok();
    assert_eq!(
        order(),
        "prestart\ncreateRuntime\ncreateContainer\npoststart\npoststop\n"
    );
    let post: serde_json::Value = serde_json::from_slice(&std::fs::read(log.join("poststop.json")).unwrap()).unwrap();
    assert_eq!(post["status"], "stopped");
    env.assert_gone(&id);
}

#[test]
fn hook_env_and_args_are_exact() {
    require_root!();
    let mut env = Env::new(&["true"]);
    let out = env.dir.join("envargs");
    env.config["hooks"] = json!({"createRuntime": [{
        "path": "/bin/sh",
        "args": ["custom-argv0", "-c", format!("echo \"$0 $FOO $HOME\" > {}", out.display())],
        "env": ["FOO=bar"]
    }]});
    env.save();
    let id = env.id("hookenv");
    env.run(&id).ok();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "custom-argv0 bar \n");
}

#[test]
fn failing_or_slow_create_hooks_fail_create_and_leave_nothing() {
    require_root!();
    for (hooks, want) in [
        (json!({"prestart": [hook("exit 3")]}), "prestart hook #0"),
        (json!({"createContainer": [hook("echo broken >&2; exit 1")]}), "broken"),
        (
            json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "10"], "timeout": 1}]}),
            "error running createRuntime hook #0: hook ran past specified timeout of 1.0s",
        ),
    ] {
        let mut env = Env::new(&["true"]);
        env.config["hooks"] = hooks;
        env.save();
        let id = env.id("hookfail");
        let t = std::time::Instant::now();
        let o = env.create(&id);
        assert_eq!(o.code, 1);
        assert!(o.stderr.contains(want), "{want}: {}", o.stderr);
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
        env.assert_root_empty();
        assert_no_cgroup(&id);
    }
}

/// runtime-spec 1.3 (runc 1.2+): a failing poststart hook fails `run` and `start` and stops
/// the container (the later poststart hooks do not run); the lifecycle goes on with its
/// destruction, whose poststop hooks all run, their failures only warnings.
#[test]
fn failing_poststart_hooks_fail_and_stop_the_container_poststop_failures_are_warnings() {
    require_root!();
    let mut env = Env::new(&["sleep", "100"]);
    let log = env.dir.join("hooklog");
    let l = log.display().to_string();
    env.config["hooks"] = json!({
        "poststart": [hook("echo bad poststart >&2; exit 1"), hook(&format!("echo second >> {l}"))],
        "poststop": [hook(&format!("echo poststop >> {l}; exit 1")), hook("exit 2")]
    });
    env.save();
    let id = env.id("hookpost");
    let o = env.run(&id);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(
        o.stderr.contains("error running poststart hook #0") && o.stderr.contains("bad poststart"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr.contains("level=warning") && o.stderr.contains("poststop hook #1"),
        "{}",
        o.stderr
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap_or_default(), "poststop\n");
    env.assert_gone(&id);

    // create + start: start fails and the container is stopped; delete destroys it and runs
    // the poststop hooks.
    std::fs::remove_file(&log).unwrap();
    let id = env.id("hookpost");
    env.create(&id).ok();
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let o = env.berth(&["start", &id]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("error running poststart hook #0"), "{}", o.stderr);
    assert_eq!(env.status(&id), "stopped");
    // Dead: gone, or a zombie its new parent has not reaped yet.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        stat.rsplit_once(") ").is_none_or(|(_, s)| s.starts_with('Z')),
        "init still alive: {stat}"
    );
    assert_eq!(std::fs::read_to_string(&log).unwrap_or_default(), "");
    env.berth(&["delete", &id]).ok();
    assert_eq!(std::fs::read_to_string(&log).unwrap_or_default(), "poststop\n");
    env.assert_gone(&id);
}

/// `berth run` of the env's bundle under a wall-clock limit (a hang fails the test), with how
/// long it took.
fn run_within(env: &Env, id: &str, secs: u64) -> (Output, std::time::Duration) {
    let t = std::time::Instant::now();
    let b = env.bundle.to_string_lossy().into_owned();
    let o = run_with_timeout(env.cmd(&["run", "-b", &b, id]), secs, None);
    (o, t.elapsed())
}

/// The pid written to `file` by a hook (`echo $! > file`).
fn pid_in(file: &std::path::Path) -> i32 {
    std::fs::read_to_string(file).unwrap().trim().parse().unwrap()
}

/// The process is gone (or a zombie waiting for its new parent to reap it).
fn process_gone(pid: i32) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = st.rfind(')').and_then(|i| st[i + 2..].chars().next());
        if matches!(state, None | Some('Z') | Some('X')) {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Kill a hook's daemonised leftover the test made, checking first that it is still our sleep.
fn kill_leftover(pid: i32) {
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    if cmd.starts_with(b"sleep") {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
    }
    assert!(process_gone(pid), "leftover {pid} still alive");
}

/// Kills, when dropped, the `sleep` leftovers whose pids the hooks wrote to these files: a failed
/// assertion must not leave them running (they hold whatever fds the test run had open).
struct Leftovers(Vec<std::path::PathBuf>);

impl Drop for Leftovers {
    fn drop(&mut self) {
        for f in &self.0 {
            let Some(pid) = std::fs::read_to_string(f)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
            else {
                continue;
            };
            if std::fs::read(format!("/proc/{pid}/cmdline"))
                .unwrap_or_default()
                .starts_with(b"sleep")
            {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
            }
        }
    }
}

#[test]
fn hooks_writing_a_mebibyte_to_stdout_and_stderr_do_not_block() {
    require_root!();
    let loud = "yes | head -c 1048576 >&2; yes | head -c 1048576";
    let mut env = Env::new(&["true"]);
    // In the runtime (createRuntime, poststop) and in the container's init (createContainer).
    env.config["hooks"] = json!({
        "createRuntime": [hook(loud)],
        "createContainer": [hook(loud)],
        "poststop": [hook(loud)]
    });
    env.save();
    let id = env.id("loud");
    let (o, took) = run_within(&env, &id, 20);
    o.ok();
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    env.assert_gone(&id);
    // A failing one: runc's text, and only a bounded tail of the output in the message.
    env.config["hooks"] = json!({"createRuntime": [hook(&format!("{loud}; echo the-end >&2; exit 3"))]});
    env.save();
    let id = env.id("loud");
    let (o, _) = run_within(&env, &id, 20);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr
            .contains("error running createRuntime hook #0: error running hook: exit status 3, stdout: ")
            && o.stderr.contains("the-end"),
        "{}",
        o.stderr
    );
    assert!(o.stderr.len() < 32 * 1024, "{} bytes of error", o.stderr.len());
    env.assert_gone(&id);
    env.assert_root_empty();
}

#[test]
fn hooks_that_never_read_a_large_state_do_not_block() {
    require_root!();
    let mut env = Env::new(&["true"]);
    // 256 KiB of annotation: the state JSON is four pipe buffers.
    env.config["annotations"] = json!({"org.example.big": "x".repeat(256 * 1024)});
    let lens = env.dir.join("lens");
    std::fs::create_dir_all(&lens).unwrap();
    let l = lens.display();
    let deaf = hook("sleep 0.2; exit 0");
    env.config["hooks"] = json!({
        "createRuntime": [deaf.clone(), hook(&format!("wc -c > {l}/createRuntime"))],
        "createContainer": [deaf.clone(), hook(&format!("wc -c > {l}/createContainer"))],
        "poststop": [deaf, hook(&format!("wc -c > {l}/poststop"))]
    });
    env.save();
    let id = env.id("deaf");
    let (o, took) = run_within(&env, &id, 20);
    // Not o.ok(): an error quoting the state would print 256 KiB.
    assert_eq!(o.code, 0, "{}", o.stderr.chars().take(2000).collect::<String>());
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    // The hooks that do read get the whole state, in the runtime and in the container.
    for kind in ["createRuntime", "createContainer", "poststop"] {
        let n: usize = std::fs::read_to_string(lens.join(kind))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(n > 256 * 1024, "{kind} read {n} bytes");
    }
    env.assert_gone(&id);
    // A hook that neither reads nor exits is still killed at its timeout.
    env.config["hooks"] = json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "1000"], "timeout": 1}]});
    env.save();
    let id = env.id("deaf");
    let (o, took) = run_within(&env, &id, 20);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("hook ran past specified timeout of 1.0s"),
        "{}",
        o.stderr
    );
    assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
    env.assert_gone(&id);
    env.assert_root_empty();
}

#[test]
fn daemonising_hooks_do_not_hold_up_create_or_delete() {
    require_root!();
    let mut env = Env::new(&["true"]);
    let pids = env.dir.join("pids");
    std::fs::create_dir_all(&pids).unwrap();
    let _leftovers = Leftovers(["createRuntime", "poststop", "failing"].map(|n| pids.join(n)).to_vec());
    let p = pids.display();
    // The background sleep keeps the hook's stdout and stderr open long after the hook exits.
    let daemon = |name: &str, exit: i32| {
        hook(&format!(
            "sleep 1000 & echo $! > {p}/{name}; echo gone >&2; exit {exit}"
        ))
    };
    env.config["hooks"] = json!({
        "createRuntime": [daemon("createRuntime", 0)],
        // In the container's pid namespace: its leftover dies with the container.
        "createContainer": [hook("sleep 1000 & exit 0")],
        "poststop": [daemon("poststop", 0)]
    });
    env.save();
    let id = env.id("daemon");
    let (o, took) = run_within(&env, &id, 20);
    o.ok();
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    env.assert_gone(&id);
    // A failing one: its error is reported without waiting for the leftover's EOF.
    env.config["hooks"] = json!({"createRuntime": [daemon("failing", 4)]});
    env.save();
    let id2 = env.id("daemon");
    let (o, took) = run_within(&env, &id2, 20);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("exit status 4") && o.stderr.contains("gone"),
        "{}",
        o.stderr
    );
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
    env.assert_gone(&id2);
    env.assert_root_empty();
    for name in ["createRuntime", "poststop", "failing"] {
        kill_leftover(pid_in(&pids.join(name)));
    }
}

#[test]
fn hooks_past_their_timeout_are_killed_with_their_children() {
    require_root!();
    for kind in ["createRuntime", "createContainer"] {
        let mut env = Env::new(&["true"]);
        let pids = env.dir.join("pids");
        std::fs::create_dir_all(&pids).unwrap();
        let _leftovers = Leftovers(vec![pids.join("child")]);
        let p = pids.display();
        let mut slow = hook(&format!("echo $$ > {p}/hook; sleep 1000 & echo $! > {p}/child; wait"));
        slow["timeout"] = json!(1);
        env.config["hooks"] = json!({ kind: [slow] });
        env.save();
        let id = env.id("slow");
        let (o, took) = run_within(&env, &id, 20);
        assert_eq!(o.code, 1);
        assert!(
            o.stderr.contains(&format!(
                "error running {kind} hook #0: hook ran past specified timeout of 1.0s"
            )),
            "{}",
            o.stderr
        );
        assert!(took < std::time::Duration::from_secs(5), "took {took:?}");
        env.assert_gone(&id);
        env.assert_root_empty();
        if kind == "createRuntime" {
            // Host pids: the hook and the sleep it forked were both killed (its process group).
            assert!(process_gone(pid_in(&pids.join("hook"))), "hook still alive");
            let child = pid_in(&pids.join("child"));
            let gone = process_gone(child);
            kill_leftover(child);
            assert!(gone, "the hook's child outlived the timeout");
        }
    }
}
