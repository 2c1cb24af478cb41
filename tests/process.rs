//! The container process end to end: executable lookup, env, cwd, user, umask, rlimits,
//! oom_score_adj, no_new_privs, the five capability sets and file descriptors — each read back
//! from inside the running container.
mod common;
use common::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

/// One "Key:\tvalue" line of /proc/self/status as printed by the container.
fn status_field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {key} in:\n{out}"))
}

#[test]
fn args_are_resolved_against_path_from_process_env() {
    require_root!();
    let mut env = Env::new(&["hello-berth", "arg1"]);
    let dir = env.rootfs().join("usr/local/bin");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hello-berth"), "#!/bin/sh\necho found via PATH: $0 $1\n").unwrap();
    std::fs::set_permissions(dir.join("hello-berth"), std::fs::Permissions::from_mode(0o755)).unwrap();
    // Only the container's PATH finds it (berth's own PATH has no /usr/local/bin script).
    env.config["process"]["env"] = json!(["PATH=/bin:/usr/local/bin"]);
    env.save();
    let id = env.id("path");
    let o = env.run(&id);
    o.ok();
    assert_eq!(o.stdout, "found via PATH: /usr/local/bin/hello-berth arg1\n");
}

#[test]
fn missing_binary_fails_create_and_leaves_nothing() {
    require_root!();
    let env = Env::new(&["no-such-binary"]);
    let id = env.id("nobin");
    let o = env.create(&id);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("executable file not found in $PATH"), "{}", o.stderr);
    assert!(o.stderr.contains("no-such-binary"), "{}", o.stderr);
    env.assert_root_empty();
    env.assert_gone(&id);
}

#[test]
fn missing_absolute_binary_is_no_such_file() {
    require_root!();
    let env = Env::new(&["/nonexistent/bin/tool"]);
    let id = env.id("noabs");
    let o = env.create(&id);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("no such file or directory"), "{}", o.stderr);
    assert!(o.stderr.contains("/nonexistent/bin/tool"), "{}", o.stderr);
    env.assert_root_empty();
    env.assert_gone(&id);
    // The same through `run`.
    let id = env.id("noabs-run");
    let o = env.run(&id);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("no such file or directory"), "{}", o.stderr);
    env.assert_root_empty();
}

#[test]
fn env_is_passed_exactly() {
    require_root!();
    let mut env = Env::new(&["env"]);
    let want = ["PATH=/bin", "FOO=bar baz", "EMPTY=", "MULTI=a=b=c"];
    env.config["process"]["env"] = json!(want);
    env.save();
    let id = env.id("env");
    let o = env.run(&id);
    o.ok();
    let mut got: Vec<&str> = o.stdout.lines().collect();
    got.sort_unstable();
    // runc adds HOME when the config has none: root's home in the test rootfs's /etc/passwd.
    let mut want = want.to_vec();
    want.push("HOME=/root");
    want.sort_unstable();
    assert_eq!(got, want);
}

#[test]
fn home_comes_from_the_containers_passwd_unless_set() {
    require_root!();
    let mut env = Env::new(&["sh", "-c", "echo \"$HOME\""]);
    std::fs::create_dir_all(env.rootfs().join("etc")).unwrap();
    std::fs::write(
        env.rootfs().join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nbad line\napp:x:1000:1000::/home/app:/bin/sh\n",
    )
    .unwrap();
    env.config["process"]["env"] = json!(["PATH=/bin"]);
    env.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    env.save();
    let o = env.run(&env.id("home1"));
    o.ok();
    assert_eq!(o.stdout.trim(), "/home/app");
    // exec gets it the same way.
    env.config["process"]["args"] = json!(["sleep", "100"]);
    env.save();
    let id = env.id("home2");
    let b = env.bundle.to_string_lossy().into_owned();
    env.berth(&["run", "-d", "-b", &b, &id]).ok();
    let o = env.berth(&["exec", "-u", "0", &id, "sh", "-c", "echo \"$HOME\""]);
    assert_eq!(o.stdout.trim(), "/root", "{}", o.stderr);
    env.berth(&["delete", "-f", &id]).ok();
    // A HOME in the config wins.
    env.config["process"]["args"] = json!(["sh", "-c", "echo \"$HOME\""]);
    env.config["process"]["env"] = json!(["PATH=/bin", "HOME=/srv"]);
    env.save();
    let o = env.run(&env.id("home3"));
    assert_eq!(o.stdout.trim(), "/srv");
    // An image whose /etc/passwd is a FIFO must not block the init: "/" then.
    std::fs::remove_file(env.rootfs().join("etc/passwd")).unwrap();
    nix::unistd::mkfifo(
        &env.rootfs().join("etc/passwd"),
        nix::sys::stat::Mode::from_bits_truncate(0o644),
    )
    .unwrap();
    env.config["process"]["env"] = json!(["PATH=/bin"]);
    env.save();
    let o = env.run(&env.id("home4"));
    o.ok();
    assert_eq!(o.stdout.trim(), "/");
}

#[test]
fn cwd_user_groups_and_umask() {
    require_root!();
    let script = "pwd; id -u; id -g; id -G; umask; grep -E '^(Uid|Gid|Groups):' /proc/self/status; \
                  touch /tmp/made; stat -c '%u:%g %a' /tmp/made";
    let mut env = Env::new(&["sh", "-c", script]);
    std::fs::create_dir_all(env.rootfs().join("work/a/b")).unwrap();
    std::fs::set_permissions(env.rootfs().join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    env.config["process"]["cwd"] = json!("/work/a/b");
    env.config["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20], "umask": 0o077});
    env.save();
    let id = env.id("user");
    let o = env.run(&id);
    o.ok();
    let l: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(l[0], "/work/a/b", "{}", o.stdout);
    assert_eq!(l[1], "1000");
    assert_eq!(l[2], "1000");
    let mut groups: Vec<&str> = l[3].split_whitespace().collect();
    groups.sort_unstable();
    groups.dedup();
    assert_eq!(groups, ["10", "1000", "20"], "{}", o.stdout);
    assert_eq!(l[4], "0077");
    assert_eq!(status_field(&o.stdout, "Uid"), "1000\t1000\t1000\t1000");
    assert_eq!(status_field(&o.stdout, "Gid"), "1000\t1000\t1000\t1000");
    assert_eq!(status_field(&o.stdout, "Groups"), "10 20");
    assert!(o.stdout.ends_with("1000:1000 600\n"), "{}", o.stdout);
}

#[test]
fn rlimits_are_applied() {
    require_root!();
    let mut env = Env::new(&["cat", "/proc/self/limits"]);
    env.config["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 1000, "hard": 2000},
        {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400}
    ]);
    env.save();
    let id = env.id("rlim");
    let o = env.run(&id);
    o.ok();
    let row = |name: &str| -> Vec<String> {
        let l = o
            .stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name}: {}", o.stdout));
        l[name.len()..].split_whitespace().map(str::to_string).collect()
    };
    assert_eq!(row("Max open files")[..2], ["1000", "2000"]);
    assert_eq!(row("Max processes")[..2], ["300", "400"]);
}

#[test]
fn raising_a_hard_rlimit_above_the_host_fails_with_its_name() {
    require_root!();
    let (_, hard) = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    assert_ne!(hard, u64::MAX, "the host's RLIMIT_NOFILE hard limit is unlimited");
    let mut env = Env::new(&["true"]);
    env.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": hard + 1}]);
    env.save();
    let id = env.id("rlim-hi");
    let o = env.create(&id);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("RLIMIT_NOFILE"), "{}", o.stderr);
    // The bounding set lacks CAP_SYS_RESOURCE here: the kernel says EPERM.
    assert!(o.stderr.contains("EPERM"), "{}", o.stderr);
    env.assert_root_empty();
    env.assert_gone(&id);
}

#[test]
fn oom_score_adj_is_set() {
    require_root!();
    let mut env = Env::new(&["cat", "/proc/self/oom_score_adj"]);
    env.config["process"]["oomScoreAdj"] = json!(500);
    env.save();
    let id = env.id("oom");
    let o = env.run(&id);
    o.ok();
    assert_eq!(o.stdout, "500\n");
    // berth itself (and so the test) keeps its own value.
    assert_ne!(std::fs::read_to_string("/proc/self/oom_score_adj").unwrap(), "500\n");
}

#[test]
fn no_new_privileges_true_and_false() {
    require_root!();
    for (v, want) in [(true, "1"), (false, "0")] {
        let mut env = Env::new(&["cat", "/proc/self/status"]);
        env.config["process"]["noNewPrivileges"] = json!(v);
        env.save();
        let id = env.id("nnp");
        let o = env.run(&id);
        o.ok();
        assert_eq!(status_field(&o.stdout, "NoNewPrivs"), want, "noNewPrivileges {v}");
    }
}

#[test]
fn capability_sets_are_exactly_the_configured_ones() {
    require_root!();
    let mut env = Env::new(&["cat", "/proc/self/status"]);
    env.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_CHOWN", "CAP_KILL"],
        "effective": ["CAP_CHOWN", "CAP_KILL"],
        "permitted": ["CAP_CHOWN", "CAP_KILL"],
        "inheritable": [],
        "ambient": []
    });
    env.save();
    let id = env.id("caps");
    let o = env.run(&id);
    o.ok();
    for (k, v) in [
        ("CapBnd", "0000000000000021"),
        ("CapEff", "0000000000000021"),
        ("CapPrm", "0000000000000021"),
        ("CapInh", "0000000000000000"),
        ("CapAmb", "0000000000000000"),
    ] {
        assert_eq!(status_field(&o.stdout, k), v, "{k}");
    }
}

#[test]
fn ambient_capability_reaches_a_non_root_process() {
    require_root!();
    let mut env = Env::new(&["cat", "/proc/self/status"]);
    env.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let nbs = json!(["CAP_NET_BIND_SERVICE"]);
    env.config["process"]["capabilities"] = json!({
        "bounding": nbs, "effective": nbs, "permitted": nbs, "inheritable": nbs, "ambient": nbs
    });
    env.save();
    let id = env.id("ambient");
    let o = env.run(&id);
    o.ok();
    // CAP_NET_BIND_SERVICE is bit 10. After execve a non-root process keeps only what ambient
    // carries into permitted and effective.
    for k in ["CapAmb", "CapEff", "CapPrm", "CapInh", "CapBnd"] {
        assert_eq!(status_field(&o.stdout, k), "0000000000000400", "{k}");
    }
    assert_eq!(status_field(&o.stdout, "Uid"), "1000\t1000\t1000\t1000");
}

/// Run berth through `sh` so that `redir` (e.g. "7<file") opens a descriptor without
/// close-on-exec in berth; stdout/stderr go to files, with a timeout.
fn run_with_fd(env: &Env, redir: &str, args: &[&str]) -> Output {
    let dir = env.dir.join(unique("fdrun"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(format!("exec {redir} \"$@\""))
        .arg("sh")
        .arg(BERTH)
        .arg("--root")
        .arg(&env.root)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(dir.join("out")).unwrap())
        .stderr(std::fs::File::create(dir.join("err")).unwrap());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("berth timed out");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        code: st.code().unwrap_or(-1),
        stdout: std::fs::read_to_string(dir.join("out")).unwrap(),
        stderr: std::fs::read_to_string(dir.join("err")).unwrap(),
    }
}

#[test]
fn inherited_fds_do_not_reach_the_container() {
    require_root!();
    let env = Env::new(&["ls", "/proc/self/fd"]);
    let secret = env.dir.join("secret");
    std::fs::write(&secret, "host secret\n").unwrap();
    let id = env.id("fds");
    let b = env.bundle.to_string_lossy().into_owned();
    let o = run_with_fd(&env, &format!("7<{}", secret.display()), &["run", "-b", &b, &id]);
    o.ok();
    let mut fds: Vec<u32> = o.stdout.split_whitespace().map(|f| f.parse().unwrap()).collect();
    fds.sort_unstable();
    // 0, 1, 2 and the directory fd ls itself opened (the lowest free number: 3).
    assert_eq!(fds, [0, 1, 2, 3], "{}", o.stdout);
}

#[test]
fn preserve_fds_passes_fd_3() {
    require_root!();
    let env = Env::new(&["sh", "-c", "cat <&3; ls /proc/self/fd"]);
    let data = env.dir.join("passed");
    std::fs::write(&data, "passed through fd 3\n").unwrap();
    let id = env.id("pfd");
    let b = env.bundle.to_string_lossy().into_owned();
    // fd 3 is preserved, fd 4 is not.
    let redir = format!("3<{} 4<{}", data.display(), data.display());
    let o = run_with_fd(&env, &redir, &["run", "--preserve-fds", "1", "-b", &b, &id]);
    o.ok();
    let mut lines = o.stdout.lines();
    assert_eq!(lines.next(), Some("passed through fd 3"), "{}", o.stdout);
    let mut fds: Vec<u32> = lines
        .flat_map(|l| l.split_whitespace())
        .map(|f| f.parse().unwrap())
        .collect();
    fds.sort_unstable();
    // 0-3 from berth, 4 is ls's own directory fd (the unpreserved 4 was closed at exec).
    assert_eq!(fds, [0, 1, 2, 3, 4], "{}", o.stdout);
}

#[test]
fn missing_cwd_is_created_even_with_a_readonly_root() {
    require_root!();
    // As runc: engines pass an image's working directory, which need not exist in the rootfs.
    let mut env = Env::new(&["sh", "-c", "pwd; stat -c '%a %u' ."]);
    env.config["process"]["cwd"] = json!("/srv/app/../work/dir");
    env.config["root"]["readonly"] = json!(true);
    env.save();
    let id = env.id("cwd");
    let o = env.run(&id);
    o.ok();
    assert_eq!(o.stdout, "/srv/work/dir\n755 0\n");
    assert!(env.rootfs().join("srv/work/dir").is_dir());
    // Like Go's MkdirAll in runc, ".." is walked, not normalised away.
    assert!(env.rootfs().join("srv/app").is_dir());
}

#[test]
fn preserve_fds_survive_create_then_start() {
    require_root!();
    let env = Env::new(&[
        "sh",
        "-c",
        "cat <&3 > /tmp/got; cat <&4 >> /tmp/got; echo done >> /tmp/got",
    ]);
    let data = env.dir.join("passed");
    std::fs::write(&data, "fd three\n").unwrap();
    let id = env.id("pfdc");
    let b = env.bundle.to_string_lossy().into_owned();
    let redir = format!("3<{} 4<{}", data.display(), data.display());
    let o = run_with_fd(&env, &redir, &["create", "--preserve-fds", "1", "-b", &b, &id]);
    o.ok();
    env.berth(&["start", &id]).ok();
    let got = env.rootfs().join("tmp/got");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(&got).unwrap_or_default().ends_with("done\n") {
        assert!(Instant::now() < deadline, "container did not finish");
        std::thread::sleep(Duration::from_millis(10));
    }
    // fd 3 was preserved; fd 4 was not (cat <&4 fails: bad file descriptor).
    assert_eq!(std::fs::read_to_string(&got).unwrap(), "fd three\ndone\n");
    env.wait_status(&id, "stopped");
    env.berth(&["delete", &id]).ok();
    env.assert_gone(&id);
}
