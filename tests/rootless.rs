//! Rootless containers: berth run by an unprivileged user (created by
//! integration/rootless-user.sh), and root-run containers with user namespaces.
mod common;
use common::*;
use serde_json::json;
use std::os::unix::fs::MetadataExt;

const USER: &str = "berthtest";

/// uid, gid and the first subordinate uid/gid of the test user; None (with a printed reason)
/// when the user is missing.
fn test_user() -> Option<(u32, u32, u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with(&format!("{USER}:")));
    let Some(line) = line else {
        skip(&format!(
            "needs the {USER} user (run integration/rootless-user.sh as root)"
        ));
        return None;
    };
    let f: Vec<&str> = line.split(':').collect();
    let sub = |file: &str| -> Option<u32> {
        std::fs::read_to_string(file)
            .ok()?
            .lines()
            .find(|l| l.starts_with(&format!("{USER}:")))?
            .split(':')
            .nth(1)?
            .parse()
            .ok()
    };
    let (Some(su), Some(sg)) = (sub("/etc/subuid"), sub("/etc/subgid")) else {
        skip(&format!(
            "{USER} has no /etc/subuid or /etc/subgid range (run integration/rootless-user.sh)"
        ));
        return None;
    };
    Some((f[2].parse().ok()?, f[3].parse().ok()?, su, sg))
}

#[test]
fn rootless_single_id_lifecycle() {
    require_root!();
    let Some((uid, gid, _, _)) = test_user() else { return };
    let env = Env::rootless(
        &[
            "sh",
            "-c",
            "cat /proc/self/uid_map > /tmp/out; id -u >> /tmp/out; exec sleep 100",
        ],
        uid,
        gid,
    );
    let id = env.id("rl");
    let b = env.bundle.to_string_lossy().into_owned();
    env.berth_as(uid, gid, &["create", "-b", &b, &id]).ok();
    let st = env.berth_as(uid, gid, &["state", &id]);
    assert!(st.stdout.contains("\"status\": \"created\""), "{}", st.stdout);
    env.berth_as(uid, gid, &["start", &id]).ok();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let out = env.rootfs().join("tmp/out");
    while std::fs::read_to_string(&out)
        .map(|s| s.lines().count() < 2)
        .unwrap_or(true)
    {
        assert!(std::time::Instant::now() < deadline, "container did not run");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let text = std::fs::read_to_string(&out).unwrap();
    let map: Vec<&str> = text.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(map, ["0", &uid.to_string(), "1"]);
    assert_eq!(text.lines().nth(1), Some("0"));
    // Files the container's root creates belong to the user on the host.
    assert_eq!(std::fs::metadata(&out).unwrap().uid(), uid);
    // exec as the user joins the container's user namespace (and all others).
    let o = env.berth_as(uid, gid, &["exec", &id, "sh", "-c", "id -u; cat /proc/self/uid_map"]);
    o.ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[0], "0");
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", &uid.to_string(), "1"]
    );
    let o = env.berth_as(uid, gid, &["kill", &id, "KILL"]);
    o.ok();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !env.berth_as(uid, gid, &["state", &id]).stdout.contains("stopped") {
        assert!(std::time::Instant::now() < deadline, "container did not stop");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    env.berth_as(uid, gid, &["delete", &id]).ok();
    env.assert_gone(&id);
}

#[test]
fn rootless_multi_range_goes_through_newuidmap() {
    require_root!();
    let Some((uid, gid, su, sg)) = test_user() else { return };
    let env = Env::rootless(
        &[
            "sh",
            "-c",
            "cat /proc/self/uid_map /proc/self/gid_map; touch /tmp/f; chown 1000:1000 /tmp/f",
        ],
        uid,
        gid,
    );
    let mut env = env;
    env.config["linux"]["uidMappings"] =
        json!([{"containerID": 0, "hostID": uid, "size": 1}, {"containerID": 1, "hostID": su, "size": 65536}]);
    env.config["linux"]["gidMappings"] =
        json!([{"containerID": 0, "hostID": gid, "size": 1}, {"containerID": 1, "hostID": sg, "size": 65536}]);
    for set in ["bounding", "effective", "permitted"] {
        env.config["process"]["capabilities"][set] = json!(["CAP_CHOWN"]);
    }
    env.save();
    let id = env.id("rlm");
    let b = env.bundle.to_string_lossy().into_owned();
    let o = env.berth_as(uid, gid, &["run", "-b", &b, &id]);
    o.ok();
    let lines: Vec<Vec<String>> = o
        .stdout
        .lines()
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    assert_eq!(lines.len(), 4, "{}", o.stdout);
    assert_eq!(lines[1], ["1", &su.to_string(), "65536"]);
    assert_eq!(lines[3], ["1", &sg.to_string(), "65536"]);
    // Container uid 1000 is host uid su + 999.
    let meta = std::fs::metadata(env.rootfs().join("tmp/f")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (su + 999, sg + 999));
    env.assert_gone(&id);
}

#[test]
fn rootless_refuses_what_a_user_cannot_do_clearly() {
    require_root!();
    let Some((uid, gid, _, _)) = test_user() else { return };
    let mut env = Env::rootless(&["true"], uid, gid);
    // Mapping an id the user does not own and has no subordinate range for.
    env.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 0, "size": 1}]);
    env.save();
    let id = env.id("rlbad");
    let b = env.bundle.to_string_lossy().into_owned();
    let o = env.berth_as(uid, gid, &["create", "-b", &b, &id]);
    assert_eq!(o.code, 1);
    assert_eq!(o.stderr.lines().count(), 1, "{}", o.stderr);
    assert!(o.stderr.contains("newuidmap"), "{}", o.stderr);
    env.assert_root_empty();
}

#[test]
fn root_with_user_namespace_and_host_network() {
    require_root!();
    let mut env = Env::new(&[
        "sh",
        "-c",
        "cat /proc/self/uid_map; ls /sys/class/net | grep -c . ; stat -c %t:%T /dev/null; id -u",
    ]);
    env.config["linux"]["namespaces"] =
        json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "user"}]);
    env.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 300000, "size": 65536}]);
    env.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 300000, "size": 65536}]);
    env.save();
    chown_tree(&env.rootfs(), 300000, 300000);
    let id = env.id("userns");
    let o = env.run(&id);
    o.ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["0", "300000", "65536"]
    );
    // The host's network namespace is not ours: /sys is the host's, bind-mounted (runc's rule).
    assert!(lines[1].parse::<u32>().unwrap() >= 1);
    // Device nodes are bind mounts of the host's (mknod is refused in a user namespace).
    assert_eq!(lines[2], "1:3");
    assert_eq!(lines[3], "0");
    env.assert_gone(&id);
}

#[test]
fn rootless_podman_with_berth() {
    require_root!();
    let Some((uid, gid, _, _)) = test_user() else { return };
    if std::process::Command::new("podman").arg("--version").output().is_err() {
        skip("needs podman");
        return;
    }
    let env = Env::new(&["true"]);
    let home = env.dir.join("home");
    let xdg = env.dir.join("xdg");
    std::fs::create_dir_all(home.join(".config/containers")).unwrap();
    std::fs::create_dir_all(&xdg).unwrap();
    std::fs::write(
        home.join(".config/containers/containers.conf"),
        format!(
            "[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
             runtime_supports_json = [\"crun\", \"runc\", \"berth\"]\n[engine.runtimes]\nberth = [\"{BERTH}\"]\n"
        ),
    )
    .unwrap();
    let tar = env.dir.join("bb.tar");
    let st = std::process::Command::new("tar")
        .arg("-C")
        .arg(env.rootfs())
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success());
    chown_tree(&env.dir, uid, gid);
    std::fs::set_permissions(&xdg, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let podman = |args: &[&str]| {
        use std::os::unix::process::CommandExt;
        let o = std::process::Command::new("podman")
            .args(args)
            .current_dir(&home)
            .env_clear()
            .env("HOME", &home)
            .env("XDG_RUNTIME_DIR", &xdg)
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .uid(uid)
            .gid(gid)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (c, _, err) = podman(&["import", tar.to_str().unwrap(), "localhost/bb:latest"]);
    assert_eq!(c, 0, "{err}");
    let base = ["--runtime", "berth", "run", "--rm", "--network", "none", "localhost/bb"];
    let (c, out, err) = podman(&[&base[..], &["sh", "-c", "id -u; cat /proc/self/uid_map"]].concat());
    assert_eq!(c, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0");
    assert_eq!(
        lines[1].split_whitespace().nth(1),
        Some(uid.to_string().as_str()),
        "container root is the user: {out}"
    );
    assert_eq!(podman(&[&base[..], &["sh", "-c", "exit 6"]].concat()).0, 6);
    let (c, _, err) = podman(&[
        "--runtime",
        "berth",
        "run",
        "-d",
        "--name",
        "rl",
        "--network",
        "none",
        "localhost/bb",
        "sleep",
        "1000",
    ]);
    assert_eq!(c, 0, "{err}");
    let (c, out, err) = podman(&["--runtime", "berth", "exec", "rl", "sh", "-c", "echo in-exec"]);
    assert_eq!((c, out.as_str()), (0, "in-exec\n"), "{err}");
    assert_eq!(podman(&["--runtime", "berth", "stop", "-t", "1", "rl"]).0, 0);
    assert_eq!(podman(&["--runtime", "berth", "rm", "-f", "rl"]).0, 0);
    let _ = podman(&["system", "reset", "-f"]);
    unmount_under(&env.dir);
}

/// Removes the delegated test cgroup (after the container's own is gone).
struct Delegated(std::path::PathBuf);

impl Drop for Delegated {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(self.0.join("c"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::remove_dir(&self.0).is_err() && self.0.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// Rootless: cgroups the user may write to (delegated) are used, the others skipped quietly.
#[test]
fn rootless_uses_delegated_cgroups_and_skips_the_rest() {
    require_root!();
    let Some((uid, gid, _, _)) = test_user() else { return };
    let pids = std::path::Path::new("/sys/fs/cgroup/pids");
    if !pids.join("cgroup.procs").exists() {
        skip("needs the cgroup v1 pids hierarchy to delegate");
        return;
    }
    let deleg = unique("berth-deleg");
    let dir = pids.join(&deleg);
    std::fs::create_dir(&dir).unwrap();
    let _guard = Delegated(dir.clone());
    for f in ["", "cgroup.procs", "tasks"] {
        std::os::unix::fs::chown(dir.join(f), Some(uid), Some(gid)).unwrap();
    }
    // Declared after the guard: the container is deleted before its parent cgroup is removed.
    let mut env = Env::rootless(&["sleep", "100"], uid, gid);
    env.config["linux"]["cgroupsPath"] = json!(format!("/{deleg}/c"));
    env.config["linux"]["resources"] = json!({"pids": {"limit": 33}});
    env.save();
    chown_tree(&env.dir, uid, gid);
    let id = env.id("rlcg");
    let b = env.bundle.to_string_lossy().into_owned();
    let o = env.berth_as(uid, gid, &["run", "-d", "-b", &b, &id]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let st = env.berth_as(uid, gid, &["state", &id]);
    let pid = serde_json::from_str::<serde_json::Value>(&st.stdout).unwrap()["pid"]
        .as_i64()
        .unwrap();
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cg.lines()
            .any(|l| l.contains(":pids:") && l.ends_with(&format!("/{deleg}/c"))),
        "placed in the delegated pids cgroup: {cg}"
    );
    assert_eq!(std::fs::read_to_string(dir.join("c/pids.max")).unwrap().trim(), "33");
    // Undelegated hierarchies were skipped, not made.
    assert!(!std::path::Path::new("/sys/fs/cgroup/memory").join(&deleg).exists());
    env.berth_as(uid, gid, &["delete", "-f", &id]).ok();
}
