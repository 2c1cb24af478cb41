//! Containers without a mount namespace of their own (runtime-spec: an omitted namespace is the
//! runtime's, a `path` is joined). Their mounts are made in a namespace that outlives them: the
//! process must see its rootfs as `/`, `exec` must land there too, and after `run`, `delete`,
//! a failed create or a create killed halfway nothing may be left in that namespace, and no
//! existing mount (the host's `/` above all) may have changed.
mod common;
use common::*;
use serde_json::json;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An environment whose config has no `mount` namespace entry, and a marker file at the root
/// of its rootfs.
fn env_without_mntns(args: &[&str]) -> (Env, String) {
    let mut env = Env::new(args);
    env.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "mount");
    env.save();
    let marker = unique("marker");
    std::fs::write(env.rootfs().join("marker"), &marker).unwrap();
    (env, marker)
}

fn mountinfo(pid: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap()
}

/// Mount points at or below `dir` in a mountinfo text.
fn mounts_under(info: &str, dir: &Path) -> Vec<String> {
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| Path::new(p).starts_with(dir))
        .map(str::to_string)
        .collect()
}

/// Every mount at `/`: its id, parent and optional fields (the propagation: `shared:N`,
/// `master:N`, ...), as a fingerprint of the namespace's root.
fn root_lines(info: &str) -> Vec<String> {
    info.lines()
        .filter(|l| l.split(' ').nth(4) == Some("/"))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let end = f.iter().position(|x| *x == "-").unwrap();
            format!("{} {} {}", f[0], f[1], f[6..end].join(" "))
        })
        .collect()
}

/// The names in the rootfs's top directory, sorted, as `ls /` prints them.
fn rootfs_listing(env: &Env) -> String {
    let mut names: Vec<String> = std::fs::read_dir(env.rootfs())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.join("\n") + "\n"
}

fn host_mntns() -> String {
    std::fs::read_link("/proc/self/ns/mnt")
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// A process holding a mount namespace of its own (`unshare --mount --propagation P`: its
/// mounts are private, or shared in peer groups of their own), killed when dropped.
struct Holder(Child);

impl Holder {
    fn start(propagation: &str) -> Option<Holder> {
        Holder::spawn(&[], propagation, host_mntns())
    }

    /// `unshare` run through `prefix` (an nsenter into another namespace, `from`).
    fn spawn(prefix: &[&str], propagation: &str, from: String) -> Option<Holder> {
        let mut args: Vec<&str> = prefix.to_vec();
        args.extend(["unshare", "--mount", "--propagation", propagation, "sleep", "1000"]);
        let child = Command::new(args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .spawn()
            .ok()?;
        let h = Holder(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        // nsenter and unshare exec what follows in the same process once the namespace exists.
        while std::fs::read_link(format!("/proc/{}/ns/mnt", h.pid()))
            .ok()?
            .to_string_lossy()
            == from
            || std::fs::read_to_string(format!("/proc/{}/comm", h.pid())).ok()?.trim() != "sleep"
        {
            assert!(Instant::now() < deadline, "unshare did not make its mount namespace");
            std::thread::sleep(Duration::from_millis(5));
        }
        Some(h)
    }

    fn pid(&self) -> String {
        self.0.id().to_string()
    }

    fn ns_path(&self) -> String {
        format!("/proc/{}/ns/mnt", self.pid())
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Nothing of the container is left mounted on the host, and the host's `/` (its propagation
/// included) is as it was in `before`.
fn assert_host_clean(env: &Env, before: &str) {
    let after = mountinfo("self");
    assert_eq!(
        mounts_under(&after, &env.rootfs()),
        Vec::<String>::new(),
        "mounts left on the host"
    );
    assert_eq!(root_lines(before), root_lines(&after), "the host's / changed");
}

#[test]
fn run_without_a_mount_namespace_sees_its_rootfs_and_leaves_no_mount_behind() {
    require_root!();
    // The default config (masked and read-only paths included) minus the mount namespace.
    let (env, marker) = env_without_mntns(&[
        "sh",
        "-c",
        "cat /marker; echo; readlink /proc/self/ns/mnt; ls /; echo --; \
         [ -c /proc/keys ] && echo keys-masked; echo --; cat /proc/self/mountinfo",
    ]);
    let before = mountinfo("self");
    let id = env.id("nomnt-run");
    let o = env.run(&id);
    o.ok();
    let mut parts = o.stdout.split("--\n");
    let head = parts.next().unwrap();
    let (first, listing) = head.split_once('\n').unwrap();
    assert_eq!(first, marker, "the process does not see the rootfs as /: {}", o.stdout);
    let (ns, listing) = listing.split_once('\n').unwrap();
    assert_eq!(ns, host_mntns(), "the mount namespace is not the inherited one");
    assert_eq!(listing, rootfs_listing(&env), "ls / in the container");
    assert_eq!(parts.next().unwrap(), "keys-masked\n", "maskedPaths not applied");
    let inside = parts.next().unwrap();
    let proc_line = inside.lines().find(|l| l.split(' ').nth(4) == Some("/proc"));
    assert!(
        proc_line.is_some_and(|l| l.contains(" - proc ")),
        "no procfs at /proc in the container: {inside}"
    );
    let sys_ro = inside.lines().find(|l| l.split(' ').nth(4) == Some("/proc/sys"));
    assert!(
        sys_ro.is_some_and(|l| l.split(' ').nth(5).unwrap().starts_with("ro")),
        "readonlyPaths not applied: {inside}"
    );
    assert_host_clean(&env, &before);
    env.assert_gone(&id);
}

#[test]
fn create_exec_start_delete_without_a_mount_namespace() {
    require_root!();
    let (env, marker) = env_without_mntns(&["sleep", "1000"]);
    let before = mountinfo("self");
    let id = env.id("nomnt-life");
    env.create(&id).ok();
    // The container's mounts are the host's (there is no other namespace), under the rootfs.
    let during = mounts_under(&mountinfo("self"), &env.rootfs());
    let proc_at = env.rootfs().join("proc").to_string_lossy().into_owned();
    assert!(
        during.contains(&proc_at),
        "no /proc under the rootfs on the host: {during:?}"
    );
    for _ in ["created", "running"] {
        let o = env.berth(&["exec", &id, "sh", "-c", "cat /marker; echo; ls /"]);
        o.ok();
        assert_eq!(
            o.stdout,
            format!("{marker}\n{}", rootfs_listing(&env)),
            "exec did not land in the container's root"
        );
        if env.status(&id) == "created" {
            env.berth(&["start", &id]).ok();
            env.wait_status(&id, "running");
        }
    }
    env.berth(&["kill", &id, "KILL"]).ok();
    env.wait_status(&id, "stopped");
    env.berth(&["delete", &id]).ok();
    assert_host_clean(&env, &before);
    env.assert_gone(&id);
}

#[test]
fn a_create_killed_halfway_or_failing_leaves_no_mount_behind() {
    require_root!();
    let (mut env, _) = env_without_mntns(&["sleep", "1000"]);
    let b = env.bundle.to_string_lossy().into_owned();
    for point in ["after-clone", "after-ready", "after-state"] {
        let id = env.id("nomnt-crash");
        let st = env
            .cmd(&["create", "-b", &b, &id])
            .env("BERTH_FAULT", point)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&st), Some(9), "{point}");
        if point != "after-clone" {
            // The init had mounted everything: the mounts outlive the killed create.
            assert!(
                !mounts_under(&mountinfo("self"), &env.rootfs()).is_empty(),
                "{point}: nothing was mounted, the test proves nothing"
            );
        }
        let o = env.berth(&["delete", "--force", &id]);
        assert_eq!(o.code, 0, "delete --force after {point}: {}", o.stderr);
        assert_eq!(
            mounts_under(&mountinfo("self"), &env.rootfs()),
            Vec::<String>::new(),
            "{point}"
        );
        env.assert_gone(&id);
    }
    // A mount that fails after the rootfs clone is attached and /proc is mounted on it.
    env.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/bad", "type": "nosuchfs", "source": "x"}));
    env.save();
    let id = env.id("nomnt-fail");
    let o = env.create(&id);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("nosuchfs"), "{}", o.stderr);
    assert_eq!(mounts_under(&mountinfo("self"), &env.rootfs()), Vec::<String>::new());
    env.assert_gone(&id);
}

#[test]
fn a_read_only_root_without_a_mount_namespace_leaves_the_host_rootfs_writable() {
    require_root!();
    let (mut env, _) = env_without_mntns(&["sh", "-c", "touch /x 2>/dev/null && echo wrote || echo read-only"]);
    env.config["root"]["readonly"] = json!(true);
    env.save();
    let id = env.id("nomnt-ro");
    let o = env.run(&id);
    o.ok();
    assert_eq!(o.stdout, "read-only\n");
    // Only the container's clone of the rootfs was read-only, never the host's mount of it.
    std::fs::write(env.rootfs().join("y"), "host").unwrap();
    assert_eq!(mounts_under(&mountinfo("self"), &env.rootfs()), Vec::<String>::new());
    env.assert_gone(&id);
}

#[test]
fn a_joined_mount_namespace_gets_the_mounts_and_loses_them_at_delete() {
    require_root!();
    for propagation in ["private", "shared"] {
        let Some(holder) = Holder::start(propagation) else {
            return skip("needs unshare(1) from util-linux");
        };
        joined(&holder, propagation);
    }
}

fn joined(holder: &Holder, propagation: &str) {
    let (mut env, marker) = env_without_mntns(&["sleep", "1000"]);
    env.set_ns("mount", Some(&holder.ns_path()));
    env.save();
    let host_before = mountinfo("self");
    let theirs_before = mountinfo(&holder.pid());
    let root = root_lines(&theirs_before).join("\n");
    assert_eq!(root.contains("shared:"), propagation == "shared", "{root}");
    let id = env.id("nomnt-join");
    env.create(&id).ok();
    let theirs = mounts_under(&mountinfo(&holder.pid()), &env.rootfs());
    let proc_at = env.rootfs().join("proc").to_string_lossy().into_owned();
    assert!(
        theirs.contains(&proc_at),
        "no /proc under the rootfs in the joined namespace: {theirs:?}"
    );
    assert_eq!(
        mounts_under(&mountinfo("self"), &env.rootfs()),
        Vec::<String>::new(),
        "mounts on the host"
    );
    let o = env.berth(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cat /marker; echo; ls /; readlink /proc/self/ns/mnt",
    ]);
    o.ok();
    let ns = std::fs::read_link(holder.ns_path())
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(o.stdout, format!("{marker}\n{}{ns}\n", rootfs_listing(&env)));
    env.berth(&["delete", "--force", &id]).ok();
    let theirs_after = mountinfo(&holder.pid());
    assert_eq!(
        mounts_under(&theirs_after, &env.rootfs()),
        Vec::<String>::new(),
        "mounts left in the namespace"
    );
    assert_eq!(
        root_lines(&theirs_before),
        root_lines(&theirs_after),
        "the joined namespace's / changed"
    );
    assert_eq!(
        root_lines(&host_before),
        root_lines(&mountinfo("self")),
        "the host's / changed"
    );
    env.assert_gone(&id);

    // run: the same, cleaned up by run itself.
    env.config["process"]["args"] = json!(["sh", "-c", "cat /marker"]);
    env.save();
    let id = env.id("nomnt-join-run");
    let o = env.run(&id);
    o.ok();
    assert_eq!(o.stdout, marker);
    assert_eq!(
        mounts_under(&mountinfo(&holder.pid()), &env.rootfs()),
        Vec::<String>::new()
    );
    env.assert_gone(&id);
}

#[test]
fn a_joined_mount_namespace_that_is_gone_at_delete_leaves_nothing_to_clean() {
    require_root!();
    let Some(holder) = Holder::start("private") else {
        return skip("needs unshare(1) from util-linux");
    };
    let (mut env, _) = env_without_mntns(&["sleep", "1000"]);
    env.set_ns("mount", Some(&holder.ns_path()));
    env.save();
    let id = env.id("nomnt-gone");
    env.create(&id).ok();
    // The holder's path goes; the namespace lives on with the container's init until delete.
    drop(holder);
    let o = env.berth(&["delete", "--force", &id]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    env.assert_gone(&id);
}

#[test]
fn a_new_user_namespace_without_a_mount_namespace_is_refused_before_anything_is_made() {
    require_root!();
    let (mut env, _) = env_without_mntns(&["true"]);
    env.map_root_to(100000);
    let id = env.id("nomnt-userns");
    let o = env.create(&id);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("a new user namespace needs a new mount namespace"),
        "{}",
        o.stderr
    );
    assert_eq!(mounts_under(&mountinfo("self"), &env.rootfs()), Vec::<String>::new());
    env.assert_gone(&id);
}

/// A host whose `/` is shared (systemd's default) has peers of it in other mount namespaces
/// (services, other containers): they must not receive the container's mounts, and must lose
/// the copy of its rootfs the kernel propagates to them. The "host" here is a namespace whose
/// mounts are shared (berth runs in it through nsenter), the peer one cloned from it.
#[test]
fn a_shared_host_root_passes_none_of_the_containers_mounts_to_its_peers() {
    require_root!();
    let Some(host) = Holder::start("shared") else {
        return skip("needs unshare(1) from util-linux");
    };
    let enter = format!("--mount={}", host.ns_path());
    let host_ns = std::fs::read_link(host.ns_path())
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let Some(peer) = Holder::spawn(&["nsenter", &enter], "unchanged", host_ns) else {
        return skip("needs nsenter(1) from util-linux");
    };
    let (env, marker) = env_without_mntns(&["sleep", "1000"]);
    let in_host = |args: &[&str]| {
        let mut c = Command::new("nsenter");
        c.arg(&enter).arg(BERTH).arg("--root").arg(&env.root).args(args);
        run_with_timeout(c, 30, None)
    };
    let peer_root = root_lines(&mountinfo(&peer.pid())).join("\n");
    assert!(peer_root.contains("shared:"), "the peer's / is not shared: {peer_root}");
    let b = env.bundle.to_string_lossy().into_owned();
    let id = env.id("nomnt-peer");
    in_host(&["run", "-d", "-b", &b, &id]).ok();
    let o = in_host(&["exec", &id, "cat", "/marker"]);
    o.ok();
    assert_eq!(o.stdout, marker);
    let mine = mounts_under(&mountinfo(&host.pid()), &env.rootfs());
    assert!(
        mine.len() > 5,
        "the container's mounts are not in its namespace: {mine:?}"
    );
    let rootfs = env.rootfs().to_string_lossy().into_owned();
    let theirs = mounts_under(&mountinfo(&peer.pid()), &env.rootfs());
    assert_eq!(theirs, vec![rootfs], "the peer namespace got the container's mounts");
    in_host(&["delete", "--force", &id]).ok();
    assert_eq!(
        mounts_under(&mountinfo(&host.pid()), &env.rootfs()),
        Vec::<String>::new()
    );
    assert_eq!(
        mounts_under(&mountinfo(&peer.pid()), &env.rootfs()),
        Vec::<String>::new()
    );
    assert_eq!(peer_root, root_lines(&mountinfo(&peer.pid())).join("\n"));
    env.assert_gone(&id);
}
