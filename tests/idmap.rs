//! Idmapped bind mounts (`idmap`, `ridmap`, mount-level uidMappings/gidMappings). The kernel
//! shows an on-disk id N of an idmapped mount as the id N maps to in the mount's mappings
//! ("containerID hostID size": N is read as a containerID), and writes the reverse; an id with
//! no mapping shows as the overflow id 65534 and cannot be written (EOVERFLOW).
mod common;
use common::*;
use serde_json::json;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A host directory the container bind-mounts: f0 owned by 0:0, f1234 by 1234:1234.
fn shared(env: &Env, name: &str) -> PathBuf {
    let d = env.dir.join(name);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("f0"), "zero").unwrap();
    std::fs::write(d.join("f1234"), "other").unwrap();
    std::os::unix::fs::chown(d.join("f1234"), Some(1234), Some(1234)).unwrap();
    d
}

fn owner(p: &Path) -> (u32, u32) {
    let md = std::fs::symlink_metadata(p).unwrap();
    (md.uid(), md.gid())
}

fn bind(dest: &str, src: &Path, opts: &[&str]) -> serde_json::Value {
    json!({"destination": dest, "type": "bind", "source": src, "options": opts})
}

fn one_to(host: u32) -> serde_json::Value {
    json!([{"containerID": 0, "hostID": host, "size": 1}])
}

fn add_mount(env: &mut Env, m: serde_json::Value) {
    env.config["mounts"].as_array_mut().unwrap().push(m);
}

/// With a user namespace 0 -> 100000, `idmap` takes the container's mappings: host files keep
/// their ids inside (host 0 shows as root, not as the overflow id), and what the container's
/// root creates lands on the host as 0, a chown to 1234 as 1234.
#[test]
fn idmap_with_container_userns_shows_host_ids_unshifted() {
    require_root!();
    let mut env = Env::new(&[
        "sh",
        "-c",
        "stat -c '%u:%g' /m/f0 /m/f1234 /plain/f0 /ro/f0; touch /m/new && mkdir /m/d && chown 1234:1234 /m/d \
         && echo wrote; touch /ro/x 2>&1; true",
    ]);
    let src = shared(&env, "shared");
    add_mount(&mut env, bind("/m", &src, &["bind", "idmap"]));
    // The usual attributes still apply on top of the idmap.
    add_mount(&mut env, bind("/ro", &src, &["bind", "idmap", "ro", "nosuid"]));
    add_mount(&mut env, bind("/plain", &src, &["bind"]));
    env.map_root_to(100000);
    for set in ["bounding", "effective", "permitted"] {
        env.config["process"]["capabilities"][set] = json!(["CAP_CHOWN"]);
    }
    env.save();
    let id = env.id("idmap-userns");
    let o = env.run(&id);
    o.ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(
        lines[..5],
        ["0:0", "1234:1234", "65534:65534", "0:0", "wrote"],
        "{}",
        o.stderr
    );
    assert!(lines[5].contains("Read-only file system"), "{}", o.stdout);
    assert!(!src.join("x").exists());
    assert_eq!(owner(&src.join("new")), (0, 0));
    assert_eq!(owner(&src.join("d")), (1234, 1234));
    env.assert_gone(&id);
}

/// A mount's own mappings (0 -> 1000, size 1) idmap it without any `idmap` option and without a
/// container user namespace: host 0 shows as 1000, host 1234 is unmapped (overflow id), uid 1000
/// writes files owned by host 0, and root (unmapped in the mount) cannot create files.
#[test]
fn mount_mappings_without_container_userns() {
    require_root!();
    let mut env = Env::new(&[
        "sh",
        "-c",
        "stat -c '%u:%g' /m/f0 /m/f1234 /m /file; touch /m/by1000 && echo wrote",
    ]);
    let src = shared(&env, "shared");
    // A directory and a single file.
    for (dest, s) in [("/m", src.clone()), ("/file", src.join("f0"))] {
        let mut m = bind(dest, &s, &["bind"]);
        m["uidMappings"] = one_to(1000);
        m["gidMappings"] = one_to(1000);
        add_mount(&mut env, m);
    }
    env.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    env.save();
    let id = env.id("idmap-own");
    let o = env.run(&id);
    o.ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(
        lines,
        ["1000:1000", "65534:65534", "1000:1000", "1000:1000", "wrote"],
        "{}",
        o.stderr
    );
    assert_eq!(owner(&src.join("by1000")), (0, 0));
    env.assert_gone(&id);

    env.config["process"]["user"] = json!({"uid": 0, "gid": 0});
    env.config["process"]["args"] = json!(["sh", "-c", "touch /m/byroot 2>&1; echo rc=$?"]);
    env.save();
    let id = env.id("idmap-own-root");
    let o = env.run(&id);
    o.ok();
    assert!(o.stdout.contains("rc=1"), "root is unmapped in the mount: {}", o.stdout);
    assert!(o.stdout.contains("Value too large"), "EOVERFLOW expected: {}", o.stdout);
    assert!(!src.join("byroot").exists());
    env.assert_gone(&id);
}

/// Unmounts the test's host submount even when an assertion fails.
struct Unmount(PathBuf);
impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// `ridmap` idmaps every submount of an rbind; `idmap` only the top mount, so a submount's
/// files keep their raw ids. A shared host submount arrives as a slave: the container's mounts
/// must never propagate back to the host.
#[test]
fn ridmap_covers_submounts_idmap_does_not() {
    require_root!();
    let mut env = Env::new(&[
        "sh",
        "-c",
        "stat -c '%u:%g' /r/f0 /r/sub/f0 /n/f0 /n/sub/f0; grep ' /r/sub ' /proc/self/mountinfo",
    ]);
    let src = shared(&env, "shared");
    let other = shared(&env, "other");
    std::fs::create_dir(src.join("sub")).unwrap();
    nix::mount::mount(
        Some(&other),
        &src.join("sub"),
        None::<&str>,
        nix::mount::MsFlags::MS_BIND,
        None::<&str>,
    )
    .unwrap();
    let _guard = Unmount(src.join("sub"));
    nix::mount::mount(
        None::<&str>,
        &src.join("sub"),
        None::<&str>,
        nix::mount::MsFlags::MS_SHARED,
        None::<&str>,
    )
    .unwrap();
    for (dest, opt) in [("/r", "ridmap"), ("/n", "idmap")] {
        let mut m = bind(dest, &src, &["rbind", opt]);
        m["uidMappings"] = one_to(1000);
        m["gidMappings"] = one_to(1000);
        add_mount(&mut env, m);
    }
    env.save();
    let id = env.id("ridmap");
    let o = env.run(&id);
    o.ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(
        lines[..4],
        ["1000:1000", "1000:1000", "1000:1000", "0:0"],
        "{}",
        o.stderr
    );
    assert!(lines[4].contains("idmapped"), "{}", lines[4]);
    assert!(lines[4].contains(" master:"), "not a slave of the host: {}", lines[4]);
    assert!(!lines[4].contains(" shared:"), "shared with the host: {}", lines[4]);
    env.assert_gone(&id);
}

/// No process of this container's `berth run` (the userns helper is a fork of it) survives.
fn assert_no_process_with(id: &str) {
    for e in std::fs::read_dir("/proc").unwrap().filter_map(|e| e.ok()) {
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            let c = String::from_utf8_lossy(&c).replace('\0', " ");
            assert!(!c.contains(id), "process {} left behind: {c}", e.path().display());
        }
    }
}

#[test]
fn bad_idmap_configs_are_refused_and_leave_nothing() {
    require_root!();
    let cases: [(serde_json::Value, &str); 4] = [
        (
            json!({"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"],
                   "uidMappings": one_to(1000), "gidMappings": one_to(1000)}),
            "idmapped mounts are only supported for bind mounts",
        ),
        (
            json!({"destination": "/t", "type": "bind", "source": "/tmp", "options": ["rbind", "idmap"]}),
            "idmap needs uidMappings and gidMappings",
        ),
        (
            json!({"destination": "/t", "type": "bind", "source": "/tmp", "options": ["rbind"],
                   "uidMappings": one_to(1000)}),
            "both uidMappings and gidMappings",
        ),
        // procfs cannot be idmapped: the kernel refuses after the helper namespace exists.
        (
            json!({"destination": "/t", "type": "bind", "source": "/proc", "options": ["bind", "idmap"],
                   "uidMappings": one_to(1000), "gidMappings": one_to(1000)}),
            "MOUNT_ATTR_IDMAP",
        ),
    ];
    for (m, want) in cases {
        let mut env = Env::new(&["true"]);
        add_mount(&mut env, m);
        env.save();
        let id = env.id("idmap-bad");
        let o = env.run(&id);
        assert_ne!(o.code, 0, "{want}: accepted");
        assert!(o.stderr.contains(want), "want {want:?} in: {}", o.stderr);
        assert!(o.stderr.contains("/t"), "error names the mount: {}", o.stderr);
        env.assert_gone(&id);
        assert_no_process_with(&id);
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!info.contains(env.dir.to_str().unwrap()), "mount left behind: {info}");
    }
}

/// An unprivileged berth cannot idmap host filesystems (the kernel wants CAP_SYS_ADMIN over the
/// source's superblock): refused with a clear error, nothing left behind.
#[test]
fn rootless_idmap_is_refused_clearly() {
    require_root!();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let Some(line) = passwd.lines().find(|l| l.starts_with("berthtest:")) else {
        skip("needs the berthtest user (run integration/rootless-user.sh as root)");
        return;
    };
    let f: Vec<u32> = line.split(':').skip(2).take(2).map(|v| v.parse().unwrap()).collect();
    let (uid, gid) = (f[0], f[1]);
    let mut env = Env::rootless(&["true"], uid, gid);
    let src = shared(&env, "shared");
    add_mount(&mut env, bind("/m", &src, &["rbind", "idmap"]));
    env.save();
    let b = env.bundle.to_string_lossy().into_owned();
    let id = env.id("idmap-rootless");
    let o = env.berth_as(uid, gid, &["run", "-b", &b, &id]);
    assert_ne!(o.code, 0, "rootless idmap accepted");
    assert!(o.stderr.contains("/m"), "{}", o.stderr);
    assert!(o.stderr.contains("idmapped mounts need root"), "{}", o.stderr);
    assert!(!env.root.join(&id).exists());
    assert_no_process_with(&id);
}

/// A container joining another's user namespace by path: `idmap` uses that namespace itself.
#[test]
fn idmap_with_joined_userns_uses_its_mappings() {
    require_root!();
    let mut holder = Env::new(&["sleep", "30"]);
    holder.map_root_to(100000);
    holder.save();
    let hid = holder.id("idmap-holder");
    holder.create(&hid).ok();
    let pid = holder.state(&hid)["pid"].as_i64().unwrap();
    let mut env = Env::new(&["stat", "-c", "%u:%g", "/m/f0", "/m/f1234"]);
    let src = shared(&env, "shared");
    add_mount(&mut env, bind("/m", &src, &["bind", "idmap"]));
    env.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user", "path": format!("/proc/{pid}/ns/user")}));
    chown_tree(&env.rootfs(), 100000, 100000);
    env.save();
    let id = env.id("idmap-joined");
    let o = env.run(&id);
    o.ok();
    assert_eq!(
        o.stdout.lines().collect::<Vec<_>>(),
        ["0:0", "1234:1234"],
        "{}",
        o.stderr
    );
    env.assert_gone(&id);
    holder.berth(&["delete", "--force", &hid]).ok();
}
