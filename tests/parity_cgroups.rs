//! runc 1.2+ parity: cgroups, devices, seccomp, namespaces, hooks and CLI details, each checked
//! through the real binary on whatever cgroup layout the host has (hybrid here). Cases that
//! need a pure cgroup v2 host live in tests/cgroups.rs, which the VM runs.
mod common;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn run_detached(env: &Env, id: &str) {
    let b = env.bundle.to_string_lossy().into_owned();
    env.berth(&["run", "-d", "-b", &b, id]).ok();
}

/// The first of `name` found in the container's cgroup directories.
fn cg_read(env: &Env, id: &str, name: &str) -> String {
    env.cgroup_paths(id)
        .iter()
        .find_map(|p| std::fs::read_to_string(p.join(name)).ok())
        .unwrap_or_else(|| panic!("no {name} in the cgroups of {id}"))
        .trim()
        .to_string()
}

// ---- 2. a cgroup in use or frozen is refused ----

/// runc 1.2: a second container pointed (cgroupsPath) at the cgroup of a running one is
/// refused before anything runs, and the running one is left alone.
#[test]
fn create_refuses_a_cgroup_that_holds_another_containers_processes() {
    require_root!();
    let mut env = Env::new(&["sleep", "100"]);
    let name = unique("berth-shared");
    env.config["linux"]["cgroupsPath"] = json!(format!("/{name}"));
    env.save();
    let first = env.id("first");
    run_detached(&env, &first);
    let second = env.id("second");
    let o = env.create(&second);
    assert_ne!(o.code, 0, "a second container was created in the same cgroup");
    assert!(
        o.stderr
            .contains("container's cgroup is not empty: 1 process(es) found"),
        "{}",
        o.stderr
    );
    assert!(
        !env.root.join(&second).exists(),
        "state of the refused container left behind"
    );
    assert_eq!(
        env.status(&first),
        "running",
        "the refused create touched the first container"
    );
    env.berth(&["delete", "--force", &first]).ok();
    env.assert_gone(&first);
    assert_no_cgroup(&name);
}

/// A cgroup someone froze, removed (thawed first) when dropped.
struct FrozenCgroup(Vec<(PathBuf, &'static str, &'static str)>);

impl FrozenCgroup {
    /// Freeze `name` where berth would put the container: the v1 freezer hierarchy where there
    /// is one, else cgroup2's cgroup.freeze. None when the host has neither.
    fn make(name: &str) -> Option<FrozenCgroup> {
        let v1 = Path::new("/sys/fs/cgroup/freezer");
        let (dir, file, on, off) = if v1.join("freezer.state").exists() || v1.join("cgroup.procs").exists() {
            (v1.join(name), "freezer.state", "FROZEN", "THAWED")
        } else if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            (Path::new("/sys/fs/cgroup").join(name), "cgroup.freeze", "1", "0")
        } else {
            return None;
        };
        std::fs::create_dir(&dir).unwrap();
        let g = FrozenCgroup(vec![(dir.clone(), file, off)]);
        std::fs::write(dir.join(file), on).unwrap();
        Some(g)
    }
}

impl Drop for FrozenCgroup {
    fn drop(&mut self) {
        for (dir, file, off) in &self.0 {
            let _ = std::fs::write(dir.join(file), off);
            for _ in 0..200 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }
}

/// A frozen cgroup is refused at create (runc 1.2); `run` used to hang forever with its init
/// frozen. The cgroup is not berth's: it stays, frozen, and nothing of the container is left.
#[test]
fn create_refuses_a_frozen_cgroup() {
    require_root!();
    let name = unique("berth-frozen");
    let Some(frozen) = FrozenCgroup::make(&name) else {
        return skip("no freezer (v1 freezer hierarchy or cgroup2) on this host");
    };
    let mut env = Env::new(&["true"]);
    env.config["linux"]["cgroupsPath"] = json!(format!("/{name}"));
    env.save();
    let id = env.id("frozen");
    let b = env.bundle.to_string_lossy().into_owned();
    let o = run_with_timeout(env.cmd(&["run", "-b", &b, &id]), 20, None);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("container's cgroup unexpectedly frozen"),
        "{}",
        o.stderr
    );
    assert!(
        !env.root.join(&id).exists(),
        "state of the refused container left behind"
    );
    let (dir, _, _) = &frozen.0[0];
    assert!(dir.is_dir(), "berth removed a cgroup it did not make");
    drop(frozen);
    assert_no_cgroup(&name);
}

// ---- 5. linux.devices never override linux.resources.devices ----

/// sh: prints "w:ok" or "w:EPERM" for a write-only open of /dev/kmsg (c 1:11, in no default
/// rule; a write-only open needs no CAP_SYSLOG and writes nothing).
const KMSG_WRITE: &str = r#"if (: > /dev/kmsg) 2>/tmp/e; then echo w:ok;
  elif grep -q 'not permitted' /tmp/e; then echo w:EPERM; else cat /tmp/e; fi"#;

/// As runc (specconv: only runc's default allowlist follows the config's rules), a device the
/// config creates gets no allow rule of its own: an explicit deny of it in
/// linux.resources.devices holds (it used to be re-allowed as `c 1:11 rwm` after the rules),
/// and the node is reachable only where the rules allow it.
#[test]
fn linux_devices_do_not_override_a_deny_rule() {
    require_root!();
    let kmsg = json!([{"path": "/dev/kmsg", "type": "c", "major": 1, "minor": 11, "fileMode": 0o666}]);
    let deny_all = json!({"allow": false, "access": "rwm"});
    let allow_all = json!({"allow": true, "access": "rwm"});
    let rule =
        |allow: bool, access: &str| json!({"allow": allow, "type": "c", "major": 1, "minor": 11, "access": access});
    for (rules, want) in [
        (json!([deny_all, rule(false, "rwm")]), "w:EPERM"),
        (json!([allow_all, rule(false, "w")]), "w:EPERM"),
        (json!([deny_all]), "w:EPERM"),
        (json!([deny_all, rule(true, "w")]), "w:ok"),
    ] {
        let mut env = Env::new(&["sh", "-c", KMSG_WRITE]);
        env.config["linux"]["devices"] = kmsg.clone();
        env.config["linux"]["resources"]["devices"] = rules.clone();
        env.save();
        let id = env.id("kmsg");
        let o = env.run(&id);
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert_eq!(o.stdout.trim(), want, "rules {rules}");
        env.assert_gone(&id);
    }
}

// ---- 1. pids.limit 0 is a limit ----

/// runtime-spec 1.3 (#1279): `pids.limit: 0` is a real limit (pids.max 0: nothing may fork),
/// not "leave it alone"; `update --pids-limit 0` too; a negative limit is "max".
#[test]
fn pids_limit_zero_is_a_real_limit() {
    require_root!();
    let mut env = Env::new(&["sleep", "100"]);
    env.config["linux"]["resources"]["pids"] = json!({"limit": 0});
    env.save();
    let id = env.id("pids0");
    run_detached(&env, &id);
    assert_eq!(cg_read(&env, &id, "pids.max"), "0");
    let o = env.berth(&["exec", &id, "sh", "-c", "sleep 1 & echo forked"]);
    assert!(
        !o.stdout.contains("forked") && o.stderr.contains("can't fork"),
        "{} {}",
        o.stdout,
        o.stderr
    );
    for (flag, want) in [("7", "7"), ("0", "0"), ("-1", "max")] {
        env.berth(&["update", "--pids-limit", flag, &id]).ok();
        assert_eq!(cg_read(&env, &id, "pids.max"), want, "--pids-limit {flag}");
    }
    env.berth(&["delete", "--force", &id]).ok();
    env.assert_gone(&id);
}

// ---- 7. seccomp: syscalls newer than the profile get ENOSYS ----

/// Calls each number given as an argument (six zero arguments) and prints "NR:0" or "NR:ERRNO".
const SYSCALL_PROBE: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        long nr = atol(argv[i]);
        errno = 0;
        long r = syscall(nr, 0, 0, 0, 0, 0, 0);
        printf("%ld:%d\n", nr, r == -1 ? errno : 0);
    }
    return 0;
}
"#;

/// runc's -ENOSYS stub: with a default action that refuses (here ERRNO with EPERM), a syscall
/// numbered above every one the profile names gets ENOSYS, so libc falls back to an older
/// call; older unnamed syscalls still get the default errno, named ones their rule's.
#[test]
fn syscalls_newer_than_the_profile_get_enosys() {
    require_root!();
    let profile: Value = serde_json::from_str(include_str!("data/docker-like-seccomp.json")).unwrap();
    // 1000: no such syscall; 463: setxattrat (Linux 6.13), newer than the profile and than the
    // libseccomp that compiles it; 163: acct, old and not named; 272: unshare, denied by a rule.
    let mut env = Env::new(&["/probe", "1000", "463", "163", "272"]);
    if cc_static(SYSCALL_PROBE, &env.rootfs().join("probe")).is_none() {
        return skip("gcc with static glibc (build-essential) is needed for the syscall probe");
    }
    env.config["linux"]["seccomp"] = profile;
    env.save();
    let id = env.id("enosys");
    let o = env.run(&id);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let (enosys, eperm) = (libc::ENOSYS, libc::EPERM);
    assert_eq!(
        o.stdout,
        format!("1000:{enosys}\n463:{enosys}\n163:{eperm}\n272:{eperm}\n"),
        "{}",
        o.stderr
    );
    env.assert_gone(&id);
}

// ---- 8. a joined user namespace together with namespaces it does not own ----

/// A child process killed and reaped when dropped.
struct Helper(std::process::Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A temporary directory, removed with everything in it when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> TempDir {
        let d = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ns_link(pid: u32, ns: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}"))
        .map(|l| l.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// runc 1.2's join order: the namespaces the runtime may join with its own capabilities first,
/// then the user namespace, then the ones that refused (EPERM) until then. A network
/// namespace of the initial user namespace cannot be joined from inside another container's
/// user namespace (`join net namespace: EPERM` when the user namespace went first).
#[test]
fn a_joined_user_namespace_with_a_network_namespace_it_does_not_own() {
    require_root!();
    let net = Helper(
        std::process::Command::new("unshare")
            .args(["--net", "sleep", "100"])
            .spawn()
            .expect("unshare(1) from util-linux"),
    );
    let npid = net.0.id();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while ns_link(npid, "net") == ns_link(std::process::id(), "net") || ns_link(npid, "net").is_empty() {
        assert!(std::time::Instant::now() < deadline, "unshare --net did not start");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let mut a = Env::new(&["sleep", "100"]);
    a.map_root_to(100000);
    let a_id = a.id("owner");
    run_detached(&a, &a_id);
    let apid = a.state(&a_id)["pid"].as_i64().unwrap() as u32;
    let mut b = Env::new(&["sh", "-c", "readlink /proc/self/ns/user; readlink /proc/self/ns/net"]);
    b.set_ns("user", Some(&format!("/proc/{apid}/ns/user")));
    b.set_ns("network", Some(&format!("/proc/{npid}/ns/net")));
    b.save();
    chown_tree(&b.rootfs(), 100000, 100000);
    let id = b.id("joiner");
    let o = b.run(&id);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        o.stdout,
        format!("{}\n{}\n", ns_link(apid, "user"), ns_link(npid, "net")),
        "{}",
        o.stderr
    );
    b.assert_gone(&id);
    a.berth(&["delete", "--force", &a_id]).ok();
    a.assert_gone(&a_id);
}

// ---- 3. v1 cpuset: empty ancestors are filled ----

/// A directory the test made in a cgroup hierarchy, removed (once empty) when dropped.
struct OwnCgroup(PathBuf);

impl Drop for OwnCgroup {
    fn drop(&mut self) {
        for _ in 0..200 {
            if std::fs::remove_dir(&self.0).is_ok() || !self.0.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

/// runc's cpusetEnsureParent: a new v1 cpuset has empty cpuset.cpus and cpuset.mems and refuses
/// tasks (ENOSPC) until they are set; a parent that already exists empty (made by someone
/// else) is filled from its own parent, as is every level down to the container's.
#[test]
fn an_empty_pre_existing_cpuset_parent_is_filled() {
    require_root!();
    let root = Path::new("/sys/fs/cgroup/cpuset");
    if !root.join("cpuset.cpus").exists() {
        return skip("no cgroup v1 cpuset hierarchy on this host");
    }
    let name = unique("berth-cpuset");
    let parent = OwnCgroup(root.join(&name));
    std::fs::create_dir(&parent.0).unwrap();
    assert_eq!(
        std::fs::read_to_string(parent.0.join("cpuset.cpus")).unwrap().trim(),
        ""
    );
    let mut env = Env::new(&["cat", "/proc/self/cgroup"]);
    env.config["linux"]["cgroupsPath"] = json!(format!("/{name}/c"));
    env.save();
    let id = env.id("cpuset");
    let o = env.run(&id);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains(&format!("cpuset:/{name}/c")), "{}", o.stdout);
    let want = std::fs::read_to_string(root.join("cpuset.cpus")).unwrap();
    assert_eq!(std::fs::read_to_string(parent.0.join("cpuset.cpus")).unwrap(), want);
    assert!(
        parent.0.is_dir() && !parent.0.join("c").exists(),
        "berth removed what it did not make, or left its own"
    );
    env.assert_gone(&id);
    drop(parent);
    assert_no_cgroup(&name);
}

// ---- 4. realtime period/runtime in the order the kernel takes them ----

/// runc's SetRtSched: a period below the current runtime is refused by the kernel (EINVAL)
/// until the runtime is lowered, so it is written again after the runtime; raising both
/// works in the plain order. (cgroup v1 only: runc refuses realtime settings on v2.)
#[test]
fn update_of_realtime_period_and_runtime_in_either_direction() {
    require_root!();
    if !Path::new("/sys/fs/cgroup/cpu/cpu.rt_runtime_us").exists() {
        return skip("no cgroup v1 cpu controller with realtime group scheduling on this host");
    }
    let mut env = Env::new(&["sleep", "100"]);
    // Right below the hierarchy root, whose realtime budget is the host's.
    let name = unique("berth-rt");
    env.config["linux"]["cgroupsPath"] = json!(format!("/{name}"));
    env.config["linux"]["resources"]["cpu"] = json!({"realtimePeriod": 1000000, "realtimeRuntime": 500000});
    env.save();
    let id = env.id("rt");
    run_detached(&env, &id);
    let rt = |env: &Env| {
        (
            cg_read(env, &id, "cpu.rt_period_us"),
            cg_read(env, &id, "cpu.rt_runtime_us"),
        )
    };
    assert_eq!(rt(&env), ("1000000".into(), "500000".into()));
    for (period, runtime) in [("400000", "300000"), ("1000000", "600000")] {
        let o = env.berth(&["update", "--cpu-rt-period", period, "--cpu-rt-runtime", runtime, &id]);
        assert_eq!(o.code, 0, "period {period} runtime {runtime}: {}", o.stderr);
        assert_eq!(rt(&env), (period.into(), runtime.into()));
    }
    env.berth(&["delete", "--force", &id]).ok();
    env.assert_gone(&id);
}

// ---- 6. exec --cgroup in runc's forms ----

/// `exec --cgroup` as runc 1.2: `controller[,controller]:path` once per controller (repeatable),
/// or one plain path for every hierarchy; an unknown controller, a repeated one or a plain path
/// beside others is an error. Per-controller paths are cgroup v1's (runc refuses them on v2).
#[test]
fn exec_cgroup_per_controller_and_plain() {
    require_root!();
    if !Path::new("/sys/fs/cgroup/memory/cgroup.procs").exists() || !Path::new("/sys/fs/cgroup/pids").is_dir() {
        return skip("per-controller sub-cgroups need cgroup v1 memory and pids hierarchies");
    }
    let env = Env::new(&["sleep", "100"]);
    let id = env.id("excg");
    run_detached(&env, &id);
    for p in env.cgroup_paths(&id) {
        for sub in ["m", "p", "all"] {
            std::fs::create_dir(p.join(sub)).unwrap();
            // A new v1 cpuset takes no task before it has cpus and mems.
            for f in ["cpuset.cpus", "cpuset.mems"] {
                if let Ok(v) = std::fs::read_to_string(p.join(f)) {
                    std::fs::write(p.join(sub).join(f), v.trim()).unwrap();
                }
            }
        }
    }
    let cgroups = |args: &[&str]| -> Vec<(String, String)> {
        let mut a = vec!["exec"];
        a.extend_from_slice(args);
        a.extend_from_slice(&[&id, "cat", "/proc/self/cgroup"]);
        let o = env.berth(&a);
        assert_eq!(o.code, 0, "{args:?}: {}", o.stderr);
        o.stdout
            .lines()
            .map(|l| {
                let mut f = l.splitn(3, ':').skip(1);
                (f.next().unwrap().to_string(), f.next().unwrap().to_string())
            })
            .collect()
    };
    let lines = cgroups(&["--cgroup", "memory:m", "--cgroup", "pids:/p"]);
    for (ctrls, path) in &lines {
        let want = match ctrls.as_str() {
            "memory" => "/m",
            "pids" => "/p",
            _ => "",
        };
        let leaf = path.rsplit('/').next().unwrap();
        assert_eq!(
            want.is_empty(),
            !["m", "p", "all"].contains(&leaf),
            "{ctrls}:{path} in {lines:?}"
        );
        assert!(path.ends_with(want), "{ctrls}:{path}");
    }
    for (ctrls, path) in cgroups(&["--cgroup", "all"]) {
        assert!(path.ends_with("/all"), "{ctrls}:{path}");
    }
    for (args, why) in [
        (&["--cgroup", "nosuch:x"][..], "unknown controller nosuch"),
        (
            &["--cgroup", "memory:m", "--cgroup", "memory:p"],
            "controller memory specified multiple times",
        ),
        (&["--cgroup", "m", "--cgroup", "pids:p"], "missing <controller>: prefix"),
        (&["--cgroup", "memory:../x"], "not a sub cgroup path"),
    ] {
        let mut a = vec!["exec"];
        a.extend_from_slice(args);
        a.extend_from_slice(&[&id, "true"]);
        let o = env.berth(&a);
        assert_ne!(o.code, 0, "{args:?}");
        assert!(o.stderr.contains(why), "{args:?}: {}", o.stderr);
    }
    env.berth(&["delete", "--force", &id]).ok();
    env.assert_gone(&id);
}

// ---- 9. list with a missing --root ----

/// runc (1.2+; 1.5 fixed which case): a --root that does not exist is an error naming it, not
/// an empty list (a typo'd root looked like "no containers"); nothing is created there.
#[test]
fn list_with_a_missing_root_fails() {
    let dir = std::env::temp_dir().join(unique("berth-noroot"));
    for args in [&["list"][..], &["list", "-q"], &["list", "--format", "json"]] {
        let mut c = std::process::Command::new(BERTH);
        c.arg("--root").arg(&dir).args(args);
        let o = run_with_timeout(c, 10, None);
        assert_eq!(o.code, 1, "{args:?}: {}", o.stdout);
        assert!(
            o.stderr
                .contains(&format!("open {}: no such file or directory", dir.display())),
            "{args:?}: {}",
            o.stderr
        );
        assert!(o.stdout.is_empty(), "{}", o.stdout);
        assert!(!dir.exists());
    }
}

// ---- 12. the working directory of hooks ----

/// runc's: the runtime-side hooks (prestart, createRuntime, poststart, poststop) run in runc's
/// working directory, the bundle; createContainer in the container's root (before pivot_root,
/// so as the host names it); startContainer in the process's cwd inside the container.
/// NVIDIA-style hooks write paths relative to these.
#[test]
fn hooks_run_in_runcs_working_directories() {
    require_root!();
    let mut env = Env::new(&["true"]);
    env.config["process"]["cwd"] = json!("/root");
    let out = env.dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let host = |kind: &str| json!({"path": "/bin/sh", "args": ["sh", "-c", format!("pwd > {}/{kind}; : > {kind}.rel", out.display())]});
    env.config["hooks"] = json!({
        "prestart": [host("prestart")],
        "createRuntime": [host("createRuntime")],
        "createContainer": [host("createContainer")],
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "pwd > /tmp/startContainer"]}],
        "poststart": [host("poststart")],
        "poststop": [host("poststop")],
    });
    env.save();
    let id = env.id("hookdir");
    // From another directory, which the test removes (whatever a hook leaves there).
    let b = env.bundle.to_string_lossy().into_owned();
    let mut run = env.cmd(&["run", "-b", &b, &id]);
    run.current_dir(&env.dir);
    let o = run_with_timeout(run, 30, None);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let read = |p: PathBuf| std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let bundle = env.bundle.canonicalize().unwrap();
    for kind in ["prestart", "createRuntime", "poststart", "poststop"] {
        assert_eq!(read(out.join(kind)).trim(), bundle.to_str().unwrap(), "{kind}");
        assert!(bundle.join(format!("{kind}.rel")).exists(), "{kind}");
    }
    let rootfs = env.rootfs().canonicalize().unwrap();
    assert_eq!(read(out.join("createContainer")).trim(), rootfs.to_str().unwrap());
    assert!(rootfs.join("createContainer.rel").exists());
    assert_eq!(read(rootfs.join("tmp/startContainer")).trim(), "/root");
    env.assert_gone(&id);
}

// ---- 10. --pidfd-socket ----

/// Accept one connection on `path` and receive one message with an fd (SCM_RIGHTS):
/// (payload, the pid the fd refers to, from its fdinfo).
fn receive_pidfd(listener: std::os::unix::net::UnixListener) -> std::thread::JoinHandle<(String, String)> {
    std::thread::spawn(move || {
        use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
        use std::os::fd::AsRawFd;
        let (conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 64];
        let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let msg = recvmsg::<()>(conn.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::MSG_CMSG_CLOEXEC).unwrap();
        let mut fd = None;
        for c in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(fds) = c {
                fd = fds.first().copied();
            }
        }
        let n = msg.bytes;
        let fd = fd.expect("no fd received");
        let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")).unwrap();
        nix::unistd::close(fd).unwrap();
        let pid = info
            .lines()
            .find_map(|l| l.strip_prefix("Pid:"))
            .expect("not a pidfd")
            .trim()
            .to_string();
        (String::from_utf8_lossy(&buf[..n]).into_owned(), pid)
    })
}

/// runc 1.2's --pidfd-socket: create/run send a pidfd of the container's init, exec one of
/// the exec'd process, with SCM_RIGHTS and "standard" / "setns" as the payload; a socket that
/// cannot be reached fails before anything is made.
#[test]
fn pidfd_socket_receives_the_init_and_exec_pidfds() {
    require_root!();
    let env = Env::new(&["sleep", "100"]);
    let sock = env.dir.join("pidfd.sock");
    let b = env.bundle.to_string_lossy().into_owned();
    let s = sock.to_string_lossy().into_owned();
    let id = env.id("pidfd");
    let got = receive_pidfd(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    env.berth(&["run", "-d", "--pidfd-socket", &s, "-b", &b, &id]).ok();
    let (kind, pid) = got.join().unwrap();
    assert_eq!((kind.as_str(), pid), ("standard", env.state(&id)["pid"].to_string()));
    std::fs::remove_file(&sock).unwrap();
    let got = receive_pidfd(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    let pf = env.dir.join("exec.pid");
    let p = pf.to_string_lossy().into_owned();
    env.berth(&[
        "exec",
        "-d",
        "--pid-file",
        &p,
        "--pidfd-socket",
        &s,
        &id,
        "sleep",
        "100",
    ])
    .ok();
    let (kind, pid) = got.join().unwrap();
    assert_eq!((kind.as_str(), pid), ("setns", std::fs::read_to_string(&pf).unwrap()));
    let missing = env.dir.join("nobody.sock").to_string_lossy().into_owned();
    let other = env.id("pidfd-none");
    let o = env.berth(&["create", "--pidfd-socket", &missing, "-b", &b, &other]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains(&format!("failed to dial {missing}")), "{}", o.stderr);
    env.assert_gone(&other);
    env.berth(&["delete", "--force", &id]).ok();
    env.assert_gone(&id);
}

// ---- 11. SCMP_ACT_NOTIFY on the syscalls berth makes after loading the filter ----

/// A seccomp agent: `agent SOCK LOG` accepts one connection on the unix socket SOCK, takes the
/// listener fd from it, and answers every notification with CONTINUE, logging "nr path" (the
/// first argument read as a string from the process's memory) to LOG, until the filter's last
/// task is gone.
const AGENT: &str = r#"
#include <fcntl.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 1)) return 2;
    int c = accept(s, 0, 0);
    char buf[8192], ctl[CMSG_SPACE(sizeof(int))];
    struct iovec iov = {buf, sizeof buf};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
    if (recvmsg(c, &m, 0) < 0) return 3;
    int fd;
    memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof fd);
    FILE *log = fopen(argv[2], "w");
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 20000) <= 0 || (p.revents & POLLHUP)) break;
        struct seccomp_notif n;
        memset(&n, 0, sizeof n);
        if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, &n)) continue;
        char path[64], arg[256] = "";
        snprintf(path, sizeof path, "/proc/%u/mem", n.pid);
        int mem = open(path, O_RDONLY);
        if (mem >= 0) {
            pread(mem, arg, sizeof arg - 1, n.data.args[0]);
            close(mem);
        }
        fprintf(log, "%d %s\n", n.data.nr, arg);
        fflush(log);
        struct seccomp_notif_resp r = {.id = n.id, .flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE};
        ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &r);
    }
    return 0;
}
"#;

/// As runc, SCMP_ACT_NOTIFY works on the syscalls the runtime itself makes once the filter is
/// loaded (execve, read, close, ...): the listener reaches the agent first, and the agent is
/// notified of the container's own execve (not of berth's trampoline, reached with execveat).
/// Only `write` is refused, with runc's text, and sendmsg, which carries the listener.
#[test]
fn notify_on_execve_reaches_the_agent() {
    require_root!();
    let tmp = TempDir::new("berth-agent");
    let dir = &tmp.0;
    let agent_bin = dir.join("agent");
    if cc_static(AGENT, &agent_bin).is_none() {
        return skip("gcc with static glibc (build-essential) is needed for the seccomp agent");
    }
    let sock = dir.join("agent.sock");
    // Loaded before the capability drop without no_new_privs, right before the end with it.
    for nnp in [true, false] {
        let _ = std::fs::remove_file(&sock);
        let log = dir.join(format!("agent-{nnp}.log"));
        let agent = Helper(
            std::process::Command::new(&agent_bin)
                .arg(&sock)
                .arg(&log)
                .spawn()
                .unwrap(),
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !sock.exists() {
            assert!(std::time::Instant::now() < deadline, "the agent did not start");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let mut env = Env::new(&["/bin/sh", "-c", "/bin/true && echo ran"]);
        env.config["process"]["noNewPrivileges"] = json!(nnp);
        env.config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock,
            "syscalls": [{"names": ["execve", "read", "close"], "action": "SCMP_ACT_NOTIFY"}]});
        env.save();
        let id = env.id("notify-exec");
        let o = env.run(&id);
        assert_eq!((o.code, o.stdout.as_str()), (0, "ran\n"), "nnp {nnp}: {}", o.stderr);
        env.assert_gone(&id);
        drop(agent);
        let text = std::fs::read_to_string(&log).unwrap();
        let execs: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{} ", libc::SYS_execve)))
            .collect();
        assert_eq!(execs, ["/bin/sh", "/bin/true"], "nnp {nnp}: {text}");
    }
    for name in ["write", "sendmsg"] {
        let mut env = Env::new(&["true"]);
        env.config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": sock,
            "syscalls": [{"names": [name], "action": "SCMP_ACT_NOTIFY"}]});
        env.save();
        let id = env.id("notify-refused");
        let o = env.run(&id);
        assert_ne!(o.code, 0);
        assert!(
            o.stderr
                .contains(&format!("SCMP_ACT_NOTIFY cannot be used for the {name} syscall")),
            "{}",
            o.stderr
        );
        env.assert_gone(&id);
    }
}
