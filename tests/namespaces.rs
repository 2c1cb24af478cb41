//! Namespaces end to end: created by clone flags, joined by path (with the extra fork pid and
//! time namespaces need), user namespace id maps and time namespace offsets — each observed from
//! inside the container, never from the stored config.
mod common;
use common::*;
use serde_json::{json, Value};

/// Add (or replace) a namespace entry; `path` joins an existing namespace.
fn host_ns(name: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{name}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// "name -> ns link" pairs printed by the container.
fn parse_pairs(out: &str) -> std::collections::HashMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn hostname_and_domainname_are_set_in_the_uts_namespace() {
    require_root!();
    let mut env = Env::new(&["sh", "-c", "hostname; cat /proc/sys/kernel/domainname"]);
    env.config["hostname"] = json!("berth-box");
    env.config["domainname"] = json!("berth.example");
    env.save();
    let id = env.id("uts");
    let o = env.run(&id);
    o.ok();
    assert_eq!(o.stdout, "berth-box\nberth.example\n");
    // The host's names are untouched.
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim(),
        "berth-box"
    );
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/domainname").unwrap().trim(),
        "berth.example"
    );
    env.assert_gone(&id);
}

#[test]
fn pid_namespace_makes_the_process_pid_1() {
    require_root!();
    let env = Env::new(&["sh", "-c", "echo $$"]);
    let id = env.id("pid1");
    let o = env.run(&id);
    o.ok();
    assert_eq!(o.stdout, "1\n");
}

#[test]
fn network_namespace_has_only_loopback() {
    require_root!();
    let env = Env::new(&["sh", "-c", "ls /sys/class/net; echo --; cat /proc/net/dev"]);
    let id = env.id("net");
    let o = env.run(&id);
    o.ok();
    let (sys, dev) = o.stdout.split_once("--\n").unwrap();
    assert_eq!(sys, "lo\n", "{}", o.stdout);
    let ifaces: Vec<&str> = dev
        .lines()
        .skip(2)
        .map(|l| l.split(':').next().unwrap().trim())
        .collect();
    assert_eq!(ifaces, ["lo"], "{}", o.stdout);
}

#[test]
fn every_namespace_differs_from_the_host() {
    require_root!();
    let names = ["ipc", "uts", "mnt", "net", "pid", "cgroup"];
    let script = format!(
        "for n in {}; do echo $n $(readlink /proc/self/ns/$n); done",
        names.join(" ")
    );
    let mut env = Env::new(&["sh", "-c", &script]);
    env.set_ns("cgroup", None);
    env.save();
    let id = env.id("nsall");
    let o = env.run(&id);
    o.ok();
    let inside = parse_pairs(&o.stdout);
    for n in names {
        let c = inside.get(n).unwrap_or_else(|| panic!("no {n} in {}", o.stdout));
        assert!(c.starts_with(&format!("{n}:[")), "{n}: {c}");
        assert_ne!(*c, host_ns(n), "{n} namespace is the host's");
    }
}

#[test]
fn without_a_namespace_entry_the_host_namespace_is_kept() {
    require_root!();
    // The contrast to the test above: no uts/ipc entry means the container shares the host's.
    let mut env = Env::new(&[
        "sh",
        "-c",
        "for n in uts ipc; do echo $n $(readlink /proc/self/ns/$n); done",
    ]);
    env.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "uts" && n["type"] != "ipc");
    env.config.as_object_mut().unwrap().remove("hostname");
    env.save();
    let id = env.id("nskeep");
    let o = env.run(&id);
    o.ok();
    let inside = parse_pairs(&o.stdout);
    assert_eq!(inside["uts"], host_ns("uts"));
    assert_eq!(inside["ipc"], host_ns("ipc"));
}

#[test]
fn cgroup_namespace_shows_root_paths() {
    require_root!();
    let mut env = Env::new(&["cat", "/proc/self/cgroup"]);
    env.set_ns("cgroup", None);
    env.save();
    let id = env.id("cgns");
    let o = env.run(&id);
    o.ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(!lines.is_empty());
    for l in &lines {
        assert!(l.ends_with(":/"), "not a namespace root: {l} in\n{}", o.stdout);
    }
    env.assert_gone(&id);
    // Without the namespace the same container sees its real cgroup: berth's own plus its id.
    env.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "cgroup");
    env.save();
    let id = env.id("nocgns");
    let o = env.run(&id);
    o.ok();
    for l in o.stdout.lines() {
        assert!(l.ends_with(&format!("/{id}")), "not the container's cgroup: {l}");
    }
}

#[test]
fn user_namespace_maps_container_root_to_host_100000() {
    require_root!();
    let mut env = Env::new(&[
        "sh",
        "-c",
        "cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; touch /tmp/made-inside",
    ]);
    env.map_root_to(100000);
    let id = env.id("userns");
    let o = env.run(&id);
    o.ok();
    let lines: Vec<Vec<&str>> = o.stdout.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(lines[0], ["0", "100000", "65536"], "{}", o.stdout);
    assert_eq!(lines[1], ["0", "100000", "65536"], "{}", o.stdout);
    assert_eq!(lines[2], ["0"], "id -u: {}", o.stdout);
    assert_eq!(lines[3], ["0"], "id -g: {}", o.stdout);
    use std::os::unix::fs::MetadataExt;
    let md = std::fs::metadata(env.rootfs().join("tmp/made-inside")).unwrap();
    assert_eq!((md.uid(), md.gid()), (100000, 100000));
    env.assert_gone(&id);
}

fn uptime(text: &str) -> f64 {
    text.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn time_namespace_offsets_boottime() {
    require_root!();
    let mut env = Env::new(&["cat", "/proc/uptime"]);
    env.set_ns("time", None);
    env.config["linux"]["timeOffsets"] = json!({"boottime": {"secs": 1000000}});
    env.save();
    let id = env.id("timens");
    let host = uptime(&std::fs::read_to_string("/proc/uptime").unwrap());
    let o = env.run(&id);
    o.ok();
    let inside = uptime(&o.stdout);
    assert!(inside >= host + 1000000.0, "inside {inside}, host {host}");
    assert!(inside < host + 1000000.0 + 60.0, "inside {inside}, host {host}");
    env.assert_gone(&id);
}

/// Start `sleep 100` detached with hostname `name`; returns (env, id, pid).
fn start_sleeper(name: &str) -> (Env, String, i64) {
    let mut env = Env::new(&["sleep", "100"]);
    env.config["hostname"] = json!(name);
    env.save();
    let id = env.id("ns-a");
    let b = env.bundle.to_string_lossy().into_owned();
    env.berth(&["run", "-d", "-b", &b, &id]).ok();
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    (env, id, pid)
}

#[test]
fn join_uts_and_network_namespaces_by_path() {
    require_root!();
    let (a, a_id, pid) = start_sleeper("box-a");
    let mut b = Env::new(&[
        "sh",
        "-c",
        "hostname; readlink /proc/self/ns/net; readlink /proc/self/ns/uts",
    ]);
    b.config.as_object_mut().unwrap().remove("hostname");
    b.set_ns("uts", Some(&format!("/proc/{pid}/ns/uts")));
    b.set_ns("network", Some(&format!("/proc/{pid}/ns/net")));
    b.save();
    let id = b.id("ns-b");
    let o = b.run(&id);
    o.ok();
    let a_net = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let a_uts = std::fs::read_link(format!("/proc/{pid}/ns/uts")).unwrap();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[0], "box-a", "{}", o.stdout);
    assert_eq!(lines[1], a_net.to_string_lossy(), "{}", o.stdout);
    assert_eq!(lines[2], a_uts.to_string_lossy(), "{}", o.stdout);
    assert_ne!(lines[1], host_ns("net"));
    b.assert_gone(&id);
    a.berth(&["delete", "-f", &a_id]).ok();
    a.assert_gone(&a_id);
}

#[test]
fn join_pid_namespace_by_path_sees_the_other_container() {
    require_root!();
    let (a, a_id, pid) = start_sleeper("box-a");
    let mut b = Env::new(&["sh", "-c", "ps -o pid,args; readlink /proc/self/ns/pid; exit 5"]);
    b.set_ns("pid", Some(&format!("/proc/{pid}/ns/pid")));
    b.save();
    let id = b.id("ns-bpid");
    let o = b.run(&id);
    // The extra fork: `run` waits for the real init (the grandchild) and reports its code.
    assert_eq!(o.code, 5, "stdout: {} stderr: {}", o.stdout, o.stderr);
    let a_pidns = std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap();
    assert!(
        o.stdout.lines().any(|l| l.trim() == a_pidns.to_string_lossy()),
        "not in A's pid namespace: {}",
        o.stdout
    );
    // A's init is pid 1 of that namespace and runs `sleep 100`.
    assert!(
        o.stdout.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 3 && f[0] == "1" && f[1] == "sleep" && f[2] == "100"
        }),
        "A's sleep not visible: {}",
        o.stdout
    );
    b.assert_gone(&id);
    // Joining must not have disturbed A.
    assert_eq!(a.status(&a_id), "running");
    a.berth(&["delete", "-f", &a_id]).ok();
    a.assert_gone(&a_id);
}

#[test]
fn create_start_with_joined_pid_namespace() {
    require_root!();
    // create + start (not run): the extra-fork init must wait on exec.fifo like any other.
    let (a, a_id, pid) = start_sleeper("box-a");
    let mut b = Env::new(&["sleep", "100"]);
    b.set_ns("pid", Some(&format!("/proc/{pid}/ns/pid")));
    b.save();
    let id = b.id("ns-cpid");
    b.create(&id).ok();
    let st: Value = b.state(&id);
    let bpid = st["pid"].as_i64().unwrap();
    assert_eq!(st["status"], "created");
    assert_eq!(
        std::fs::read_link(format!("/proc/{bpid}/ns/pid")).unwrap(),
        std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap()
    );
    b.berth(&["start", &id]).ok();
    b.wait_status(&id, "running");
    b.berth(&["delete", "-f", &id]).ok();
    b.assert_gone(&id);
    assert_eq!(a.status(&a_id), "running");
    a.berth(&["delete", "-f", &a_id]).ok();
}

#[test]
fn user_time_and_pid_namespaces_together() {
    require_root!();
    // A time namespace forces the unshare path: the user namespace is made by the child and
    // mapped on request, then pid/time need the extra fork.
    let mut env = Env::new(&["sh", "-c", "cat /proc/self/uid_map; id -u; echo $$; cat /proc/uptime"]);
    env.set_ns("time", None);
    env.config["linux"]["timeOffsets"] = json!({"boottime": {"secs": 2000000}});
    env.map_root_to(100000);
    let id = env.id("usertime");
    let o = env.run(&id);
    o.ok();
    let l: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(l[0].split_whitespace().collect::<Vec<_>>(), ["0", "100000", "65536"]);
    assert_eq!(l[1], "0");
    assert_eq!(l[2], "1");
    assert!(uptime(l[3]) >= 2000000.0, "{}", o.stdout);
    env.assert_gone(&id);
}

#[test]
fn time_namespace_with_create_and_start() {
    require_root!();
    let mut env = Env::new(&["sh", "-c", "cat /proc/uptime > /tmp/up; exec sleep 100"]);
    env.set_ns("time", None);
    env.config["linux"]["timeOffsets"] = json!({"monotonic": {"secs": 5000}, "boottime": {"secs": 3000000}});
    env.save();
    let id = env.id("timecs");
    env.create(&id).ok();
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let offs = std::fs::read_to_string(format!("/proc/{pid}/timens_offsets")).unwrap();
    assert!(offs.contains("monotonic") && offs.contains("5000"), "{offs}");
    env.berth(&["start", &id]).ok();
    env.wait_status(&id, "running");
    let up = env.rootfs().join("tmp/up");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::fs::read_to_string(&up).unwrap_or_default().is_empty() {
        assert!(std::time::Instant::now() < deadline, "process did not run");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(uptime(&std::fs::read_to_string(&up).unwrap()) >= 3000000.0);
    env.berth(&["delete", "-f", &id]).ok();
    env.assert_gone(&id);
}

#[test]
fn join_user_and_network_namespaces_of_a_user_namespaced_container() {
    require_root!();
    let mut a = Env::new(&["sleep", "100"]);
    a.map_root_to(100000);
    let a_id = a.id("ns-ua");
    let ab = a.bundle.to_string_lossy().into_owned();
    a.berth(&["run", "-d", "-b", &ab, &a_id]).ok();
    let pid = a.state(&a_id)["pid"].as_i64().unwrap();
    let mut b = Env::new(&[
        "sh",
        "-c",
        "cat /proc/self/uid_map; id -u; readlink /proc/self/ns/user; touch /tmp/f",
    ]);
    b.set_ns("user", Some(&format!("/proc/{pid}/ns/user")));
    b.set_ns("network", Some(&format!("/proc/{pid}/ns/net")));
    b.save();
    chown_tree(&b.rootfs(), 100000, 100000);
    let id = b.id("ns-ub");
    let o = b.run(&id);
    o.ok();
    let l: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(l[0].split_whitespace().collect::<Vec<_>>(), ["0", "100000", "65536"]);
    assert_eq!(l[1], "0");
    assert_eq!(
        l[2],
        std::fs::read_link(format!("/proc/{pid}/ns/user"))
            .unwrap()
            .to_string_lossy()
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(b.rootfs().join("tmp/f")).unwrap().uid(), 100000);
    b.assert_gone(&id);
    a.berth(&["delete", "-f", &a_id]).ok();
    a.assert_gone(&a_id);
}

#[test]
fn user_and_cgroup_namespaces_with_a_readonly_root() {
    require_root!();
    // runc's default mounts (cgroup, sysfs, mqueue, devpts) all inside a new user namespace
    // that also owns a new cgroup namespace; device nodes are bound from the host.
    let script = "cat /proc/self/cgroup; echo --; ls /sys/fs/cgroup; echo --; \
                  echo x > /dev/null && echo null-ok; touch /x; echo root=$?; id -u";
    let mut env = Env::new(&["sh", "-c", script]);
    env.set_ns("cgroup", None);
    env.config["root"]["readonly"] = json!(true);
    env.map_root_to(100000);
    let id = env.id("usercg");
    let o = env.run(&id);
    o.ok();
    let parts: Vec<&str> = o.stdout.split("--\n").collect();
    for l in parts[0].lines() {
        assert!(l.ends_with(":/"), "{l}");
    }
    assert!(
        !parts[1].trim().is_empty(),
        "no cgroup hierarchies mounted: {}",
        o.stdout
    );
    assert!(parts[2].contains("null-ok\n"), "{}", o.stdout);
    assert!(parts[2].contains("root=1\n"), "{}", o.stdout);
    assert!(parts[2].ends_with("0\n"), "{}", o.stdout);
    env.assert_gone(&id);
}

#[test]
fn join_time_namespace_by_path() {
    require_root!();
    let mut a = Env::new(&["sleep", "100"]);
    a.set_ns("time", None);
    a.config["linux"]["timeOffsets"] = json!({"boottime": {"secs": 4000000}});
    a.save();
    let a_id = a.id("ns-ta");
    let ab = a.bundle.to_string_lossy().into_owned();
    a.berth(&["run", "-d", "-b", &ab, &a_id]).ok();
    let pid = a.state(&a_id)["pid"].as_i64().unwrap();
    let mut b = Env::new(&["sh", "-c", "cat /proc/uptime; readlink /proc/self/ns/time"]);
    b.set_ns("time", Some(&format!("/proc/{pid}/ns/time")));
    b.save();
    let id = b.id("ns-tb");
    let o = b.run(&id);
    o.ok();
    let l: Vec<&str> = o.stdout.lines().collect();
    assert!(uptime(l[0]) >= 4000000.0, "{}", o.stdout);
    assert_eq!(
        l[1],
        std::fs::read_link(format!("/proc/{pid}/ns/time"))
            .unwrap()
            .to_string_lossy()
    );
    b.assert_gone(&id);
    a.berth(&["delete", "-f", &a_id]).ok();
}

/// No root needed: berth refuses this before anything privileged runs.
#[test]
fn hostname_without_a_uts_namespace_is_refused() {
    let mut env = Env::new(&["true"]);
    env.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "uts");
    env.save();
    let id = env.id("nouts");
    let o = env.create(&id);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("UTS namespace"), "{}", o.stderr);
    env.assert_root_empty();
}

#[test]
fn exec_into_a_user_namespaced_container_is_its_root() {
    require_root!();
    let mut env = Env::new(&["sleep", "100"]);
    env.map_root_to(100000);
    let id = env.id("userexec");
    let b = env.bundle.to_string_lossy().into_owned();
    env.berth(&["run", "-d", "-b", &b, &id]).ok();
    let o = env.berth(&[
        "exec",
        &id,
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; touch /tmp/by-exec",
    ]);
    o.ok();
    let l: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(l[0], "0", "{}", o.stdout);
    assert_eq!(l[1].split_whitespace().collect::<Vec<_>>(), ["0", "100000", "65536"]);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(env.rootfs().join("tmp/by-exec")).unwrap().uid(),
        100000
    );
    env.berth(&["delete", "-f", &id]).ok();
    env.assert_gone(&id);
}
