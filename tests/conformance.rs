//! Corners of the runtime-spec and of runc's behaviour that engines probe, each driven through
//! the real binary.
mod common;
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
        .unwrap_or(false)
}

#[test]
fn kill_all_after_the_init_exited_ends_what_is_left_in_the_cgroup() {
    require_root!();
    // No pid namespace of its own (a pod's shared one, hostPID): the init's child outlives it.
    let mut env = Env::new(&["sh", "-c", "sleep 100 & echo $! > /child.pid"]);
    let ns: Vec<serde_json::Value> = env.config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["type"] != "pid")
        .cloned()
        .collect();
    env.config["linux"]["namespaces"] = json!(ns);
    env.save();
    let id = env.id("killall");
    let b = env.bundle.to_string_lossy().into_owned();
    env.berth(&["run", "-d", "-b", &b, &id]).ok();
    env.wait_status(&id, "stopped");
    let pid: i32 = std::fs::read_to_string(env.rootfs().join("child.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(alive(pid), "the child should outlive the init");
    // containerd's runc shim, once the init is gone: `kill --all <id> 9`.
    env.berth(&["kill", "--all", &id, "9"]).ok();
    let deadline = Instant::now() + Duration::from_secs(1);
    while alive(pid) {
        assert!(Instant::now() < deadline, "pid {pid} survived kill --all");
        std::thread::sleep(Duration::from_millis(10));
    }
    env.berth(&["delete", &id]).ok();
    env.assert_gone(&id);
}

#[test]
fn every_access_time_option_applies_to_a_bind_mount() {
    require_root!();
    let mut env = Env::new(&["cat", "/proc/self/mountinfo"]);
    let src = env.dir.join("atime-src");
    std::fs::create_dir_all(&src).unwrap();
    // (option, the access-time mode mountinfo shows: None for strictatime, which shows none)
    let opts = [
        ("atime", Some("relatime")),
        ("noatime", Some("noatime")),
        ("relatime", Some("relatime")),
        ("strictatime", None),
        ("nodiratime", Some("relatime")),
        ("nostrictatime", Some("relatime")),
        ("ratime", Some("relatime")),
        ("rnoatime", Some("noatime")),
        ("rrelatime", Some("relatime")),
        ("rstrictatime", None),
        ("rnodiratime", Some("relatime")),
        ("rnostrictatime", Some("relatime")),
    ];
    for (o, _) in opts {
        env.config["mounts"].as_array_mut().unwrap().push(json!({
            "destination": format!("/m-{o}"),
            "type": "bind",
            "source": src.to_string_lossy(),
            "options": ["bind", o]
        }));
    }
    env.save();
    let id = env.id("atime");
    let o = env.run(&id);
    assert_eq!(o.code, 0, "{}", o.stderr);
    for (opt, mode) in opts {
        let line = o
            .stdout
            .lines()
            .find(|l| l.split(' ').nth(4) == Some(&format!("/m-{opt}")))
            .unwrap_or_else(|| panic!("no mount for {opt}: {}", o.stdout));
        let flags: Vec<&str> = line.split(' ').nth(5).unwrap().split(',').collect();
        let has = |f: &str| flags.contains(&f);
        match mode {
            Some(m) => assert!(has(m), "{opt}: {line}"),
            None => assert!(!has("relatime") && !has("noatime"), "{opt}: {line}"),
        }
        assert_eq!(has("nodiratime"), opt.ends_with("nodiratime"), "{opt}: {line}");
    }
}

#[test]
fn poststart_hooks_run_after_start_container_hooks_and_the_exec() {
    require_root!();
    let mut env = Env::new(&["sleep", "1"]);
    let order = env.rootfs().join("order");
    // startContainer (in the container, slow on purpose), then poststart (on the host), which
    // records what pid 1 of the container is running by then.
    let post = env.dir.join("post.sh");
    std::fs::write(
        &post,
        format!(
            "#!/bin/sh\npid=$(sed 's/.*\"pid\":\\([0-9]*\\).*/\\1/')\necho \"poststart $(readlink /proc/$pid/exe)\" >> {}\n",
            order.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&post, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    env.config["hooks"] = json!({
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "sleep 0.3; echo startContainer >> /order"]}],
        "poststart": [{"path": post.to_string_lossy()}]
    });
    env.save();
    for mode in ["create+start", "run -d"] {
        let _ = std::fs::remove_file(&order);
        let id = env.id("poststart");
        let b = env.bundle.to_string_lossy().into_owned();
        if mode == "run -d" {
            env.berth(&["run", "-d", "-b", &b, &id]).ok();
        } else {
            env.create(&id).ok();
            env.berth(&["start", &id]).ok();
        }
        let text = std::fs::read_to_string(&order).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{mode}: {text}");
        assert_eq!(lines[0], "startContainer", "{mode}: {text}");
        // The process runs: busybox (sleep), no longer berth's trampoline.
        assert!(
            lines[1].starts_with("poststart ") && lines[1].ends_with("busybox"),
            "{mode}: {text}"
        );
        env.wait_status(&id, "stopped");
        env.berth(&["delete", &id]).ok();
    }
}

/// A host directory made a shared mount (as kubelet's pod volumes are), unmounted on drop.
struct SharedDir(std::path::PathBuf);

impl SharedDir {
    fn new(p: std::path::PathBuf) -> SharedDir {
        use nix::mount::{mount, MsFlags};
        std::fs::create_dir_all(p.join("inner")).unwrap();
        mount(Some(&p), &p, None::<&str>, MsFlags::MS_BIND, None::<&str>).unwrap();
        mount(None::<&str>, &p, None::<&str>, MsFlags::MS_SHARED, None::<&str>).unwrap();
        SharedDir(p)
    }

    fn inner_mounted(&self) -> bool {
        let want = self.0.join("inner").to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
    }
}

impl Drop for SharedDir {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0.join("inner"), nix::mount::MntFlags::MNT_DETACH);
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn rshared_root_propagation_makes_bidirectional_mounts_reach_the_host_and_nothing_else() {
    require_root!();
    for (propagation, reaches_host) in [(Some("rshared"), true), (None, false), (Some("rslave"), false)] {
        let mut env = Env::new(&["sh", "-c", "mount -t tmpfs bidir /vol/inner && echo mounted"]);
        let vol = SharedDir::new(env.dir.join("vol"));
        if let Some(p) = propagation {
            env.config["linux"]["rootfsPropagation"] = json!(p);
        }
        // Kubernetes' mountPropagation: Bidirectional, as containerd's CRI plugin writes it.
        env.config["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/vol", "type": "bind", "source": vol.0.to_string_lossy(),
            "options": ["rbind", "rshared"]
        }));
        for set in ["bounding", "effective", "permitted"] {
            env.config["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_SYS_ADMIN"));
        }
        env.save();
        let id = env.id("bidir");
        let o = env.run(&id);
        assert_eq!(o.code, 0, "{propagation:?}: {}", o.stderr);
        assert_eq!(o.stdout, "mounted\n");
        assert_eq!(vol.inner_mounted(), reaches_host, "{propagation:?}");
        // The container's own mounts (/proc, /dev, its rootfs) never reach the host.
        let rootfs = env.rootfs().to_string_lossy().into_owned();
        let leaked: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.split(' ').nth(4).is_some_and(|m| m.starts_with(&rootfs)))
            .map(str::to_string)
            .collect();
        assert!(leaked.is_empty(), "{propagation:?}: {leaked:?}");
        env.assert_gone(&id);
    }
}
