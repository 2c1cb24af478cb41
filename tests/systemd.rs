//! The systemd cgroup driver (`--systemd-cgroup`) end to end, through the real binary, against
//! a real systemd: these need systemd as PID 1 and run in the VM of
//! integration/vm/run-systemd-tests.sh (VM_SYSTEMD=1); elsewhere they are ignored.
//! Each checks the scope in systemd (`systemctl show`) and in /sys/fs/cgroup, and that
//! nothing (unit, cgroup, state) is left.
mod common;
use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;

fn sd(env: &Env, args: &[&str]) -> Output {
    let mut a = vec!["--systemd-cgroup"];
    a.extend_from_slice(args);
    env.berth(&a)
}

fn show(unit: &str, prop: &str) -> String {
    let o = Command::new("systemctl")
        .args(["show", "-P", prop, unit])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn scope_dir(slice_path: &str, unit: &str) -> PathBuf {
    PathBuf::from("/sys/fs/cgroup").join(slice_path).join(unit)
}

fn read(dir: &Path, f: &str) -> String {
    std::fs::read_to_string(dir.join(f))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(f).display()))
        .trim()
        .to_string()
}

/// The unit is gone from systemd and its cgroup from the tree.
fn assert_unit_gone(unit: &str, dir: &Path) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while show(unit, "LoadState") != "not-found" || dir.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "unit {unit} left: LoadState={} ActiveState={} dir exists={}",
            show(unit, "LoadState"),
            show(unit, "ActiveState"),
            dir.exists()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

fn booted() {
    assert!(
        std::fs::metadata("/run/systemd/system").is_ok_and(|m| m.is_dir()),
        "systemd is not PID 1 here"
    );
}

#[test]
#[ignore = "needs systemd as PID 1 (integration/vm/run-systemd-tests.sh)"]
fn scope_limits_update_pause_delete() {
    booted();
    let mut env = Env::new(&["sleep", "600"]);
    let id = env.id("sd");
    env.config["linux"]["cgroupsPath"] = json!(format!("berthtest-a.slice:berth:{id}"));
    env.config["linux"]["resources"] = json!({
        "memory": {"limit": 67108864},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000},
        "pids": {"limit": 20},
        "unified": {"memory.high": "52428800"}
    });
    env.save();
    let b = env.bundle.to_string_lossy().into_owned();
    sd(&env, &["run", "-d", "-b", &b, &id]).ok();
    let unit = format!("berth-{id}.scope");
    let dir = scope_dir("berthtest.slice/berthtest-a.slice", &unit);
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    assert_eq!(read(&dir, "cgroup.procs"), pid.to_string());
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(cg.trim(), format!("0::/berthtest.slice/berthtest-a.slice/{unit}"));
    assert_eq!(show(&unit, "ActiveState"), "active");
    assert_eq!(show(&unit, "Delegate"), "yes");
    assert_eq!(show(&unit, "Slice"), "berthtest-a.slice");
    assert_eq!(show(&unit, "MemoryMax"), "67108864");
    assert_eq!(show(&unit, "TasksMax"), "20");
    assert_eq!(show(&unit, "DefaultDependencies"), "no");
    assert_eq!(read(&dir, "memory.max"), "67108864");
    assert_eq!(read(&dir, "memory.high"), "52428800");
    assert_eq!(read(&dir, "pids.max"), "20");
    assert_eq!(read(&dir, "cpu.max"), "50000 100000");
    assert_eq!(read(&dir, "cpu.weight"), "39");
    // systemd re-applies every unit's properties on daemon-reload: the limits hold
    assert!(Command::new("systemctl")
        .arg("daemon-reload")
        .status()
        .unwrap()
        .success());
    assert_eq!(read(&dir, "memory.max"), "67108864");
    assert_eq!(read(&dir, "memory.high"), "52428800");
    assert_eq!(read(&dir, "pids.max"), "20");
    assert_eq!(read(&dir, "cpu.max"), "50000 100000");
    // update: properties and files, and they hold over a reload too
    sd(&env, &["update", "--memory", "134217728", "--pids-limit", "30", &id]).ok();
    assert_eq!(read(&dir, "memory.max"), "134217728");
    assert_eq!(read(&dir, "pids.max"), "30");
    assert_eq!(show(&unit, "MemoryMax"), "134217728");
    assert!(Command::new("systemctl")
        .arg("daemon-reload")
        .status()
        .unwrap()
        .success());
    assert_eq!(read(&dir, "memory.max"), "134217728");
    assert_eq!(read(&dir, "pids.max"), "30");
    // pause/resume, ps: through the same manager (the state records the driver)
    env.berth(&["pause", &id]).ok();
    assert_eq!(env.status(&id), "paused");
    assert_eq!(read(&dir, "cgroup.freeze"), "1");
    env.berth(&["resume", &id]).ok();
    assert_eq!(env.status(&id), "running");
    let ps = env.berth(&["ps", "--format", "json", &id]);
    ps.ok();
    assert!(ps.stdout.contains(&pid.to_string()), "{}", ps.stdout);
    let st = env.berth(&["events", "--stats", &id]);
    st.ok();
    assert!(st.stdout.contains("\"memory\""), "{}", st.stdout);
    // kill --all, then delete: the unit and its cgroup go
    env.berth(&["kill", "--all", &id, "KILL"]).ok();
    env.wait_status(&id, "stopped");
    env.berth(&["delete", &id]).ok();
    assert_unit_gone(&unit, &dir);
    assert!(!env.root.join(&id).exists());
    let _ = Command::new("systemctl").args(["stop", "berthtest.slice"]).status();
}

/// The default cgroupsPath: system.slice, prefix berth; delete --force of a running one.
#[test]
#[ignore = "needs systemd as PID 1 (integration/vm/run-systemd-tests.sh)"]
fn default_path_and_delete_force() {
    booted();
    let env = Env::new(&["sleep", "600"]);
    let id = env.id("sdd");
    let b = env.bundle.to_string_lossy().into_owned();
    sd(&env, &["run", "-d", "-b", &b, &id]).ok();
    let unit = format!("berth-{id}.scope");
    let dir = scope_dir("system.slice", &unit);
    assert_eq!(show(&unit, "ActiveState"), "active");
    assert_eq!(show(&unit, "Description"), format!("berth container {id}"));
    // the device allowlist as systemd properties too
    assert_eq!(show(&unit, "DevicePolicy"), "strict");
    assert!(dir.join("cgroup.procs").exists());
    env.berth(&["delete", "--force", &id]).ok();
    assert_unit_gone(&unit, &dir);
    assert!(!env.root.join(&id).exists());
}

/// kill -9 of the init: systemd drops the emptied scope by itself, delete finds nothing
/// to stop and leaves nothing.
#[test]
#[ignore = "needs systemd as PID 1 (integration/vm/run-systemd-tests.sh)"]
fn init_killed() {
    booted();
    let env = Env::new(&["sleep", "600"]);
    let id = env.id("sdk");
    let b = env.bundle.to_string_lossy().into_owned();
    sd(&env, &["run", "-d", "-b", &b, &id]).ok();
    let unit = format!("berth-{id}.scope");
    let dir = scope_dir("system.slice", &unit);
    let pid = env.state(&id)["pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
    env.wait_status(&id, "stopped");
    env.berth(&["delete", &id]).ok();
    assert_unit_gone(&unit, &dir);
    assert!(!env.root.join(&id).exists());
}

/// A create killed halfway (berth SIGKILLs itself, as an engine's kill -9): before the unit
/// exists and after it was started; delete --force leaves nothing.
#[test]
#[ignore = "needs systemd as PID 1 (integration/vm/run-systemd-tests.sh)"]
fn create_killed_halfway() {
    booted();
    let env = Env::new(&["sleep", "600"]);
    for point in ["after-clone", "after-ready", "after-state"] {
        let id = env.id("sdf");
        let b = env.bundle.to_string_lossy().into_owned();
        let mut c = env.cmd(&["--systemd-cgroup", "create", "-b", &b, &id]);
        c.env("BERTH_FAULT", point);
        let o = run_with_timeout(c, 30, None);
        assert_ne!(o.code, 0, "{point}: create was not killed");
        let unit = format!("berth-{id}.scope");
        env.berth(&["delete", "--force", &id]).ok();
        assert_unit_gone(&unit, &scope_dir("system.slice", &unit));
        assert!(!env.root.join(&id).exists(), "{point}");
    }
}

/// runc's errors for a malformed cgroupsPath.
#[test]
#[ignore = "needs systemd as PID 1 (integration/vm/run-systemd-tests.sh)"]
fn malformed_paths() {
    booted();
    let mut env = Env::new(&["true"]);
    for (p, want) in [
        (
            "a:b",
            // (stderr's logfmt line escapes the quotes of runc's text)
            r#"expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups, got \"a:b\" instead"#,
        ),
        ("/x/y", "expected cgroupsPath to be of format"),
        ("nodot:p:n", "invalid slice name: nodot"),
        ("a--b.slice:p:n", "invalid slice name: a--b.slice"),
    ] {
        env.config["linux"]["cgroupsPath"] = json!(p);
        env.save();
        let id = env.id("sdm");
        let b = env.bundle.to_string_lossy().into_owned();
        let o = sd(&env, &["create", "-b", &b, &id]);
        assert_eq!(o.code, 1, "{p}");
        assert!(o.stderr.contains(want), "{p}: {}", o.stderr);
        assert!(!env.root.join(&id).exists());
    }
}
