//! The root filesystem end to end: read-only root, every mount kind with its options, in-root
//! resolution of mount destinations, devices, masked/readonly paths, sysctls, --no-pivot and
//! bundle paths — observed from inside the container or on the host.
mod common;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// A host directory (and mounts under it) the test made outside its Env; removed on drop.
struct HostDir {
    path: PathBuf,
    mounts: Vec<PathBuf>,
}

impl HostDir {
    fn new(prefix: &str) -> HostDir {
        let path = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&path).unwrap();
        HostDir {
            path,
            mounts: Vec::new(),
        }
    }

    fn mount_tmpfs(&mut self, sub: &str) -> PathBuf {
        let p = self.path.join(sub);
        std::fs::create_dir_all(&p).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            &p,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("size=1m"),
        )
        .unwrap_or_else(|e| panic!("mount tmpfs on {}: {e}", p.display()));
        self.mounts.push(p.clone());
        p
    }

    fn s(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    /// The escape checks: nothing appeared in this host directory, and `name` (resolved inside
    /// the root instead) is a directory (`dir`) or a file at rootfs/<this path>/<name>.
    fn assert_escape_stayed_inside(&self, env: &Env, name: &str, dir: bool) {
        let left: Vec<_> = std::fs::read_dir(&self.path).unwrap().collect();
        assert!(left.is_empty(), "created on the host: {left:?}");
        let inside = env.rootfs().join(self.path.strip_prefix("/").unwrap()).join(name);
        let made = if dir { inside.is_dir() } else { inside.is_file() };
        assert!(made, "{} not created", inside.display());
    }
}

impl Drop for HostDir {
    fn drop(&mut self) {
        for m in self.mounts.iter().rev() {
            let _ = nix::mount::umount2(m, nix::mount::MntFlags::MNT_DETACH);
        }
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn add_mount(env: &mut Env, m: Value) {
    env.config["mounts"].as_array_mut().unwrap().push(m);
}

/// The /proc/self/mounts line of `dest` in the container's output.
fn mount_line<'a>(out: &'a str, dest: &str) -> &'a str {
    out.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(dest))
        .unwrap_or_else(|| panic!("no mount on {dest} in:\n{out}"))
}

fn opts(line: &str) -> Vec<&str> {
    line.split_whitespace().nth(3).unwrap().split(',').collect()
}

#[test]
fn readonly_root_refuses_writes_but_a_tmpfs_is_writable() {
    require_root!();
    let mut env = Env::new(&[
        "sh",
        "-c",
        "touch /x; echo root=$?; touch /tmp/y; echo tmp=$?; grep ' / ' /proc/self/mounts",
    ]);
    env.config["root"]["readonly"] = json!(true);
    add_mount(
        &mut env,
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]}),
    );
    env.save();
    let id = env.id("ro");
    let o = env.run(&id);
    o.ok();
    assert!(o.stdout.contains("root=1\n"), "{}", o.stdout);
    assert!(o.stdout.contains("tmp=0\n"), "{}", o.stdout);
    assert!(opts(mount_line(&o.stdout, "/")).contains(&"ro"), "{}", o.stdout);
    assert!(!env.rootfs().join("x").exists());
    env.assert_gone(&id);
}

#[test]
fn tmpfs_options_show_in_proc_mounts() {
    require_root!();
    let mut env = Env::new(&["cat", "/proc/self/mounts"]);
    add_mount(
        &mut env,
        json!({"destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "noexec", "size=1m", "mode=700"]}),
    );
    env.save();
    let id = env.id("tmpfs");
    let o = env.run(&id);
    o.ok();
    let l = mount_line(&o.stdout, "/mnt/t");
    let o = opts(l);
    assert!(l.starts_with("tmpfs /mnt/t tmpfs "), "{l}");
    for want in ["rw", "nosuid", "noexec", "size=1024k", "mode=700"] {
        assert!(o.contains(&want), "{want} missing: {l}");
    }
    assert!(!o.contains(&"nodev"), "{l}");
}

#[test]
fn bind_mounts_rw_ro_and_single_file() {
    require_root!();
    let rw = HostDir::new("berth-bind-rw");
    let ro = HostDir::new("berth-bind-ro");
    std::fs::write(ro.path.join("present"), "ro-content").unwrap();
    let file_dir = HostDir::new("berth-bind-file");
    let file = file_dir.path.join("single.conf");
    std::fs::write(&file, "one file\n").unwrap();
    let mut env = Env::new(&[
        "sh",
        "-c",
        "echo written-inside > /data/rw/new; echo rw=$?; \
         cat /data/ro/present; echo; touch /data/ro/nope; echo ro=$?; \
         cat /etc/single.conf; grep -E ' /data/| /etc/single' /proc/self/mounts",
    ]);
    add_mount(
        &mut env,
        json!({"destination": "/data/rw", "type": "bind", "source": rw.s(), "options": ["rbind", "rw"]}),
    );
    add_mount(
        &mut env,
        json!({"destination": "/data/ro", "type": "bind", "source": ro.s(), "options": ["bind", "ro"]}),
    );
    add_mount(
        &mut env,
        json!({"destination": "/etc/single.conf", "type": "bind", "source": file, "options": ["bind", "ro"]}),
    );
    env.save();
    let id = env.id("bind");
    let o = env.run(&id);
    o.ok();
    assert!(o.stdout.contains("rw=0\n"), "{}", o.stdout);
    assert_eq!(
        std::fs::read_to_string(rw.path.join("new")).unwrap(),
        "written-inside\n"
    );
    assert!(o.stdout.contains("ro-content\n"), "{}", o.stdout);
    assert!(o.stdout.contains("ro=1\n"), "{}", o.stdout);
    assert!(!ro.path.join("nope").exists());
    assert!(o.stdout.contains("one file\n"), "{}", o.stdout);
    assert!(opts(mount_line(&o.stdout, "/data/ro")).contains(&"ro"));
    assert!(opts(mount_line(&o.stdout, "/data/rw")).contains(&"rw"));
    assert!(opts(mount_line(&o.stdout, "/etc/single.conf")).contains(&"ro"));
    // The host's file is still a file, and the target made in the rootfs is a plain file.
    assert!(env.rootfs().join("etc/single.conf").is_file());
    env.assert_gone(&id);
}

#[test]
fn rbind_with_rro_makes_submounts_read_only() {
    require_root!();
    let mut src = HostDir::new("berth-rbind");
    let sub = src.mount_tmpfs("sub");
    std::fs::write(sub.join("f"), "in submount").unwrap();
    let script = "cat /data/sub/f; echo; touch /data/top; echo top=$?; touch /data/sub/new; echo sub=$?";
    let mut env = Env::new(&["sh", "-c", script]);
    add_mount(
        &mut env,
        json!({"destination": "/data", "type": "bind", "source": src.s(), "options": ["rbind", "rro"]}),
    );
    env.save();
    let id = env.id("rro");
    let o = env.run(&id);
    o.ok();
    assert!(
        o.stdout.contains("in submount\n"),
        "submount not carried by rbind: {}",
        o.stdout
    );
    assert!(o.stdout.contains("top=1\n"), "{}", o.stdout);
    assert!(
        o.stdout.contains("sub=1\n"),
        "submount writable despite rro: {}",
        o.stdout
    );
    assert!(!sub.join("new").exists());

    // Contrast (runc's semantics): plain "ro" makes only the top mount read-only.
    env.config["mounts"].as_array_mut().unwrap().pop();
    add_mount(
        &mut env,
        json!({"destination": "/data", "type": "bind", "source": src.s(), "options": ["rbind", "ro"]}),
    );
    env.save();
    let id = env.id("ro-top");
    let o = env.run(&id);
    o.ok();
    assert!(o.stdout.contains("top=1\n"), "{}", o.stdout);
    assert!(o.stdout.contains("sub=0\n"), "{}", o.stdout);
    assert!(sub.join("new").exists());
    // The container's mounts never propagate back: the host still has exactly its one submount.
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let under = mi.lines().filter(|l| l.contains(&*src.s())).count();
    assert_eq!(under, 1, "{mi}");
}

#[test]
fn propagation_options_are_applied_to_bind_mounts() {
    require_root!();
    let a = HostDir::new("berth-prop-a");
    let b = HostDir::new("berth-prop-b");
    let mut env = Env::new(&["cat", "/proc/self/mountinfo"]);
    add_mount(
        &mut env,
        json!({"destination": "/pa", "type": "bind", "source": a.s(), "options": ["rbind", "rprivate"]}),
    );
    add_mount(
        &mut env,
        json!({"destination": "/pb", "type": "bind", "source": b.s(), "options": ["rbind", "rshared"]}),
    );
    add_mount(
        &mut env,
        json!({"destination": "/pc", "type": "bind", "source": b.s(), "options": ["rbind", "rslave"]}),
    );
    env.save();
    let id = env.id("prop");
    let o = env.run(&id);
    o.ok();
    let line = |d: &str| {
        o.stdout
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(d))
            .unwrap_or_else(|| panic!("no {d}: {}", o.stdout))
            .to_string()
    };
    // Optional fields sit between the mount options and " - ".
    let fields = |l: &str| -> Vec<String> {
        let left = l.split(" - ").next().unwrap();
        left.split(' ').skip(6).map(str::to_string).collect()
    };
    let pa = line("/pa");
    assert!(fields(&pa).is_empty(), "rprivate mount has peers: {pa}");
    let pb = line("/pb");
    assert!(fields(&pb).iter().any(|f| f.starts_with("shared:")), "{pb}");
    // rslave of a private mount leaves it without peers: never shared.
    let pc = line("/pc");
    assert!(fields(&pc).iter().all(|f| !f.starts_with("shared:")), "{pc}");
}

#[test]
fn mount_destination_through_an_absolute_symlink_stays_in_the_rootfs() {
    require_root!();
    let target = HostDir::new("berth-escape");
    let mut env = Env::new(&[
        "sh",
        "-c",
        "echo inside > /escape/sub/proof; grep /sub /proc/self/mounts",
    ]);
    std::os::unix::fs::symlink(&target.path, env.rootfs().join("escape")).unwrap();
    add_mount(
        &mut env,
        json!({"destination": "/escape/sub", "type": "tmpfs", "source": "tmpfs"}),
    );
    env.save();
    let id = env.id("esc-abs");
    let o = env.run(&id);
    o.ok();
    // The kernel resolved the link inside the root: the mount sits at rootfs/<target>/sub.
    target.assert_escape_stayed_inside(&env, "sub", true);
    let want = format!(" {}/sub ", target.s());
    assert!(o.stdout.contains(&want), "{}", o.stdout);
    env.assert_gone(&id);
}

#[test]
fn mount_destination_through_a_relative_symlink_stays_in_the_rootfs() {
    require_root!();
    let target = HostDir::new("berth-escape-rel");
    let mut env = Env::new(&["sh", "-c", "echo inside > /deep/dir/escape/sub/proof"]);
    let deep = env.rootfs().join("deep/dir");
    std::fs::create_dir_all(&deep).unwrap();
    // Enough ../ to climb out of any temp dir on the host.
    let rel = format!("../../../../../../../../../..{}", target.s());
    std::os::unix::fs::symlink(&rel, deep.join("escape")).unwrap();
    add_mount(
        &mut env,
        json!({"destination": "/deep/dir/escape/sub", "type": "tmpfs", "source": "tmpfs"}),
    );
    env.save();
    let id = env.id("esc-rel");
    let o = env.run(&id);
    o.ok();
    target.assert_escape_stayed_inside(&env, "sub", true);
    env.assert_gone(&id);
}

#[test]
fn no_pivot_runs_in_the_rootfs() {
    require_root!();
    let env = Env::new(&["sh", "-c", "echo $$; ls /; cat /proc/self/mountinfo"]);
    std::fs::write(env.rootfs().join("marker-file"), "").unwrap();
    let id = env.id("nopivot");
    let b = env.bundle.to_string_lossy().into_owned();
    let o = env.berth(&["run", "--no-pivot", "-b", &b, &id]);
    o.ok();
    let mut lines = o.stdout.lines();
    assert_eq!(lines.next(), Some("1"));
    assert!(o.stdout.lines().any(|l| l == "marker-file"), "{}", o.stdout);
    assert!(o.stdout.lines().any(|l| l == "bin"), "{}", o.stdout);
    env.assert_gone(&id);
}

#[test]
fn rootfs_propagation_private_and_shared_both_run() {
    require_root!();
    for (p, tag) in [("private", None), ("shared", Some("shared:")), ("slave", None)] {
        let mut env = Env::new(&["cat", "/proc/self/mountinfo"]);
        env.config["linux"]["rootfsPropagation"] = json!(p);
        env.save();
        let id = env.id(&format!("prop-{p}"));
        let o = env.run(&id);
        o.ok();
        let root = o
            .stdout
            .lines()
            .find(|l| l.split(' ').nth(4) == Some("/"))
            .unwrap_or_else(|| panic!("no / in {}", o.stdout));
        if let Some(t) = tag {
            assert!(root.contains(t), "{p}: {root}");
        } else {
            assert!(!root.contains("shared:"), "{p}: {root}");
        }
        env.assert_gone(&id);
    }
}

#[test]
fn relative_root_path_and_relative_bundle_path() {
    require_root!();
    let mut env = Env::new(&["cat", "/marker"]);
    std::fs::rename(env.rootfs(), env.bundle.join("myroot")).unwrap();
    std::fs::write(env.bundle.join("myroot/marker"), "my root\n").unwrap();
    env.config["root"]["path"] = json!("myroot");
    env.save();
    let id = env.id("relb");
    // -b relative to berth's cwd (the test dir); root.path relative to the bundle, not the cwd.
    let mut cmd = env.cmd(&["run", "-b", "bundle", "--keep", &id]);
    cmd.current_dir(&env.dir);
    let out = env.dir.join("relb.out");
    cmd.stdout(std::fs::File::create(&out).unwrap());
    let st = cmd.status().unwrap();
    assert!(st.success());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "my root\n");
    let s = env.state(&id);
    assert_eq!(s["bundle"], json!(env.bundle.to_string_lossy()));
    assert_eq!(s["rootfs"], json!(env.bundle.join("myroot").to_string_lossy()));
    env.berth(&["delete", &id]).ok();
    env.assert_gone(&id);
    assert!(Path::new(&env.bundle.join("myroot/bin/busybox")).exists());
}

#[test]
fn file_bind_mount_through_a_dangling_symlink_lands_in_the_rootfs() {
    require_root!();
    // Images with systemd-resolved ship /etc/resolv.conf as a dangling relative link, and
    // engines bind their resolv.conf/hosts over it.
    let host = HostDir::new("berth-resolv");
    let resolv = host.path.join("resolv.conf");
    std::fs::write(&resolv, "nameserver 192.0.2.53\n").unwrap();
    let escape = HostDir::new("berth-hosts-escape");
    let mut env = Env::new(&["sh", "-c", "cat /etc/resolv.conf /etc/hosts"]);
    let etc = env.rootfs().join("etc");
    std::os::unix::fs::symlink("../run/systemd/resolve/stub-resolv.conf", etc.join("resolv.conf")).unwrap();
    // An absolute dangling link that would name a host path if followed outside the root.
    std::os::unix::fs::symlink(escape.path.join("hosts"), etc.join("hosts")).unwrap();
    add_mount(
        &mut env,
        json!({"destination": "/etc/resolv.conf", "type": "bind", "source": resolv, "options": ["rbind", "ro"]}),
    );
    add_mount(
        &mut env,
        json!({"destination": "/etc/hosts", "type": "bind", "source": resolv, "options": ["bind", "ro"]}),
    );
    env.save();
    let id = env.id("resolv");
    let o = env.run(&id);
    o.ok();
    assert_eq!(o.stdout, "nameserver 192.0.2.53\nnameserver 192.0.2.53\n");
    assert!(env.rootfs().join("run/systemd/resolve/stub-resolv.conf").is_file());
    escape.assert_escape_stayed_inside(&env, "hosts", false);
    env.assert_gone(&id);
}

#[test]
fn no_pivot_with_a_readonly_root_and_a_masked_path() {
    require_root!();
    let env_args = [
        "sh",
        "-c",
        "touch /x; echo root=$?; ls -A /sys/firmware | wc -l; grep ' / ' /proc/self/mounts",
    ];
    let mut env = Env::new(&env_args);
    env.config["root"]["readonly"] = json!(true);
    env.save();
    let id = env.id("nopivro");
    let b = env.bundle.to_string_lossy().into_owned();
    let o = env.berth(&["run", "--no-pivot", "-b", &b, &id]);
    o.ok();
    let l: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(l[0], "root=1", "{}", o.stdout);
    assert_eq!(l[1].trim(), "0", "{}", o.stdout);
    assert!(opts(mount_line(&o.stdout, "/")).contains(&"ro"), "{}", o.stdout);
    env.assert_gone(&id);
}
