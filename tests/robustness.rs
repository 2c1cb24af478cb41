//! berth never leaks or loses state: crashes at every stage of create, concurrency, stress,
//! signals, a closed stdout, and resource exhaustion.
mod common;
use common::*;
use serde_json::json;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Processes whose command line carries `needle` that are not zombies.
fn live_processes(needle: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        if !e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        if cmd.contains(needle) && !stat.contains(") Z") && !cmd.contains("nextest") && !cmd.contains("robustness-") {
            out.push(cmd);
        }
    }
    out
}

fn mounts_mentioning(needle: &str) -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

fn assert_nothing_left(env: &Env, id: &str) {
    env.assert_gone(id);
    env.assert_root_empty();
    assert_eq!(mounts_mentioning(&env.dir.to_string_lossy()), 0, "mounts left");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !live_processes(id).is_empty() {
        assert!(Instant::now() < deadline, "processes left: {:?}", live_processes(id));
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn kill_9_at_every_stage_of_create_then_delete_force_leaves_nothing() {
    require_root!();
    let env = Env::new(&["sleep", "100"]);
    let b = env.bundle.to_string_lossy().into_owned();
    for point in [
        "before-state",
        "before-cgroups",
        "after-cgroups",
        "after-clone",
        "after-ready",
        "after-state",
    ] {
        for cmd in ["create", "run"] {
            let id = env.id(&format!("crash-{point}"));
            let mut c = env.cmd(&[cmd, "-d", "-b", &b, &id]);
            if cmd == "create" {
                c = env.cmd(&[cmd, "-b", &b, &id]);
            }
            let st = c
                .env("BERTH_FAULT", point)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&st),
                Some(9),
                "{cmd} at {point} should die of SIGKILL"
            );
            let o = env.berth(&["delete", "--force", &id]);
            assert_eq!(o.code, 0, "delete --force after {cmd} killed at {point}: {}", o.stderr);
            assert_nothing_left(&env, &id);
        }
    }
}

#[test]
fn concurrent_kill_and_delete_have_only_documented_outcomes() {
    require_root!();
    let env = Env::new(&["sleep", "100"]);
    let b = env.bundle.to_string_lossy().into_owned();
    for round in 0..10 {
        let id = env.id(&format!("kd{round}"));
        env.berth(&["run", "-d", "-b", &b, &id]).ok();
        let cmds = [
            vec!["kill", &id, "KILL"],
            vec!["delete", "-f", &id],
            vec!["kill", "--all", &id, "TERM"],
            vec!["delete", "-f", &id],
        ];
        let handles: Vec<_> = cmds
            .iter()
            .map(|a| {
                let mut c = env.cmd(&a.iter().map(|s| s.as_ref()).collect::<Vec<&str>>());
                c.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped());
                c.spawn().unwrap()
            })
            .collect();
        for h in handles {
            let o = h.wait_with_output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                o.status.success() || err.contains("container does not exist") || err.contains("container not running"),
                "undocumented outcome: {err}"
            );
        }
        assert_nothing_left(&env, &id);
    }
}

#[test]
fn create_start_delete_cycles_leave_no_growth() {
    require_root!();
    let cycles: usize = std::env::var("BERTH_STRESS_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let env = Env::new(&["true"]);
    let b = env.bundle.to_string_lossy().into_owned();
    let own_fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
    let fds_before = own_fds();
    let prefix = unique("cyc");
    let mut first_last = Vec::new();
    for i in 0..cycles {
        // Registered with the guard: a failing assertion still leaves nothing behind.
        let id = env.id(&format!("{prefix}-{i}"));
        if i == 0 || i == cycles - 1 {
            first_last.push(id.clone());
        }
        env.berth(&["create", "-b", &b, &id]).ok();
        if i % 100 == 0 {
            // Whatever the waiting init holds beyond stdio (the start fifo, fds its caller
            // leaked) is close-on-exec: none of it reaches the container's process.
            let pid = env.state(&id)["pid"].as_i64().unwrap();
            for e in std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
                .unwrap()
                .filter_map(|e| e.ok())
            {
                let fd: u32 = e.file_name().to_string_lossy().parse().unwrap();
                let info = std::fs::read_to_string(e.path()).unwrap_or_default();
                let flags = info
                    .lines()
                    .find_map(|l| l.strip_prefix("flags:"))
                    .map(|f| u32::from_str_radix(f.trim(), 8).unwrap())
                    .unwrap_or(0);
                assert!(
                    fd < 3 || flags & 0o2000000 != 0,
                    "init fd {fd} is not close-on-exec: {info}"
                );
            }
        }
        env.berth(&["start", &id]).ok();
        env.berth(&["delete", "-f", &id]).ok();
    }
    assert_eq!(own_fds(), fds_before);
    env.assert_root_empty();
    for id in &first_last {
        assert_no_cgroup(id);
    }
    assert_eq!(mounts_mentioning(&env.dir.to_string_lossy()), 0);
    assert!(live_processes(&prefix).is_empty());
}

#[test]
fn fifty_concurrent_creates() {
    require_root!();
    let env = Env::new(&["sleep", "100"]);
    let b = env.bundle.to_string_lossy().into_owned();
    let ids: Vec<String> = (0..50).map(|i| env.id(&format!("par{i}"))).collect();
    let children: Vec<_> = ids
        .iter()
        .map(|id| {
            env.cmd(&["create", "-b", &b, id])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    for id in &ids {
        assert_eq!(env.status(id), "created");
    }
    for id in &ids {
        env.berth(&["delete", "-f", id]).ok();
        env.assert_gone(id);
    }
}

#[test]
fn delete_force_kills_double_forked_setsid_processes() {
    require_root!();
    for pidns in [true, false] {
        let mut env = Env::new(&[
            "sh",
            "-c",
            "setsid sh -c 'sleep 1000 & sleep 1000 & wait' & (sleep 1000 &) ; exec sleep 1000",
        ]);
        if !pidns {
            env.config["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "uts"}, {"type": "ipc"}]);
            env.save();
        }
        let id = env.id(&format!("dfork-{pidns}"));
        let b = env.bundle.to_string_lossy().into_owned();
        env.berth(&["run", "-d", "-b", &b, &id]).ok();
        let cg = env.root.join(&id).join("state.json");
        let st: serde_json::Value = serde_json::from_slice(&std::fs::read(&cg).unwrap()).unwrap();
        let path = std::path::PathBuf::from(st["cgroup"]["paths"][0].as_str().unwrap());
        let deadline = Instant::now() + Duration::from_secs(5);
        let procs = || {
            std::fs::read_to_string(path.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
                .count()
        };
        while procs() < 5 {
            assert!(Instant::now() < deadline, "children did not start: {}", procs());
            std::thread::sleep(Duration::from_millis(20));
        }
        let pids: Vec<i32> = std::fs::read_to_string(path.join("cgroup.procs"))
            .unwrap()
            .lines()
            .map(|l| l.parse().unwrap())
            .collect();
        env.berth(&["delete", "--force", &id]).ok();
        env.assert_gone(&id);
        for p in pids {
            let s = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            assert!(
                s.is_empty() || s.contains(") Z"),
                "pid {p} survived delete --force (pidns {pidns})"
            );
        }
    }
}

#[test]
fn run_forwards_every_forwardable_signal() {
    require_root!();
    let sigs = [
        "HUP", "INT", "QUIT", "USR1", "USR2", "ALRM", "CONT", "WINCH", "PWR", "TERM",
    ];
    let traps: String = sigs
        .iter()
        .map(|s| format!("trap 'echo {s} >> /tmp/got' {s}; "))
        .collect();
    let env = Env::new(&[
        "sh",
        "-c",
        &format!("{traps} echo ready > /tmp/ready; while ! grep -q TERM /tmp/got 2>/dev/null; do sleep 0.02; done"),
    ]);
    let id = env.id("sigs");
    let b = env.bundle.to_string_lossy().into_owned();
    let mut child = env
        .cmd(&["run", "-b", &b, &id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !env.rootfs().join("tmp/ready").exists() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    let got = || std::fs::read_to_string(env.rootfs().join("tmp/got")).unwrap_or_default();
    for s in sigs {
        let sig: nix::sys::signal::Signal = format!("SIG{s}").parse().unwrap();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), sig).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while !got().contains(s) {
            assert!(Instant::now() < deadline, "{s} not forwarded: {}", got());
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    assert!(child.wait().unwrap().success());
    env.assert_gone(&id);
}

#[test]
fn run_of_a_fast_exiting_process_never_hangs() {
    require_root!();
    let env = Env::new(&["true"]);
    for i in 0..200 {
        let id = format!("{}-{i}", unique("fast"));
        // Env::berth enforces a timeout and panics on a hang.
        env.run(&id).ok();
    }
    env.assert_root_empty();
}

#[test]
fn closed_stdout_leaves_no_half_made_container() {
    require_root!();
    let env = Env::new(&["sleep", "100"]);
    let id = env.id("epipe");
    let b = env.bundle.to_string_lossy().into_owned();
    // A pipe whose reader is already gone.
    let (r, w) = nix::unistd::pipe().unwrap();
    drop(r);
    let st = env
        .cmd(&["create", "-b", &b, &id])
        .stdout(Stdio::from(w))
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(env.status(&id), "created");
    for cmd in [&["state", &id][..], &["list"], &["features"]] {
        let (r, w) = nix::unistd::pipe().unwrap();
        drop(r);
        let st = env
            .cmd(cmd)
            .stdout(Stdio::from(w))
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.code().is_some(), "{cmd:?} must not die of a signal or panic");
    }
    env.berth(&["delete", "-f", &id]).ok();
    env.assert_gone(&id);
}

#[test]
fn full_state_filesystem_fails_cleanly() {
    require_root!();
    let env = Env::new(&["true"]);
    let small = env.dir.join("small");
    std::fs::create_dir_all(&small).unwrap();
    nix::mount::mount(
        Some("tmpfs"),
        &small,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=16k"),
    )
    .unwrap();
    // Leave almost nothing free.
    let _ = std::fs::write(small.join("fill"), vec![0u8; 16 * 1024]);
    let b = env.bundle.to_string_lossy().into_owned();
    let id = env.id("enospc");
    let o = run_as(
        &env,
        &["--root", small.to_str().unwrap(), "create", "-b", &b, &id],
        |_| {},
    );
    let left: Vec<_> = std::fs::read_dir(&small)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .collect();
    nix::mount::umount(&small).unwrap();
    assert_eq!(o.0, 1, "{}", o.1);
    assert!(o.1.contains("No space left on device"), "{}", o.1);
    assert_eq!(o.1.lines().count(), 1, "{}", o.1);
    assert!(left.iter().all(|n| n == "fill"), "left behind: {left:?}");
    assert_no_cgroup(&id);
}

/// Run berth with a pre-exec tweak (rlimits, cgroup); returns (code, stderr).
fn run_as(env: &Env, args: &[&str], tweak: impl Fn(u32) + Send + Sync + 'static) -> (i32, String) {
    let mut c = std::process::Command::new(BERTH);
    // stderr to a file: a container this create makes inherits it and would hold a pipe open.
    let errf = env.dir.join(unique("stderr"));
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&errf).unwrap());
    // SAFETY: the closure only makes async-signal-safe calls (setrlimit, write).
    unsafe {
        c.pre_exec(move || {
            tweak(std::process::id());
            Ok(())
        });
    }
    let st = c.status().unwrap();
    let code = st
        .code()
        .unwrap_or(128 + std::os::unix::process::ExitStatusExt::signal(&st).unwrap_or(0));
    (code, std::fs::read_to_string(&errf).unwrap_or_default())
}

#[test]
fn emfile_fails_cleanly() {
    require_root!();
    let env = Env::new(&["true"]);
    let b = env.bundle.to_string_lossy().into_owned();
    let id = env.id("emfile");
    let root = env.root.to_string_lossy().into_owned();
    let o = run_as(&env, &["--root", &root, "create", "-b", &b, &id], |_| {
        let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, 7, 7);
    });
    assert_eq!(o.0, 1, "{}", o.1);
    assert_eq!(o.1.lines().count(), 1, "{}", o.1);
    env.assert_root_empty();
    assert_no_cgroup(&id);
}

/// Put berth itself into a fresh v1 cgroup with a limit; skip where that hierarchy is absent.
fn limited_cgroup(ctrl: &str, file: &str, value: &str) -> Option<std::path::PathBuf> {
    let base = std::path::Path::new("/sys/fs/cgroup").join(ctrl);
    if !base.join("cgroup.procs").exists() {
        skip(&format!("needs the cgroup v1 {ctrl} hierarchy"));
        return None;
    }
    let dir = base.join(unique("berth-limit"));
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join(file), value).unwrap();
    Some(dir)
}

#[test]
fn pid_limit_and_oom_during_create_leave_nothing_after_delete() {
    require_root!();
    let env = Env::new(&["true"]);
    let b = env.bundle.to_string_lossy().into_owned();
    let root = env.root.to_string_lossy().into_owned();
    for (ctrl, file, value) in [
        ("pids", "pids.max", "1"),
        ("memory", "memory.limit_in_bytes", "3000000"),
    ] {
        let Some(cg) = limited_cgroup(ctrl, file, value) else {
            continue;
        };
        let id = env.id(&format!("limit-{ctrl}"));
        let procs = cg.join("cgroup.procs");
        let o = run_as(&env, &["--root", &root, "create", "-b", &b, &id], move |pid| {
            let _ = std::fs::write(&procs, pid.to_string());
        });
        // Either a clean error (clone refused) or killed by the OOM killer part-way.
        if o.0 == 1 {
            assert_eq!(o.1.lines().count(), 1, "{}", o.1);
        }
        let d = env.berth(&["delete", "--force", &id]);
        assert_eq!(d.code, 0, "{}", d.stderr);
        env.assert_root_empty();
        assert_no_cgroup(&id);
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::fs::remove_dir(&cg).is_err() {
            assert!(Instant::now() < deadline, "test cgroup {} stays busy", cg.display());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
