//! Immunity tests: each one really attacks the berth binary with a hostile image or config and
//! then checks the host (files, mounts, the binary itself). SECURITY.md maps them to CVEs.
mod common;
use common::*;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Host mount points at or under `p`, from our own mountinfo (the host's namespace).
fn host_mounts_under(p: &Path) -> Vec<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let p = p.to_string_lossy().into_owned();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| *m == p || m.starts_with(&format!("{p}/")))
        .collect()
}

/// A fresh empty directory on the host, outside every bundle.
fn host_dir(prefix: &str) -> PathBuf {
    let d = std::env::temp_dir().join(unique(prefix));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn assert_untouched(d: &Path) {
    let left: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "created on the host: {left:?}");
    assert!(host_mounts_under(d).is_empty(), "host mounts under {}", d.display());
}

fn drop_mounts(env: &mut Env, pred: impl Fn(&str) -> bool) {
    let mounts = env.config["mounts"].as_array().unwrap().clone();
    let kept: Vec<Value> = mounts
        .into_iter()
        .filter(|m| !pred(m["destination"].as_str().unwrap()))
        .collect();
    env.config["mounts"] = json!(kept);
}

fn file_hash(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap()
}

#[test]
fn cve_2019_5736_self_exe_entrypoints_are_refused() {
    require_root!();
    let mut env = Env::new(&["/entry.sh"]);
    // Run a copy of berth, so a failed defence cannot break the build's binary.
    let copy = env.dir.join("berth-copy");
    std::fs::copy(BERTH, &copy).unwrap();
    let before = file_hash(&copy);
    let r = env.rootfs();
    std::fs::write(r.join("entry.sh"), "#!/proc/self/exe\n").unwrap();
    std::fs::write(r.join("a.sh"), "#!/b.sh\n").unwrap();
    std::fs::write(r.join("b.sh"), "#!/proc/self/exe --version\n").unwrap();
    for f in ["entry.sh", "a.sh", "b.sh"] {
        std::fs::set_permissions(r.join(f), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::os::unix::fs::symlink("/proc/self/exe", r.join("bin/evil")).unwrap();
    let b = env.bundle.to_string_lossy().into_owned();
    for args in [vec!["/entry.sh"], vec!["/a.sh"], vec!["/proc/self/exe"], vec!["evil"]] {
        env.config["process"]["args"] = json!(args);
        env.save();
        let id = env.id("exe");
        // Inside: an attacker would now reopen /proc/1/exe for writing; it must never be berth.
        let mut cmd = Command::new(&copy);
        cmd.arg("--root").arg(&env.root).args(["run", "-b", &b, &id]);
        let o = run_with_timeout(cmd, 30, None);
        assert_ne!(o.code, 0, "{args:?} ran: {}", o.stdout);
        assert!(o.stderr.contains("CVE-2019-5736"), "{args:?}: {}", o.stderr);
        env.assert_gone(&id);
    }
    assert_eq!(file_hash(&copy), before, "berth's binary changed");
}

/// The stat chain cannot read an execute-only script (mode 0111; container root without
/// CAP_DAC_OVERRIDE, as in runc's default spec), and a process already in a running container
/// can swap a program between any check and the exec. The sealed trampoline the final exec goes
/// through covers both: `/proc/self/exe` is never berth's binary when the kernel resolves it.
#[test]
fn cve_2019_5736_unreadable_self_exe_script_never_runs_berth() {
    require_root!();
    let mut env = Env::new(&["/entry"]);
    let copy = env.dir.join("berth-copy");
    std::fs::copy(BERTH, &copy).unwrap();
    let before = file_hash(&copy);
    let r = env.rootfs();
    // "--version" makes a berth that runs inside the container print itself.
    std::fs::write(r.join("entry"), "#!/proc/self/exe --version\n").unwrap();
    std::fs::set_permissions(r.join("entry"), std::fs::Permissions::from_mode(0o111)).unwrap();
    let b = env.bundle.to_string_lossy().into_owned();
    for cmd_kind in ["run", "exec"] {
        let id = env.id("exe-x");
        let o = if cmd_kind == "run" {
            let mut cmd = Command::new(&copy);
            cmd.arg("--root").arg(&env.root).args(["run", "-b", &b, &id]);
            run_with_timeout(cmd, 30, None)
        } else {
            env.config["process"]["args"] = json!(["sleep", "100"]);
            env.save();
            let mut cmd = Command::new(&copy);
            cmd.arg("--root").arg(&env.root).args(["run", "-d", "-b", &b, &id]);
            assert_eq!(run_with_timeout(cmd, 30, None).code, 0);
            let mut cmd = Command::new(&copy);
            cmd.arg("--root").arg(&env.root).args(["exec", &id, "/entry"]);
            let o = run_with_timeout(cmd, 30, None);
            env.config["process"]["args"] = json!(["/entry"]);
            env.save();
            o
        };
        assert!(
            !o.stdout.contains("berth version"),
            "{cmd_kind}: berth ran in the container: {}",
            o.stdout
        );
        // 127 is the trampoline refusing to be an interpreter: the kernel resolved
        // /proc/self/exe to the sealed trampoline, not to berth's binary.
        assert_eq!(o.code, 127, "{cmd_kind}: {} {}", o.stdout, o.stderr);
        let mut del = Command::new(&copy);
        del.arg("--root").arg(&env.root).args(["delete", "-f", &id]);
        run_with_timeout(del, 30, None);
        env.assert_gone(&id);
    }
    assert_eq!(file_hash(&copy), before, "berth's binary changed");
}

#[test]
fn cve_2019_5736_a_waiting_init_is_unreachable_through_proc_exe() {
    require_root!();
    let waiting = Env::new(&["true"]);
    let copy = waiting.dir.join("berth-copy");
    std::fs::copy(BERTH, &copy).unwrap();
    let before = file_hash(&copy);
    let berth = |env: &Env, args: &[&str]| {
        let mut cmd = Command::new(&copy);
        cmd.arg("--root").arg(&env.root).args(args);
        run_with_timeout(cmd, 30, None)
    };
    // A created container's init is berth's binary until `start`.
    let a = waiting.id("exe-a");
    let wb = waiting.bundle.to_string_lossy().into_owned();
    berth(&waiting, &["create", "-b", &wb, &a]).ok();
    let pid = waiting.state(&a)["pid"].as_i64().unwrap();
    // The attacker shares the host pid namespace, so it sees that init in /proc.
    let script = format!(
        "cat /proc/{pid}/exe >/dev/null 2>&1 && echo READ; (exec 3</proc/{pid}/exe) 2>/dev/null && echo OPENED; \
         echo pwned >> /proc/{pid}/exe 2>/dev/null && echo WROTE; true"
    );
    let mut attacker = Env::new(&["sh", "-c", &script]);
    attacker.drop_ns("pid");
    attacker.save();
    let b = attacker.id("exe-b");
    let ab = attacker.bundle.to_string_lossy().into_owned();
    let o = berth(&attacker, &["run", "-b", &ab, &b]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    for bad in ["READ", "OPENED", "WROTE"] {
        assert!(!o.stdout.contains(bad), "attacker {bad} berth's binary: {}", o.stdout);
    }
    berth(&waiting, &["start", &a]).ok();
    waiting.wait_status(&a, "stopped");
    assert_eq!(file_hash(&copy), before, "berth's binary changed");
}

/// No root needed: berth refuses this before anything privileged runs.
#[test]
fn lsm_labels_on_a_host_without_the_lsm_fail_create() {
    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.trim() == "Y");
    let selinux = Path::new("/sys/fs/selinux/enforce").exists();
    for (key, value, enabled) in [
        ("apparmorProfile", "berth-test", apparmor),
        ("selinuxLabel", "system_u:system_r:container_t:s0", selinux),
    ] {
        if enabled {
            eprintln!("skipped {key}: the host has this LSM");
            continue;
        }
        let mut env = Env::new(&["true"]);
        env.config["process"][key] = json!(value);
        env.save();
        let id = env.id("lsm");
        let o = env.create(&id);
        assert_ne!(o.code, 0, "{key} accepted");
        assert!(o.stderr.contains("is not enabled on this host"), "{}", o.stderr);
        env.assert_gone(&id);
    }
}

#[test]
fn cve_2024_21626_cwd_through_leaked_fds_never_reaches_the_host() {
    require_root!();
    for n in 3..12 {
        let mut env = Env::new(&["sh", "-c", "pwd; ls -a"]);
        env.config["process"]["cwd"] = json!(format!("/proc/self/fd/{n}"));
        env.save();
        let id = env.id("cwd");
        let o = env.run(&id);
        // No fd of berth's is open at chdir (nor a magic link followed to make the cwd): create
        // fails, naming the cwd.
        assert_ne!(o.code, 0, "fd {n} was a usable cwd: {}", o.stdout);
        assert!(o.stderr.contains(&format!("/proc/self/fd/{n}")), "fd {n}: {}", o.stderr);
        assert!(o.stdout.is_empty(), "fd {n}: {}", o.stdout);
        env.assert_gone(&id);
    }
}

#[test]
fn cve_2024_21626_no_fd_of_the_caller_leaks_into_the_container() {
    require_root!();
    let env = Env::new(&["ls", "/proc/self/fd"]);
    // An inheritable fd in berth's caller (the test process), as a careless engine would leave.
    let f = std::fs::File::open(&env.bundle).unwrap();
    nix::fcntl::fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&f),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .unwrap();
    let id = env.id("fds");
    let o = env.run(&id);
    drop(f);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let fds: Vec<&str> = o.stdout.split_whitespace().collect();
    // 0-2 plus the directory fd ls itself opened.
    assert_eq!(fds, ["0", "1", "2", "3"], "{}", o.stdout);
}

#[test]
fn cve_2019_16884_proc_symlink_to_a_host_path() {
    require_root!();
    let env = Env::new(&["sh", "-c", "grep -c . /proc/self/status >/dev/null; echo ok"]);
    let host = host_dir("berth-hostproc");
    let proc_dir = env.rootfs().join("proc");
    std::fs::remove_dir(&proc_dir).unwrap();
    std::os::unix::fs::symlink(&host, &proc_dir).unwrap();
    let id = env.id("procsym");
    let o = env.run(&id);
    // runc's CVE-2019-19921 hardening: procfs only on an ordinary directory of the image.
    assert_ne!(o.code, 0, "{}", o.stdout);
    assert!(
        o.stderr
            .contains(r#"filesystem \"proc\" must be mounted on ordinary directory"#),
        "{}",
        o.stderr
    );
    env.assert_gone(&id);
    assert_untouched(&host);
    std::fs::remove_dir(&host).unwrap();
}

#[test]
fn cve_2025_31133_masked_paths_never_use_the_image_dev_null() {
    require_root!();
    let mut env = Env::new(&[
        "sh",
        "-c",
        // Masked files this kernel has (it was built without /proc/kcore).
        "echo pwned > /proc/keys; echo pwned > /proc/timer_list; stat -L -c %t:%T /proc/timer_list",
    ]);
    // No /dev tmpfs: the image's own /dev is used, with a /dev/null that is a symlink.
    drop_mounts(&mut env, |d| d == "/dev");
    env.save();
    let r = env.rootfs();
    std::fs::write(r.join("secret"), "orig").unwrap();
    std::os::unix::fs::symlink("/secret", r.join("dev/null")).unwrap();
    let id = env.id("mask");
    let o = env.run(&id);
    assert_eq!(std::fs::read_to_string(r.join("secret")).unwrap(), "orig");
    // The container runs, and the mask is the real null device (1:3).
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("1:3"), "{}", o.stdout);
    env.assert_gone(&id);
}

#[test]
fn cve_2026_41579_dev_symlink_to_a_host_directory() {
    require_root!();
    let mut env = Env::new(&["true"]);
    drop_mounts(&mut env, |d| d == "/dev");
    env.save();
    let host = host_dir("berth-hostdev");
    let dev = env.rootfs().join("dev");
    std::fs::remove_dir(&dev).unwrap();
    std::os::unix::fs::symlink(&host, &dev).unwrap();
    let id = env.id("devsym");
    let o = env.run(&id);
    // The absolute link resolves inside the rootfs, where berth makes the missing directory.
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(env.rootfs().join(host.strip_prefix("/").unwrap()).is_dir());
    env.assert_gone(&id);
    assert_untouched(&host);
    std::fs::remove_dir(&host).unwrap();
}

#[test]
fn cve_2021_30465_mount_destinations_through_symlinks_stay_inside() {
    require_root!();
    let mut env = Env::new(&["true"]);
    let host = host_dir("berth-hostmnt");
    let r = env.rootfs();
    std::os::unix::fs::symlink(&host, r.join("abs")).unwrap();
    let rel = format!("../../../../../../..{}", host.display());
    std::os::unix::fs::symlink(&rel, r.join("rel")).unwrap();
    // The same path inside the image: resolved in the root, both links must land there.
    let twin = r.join(host.strip_prefix("/").unwrap());
    std::fs::create_dir_all(&twin).unwrap();
    let src = env.dir.join("src");
    std::fs::create_dir_all(&src).unwrap();
    let mounts = env.config["mounts"].as_array_mut().unwrap();
    mounts.push(json!({"destination": "/abs/x", "type": "tmpfs", "source": "tmpfs"}));
    mounts.push(json!({"destination": "/rel", "type": "bind", "source": src, "options": ["rbind"]}));
    mounts.push(json!({"destination": "/abs", "type": "tmpfs", "source": "tmpfs"}));
    env.save();
    let id = env.id("mntsym");
    let o = env.run(&id);
    assert_eq!(o.code, 0, "{}", o.stderr);
    // The mountpoint for /abs/x was created inside the image, not on the host.
    assert!(twin.join("x").is_dir());
    env.assert_gone(&id);
    assert_untouched(&host);
    std::fs::remove_dir(&host).unwrap();
}

#[test]
fn cve_2021_30465_rename_exchange_race_never_mounts_on_the_host() {
    require_root!();
    let mut env = Env::new(&["true"]);
    let host = host_dir("berth-hostrace");
    let r = env.rootfs();
    std::fs::create_dir_all(r.join("data")).unwrap();
    std::os::unix::fs::symlink(&host, r.join("swap")).unwrap();
    env.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/data/m", "type": "tmpfs", "source": "tmpfs"}));
    env.save();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let (a, b) = (r.join("data"), r.join("swap"));
        std::thread::spawn(move || {
            use std::os::unix::ffi::OsStrExt;
            let c = |p: &std::path::Path| std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
            let (a, b) = (c(&a), c(&b));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // renameat2(RENAME_EXCHANGE) by number: nix and libc wrap it for glibc only.
                // SAFETY: two valid NUL-terminated paths; the call touches nothing else.
                let _ = unsafe {
                    libc::syscall(
                        libc::SYS_renameat2,
                        libc::AT_FDCWD,
                        a.as_ptr(),
                        libc::AT_FDCWD,
                        b.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
            }
        })
    };
    let mut ran = 0;
    for _ in 0..200 {
        let id = env.id("race");
        let o = env.run(&id);
        // Either the tmpfs landed inside the rootfs (whichever of the two the race left at
        // /data), or create failed cleanly naming the destination; never anything else.
        if o.code == 0 {
            ran += 1;
        } else {
            assert!(
                o.stderr.contains("/data/m") || o.stderr.contains("/data"),
                "{}",
                o.stderr
            );
        }
        env.assert_gone(&id);
        assert!(host_mounts_under(&host).is_empty(), "mounted on the host");
        assert!(
            std::fs::read_dir(&host).unwrap().next().is_none(),
            "created on the host"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    swapper.join().unwrap();
    assert!(ran > 0, "no run got through the race");
    assert_untouched(&host);
    std::fs::remove_dir(&host).unwrap();
}

const CHROOT_ESCAPE: &str = r#"#include <stdio.h>
#include <unistd.h>
#include <sys/stat.h>
int main(int argc, char **argv) {
    mkdir("/tmp/jail", 0755);
    if (chroot("/tmp/jail") != 0) { perror("chroot"); }
    for (int i = 0; i < 256; i++) chdir("..");
    chroot(".");
    puts(access(argv[1], F_OK) == 0 ? "ESCAPED" : "contained");
    return 0;
}
"#;

#[test]
fn chroot_escape_after_pivot_root_sees_no_host_root() {
    require_root!();
    let marker = std::env::temp_dir().join(unique("berth-host-marker"));
    std::fs::write(&marker, "host").unwrap();
    let m = marker.to_string_lossy().into_owned();
    let env = Env::new(&["/bin/escape", &m]);
    if cc_static(CHROOT_ESCAPE, &env.rootfs().join("bin/escape")).is_none() {
        skip("needs gcc with static libc (apt-get install gcc libc6-dev)");
        let _ = std::fs::remove_file(&marker);
        return;
    }
    let id = env.id("chroot");
    let o = env.run(&id);
    let _ = std::fs::remove_file(&marker);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout.trim(), "contained");
}

#[test]
fn mknod_of_a_host_disk_cannot_be_read() {
    require_root!();
    if !Path::new("/sys/fs/cgroup/devices").exists() {
        skip("needs the v1 devices controller");
        return;
    }
    let (maj, min) = host_disk();
    let script = format!("mknod /tmp/disk b {maj} {min}; head -c 512 /tmp/disk | wc -c; echo done");
    let mut env = Env::new(&["sh", "-c", &script]);
    env.config["process"]["capabilities"]["bounding"]
        .as_array_mut()
        .unwrap()
        .push(json!("CAP_MKNOD"));
    for set in ["effective", "permitted"] {
        env.config["process"]["capabilities"][set]
            .as_array_mut()
            .unwrap()
            .push(json!("CAP_MKNOD"));
    }
    env.save();
    let id = env.id("mknod");
    let o = env.run(&id);
    assert!(
        o.stdout.starts_with("0\n"),
        "read the host disk: {} {}",
        o.stdout,
        o.stderr
    );
    assert!(o.stderr.contains("Operation not permitted"), "{}", o.stderr);
    env.assert_gone(&id);
}

/// No root needed: berth refuses this before anything privileged runs.
#[test]
fn ids_that_escape_the_root_are_refused_before_touching_disk() {
    let env = Env::new(&["true"]);
    let b = env.bundle.to_string_lossy().into_owned();
    let long = "x".repeat(2000);
    for id in ["../escape", "a/b", ".", "..", "x\ny", long.as_str(), "/abs", ""] {
        let o = env.berth(&["create", "-b", &b, id]);
        assert_ne!(o.code, 0, "{id:?} accepted");
        assert!(o.stderr.contains("invalid container ID format"), "{id:?}: {}", o.stderr);
    }
    assert!(!env.dir.join("escape").exists());
    assert!(!env.root.join("a").exists());
    env.assert_root_empty();
}

/// A host directory with a fake `cap_last_cap` of 0, for the volume attack below.
fn fake_kernel_dir() -> PathBuf {
    let d = host_dir("berth-fakekernel");
    std::fs::write(d.join("cap_last_cap"), "0\n").unwrap();
    d
}

#[test]
fn cap_last_cap_volume_through_an_image_symlink_is_refused() {
    require_root!();
    // The image links /data to /proc/sys/kernel; a volume (an emptyDir an init container wrote)
    // is bound at /data. Mounted after /proc, it would land on procfs; before it, under the
    // image's /proc directory. Both are refused after resolution, with runc's message, and the
    // bounding set never depends on what the container's /proc says.
    for first in [false, true] {
        let mut env = Env::new(&["sh", "-c", "grep CapBnd /proc/self/status"]);
        let vol = fake_kernel_dir();
        std::os::unix::fs::symlink("/proc/sys/kernel", env.rootfs().join("data")).unwrap();
        let m = json!({"destination": "/data", "type": "bind", "source": vol.to_string_lossy(), "options": ["rbind"]});
        let mounts = env.config["mounts"].as_array_mut().unwrap();
        if first {
            mounts.insert(0, m);
        } else {
            mounts.push(m);
        }
        env.save();
        let id = env.id("caplast");
        let o = env.run(&id);
        assert_ne!(o.code, 0, "mounted first: {first}: {}", o.stdout);
        assert!(!o.stdout.contains("CapBnd"), "the process ran: {}", o.stdout);
        // The error line escapes the quotes, as runc's log lines do.
        let want = format!(
            r#"\"{}\" cannot be mounted because it is inside /proc"#,
            env.rootfs().join("proc/sys/kernel").display()
        );
        assert!(o.stderr.contains(&want), "mounted first: {first}: {}", o.stderr);
        env.assert_gone(&id);
        assert!(host_mounts_under(&vol).is_empty());
        assert_eq!(std::fs::read_to_string(vol.join("cap_last_cap")).unwrap(), "0\n");
        std::fs::remove_dir_all(&vol).unwrap();
    }
}

#[test]
fn the_bounding_set_is_reduced_to_the_configured_capabilities() {
    require_root!();
    let env = Env::new(&["grep", "CapBnd", "/proc/self/status"]);
    let id = env.id("capbnd");
    let o = env.run(&id);
    o.ok();
    // runc's default spec: AUDIT_WRITE (29), KILL (5), NET_BIND_SERVICE (10).
    assert!(o.stdout.contains("CapBnd:\t0000000020000420"), "{}", o.stdout);
}

#[test]
fn a_seccomp_profile_without_close_range_still_runs_without_no_new_privs() {
    require_root!();
    // Docker and Kubernetes default to noNewPrivileges false, so the filter is loaded before the
    // capability drop: berth must not need close_range after it.
    for nnp in [false, true] {
        let mut env = Env::new(&["sh", "-c", "ls /proc/self/fd | wc -l"]);
        env.config["process"]["noNewPrivileges"] = json!(nnp);
        env.config["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["close_range"], "action": "SCMP_ACT_ERRNO"}]
        });
        env.save();
        let id = env.id("closerange");
        let o = env.run(&id);
        assert_eq!(o.code, 0, "nnp {nnp}: {}", o.stderr);
        // 0-2 and ls's own directory fd.
        assert_eq!(o.stdout.trim(), "4", "nnp {nnp}");
    }
}

/// Permission bits of `p`, not following a final symlink.
fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// `berth --root ROOT create -b BUNDLE ID` under `umask` (set in a shell that execs berth).
fn create_under_umask(env: &Env, root: &Path, umask: &str, id: &str) -> Output {
    let mut c = Command::new("/bin/sh");
    c.arg("-c")
        .arg(format!(
            "umask {umask}; exec \"$0\" --root \"$1\" create -b \"$2\" \"$3\""
        ))
        .arg(BERTH)
        .arg(root)
        .arg(&env.bundle)
        .arg(id);
    run_with_timeout(c, 30, None)
}

#[test]
fn state_files_are_private_whatever_the_umask() {
    require_root!();
    let env = Env::new(&["sleep", "100"]);
    // A fresh root under the loosest umask, then a second container under the strictest: the
    // modes are runc's and never the umask's. exec.fifo is 0600, not runc's 0622: in runc the
    // container's init opens it to write and `runc start` reads it, in berth `berth start`
    // writes it, so write access for others would be the power to start the container.
    let (a, b) = (env.id("priv"), env.id("priv"));
    create_under_umask(&env, &env.root, "000", &a).ok();
    create_under_umask(&env, &env.root, "077", &b).ok();
    assert_eq!(mode(&env.root), 0o700, "state root");
    for id in [&a, &b] {
        let d = env.root.join(id);
        assert_eq!(mode(&d), 0o711, "container dir {id}");
        assert_eq!(mode(&d.join("state.json")), 0o600, "state.json of {id}");
        assert_eq!(mode(&d.join("exec.fifo")), 0o600, "exec.fifo of {id}");
        let mut names: Vec<_> = std::fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["exec.fifo", "state.json"], "{id}");
        // Another local user reads nothing: not the state, not even which containers exist.
        use std::os::unix::process::CommandExt;
        for (tool, p) in [("/bin/cat", d.join("state.json")), ("/bin/ls", env.root.clone())] {
            let st = Command::new(tool)
                .arg(&p)
                .uid(65534)
                .gid(65534)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(!st.success(), "nobody can {tool} {}", p.display());
        }
    }
    // As runc (os.MkdirAll), a root that already exists keeps the mode its owner gave it.
    let existing = env.dir.join("existing");
    std::fs::create_dir(&existing).unwrap();
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o751)).unwrap();
    let c = unique("priv");
    create_under_umask(&env, &existing, "022", &c).ok();
    assert_eq!(mode(&existing), 0o751);
    assert_eq!(mode(&existing.join(&c)), 0o711);
    let del = |root: &Path, id: &str| {
        let mut cmd = Command::new(BERTH);
        cmd.arg("--root").arg(root).args(["delete", "-f", id]);
        run_with_timeout(cmd, 30, None).ok();
    };
    del(&existing, &c);
    assert!(
        std::fs::read_dir(&existing).unwrap().next().is_none(),
        "left in {}",
        existing.display()
    );
    for id in [&a, &b] {
        del(&env.root, id);
        env.assert_gone(id);
    }
    env.assert_root_empty();
}
