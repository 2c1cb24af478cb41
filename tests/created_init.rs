//! The init of a `created` container, probed as an attacker in the container would: it must hold
//! nothing of the host (no fd of berth's caller, not berth's binary as its exe), still run the
//! startContainer hooks after `start`, and name the error when the final exec fails.
mod common;
use common::*;
use serde_json::json;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

/// Open `p` without close-on-exec, as a careless caller would leave it for berth to inherit.
fn inheritable(p: &Path) -> std::fs::File {
    let f = std::fs::File::open(p).unwrap();
    nix::fcntl::fcntl(
        f.as_raw_fd(),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .unwrap();
    f
}

fn init_pid(env: &Env, id: &str) -> i64 {
    env.state(id)["pid"].as_i64().unwrap()
}

#[test]
fn a_created_init_holds_no_fd_and_is_not_berths_binary() {
    require_root!();
    let mut env = Env::new(&["true"]);
    // A joined namespace (the host's IPC namespace, by path) and a --log file: fds of berth's
    // own that the init must not keep either.
    env.set_ns("ipc", Some("/proc/self/ns/ipc"));
    env.save();
    // Directory fds 3-8 in the caller: a host `/`, /etc and the bundle among them.
    let dirs: Vec<std::fs::File> = ["/", "/etc", "/usr", "/var", "/tmp"]
        .iter()
        .map(|p| inheritable(Path::new(p)))
        .chain([inheritable(&env.bundle)])
        .collect();
    let id = env.id("fds");
    let log = env.dir.join("berth.log");
    let b = env.bundle.to_string_lossy().into_owned();
    let o = env.berth(&["--log", &log.to_string_lossy(), "create", "-b", &b, &id]);
    drop(dirs);
    o.ok();
    let pid = init_pid(&env, &id);
    let fd_dir = format!("/proc/{pid}/fd");
    let mut left = Vec::new();
    for e in std::fs::read_dir(&fd_dir).unwrap() {
        let e = e.unwrap();
        let n: i32 = e.file_name().to_str().unwrap().parse().unwrap();
        let target = std::fs::read_link(e.path()).unwrap_or_default();
        if n > 2 {
            left.push((n, target));
        }
    }
    // Only the exec fifo it waits on.
    assert_eq!(left.len(), 1, "the waiting init holds {left:?}");
    assert!(left[0].1.ends_with("exec.fifo"), "{left:?}");
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    assert!(
        exe.to_string_lossy().starts_with("/memfd:berth-exec"),
        "exe is {}",
        exe.display()
    );
    let me = std::fs::metadata(BERTH).unwrap();
    let it = std::fs::metadata(format!("/proc/{pid}/exe")).unwrap();
    assert_ne!(
        (me.dev(), me.ino()),
        (it.dev(), it.ino()),
        "the waiting init is berth's binary"
    );
    env.berth(&["start", &id]).ok();
    env.wait_status(&id, "stopped");
}

#[test]
fn a_created_init_probed_with_cap_sys_ptrace_exposes_nothing_of_the_host() {
    require_root!();
    let env = Env::new(&["sleep", "3"]);
    // Run a copy of berth: if the defence failed, the copy, not the build, would be damaged.
    let copy = env.dir.join("berth-copy");
    std::fs::copy(BERTH, &copy).unwrap();
    let before = std::fs::read(&copy).unwrap();
    let berth = |args: &[&str]| {
        let mut c = Command::new(&copy);
        c.arg("--root").arg(&env.root).args(args);
        c
    };
    let id = env.id("ptrace");
    let b = env.bundle.to_string_lossy().into_owned();
    let root_fd = inheritable(Path::new("/"));
    let o = run_with_timeout(berth(&["create", "-b", &b, &id]), 30, None);
    drop(root_fd);
    o.ok();
    // A debugging exec (`--cap-add SYS_PTRACE`, with Docker's default CAP_DAC_OVERRIDE, so the
    // execute-only trampoline is readable to it) looks at pid 1 while the container is created.
    let probe =
        "readlink /proc/1/exe; for f in /proc/1/fd/*; do ls \"$f/\" >/dev/null 2>&1 && echo LISTED \"$f\"; done; \
                 echo pwned >> /proc/1/exe 2>/dev/null && echo WROTE; ls /proc/1/fd | wc -l";
    let o = run_with_timeout(
        berth(&[
            "exec",
            "-c",
            "CAP_SYS_PTRACE",
            "-c",
            "CAP_DAC_OVERRIDE",
            &id,
            "sh",
            "-c",
            probe,
        ]),
        30,
        None,
    );
    o.ok();
    assert!(o.stdout.starts_with("/memfd:berth-exec"), "pid 1's exe: {}", o.stdout);
    assert!(!o.stdout.contains("LISTED"), "a directory of the host: {}", o.stdout);
    assert!(!o.stdout.contains("WROTE"), "{}", o.stdout);
    // 0-2 and the exec fifo.
    assert_eq!(o.stdout.lines().last(), Some("4"), "{}", o.stdout);
    // A handle on pid 1's exe, taken while created and tried for writing after `start`, when no
    // berth process runs any more (CVE-2019-5736's window).
    let holder = "exec 3</proc/1/exe; readlink /proc/self/fd/3; sleep 1; \
                  (echo pwned >> /proc/self/fd/3) 2>/dev/null && echo WROTE; \
                  (printf pwned 1<>/proc/self/fd/3) 2>/dev/null && echo WROTE; echo done";
    let mut h = berth(&[
        "exec",
        "-c",
        "CAP_SYS_PTRACE",
        "-c",
        "CAP_DAC_OVERRIDE",
        &id,
        "sh",
        "-c",
        holder,
    ]);
    let out = env.dir.join("holder.out");
    h.stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::process::Stdio::null());
    let mut child = h.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    run_with_timeout(berth(&["start", &id]), 30, None).ok();
    let st = child.wait().unwrap();
    assert!(st.success());
    let held = std::fs::read_to_string(&out).unwrap();
    assert!(held.starts_with("/memfd:berth-exec"), "held {held}");
    assert!(!held.contains("WROTE"), "{held}");
    assert!(held.contains("done"), "{held}");
    env.wait_status(&id, "stopped");
    assert_eq!(std::fs::read(&copy).unwrap(), before, "berth's binary changed");
}

#[test]
fn start_container_hooks_run_after_start_inside_the_container() {
    require_root!();
    let mut env = Env::new(&["cat", "/hook.out"]);
    std::fs::write(
        env.rootfs().join("hook.sh"),
        "#!/bin/sh\necho \"hook pid=$$ foo=$FOO state=$(cat)\" > /hook.out\n",
    )
    .unwrap();
    std::fs::set_permissions(
        env.rootfs().join("hook.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    env.config["process"]["env"] = json!(["PATH=/bin", "FOO=process-env"]);
    env.config["hooks"] = json!({"startContainer": [{"path": "/hook.sh"}]});
    env.save();
    let id = env.id("hook");
    env.create(&id).ok();
    assert!(!env.rootfs().join("hook.out").exists(), "the hook ran before start");
    env.berth(&["start", &id]).ok();
    env.wait_status(&id, "stopped");
    let out = std::fs::read_to_string(env.rootfs().join("hook.out")).unwrap();
    // In the container's pid namespace (the init is 1, the hook its child), with the process's
    // environment (runc runs them from its init), and the state on stdin.
    assert!(out.starts_with("hook pid=2 foo=process-env"), "{out}");
    assert!(out.contains(&format!("\"id\":\"{id}\"")), "{out}");
    assert!(out.contains("\"status\":\"created\""), "{out}");
}

#[test]
fn a_failing_start_container_hook_fails_run_and_the_process_never_runs() {
    require_root!();
    let mut env = Env::new(&["sh", "-c", "echo RAN"]);
    env.config["hooks"] = json!({"startContainer": [
        {"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}
    ]});
    env.save();
    let id = env.id("hookfail");
    let o = env.run(&id);
    assert_ne!(o.code, 0);
    assert!(!o.stdout.contains("RAN"), "{}", o.stdout);
    assert!(
        o.stderr
            .contains("error running startContainer hook #0 (/bin/sh): exit status 3"),
        "{}",
        o.stderr
    );
    env.assert_gone(&id);
    env.config["hooks"] = json!({"startContainer": [
        {"path": "/bin/sleep", "args": ["sleep", "10"], "timeout": 1}
    ]});
    env.save();
    let id = env.id("hooktimeout");
    let t = std::time::Instant::now();
    let o = env.run(&id);
    assert_ne!(o.code, 0);
    assert!(t.elapsed() < std::time::Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(o.stderr.contains("timed out after 1 seconds"), "{}", o.stderr);
    env.assert_gone(&id);
}

/// An ELF header for another architecture (aarch64): the kernel refuses it with ENOEXEC.
fn foreign_elf(p: &Path) {
    let mut b = b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00".to_vec();
    b.resize(256, 0);
    std::fs::write(p, b).unwrap();
    std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

#[test]
fn exec_failures_are_named_as_runc_names_them() {
    require_root!();
    let mut env = Env::new(&["true"]);
    let r = env.rootfs();
    std::fs::write(r.join("bin/noint"), "#!/missing/interpreter\n").unwrap();
    std::fs::set_permissions(r.join("bin/noint"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    foreign_elf(&r.join("bin/arm"));
    let bin = r.join("bin").to_string_lossy().into_owned();
    env.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/nx", "type": "bind", "source": bin, "options": ["bind", "noexec"]}));
    for (prog, text) in [
        // As the error line shows them: quotes escaped, as in runc's log lines.
        ("/bin/noint", r#"exec \"/bin/noint\": no such file or directory"#),
        ("/bin/arm", r#"exec \"/bin/arm\": exec format error"#),
        ("/nx/busybox", r#"exec \"/nx/busybox\": permission denied"#),
    ] {
        env.config["process"]["args"] = json!([prog]);
        env.save();
        let id = env.id("execfail");
        let o = env.run(&id);
        assert_ne!(o.code, 0, "{prog}");
        assert!(
            o.stderr.contains(&format!("unable to start container process: {text}")),
            "{prog}: {}",
            o.stderr
        );
        env.assert_gone(&id);
    }
    // create + start: nobody waits on the init any more; like runc's init it says so on the
    // container's stderr.
    env.config["process"]["args"] = json!(["/bin/arm"]);
    env.save();
    let id = env.id("execfail-start");
    let err = env.dir.join("container.err");
    let mut c = env.cmd(&["create", "-b", &env.bundle.to_string_lossy(), &id]);
    c.stderr(std::fs::File::create(&err).unwrap())
        .stdout(std::process::Stdio::null())
        .stdin(std::process::Stdio::null());
    assert!(c.status().unwrap().success());
    env.berth(&["start", &id]).ok();
    env.wait_status(&id, "stopped");
    let text = std::fs::read_to_string(&err).unwrap();
    assert!(text.contains("exec /bin/arm: exec format error"), "{text}");
}

#[test]
fn a_profile_denying_execveat_still_gets_the_trampoline_or_falls_back_to_berth_waiting() {
    require_root!();
    let mut env = Env::new(&["sh", "-c", "cat /hook.out"]);
    env.config["hooks"] = json!({"startContainer": [
        {"path": "/bin/sh", "args": ["sh", "-c", "echo hook-ran > /hook.out"]}
    ]});
    let proc_mount = env.config["mounts"].as_array().unwrap()[0].clone();
    assert_eq!(proc_mount["destination"], "/proc");
    for (nnp, proc) in [(false, true), (true, true), (false, false), (true, false)] {
        env.config["process"]["noNewPrivileges"] = json!(nnp);
        env.config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["execveat"], "action": "SCMP_ACT_ERRNO"}]
        });
        let mounts = env.config["mounts"].as_array_mut().unwrap();
        mounts.retain(|m| m["destination"] != "/proc");
        if proc {
            mounts.insert(0, proc_mount.clone());
        }
        env.save();
        let _ = std::fs::remove_file(env.rootfs().join("hook.out"));
        let id = env.id("noexecveat");
        let o = env.run(&id);
        assert_eq!(o.code, 0, "nnp {nnp} proc {proc}: {}", o.stderr);
        assert_eq!(o.stdout, "hook-ran\n", "nnp {nnp} proc {proc}");
        env.assert_gone(&id);
        let _ = std::fs::remove_file(env.rootfs().join("hook.out"));
        let id = env.id("noexecveat-start");
        env.create(&id).ok();
        let pid = init_pid(&env, &id);
        let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        // With the container's procfs the trampoline is reached by path; without one berth
        // itself waits (the residual case SECURITY.md names).
        assert_eq!(
            exe.to_string_lossy().starts_with("/memfd:berth-exec"),
            proc,
            "nnp {nnp} proc {proc}: {}",
            exe.display()
        );
        env.berth(&["start", &id]).ok();
        env.wait_status(&id, "stopped");
        assert!(env.rootfs().join("hook.out").exists(), "nnp {nnp} proc {proc}: no hook");
    }
}

/// A container process holding CAP_SYS_PTRACE (no user namespace: it overrides the non-dumpable
/// flag) that spins on `/proc/<pid>/exe` of every new pid in its pid namespace, as a
/// CVE-2019-5736 exploit does, and reports any it opens that is `dev ino` (argv 1, 2): the copy
/// of berth the test runs. It stops when `/stop` exists; it prints `SEEN n`, the exes it did
/// open, so a probe that never reached anything cannot pass for a defence.
const EXE_RACER: &str = r#"
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
int main(int argc, char **argv) {
    unsigned long dev = strtoul(argv[1], 0, 10), ino = strtoul(argv[2], 0, 10);
    long lo = getpid() + 1, hi = 0, seen = 0, got = 0, n;
    char p[64], line[64];
    struct stat st;
    while (access("/stop", F_OK) != 0) {
        for (n = lo; n < lo + 16; n++) {
            int fd;
            if (kill(n, 0) != 0) continue;
            if (n > hi) hi = n;
            snprintf(p, sizeof p, "/proc/%ld/exe", n);
            fd = open(p, O_RDONLY);
            if (fd < 0) continue;
            seen++;
            if (fstat(fd, &st) == 0 && st.st_dev == dev && st.st_ino == ino && n != got) {
                got = n;
                int k = snprintf(line, sizeof line, "GOT %ld\n", n);
                write(1, line, k);
            }
            close(fd);
        }
        while (lo < hi && kill(lo, 0) != 0) lo++;
    }
    printf("SEEN %ld\n", seen);
    return 0;
}
"#;

/// A container whose process is EXE_RACER with CAP_SYS_PTRACE, run by a copy of berth (`dev`,
/// `ino`: the copy's). Returns the env, the copy, the container's id and its stdout file.
fn start_exe_racer(tag: &str) -> Option<(Env, std::path::PathBuf, String, std::path::PathBuf)> {
    let mut env = Env::new(&["true"]);
    let copy = env.dir.join("berth-copy");
    std::fs::copy(BERTH, &copy).unwrap();
    let m = std::fs::metadata(&copy).unwrap();
    if cc_static(EXE_RACER, &env.rootfs().join("racer")).is_none() {
        skip("needs gcc and a static libc to build the probe");
        return None;
    }
    env.config["process"]["args"] = json!(["/racer", m.dev().to_string(), m.ino().to_string()]);
    for set in ["bounding", "effective", "permitted"] {
        env.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_SYS_PTRACE"));
    }
    env.save();
    let id = env.id(tag);
    let out = env.dir.join("racer.out");
    let mut c = Command::new(&copy);
    c.arg("--root")
        .arg(&env.root)
        .args(["create", "-b", &env.bundle.to_string_lossy(), &id]);
    c.stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::process::Stdio::null())
        .stdin(std::process::Stdio::null());
    assert!(c.status().unwrap().success());
    env.berth(&["start", &id]).ok();
    Some((env, copy, id, out))
}

/// Stop the racer and return what it saw, asserting it saw something.
fn stop_exe_racer(env: &Env, id: &str, out: &Path) -> String {
    std::fs::write(env.rootfs().join("stop"), "").unwrap();
    env.wait_status(id, "stopped");
    let text = std::fs::read_to_string(out).unwrap();
    let seen: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("SEEN "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the racer did not finish: {text}"));
    assert!(seen > 0, "the racer never opened any exe: the probe proves nothing");
    text
}

/// CVE-2019-5736 through `exec`: while exec's process is set up it must never exist in the
/// container's pid namespace as berth's binary, or a process with CAP_SYS_PTRACE can open its
/// `/proc/<pid>/exe` (and write berth once no berth runs).
#[test]
fn execs_raced_through_proc_exe_with_cap_sys_ptrace_never_reach_berths_binary() {
    require_root!();
    let Some((env, copy, id, out)) = start_exe_racer("exe-race") else {
        return;
    };
    let t = std::time::Instant::now();
    let mut n = 0;
    while n < 300 && t.elapsed() < std::time::Duration::from_secs(6) {
        let mut c = Command::new(&copy);
        c.arg("--root").arg(&env.root).args(["exec", &id, "true"]);
        let o = run_with_timeout(c, 30, None);
        assert_eq!(o.code, 0, "exec: {}", o.stderr);
        n += 1;
    }
    let text = stop_exe_racer(&env, &id, &out);
    assert!(
        !text.contains("GOT"),
        "after {n} execs, a container process opened berth's binary: {text}"
    );
}

/// CVE-2019-5736 through `create` joining the pid namespace of running processes (pods that
/// share one): the init forks into it before it sets up, so it is berth's binary there for
/// the whole rootfs setup.
#[test]
#[ignore = "known gap (SECURITY.md): create's init sets up inside a joined pid namespace as berth's binary"]
fn creates_joining_a_raced_pid_namespace_never_expose_berths_binary() {
    require_root!();
    let Some((env, copy, id, out)) = start_exe_racer("exe-race-pidns") else {
        return;
    };
    let pid = init_pid(&env, &id);
    let mut joiner = Env::new(&["true"]);
    joiner.set_ns("pid", Some(&format!("/proc/{pid}/ns/pid")));
    joiner.save();
    let b = joiner.bundle.to_string_lossy().into_owned();
    let t = std::time::Instant::now();
    let mut n = 0;
    while n < 100 && t.elapsed() < std::time::Duration::from_secs(6) {
        let jid = joiner.id("joiner");
        let mut c = Command::new(&copy);
        c.arg("--root").arg(&joiner.root).args(["run", "-b", &b, &jid]);
        let o = run_with_timeout(c, 30, None);
        assert_eq!(o.code, 0, "run: {}", o.stderr);
        n += 1;
    }
    let text = stop_exe_racer(&env, &id, &out);
    assert!(
        !text.contains("GOT"),
        "after {n} creates, a container process opened berth's binary: {text}"
    );
}
