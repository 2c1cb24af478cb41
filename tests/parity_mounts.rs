//! runc 1.2+ parity for the mount list: processing order, bind sources the container's root
//! cannot reach, tmpfs modes, a read-only /dev, relative destinations, the exact flags of a
//! bind mount, masked paths, and procfs/sysfs visibility with --no-pivot.
mod common;
use common::*;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn add_mount(env: &mut Env, m: Value) {
    env.config["mounts"].as_array_mut().unwrap().push(m);
}

fn bind(dest: &str, src: &Path, opts: &[&str]) -> Value {
    json!({"destination": dest, "type": "bind", "source": src, "options": opts})
}

/// The /proc/self/mounts options of `dest` in the container's output.
fn mount_opts<'a>(out: &'a str, dest: &str) -> Vec<&'a str> {
    let line = out
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(dest))
        .unwrap_or_else(|| panic!("no mount on {dest} in:\n{out}"));
    line.split_whitespace().nth(3).unwrap().split(',').collect()
}

/// The mountinfo lines whose mount point is `dest`.
fn mountinfo_at<'a>(out: &'a str, dest: &str) -> Vec<&'a str> {
    out.lines()
        .filter(|l| l.split_whitespace().nth(4) == Some(dest))
        .collect()
}

/// A tmpfs the test mounted on the host; unmounted on drop (declare it after the Env).
struct HostMount(PathBuf);

impl HostMount {
    fn tmpfs(p: PathBuf, flags: nix::mount::MsFlags) -> HostMount {
        std::fs::create_dir_all(&p).unwrap();
        nix::mount::mount(Some("tmpfs"), &p, Some("tmpfs"), flags, Some("size=1m"))
            .unwrap_or_else(|e| panic!("mount tmpfs on {}: {e}", p.display()));
        HostMount(p)
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// runc processes the mount list in order, and a mount source is looked up when its turn
/// comes: a source under the rootfs that an earlier mount made exists by then. Here an
/// idmapped bind (made by the host side, which used to open every idmapped source before the
/// container's mounts existed: ENOENT) and a plain bind both take theirs from a volume bound
/// at /a just before them.
#[test]
fn a_bind_source_inside_the_rootfs_made_by_an_earlier_mount_is_found() {
    require_root!();
    let mut env = Env::new(&["stat", "-c", "%n %u", "/a/x", "/b/x", "/c"]);
    let vol = env.dir.join("vol");
    std::fs::create_dir_all(&vol).unwrap();
    std::fs::write(vol.join("x"), "x").unwrap();
    let rootfs = env.rootfs();
    add_mount(&mut env, bind("/a", &vol, &["rbind"]));
    add_mount(&mut env, bind("/b", &rootfs.join("a"), &["bind", "idmap"]));
    add_mount(&mut env, bind("/c", &rootfs.join("a/x"), &["bind"]));
    env.map_root_to(100000);
    let id = env.id("order");
    let o = env.run(&id);
    o.ok();
    // Host root is unmapped in the container (overflow id) except through the idmapped mount.
    assert_eq!(o.stdout, "/a/x 65534\n/b/x 0\n/c 65534\n", "{}", o.stderr);
    assert!(!rootfs.join("a").join("x").exists(), "the volume leaked into the image");
    env.assert_gone(&id);
}

/// A bind source under a host directory only host root may search (0700): the container's
/// root (host uid 100000) cannot open it, so berth's host side opens it, as runc does for
/// sources its init cannot stat in the user namespace.
#[test]
fn a_bind_source_the_container_root_cannot_reach_is_opened_by_the_host() {
    require_root!();
    let mut env = Env::new(&["cat", "/data/f"]);
    let private = env.dir.join("private");
    std::fs::create_dir_all(private.join("data")).unwrap();
    std::fs::write(private.join("data/f"), "reached\n").unwrap();
    std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
    add_mount(&mut env, bind("/data", &private.join("data"), &["rbind", "ro"]));
    env.map_root_to(100000);
    let id = env.id("unreach");
    let o = env.run(&id);
    o.ok();
    assert_eq!(o.stdout, "reached\n", "{}", o.stderr);
    env.assert_gone(&id);
}

/// A tmpfs over an existing directory takes that directory's mode, set-id and sticky bits
/// included (runc prepends `mode=` from a stat of the destination); an explicit `mode=` wins;
/// a new directory gets tmpfs's default (1777).
#[test]
fn a_tmpfs_over_a_directory_takes_its_mode_unless_mode_is_given() {
    require_root!();
    let mut env = Env::new(&["stat", "-c", "%n %a", "/tmp", "/sgid", "/given", "/new"]);
    let r = env.rootfs();
    for (d, mode) in [("tmp", 0o1777), ("sgid", 0o2750), ("given", 0o700)] {
        std::fs::create_dir_all(r.join(d)).unwrap();
        std::fs::set_permissions(r.join(d), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    for (dest, opts) in [
        ("/tmp", json!(["nosuid", "nodev"])),
        ("/sgid", json!(["size=1m"])),
        ("/given", json!(["mode=755"])),
        ("/new", json!([])),
    ] {
        add_mount(
            &mut env,
            json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": opts}),
        );
    }
    env.save();
    let id = env.id("tmpmode");
    let o = env.run(&id);
    o.ok();
    assert_eq!(
        o.stdout, "/tmp 1777\n/sgid 2750\n/given 755\n/new 1777\n",
        "{}",
        o.stderr
    );
    env.assert_gone(&id);
}

/// `/dev` as a read-only tmpfs: runc mounts it writable, fills it (device nodes, pts, shm,
/// mqueue, links) and makes it read-only at the end. It used to fail `mkdir /dev/pts: EROFS`.
#[test]
fn a_read_only_dev_tmpfs_is_populated_then_made_read_only() {
    require_root!();
    let mut env = Env::new(&[
        "sh",
        "-c",
        "cat /proc/self/mounts; ls /dev/pts/ptmx /dev/fd/ /dev/shm/ >/dev/null && echo listed; \
         echo x > /dev/null && echo null-ok; touch /dev/new 2>/dev/null || echo dev-ro; \
         touch /dev/shm/new && echo shm-rw",
    ]);
    let dev = env.config["mounts"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|m| m["destination"] == "/dev")
        .unwrap();
    dev["options"].as_array_mut().unwrap().push(json!("ro"));
    env.save();
    let id = env.id("devro");
    let o = env.run(&id);
    o.ok();
    assert!(mount_opts(&o.stdout, "/dev").contains(&"ro"), "{}", o.stdout);
    assert!(!mount_opts(&o.stdout, "/dev/shm").contains(&"ro"), "{}", o.stdout);
    for want in ["listed", "null-ok", "dev-ro", "shm-rw"] {
        assert!(o.stdout.lines().any(|l| l == want), "{want} missing:\n{}", o.stdout);
    }
    env.assert_gone(&id);
}

/// runtime-spec: a relative destination MAY be given and is relative to `/`; runc accepts it
/// with a warning.
#[test]
fn a_relative_mount_destination_is_taken_relative_to_the_root() {
    require_root!();
    let mut env = Env::new(&["cat", "/proc/self/mounts"]);
    add_mount(
        &mut env,
        json!({"destination": "rel/dir", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
    );
    env.save();
    let id = env.id("reldest");
    let o = env.run(&id);
    o.ok();
    assert!(mount_opts(&o.stdout, "/rel/dir").contains(&"rw"), "{}", o.stdout);
    assert!(
        o.stderr.contains("mount destination rel/dir is not absolute"),
        "no warning: {}",
        o.stderr
    );
    env.assert_gone(&id);
}

/// A bind mount with flag options gets exactly those flags: what the source has and was not
/// asked for is cleared (runc's bind remount, unlike mount(8)); the access-time mode is kept
/// unless one is asked for; a bind without flag options keeps the source's. In a user
/// namespace the kernel locks the source's flags, and runc keeps those that are set.
#[test]
fn bind_mount_flags_are_exactly_the_requested_ones_except_locked_ones() {
    require_root!();
    use nix::mount::MsFlags;
    for userns in [false, true] {
        let mut env = Env::new(&["cat", "/proc/self/mounts"]);
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_NOATIME;
        let src = HostMount::tmpfs(env.dir.join("src"), flags);
        add_mount(&mut env, bind("/ro", &src.0, &["bind", "ro"]));
        add_mount(&mut env, bind("/keep", &src.0, &["rbind", "rprivate"]));
        if !userns {
            add_mount(&mut env, bind("/nodev", &src.0, &["bind", "nodev", "relatime"]));
        }
        if userns {
            env.map_root_to(100000);
        } else {
            env.save();
        }
        let id = env.id("bindflags");
        let o = env.run(&id);
        o.ok();
        let has = |dest: &str, opt: &str| mount_opts(&o.stdout, dest).contains(&opt);
        let all = ["nosuid", "nodev", "noexec", "noatime"];
        for f in all {
            assert!(has("/keep", f), "/keep lost {f} (userns {userns}):\n{}", o.stdout);
        }
        assert!(has("/ro", "ro") && has("/ro", "noatime"), "{}", o.stdout);
        for f in ["nosuid", "nodev", "noexec"] {
            assert_eq!(has("/ro", f), userns, "/ro {f} (userns {userns}):\n{}", o.stdout);
        }
        if !userns {
            assert!(has("/nodev", "rw") && has("/nodev", "nodev") && has("/nodev", "relatime"));
            assert!(!has("/nodev", "nosuid") && !has("/nodev", "noexec"), "{}", o.stdout);
        }
        env.assert_gone(&id);
    }
}

/// maskedPaths: a path listed twice (or spelled differently) is masked once, and masked
/// directories share one read-only tmpfs (runc 1.4+), each still read-only.
#[test]
fn masked_paths_are_masked_once_and_directories_share_one_tmpfs() {
    require_root!();
    let mut env = Env::new(&["cat", "/proc/self/mountinfo"]);
    let r = env.rootfs();
    for d in ["m1", "m2"] {
        std::fs::create_dir_all(r.join(d)).unwrap();
        std::fs::write(r.join(d).join("secret"), "s").unwrap();
    }
    std::fs::write(r.join("f"), "s").unwrap();
    let masked = env.config["linux"]["maskedPaths"].as_array_mut().unwrap();
    for p in ["/m1", "/m2", "/m1", "/x/../m1/", "/f", "//f"] {
        masked.push(json!(p));
    }
    env.save();
    let id = env.id("masked");
    let o = env.run(&id);
    o.ok();
    let m1 = mountinfo_at(&o.stdout, "/m1");
    let m2 = mountinfo_at(&o.stdout, "/m2");
    assert_eq!(m1.len(), 1, "{}", o.stdout);
    assert_eq!(m2.len(), 1, "{}", o.stdout);
    assert_eq!(mountinfo_at(&o.stdout, "/f").len(), 1, "{}", o.stdout);
    let dev = |l: &str| l.split_whitespace().nth(2).unwrap().to_string();
    assert_eq!(dev(m1[0]), dev(m2[0]), "not one tmpfs:\n{}", o.stdout);
    for l in [m1[0], m2[0]] {
        assert!(
            l.split_whitespace().nth(5).unwrap().split(',').any(|o| o == "ro"),
            "{l}"
        );
    }
    env.assert_gone(&id);
}

/// With --no-pivot the host's procfs and sysfs used to stay in the container's mount namespace
/// (under the moved root), fully visible, so a nested unprivileged user namespace could mount a
/// fresh, unmasked procfs or sysfs. runc detaches them first; with pivot_root they are gone.
#[test]
fn no_pivot_leaves_no_host_procfs_or_sysfs_for_a_nested_userns_to_mount() {
    require_root!();
    let script = "unshare -Urm sh -c 'mount -t tmpfs t /mnt && echo tmpfs-ok'; \
                  unshare -Urmpf sh -c 'mount -t proc p /mnt && echo proc-mounted'; \
                  unshare -Urmn sh -c 'mount -t sysfs s /mnt && echo sysfs-mounted'; true";
    for no_pivot in [false, true] {
        // Not root: mapping host uid 0 in a nested user namespace needs CAP_SETFCAP.
        let mut env = Env::new(&["sh", "-c", script]);
        env.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        env.save();
        std::fs::create_dir_all(env.rootfs().join("mnt")).unwrap();
        let id = env.id("nopivproc");
        let b = env.bundle.to_string_lossy().into_owned();
        let mut args = vec!["run"];
        if no_pivot {
            args.push("--no-pivot");
        }
        args.extend(["-b", &b, &id]);
        let o = env.berth(&args);
        o.ok();
        if !o.stdout.contains("tmpfs-ok") {
            let why = format!("nested user namespaces do not work here: {}{}", o.stdout, o.stderr);
            if std::env::var_os("CI").is_some() {
                panic!("{why}");
            }
            eprintln!("skipped: {why}");
            return;
        }
        assert!(!o.stdout.contains("proc-mounted"), "no_pivot {no_pivot}: {}", o.stdout);
        assert!(!o.stdout.contains("sysfs-mounted"), "no_pivot {no_pivot}: {}", o.stdout);
        env.assert_gone(&id);
    }
}
