//! runc 1.2 parity of the container's process: CPU affinity, the cwd, unknown capabilities, a
//! process without `user`, and the terminal (owner of the pty, ONLCR).
mod common;
use common::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn running(env: &Env, prefix: &str) -> String {
    let id = env.id(prefix);
    let b = env.bundle.to_string_lossy().into_owned();
    env.berth(&["run", "-d", "-b", &b, &id]).ok();
    id
}

/// berth under `taskset -c 0`: the caller's affinity is CPU 0 only.
fn on_cpu0(env: &Env, args: &[&str]) -> Output {
    let mut c = Command::new("taskset");
    c.args(["-c", "0", BERTH, "--root"]).arg(&env.root).args(args);
    run_with_timeout(c, 30, None)
}

fn allowed_list(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| panic!("no Cpus_allowed_list in {out:?}"))
}

/// Kernel 6.2+ keeps a user-requested affinity across a cpuset change ("sched: Enforce user
/// requested affinity"), so a runtime started under `taskset` would leave its container there;
/// runc resets it (libct: reset CPU affinity by default) to the cpuset's CPUs.
#[test]
fn cpu_affinity_of_the_caller_does_not_reach_the_container() {
    require_root!();
    let own = allowed_list(&std::fs::read_to_string("/proc/self/status").unwrap());
    let has_two = std::fs::read_to_string("/sys/devices/system/cpu/online").is_ok_and(|s| s.trim() != "0")
        && own.starts_with('0')
        && own != "0";
    if !has_two || Command::new("taskset").arg("-V").output().is_err() {
        return skip("needs taskset(1) and CPUs 0 and 1 allowed");
    }
    let grep = ["grep", "-F", "Cpus_allowed_list:", "/proc/self/status"];
    // No cpuset configured: every CPU this test may use (runc's INITIAL_CPU_MASK).
    let mut env = Env::new(&grep);
    if let Some(r) = env.config["linux"]["resources"].as_object_mut() {
        r.remove("cpu");
    }
    env.save();
    let b = env.bundle.to_string_lossy().into_owned();
    let o = on_cpu0(&env, &["run", "-b", &b, &env.id("aff")]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(allowed_list(&o.stdout), own, "run under taskset -c 0");
    // exec from a caller on CPU 0, into a container started from one too.
    env.config["process"]["args"] = json!(["sleep", "100"]);
    env.save();
    let id = env.id("affx");
    on_cpu0(&env, &["run", "-d", "-b", &b, &id]).ok();
    let mut args = vec!["exec", &id];
    args.extend(grep);
    let o = on_cpu0(&env, &args);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(allowed_list(&o.stdout), own, "exec under taskset -c 0");
    // A configured cpuset: its CPUs, not the caller's.
    let mut env = Env::new(&grep);
    env.config["linux"]["resources"]["cpu"] = json!({"cpus": "0-1", "mems": "0"});
    env.save();
    let b = env.bundle.to_string_lossy().into_owned();
    let o = on_cpu0(&env, &["run", "-b", &b, &env.id("affcs")]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(allowed_list(&o.stdout), "0-1", "run with cpuset 0-1 under taskset -c 0");
    // execCPUAffinity.final still decides for exec.
    env.config["process"]["args"] = json!(["sleep", "100"]);
    env.save();
    let id = env.id("afff");
    on_cpu0(&env, &["run", "-d", "-b", &b, &id]).ok();
    let pj = env.dir.join("aff-process.json");
    let p = json!({"args": grep, "cwd": "/", "user": {"uid": 0, "gid": 0},
                   "execCPUAffinity": {"initial": "0", "final": "1"}});
    std::fs::write(&pj, p.to_string()).unwrap();
    let o = on_cpu0(&env, &["exec", "-p", pj.to_str().unwrap(), &id]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(allowed_list(&o.stdout), "1", "execCPUAffinity.final");
}

/// runc enters process.cwd before it drops privileges (finalizeNamespace): a user that cannot
/// search its cwd still starts there.
#[test]
fn cwd_is_entered_before_the_user_changes() {
    require_root!();
    let mut env = Env::new(&["sh", "-c", "pwd; id -u"]);
    std::fs::set_permissions(env.rootfs().join("root"), std::fs::Permissions::from_mode(0o700)).unwrap();
    env.config["process"]["user"] = json!({"uid": 42, "gid": 42});
    env.config["process"]["cwd"] = json!("/root");
    env.save();
    let o = env.run(&env.id("cwd"));
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, "/root\n42\n");
    // exec --user --cwd: the same.
    env.config["process"]["args"] = json!(["sleep", "100"]);
    env.config["process"]["user"] = json!({"uid": 0, "gid": 0});
    env.config["process"]["cwd"] = json!("/");
    env.save();
    let id = running(&env, "cwdx");
    let o = env.berth(&[
        "exec",
        "--user",
        "42:42",
        "--cwd",
        "/root",
        &id,
        "sh",
        "-c",
        "pwd; id -u",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, "/root\n42\n");
    // A cwd that does not exist for anyone is still an error.
    let o = env.berth(&["exec", "--cwd", "/etc/passwd", &id, "true"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("chdir to cwd"), "{}", o.stderr);
}

/// runtime-spec 1.2: an unknown capability MUST be warned about and SHOULD NOT fail; runc logs
/// "ignoring unknown or unavailable capabilities: [...]". Config.json's case is in caps.rs.
#[test]
fn exec_ignores_unknown_capabilities_with_a_warning() {
    require_root!();
    let env = Env::new(&["sleep", "100"]);
    let id = running(&env, "capx");
    let o = env.berth(&["exec", "--cap", "CAP_NOT_A_CAP", &id, "true"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stderr
            .contains("ignoring unknown or unavailable capabilities: [CAP_NOT_A_CAP]"),
        "{}",
        o.stderr
    );
    let pj = env.dir.join("cap-process.json");
    let p = json!({"args": ["grep", "CapBnd", "/proc/self/status"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                   "capabilities": {"bounding": ["CAP_KILL", "CAP_NOPE", "CAP_ALSO_NOPE"]}});
    std::fs::write(&pj, p.to_string()).unwrap();
    let o = env.berth(&["exec", "-p", pj.to_str().unwrap(), &id]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("0000000000000020"), "only CAP_KILL: {}", o.stdout);
    assert!(
        o.stderr
            .contains("ignoring unknown or unavailable capabilities: [CAP_ALSO_NOPE CAP_NOPE]"),
        "{}",
        o.stderr
    );
}

/// runtime-spec: only `cwd` is required in process; without `user` the process runs as 0:0.
#[test]
fn process_without_user_runs_as_root() {
    require_root!();
    let mut env = Env::new(&["id"]);
    env.config["process"].as_object_mut().unwrap().remove("user");
    env.save();
    let o = env.run(&env.id("nouser"));
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.starts_with("uid=0(root) gid=0(root)"), "{}", o.stdout);
    env.config["process"]["args"] = json!(["sleep", "100"]);
    env.save();
    let id = running(&env, "nouserx");
    let pj = env.dir.join("nouser-process.json");
    std::fs::write(&pj, json!({"args": ["id"], "cwd": "/"}).to_string()).unwrap();
    let o = env.berth(&["exec", "-p", pj.to_str().unwrap(), &id]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.starts_with("uid=0(root) gid=0(root)"), "{}", o.stdout);
}

fn has_script() -> bool {
    if Command::new("script").arg("--version").output().is_err() {
        skip("needs script(1) from bsdutils");
        return false;
    }
    true
}

/// runc (fixStdioPermissions) gives the process's uid the pty it runs on, so a non-root
/// process can use its terminal; the group stays the devpts mount's (gid=5, tty).
#[test]
fn the_pty_belongs_to_the_process_user() {
    require_root!();
    if !has_script() {
        return;
    }
    let mut env = Env::new(&["sh", "-c", "stat -c owner=%u:%g $(tty)"]);
    env.config["process"]["terminal"] = json!(true);
    env.config["process"]["user"] = json!({"uid": 42, "gid": 42});
    env.save();
    let b = env.bundle.to_string_lossy().into_owned();
    let id = env.id("ptyown");
    let (code, out) = in_terminal(&format!("{BERTH} --root {} run -b {b} {id}", env.root.display()));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("owner=42:5"), "{out}");
    env.config["process"]["terminal"] = json!(false);
    env.config["process"]["user"] = json!({"uid": 0, "gid": 0});
    env.config["process"]["args"] = json!(["sleep", "100"]);
    env.save();
    let id = running(&env, "ptyownx");
    let inner = format!(
        "{BERTH} --root {} exec -t --user 43:43 {id} sh -c 'stat -c owner=%u:%g $(tty)'",
        env.root.display()
    );
    let (code, out) = in_terminal(&inner);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("owner=43:5"), "{out}");
}

/// runc's foreground relay clears ONLCR on the container's pty (tty.go recvtty) and leaves
/// output processing on in the caller's terminal (containerd/console's SetRaw keeps OPOST):
/// output redirected to a file has the process's "\n", a terminal shows "\r\n" once.
#[test]
fn foreground_terminal_output_keeps_bare_newlines() {
    require_root!();
    if !has_script() {
        return;
    }
    let mut env = Env::new(&["printf", "one\\ntwo\\n"]);
    env.config["process"]["terminal"] = json!(true);
    env.save();
    let b = env.bundle.to_string_lossy().into_owned();
    let file = env.dir.join("out.txt");
    let id = env.id("onlcr");
    let run = format!("{BERTH} --root {} run -b {b} {id}", env.root.display());
    let (code, out) = in_terminal(&format!("{run} > {}", file.display()));
    assert_eq!(code, Some(0), "{out:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "one\ntwo\n");
    let (code, out) = in_terminal(&run);
    assert_eq!(code, Some(0), "{out:?}");
    assert!(out.contains("one\r\ntwo\r\n") && !out.contains("\r\r"), "{out:?}");
    env.config["process"]["terminal"] = json!(false);
    env.config["process"]["args"] = json!(["sleep", "100"]);
    env.save();
    let id = running(&env, "onlcrx");
    let exec = format!(
        "{BERTH} --root {} exec -t {id} printf 'one\\ntwo\\n'",
        env.root.display()
    );
    let (code, out) = in_terminal(&format!("{exec} > {}", file.display()));
    assert_eq!(code, Some(0), "{out:?}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "one\ntwo\n");
    let (code, out) = in_terminal(&exec);
    assert_eq!(code, Some(0), "{out:?}");
    assert!(out.contains("one\r\ntwo\r\n") && !out.contains("\r\r"), "{out:?}");
}
