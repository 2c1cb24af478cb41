//! Placing containers in cgroups (runc's cgroupfs rules for linux.cgroupsPath) on every
//! hierarchy of the host, and removing exactly what berth created on delete.
mod common;
use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// One mounted hierarchy: its mount point and the controller field /proc/<pid>/cgroup shows
/// for it ("" for cgroup2, "name=systemd", "cpu", ...).
struct Hier {
    mount: PathBuf,
    key: String,
}

fn hierarchies() -> Vec<Hier> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mut out: Vec<Hier> = Vec::new();
    for l in mi.lines() {
        let Some((left, right)) = l.split_once(" - ") else {
            continue;
        };
        let r: Vec<&str> = right.split(' ').collect();
        let key = match r[0] {
            "cgroup2" => String::new(),
            "cgroup" => {
                let known = ["rw", "ro", "clone_children", "noprefix", "xattr", "nsdelegate"];
                let mut c: Vec<&str> = r[2]
                    .split(',')
                    .filter(|o| !known.contains(o) && !o.starts_with("release_agent"))
                    .collect();
                c.sort_unstable();
                c.join(",")
            }
            _ => continue,
        };
        let mount = PathBuf::from(left.split(' ').nth(4).unwrap());
        if !out.iter().any(|h| h.key == key) {
            out.push(Hier { mount, key });
        }
    }
    assert!(!out.is_empty(), "no cgroup hierarchy mounted");
    out
}

/// controller field -> path, from /proc/<pid>/cgroup text.
fn cgroup_paths(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut p = l.splitn(3, ':');
            let _ = p.next()?;
            let mut c: Vec<&str> = p.next()?.split(',').filter(|s| !s.is_empty()).collect();
            c.sort_unstable();
            Some((c.join(","), p.next()?.to_string()))
        })
        .collect()
}

fn path_of(text: &str, key: &str) -> String {
    cgroup_paths(text)
        .into_iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no hierarchy {key:?} in {text}"))
        .1
}

fn join(base: &str, rel: &str) -> String {
    format!("{}/{rel}", base.trim_end_matches('/'))
}

fn dir(h: &Hier, cg: &str) -> PathBuf {
    h.mount.join(cg.trim_start_matches('/'))
}

fn procs(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Removes test-made cgroup directories (deepest first) even when an assertion fails.
struct CgDirs(Vec<PathBuf>);

impl Drop for CgDirs {
    fn drop(&mut self) {
        let mut v = self.0.clone();
        v.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for p in v {
            let _ = std::fs::remove_dir(p);
        }
    }
}

fn created(env: &Env, id: &str) -> i32 {
    env.create(id).ok();
    env.state(id)["pid"].as_i64().unwrap() as i32
}

/// The default cgroup of container `id` in each hierarchy: this process's cgroup + id.
fn default_dirs(hs: &[Hier], id: &str) -> Vec<PathBuf> {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    hs.iter().map(|h| dir(h, &join(&path_of(&own, &h.key), id))).collect()
}

/// Removes `/<top>` and `/<top>/<sub>` for each sub in every hierarchy when dropped.
fn guard_top(hs: &[Hier], top: &str, subs: &[&str]) -> CgDirs {
    CgDirs(
        hs.iter()
            .flat_map(|h| {
                let t = h.mount.join(top);
                std::iter::once(t.clone()).chain(subs.iter().map(move |s| t.join(s)))
            })
            .collect(),
    )
}

fn assert_removed<P: AsRef<Path>>(dirs: impl IntoIterator<Item = P>) {
    for d in dirs {
        assert!(!d.as_ref().exists(), "{} left behind", d.as_ref().display());
    }
}

/// The shell words for the container's own cgroup directories as it sees them at
/// /sys/fs/cgroup: the mount itself on pure cgroup v2 (one hierarchy), one directory per
/// hierarchy on v1 and hybrid hosts.
const OWN_CGROUPS: &str = "$(if [ -e /sys/fs/cgroup/cgroup.controllers ]; then echo /sys/fs/cgroup/; \
                           else echo /sys/fs/cgroup/*/; fi)";

/// The container may write its cgroup mounts (systemd, nested runtimes do).
fn writable_cgroup_mounts(env: &mut Env) {
    for m in env.config["mounts"].as_array_mut().unwrap() {
        if m["type"] == "cgroup" {
            m["options"] = json!(["nosuid", "noexec", "nodev", "rw"]);
        }
    }
}

#[test]
fn default_path_is_berths_cgroup_plus_id_in_every_hierarchy() {
    require_root!();
    let env = Env::new(&["sleep", "100"]);
    let id = env.id("cgdef");
    let pid = created(&env, &id);
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let theirs = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let hs = hierarchies();
    let mut dirs = Vec::new();
    for h in &hs {
        let want = join(&path_of(&own, &h.key), &id);
        assert_eq!(path_of(&theirs, &h.key), want, "hierarchy {:?}", h.key);
        let d = dir(h, &want);
        assert!(procs(&d).contains(&pid), "{} does not hold {pid}", d.display());
        dirs.push(d);
    }
    env.berth(&["delete", "-f", &id]).ok();
    assert_removed(&dirs);
    env.assert_gone(&id);
}

#[test]
fn absolute_path_is_created_from_each_root_and_removed_entirely() {
    require_root!();
    let top = unique("berth-test");
    let hs = hierarchies();
    let _guard = guard_top(&hs, &top, &["c"]);
    let mut env = Env::new(&["sleep", "100"]);
    env.config["linux"]["cgroupsPath"] = json!(format!("/{top}/c"));
    env.save();
    let id = env.id("cgabs");
    let pid = created(&env, &id);
    let theirs = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for h in &hs {
        assert_eq!(path_of(&theirs, &h.key), format!("/{top}/c"), "{:?}", h.key);
        assert!(procs(&h.mount.join(&top).join("c")).contains(&pid));
    }
    env.berth(&["delete", "-f", &id]).ok();
    for h in &hs {
        // berth made both levels, so both go.
        assert!(
            !h.mount.join(&top).exists(),
            "{} left behind",
            h.mount.join(&top).display()
        );
    }
    env.assert_root_empty();
}

#[test]
fn pre_existing_parent_cgroup_is_not_removed() {
    require_root!();
    let hs = hierarchies();
    let pids = hs
        .iter()
        .find(|h| h.key == "pids")
        .map(|h| h.mount.clone())
        // Pure cgroup v2: the one hierarchy.
        .unwrap_or_else(|| hs[0].mount.clone());
    let top = unique("berth-pre");
    let pre = pids.join(&top);
    std::fs::create_dir(&pre).unwrap();
    let _guard = guard_top(&hs, &top, &["c"]);
    let mut env = Env::new(&["sleep", "100"]);
    env.config["linux"]["cgroupsPath"] = json!(format!("/{top}/c"));
    env.save();
    let id = env.id("cgpre");
    let pid = created(&env, &id);
    assert!(procs(&pre.join("c")).contains(&pid));
    env.berth(&["delete", "-f", &id]).ok();
    assert!(
        pre.is_dir(),
        "delete removed {}, which berth did not create",
        pre.display()
    );
    assert!(!pre.join("c").exists(), "{} left behind", pre.join("c").display());
    for h in hs.iter().filter(|h| h.mount != pids) {
        assert!(
            !h.mount.join(&top).exists(),
            "{} left behind",
            h.mount.join(&top).display()
        );
    }
}

#[test]
fn relative_path_lands_under_berths_own_cgroup() {
    require_root!();
    let sub = unique("sub");
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let hs = hierarchies();
    let _guard = CgDirs(
        hs.iter()
            .flat_map(|h| {
                let base = dir(h, &path_of(&own, &h.key)).join(&sub);
                [base.clone(), base.join("c")]
            })
            .collect(),
    );
    let mut env = Env::new(&["sleep", "100"]);
    env.config["linux"]["cgroupsPath"] = json!(format!("{sub}/c"));
    env.save();
    let id = env.id("cgrel");
    let pid = created(&env, &id);
    let theirs = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for h in &hs {
        let want = join(&path_of(&own, &h.key), &format!("{sub}/c"));
        assert_eq!(path_of(&theirs, &h.key), want, "{:?}", h.key);
    }
    env.berth(&["delete", "-f", &id]).ok();
    for h in &hs {
        let base = dir(h, &path_of(&own, &h.key)).join(&sub);
        assert!(!base.exists(), "{} left behind", base.display());
    }
}

fn dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // A zombie waiting for the host's init to reap it is dead too.
        Ok(s) => s.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z')),
    }
}

#[test]
fn delete_force_kills_background_children_without_a_pid_namespace() {
    require_root!();
    let mut env = Env::new(&["sh", "-c", "sleep 100 & sleep 100 & wait"]);
    env.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "pid");
    env.save();
    let id = env.id("cgkill");
    let b = env.bundle.to_string_lossy().into_owned();
    env.berth(&["run", "-d", "-b", &b, &id]).ok();
    let pid = env.state(&id)["pid"].as_i64().unwrap() as i32;
    let dirs = default_dirs(&hierarchies(), &id);
    // Wait for both background sleeps to exist: init + 2 children.
    let deadline = Instant::now() + Duration::from_secs(10);
    let all = loop {
        let p = procs(&dirs[0]);
        if p.len() >= 3 {
            break p;
        }
        assert!(Instant::now() < deadline, "children did not start: {p:?}");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(all.contains(&pid));
    env.berth(&["delete", "-f", &id]).ok();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !all.iter().all(|p| dead(*p)) {
        assert!(
            Instant::now() < deadline,
            "survivors: {:?}",
            all.iter().filter(|p| !dead(**p)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_removed(&dirs);
    env.assert_gone(&id);
}

#[test]
fn delete_removes_sub_cgroups_the_container_made() {
    require_root!();
    // A container allowed to write its cgroup mount (systemd, nested runtimes) makes children
    // of its own cgroup; delete must remove them too, as runc's RemovePath does.
    let script = format!("for d in {OWN_CGROUPS}; do mkdir -p $d/sub/deeper || exit 1; done");
    let mut env = Env::new(&["sh", "-c", &script]);
    writable_cgroup_mounts(&mut env);
    env.save();
    let id = env.id("cgsub");
    let dirs = default_dirs(&hierarchies(), &id);
    let _guard = CgDirs(
        dirs.iter()
            .flat_map(|d| [d.clone(), d.join("sub"), d.join("sub/deeper")])
            .collect(),
    );
    let b = env.bundle.to_string_lossy().into_owned();
    let o = env.berth(&["run", "--keep", "-b", &b, &id]);
    o.ok();
    assert!(dirs[0].join("sub/deeper").is_dir(), "the container made no sub-cgroup");
    let o = env.berth(&["delete", &id]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_removed(&dirs);
    env.assert_gone(&id);
}

#[test]
fn delete_keeps_a_parent_berth_made_while_another_container_uses_it() {
    require_root!();
    let top = unique("berth-shared");
    let hs = hierarchies();
    let _guard = guard_top(&hs, &top, &["a", "b"]);
    let mut a = Env::new(&["sleep", "100"]);
    a.config["linux"]["cgroupsPath"] = json!(format!("/{top}/a"));
    a.save();
    let a_id = a.id("cgsha");
    created(&a, &a_id);
    let mut b = Env::new(&["sleep", "100"]);
    b.config["linux"]["cgroupsPath"] = json!(format!("/{top}/b"));
    b.save();
    let b_id = b.id("cgshb");
    let b_pid = created(&b, &b_id);
    // A's berth made the parent, but B lives under it: delete A must succeed, promptly, and
    // leave B's cgroup (and so the parent) alone.
    let t = Instant::now();
    let o = a.berth(&["delete", "-f", &a_id]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(t.elapsed() < Duration::from_secs(5), "delete took {:?}", t.elapsed());
    for h in &hs {
        assert!(!h.mount.join(&top).join("a").exists());
        assert!(procs(&h.mount.join(&top).join("b")).contains(&b_pid), "{:?}", h.key);
    }
    b.berth(&["delete", "-f", &b_id]).ok();
    for h in &hs {
        assert!(!h.mount.join(&top).join("b").exists());
    }
    // The parent stays (B did not make it; runc never removes parents): the guard removes it.
}

#[test]
fn delete_force_kills_processes_moved_into_sub_cgroups() {
    require_root!();
    // Without a pid namespace, killing the init does not reach a process the container moved
    // into a sub-cgroup of its own in every hierarchy (as a nested runtime does); delete must
    // still find and kill it, then remove the tree.
    // v1 cpusets start empty and refuse tasks until given cpus and mems (cgroup2's inherit).
    let script = format!(
        "sleep 100 & p=$!; for d in {OWN_CGROUPS}; do mkdir $d/sub || exit 1; \
         if [ -f $d/cpuset.cpus ] && [ ! -e $d/cgroup.controllers ]; then \
         cat $d/cpuset.cpus > $d/sub/cpuset.cpus; cat $d/cpuset.mems > $d/sub/cpuset.mems; fi; \
         echo $p > $d/sub/cgroup.procs || exit 1; done; echo $p > /tmp/moved; wait"
    );
    let mut env = Env::new(&["sh", "-c", &script]);
    env.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "pid");
    writable_cgroup_mounts(&mut env);
    env.save();
    let id = env.id("cgmoved");
    let dirs = default_dirs(&hierarchies(), &id);
    let _guard = CgDirs(dirs.iter().flat_map(|d| [d.clone(), d.join("sub")]).collect());
    let b = env.bundle.to_string_lossy().into_owned();
    env.berth(&["run", "-d", "-b", &b, &id]).ok();
    let moved = env.rootfs().join("tmp/moved");
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid: i32 = loop {
        if let Ok(s) = std::fs::read_to_string(&moved) {
            if let Ok(p) = s.trim().parse() {
                break p;
            }
        }
        assert!(Instant::now() < deadline, "the container did not move its child");
        std::thread::sleep(Duration::from_millis(10));
    };
    // The state's pid is the host pid; $p printed by sh is the same (no pid namespace).
    for d in &dirs {
        assert!(procs(&d.join("sub")).contains(&pid), "{} lacks {pid}", d.display());
    }
    let o = env.berth(&["delete", "-f", &id]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !dead(pid) {
        assert!(Instant::now() < deadline, "{pid} survived delete -f");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_removed(&dirs);
    env.assert_gone(&id);
}

#[test]
fn delete_kills_a_process_moved_into_a_stopped_containers_cgroup_from_outside() {
    require_root!();
    // With its own pid namespace a stopped container's processes are all gone, so delete
    // just removes the cgroups; a host process someone moved in is not in that namespace and
    // must still be killed, and the cgroups removed.
    let env = Env::new(&["true"]);
    let id = env.id("cgforeign");
    let hs = hierarchies();
    let dirs = default_dirs(&hs, &id);
    let _guard = CgDirs(dirs.clone());
    // The pids controller's directory: its own v1 hierarchy, or the one cgroup2 tree.
    let pids = hs
        .iter()
        .position(|h| h.key == "pids" || (hs.len() == 1 && h.key.is_empty()))
        .map(|i| &dirs[i])
        .expect("a hierarchy with the pids controller");
    env.create(&id).ok();
    env.berth(&["start", &id]).ok();
    env.wait_status(&id, "stopped");
    let mut sleeper = std::process::Command::new("sleep").arg("100").spawn().unwrap();
    let pid = sleeper.id() as i32;
    std::fs::write(pids.join("cgroup.procs"), pid.to_string()).unwrap();
    let o = env.berth(&["delete", &id]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let status = sleeper.wait().unwrap();
    assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9));
    assert_removed(&dirs);
    env.assert_gone(&id);
}
