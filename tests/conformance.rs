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
    env.drop_ns("pid");
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

/// Field `n` (1-based, as proc(5) numbers them) of a /proc/<pid>/stat line.
fn stat_field(stat: &str, n: usize) -> i64 {
    let rest = stat.rsplit_once(") ").expect("a stat line").1;
    rest.split_whitespace().nth(n - 3).unwrap().parse().unwrap()
}

/// A container running `sleep 100` with `edit` applied to its config, started with `run -d`.
fn running(env: &mut Env, prefix: &str, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    env.config["process"]["args"] = json!(["sleep", "100"]);
    edit(&mut env.config);
    env.save();
    let id = env.id(prefix);
    let b = env.bundle.to_string_lossy().into_owned();
    env.berth(&["run", "-d", "-b", &b, &id]).ok();
    id
}

/// `create` fails naming what is wrong, and leaves nothing behind.
fn refused(env: &mut Env, prefix: &str, edit: impl FnOnce(&mut serde_json::Value), want: &str) {
    edit(&mut env.config);
    env.save();
    let id = env.id(prefix);
    let o = env.create(&id);
    assert_ne!(o.code, 0, "{want}: create succeeded");
    // The error line is logfmt: quotes in the message are escaped.
    assert!(
        o.stderr.replace("\\\"", "\"").contains(want),
        "want {want:?} in: {}",
        o.stderr
    );
    env.assert_gone(&id);
}

#[test]
fn personality_linux32_shows_a_32_bit_machine_to_the_init_and_to_exec() {
    require_root!();
    if std::env::consts::ARCH != "x86_64" {
        skip("LINUX32 is checked on x86_64");
        return;
    }
    let mut env = Env::new(&["true"]);
    let id = running(&mut env, "pers", |c| {
        c["linux"]["personality"] = json!({"domain": "LINUX32", "flags": ["ADDR_NO_RANDOMIZE"]});
    });
    // The init (pid 1) and an exec'd process: i686, LINUX32 (0x8) | ADDR_NO_RANDOMIZE (0x40000).
    let o = env.berth(&[
        "exec",
        &id,
        "sh",
        "-c",
        "uname -m; cat /proc/1/personality /proc/self/personality",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout, "i686\n00040008\n00040008\n");
    env.berth(&["delete", "--force", &id]).ok();
    let mut env = Env::new(&["true"]);
    let run = |env: &mut Env, domain: &str| {
        env.config["process"]["args"] = json!(["uname", "-m"]);
        env.config["linux"]["personality"] = json!({ "domain": domain });
        env.save();
        let o = env.run(&env.id("pers"));
        assert_eq!(o.code, 0, "{}", o.stderr);
        o.stdout
    };
    assert_eq!(run(&mut env, "LINUX"), "x86_64\n");
    assert_eq!(run(&mut env, "LINUX32"), "i686\n");
    // Set before any filter: a profile that denies personality(2) does not stop it (runc's test).
    env.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO"}]});
    assert_eq!(run(&mut env, "LINUX32"), "i686\n");
    env.config["process"]["noNewPrivileges"] = json!(true);
    assert_eq!(run(&mut env, "LINUX32"), "i686\n");
}

/// No root needed: berth refuses this before anything privileged runs.
#[test]
fn bad_personalities_fail_create_and_leave_nothing() {
    let mut env = Env::new(&["true"]);
    refused(
        &mut env,
        "pers",
        |c| c["linux"]["personality"] = json!({"domain": "LINUX", "flags": ["NO_SUCH_FLAG"]}),
        "linux.personality.flags: unknown flag \"NO_SUCH_FLAG\"",
    );
    refused(
        &mut env,
        "pers",
        |c| c["linux"]["personality"] = json!({"domain": "LINUX64"}),
        "invalid personality domain LINUX64",
    );
}

#[test]
fn scheduler_policy_nice_and_priority_reach_the_process_and_exec() {
    require_root!();
    let mut env = Env::new(&["cat", "/proc/self/stat"]);
    // SCHED_BATCH (3) at nice 19, the spec's flag name accepted; fields 19 (nice), 41 (policy).
    env.config["process"]["scheduler"] =
        json!({"policy": "SCHED_BATCH", "nice": 19, "flags": ["SCHED_FLAG_RESET_ON_FORK"]});
    env.save();
    let o = env.run(&env.id("sched"));
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(
        (stat_field(&o.stdout, 41), stat_field(&o.stdout, 19)),
        (3, 19),
        "{}",
        o.stdout
    );
    // SCHED_FIFO 10: a realtime policy needs realtime runtime in a v1 cpu cgroup (RT_GROUP_SCHED).
    let mut env = Env::new(&["true"]);
    let rt_group = std::path::Path::new("/sys/fs/cgroup/cpu/cpu.rt_runtime_us").exists();
    let id = running(&mut env, "sched", |c| {
        c["process"]["scheduler"] = json!({"policy": "SCHED_FIFO", "priority": 10});
        if rt_group {
            c["linux"]["resources"]["cpu"] = json!({"realtimeRuntime": 10000, "realtimePeriod": 1000000});
        }
    });
    // Field 18 is -1 - rt_priority for realtime tasks, 40 the rt_priority, 41 the policy (1).
    for pid in ["1", "self"] {
        let o = env.berth(&["exec", &id, "cat", &format!("/proc/{pid}/stat")]);
        assert_eq!(o.code, 0, "{}", o.stderr);
        let f = |n| stat_field(&o.stdout, n);
        assert_eq!((f(41), f(40), f(18)), (1, 10, -11), "{pid}: {}", o.stdout);
    }
}

/// No root needed: berth refuses this before anything privileged runs.
#[test]
fn bad_schedulers_fail_create_with_runcs_texts_and_leave_nothing() {
    let mut env = Env::new(&["true"]);
    let cases = [
        (
            json!({"policy": "SCHED_OTHER", "nice": 20}),
            "invalid scheduler.nice: 20 when scheduler.policy is SCHED_OTHER",
        ),
        (
            json!({"policy": "SCHED_BATCH", "priority": 1}),
            "scheduler.priority can only be specified for SchedFIFO or SchedRR policy",
        ),
        (
            json!({"policy": "SCHED_FIFO", "priority": 1, "runtime": 100}),
            "scheduler runtime/deadline/period can only be specified for SchedDeadline policy",
        ),
        (json!({"policy": "SCHED_NOPE"}), "invalid scheduler policy: SCHED_NOPE"),
        (
            json!({"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_NOPE"]}),
            "invalid scheduler flag: SCHED_FLAG_NOPE",
        ),
    ];
    for (s, want) in cases {
        refused(&mut env, "sched", |c| c["process"]["scheduler"] = s, want);
    }
}

#[test]
fn io_priority_reaches_the_init_and_exec() {
    require_root!();
    let mut env = Env::new(&["true"]);
    let id = running(&mut env, "ioprio", |c| {
        c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 4});
    });
    for args in [&["ionice", "-p", "1"][..], &["ionice"][..]] {
        let mut a = vec!["exec", id.as_str()];
        a.extend_from_slice(args);
        let o = env.berth(&a);
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert_eq!(o.stdout, "best-effort: prio 4\n", "{args:?}");
    }
    let mut env = Env::new(&["ionice"]);
    env.config["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0});
    env.save();
    let o = env.run(&env.id("ioprio"));
    assert_eq!((o.code, o.stdout.as_str()), (0, "idle\n"), "{}", o.stderr);
    refused(
        &mut env,
        "ioprio",
        |c| c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 8}),
        "invalid ioPriority.Priority: 8",
    );
    refused(
        &mut env,
        "ioprio",
        |c| c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_NOPE", "priority": 1}),
        "invalid io priority class: IOPRIO_CLASS_NOPE",
    );
}

#[test]
fn exec_cpu_affinity_applies_to_exec_and_not_to_the_init() {
    require_root!();
    let all = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    let all = all.trim();
    if all != "0-1" && !all.starts_with("0-") {
        skip(&format!("needs CPUs 0 and 1 online (have {all})"));
        return;
    }
    let allowed = |o: &Output| {
        assert_eq!(o.code, 0, "{}", o.stderr);
        o.stdout
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| panic!("{}", o.stdout))
    };
    let mut env = Env::new(&["true"]);
    let id = running(&mut env, "affinity", |c| {
        c["process"]["execCPUAffinity"] = json!({"initial": "1", "final": "0"});
    });
    // The container's init keeps every CPU (the spec: not applicable to the init).
    assert_eq!(allowed(&env.berth(&["exec", &id, "cat", "/proc/1/status"])), all);
    // From config.json: starts on CPU 1 (the debug log reads it back), ends on CPU 0.
    let log = env.dir.join("exec.log");
    let l = log.to_string_lossy().into_owned();
    let o = env.berth(&["--debug", "--log", &l, "exec", &id, "cat", "/proc/self/status"]);
    assert_eq!(allowed(&o), "0");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("starts on CPUs 1 (execCPUAffinity.initial 1)"), "{text}");
    // From process.json (-p): final alone; initial alone gets every CPU back after the join.
    for (affinity, want) in [(json!({"final": "1"}), "1"), (json!({"initial": "1"}), all)] {
        let p = env.dir.join("process.json");
        std::fs::write(
            &p,
            json!({"args": ["cat", "/proc/self/status"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                   "execCPUAffinity": affinity})
            .to_string(),
        )
        .unwrap();
        let o = env.berth(&["exec", "-p", &p.to_string_lossy(), &id]);
        assert_eq!(allowed(&o), want, "{affinity}");
    }
    // Bad lists: exec fails, naming the field.
    let p = env.dir.join("bad.json");
    std::fs::write(
        &p,
        json!({"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0},
               "execCPUAffinity": {"final": "70000"}})
        .to_string(),
    )
    .unwrap();
    let o = env.berth(&["exec", "-p", &p.to_string_lossy(), &id]);
    assert!(
        o.code != 0 && o.stderr.contains("invalid execCPUAffinity.final \\\"70000\\\""),
        "{}",
        o.stderr
    );
    env.berth(&["delete", "--force", &id]).ok();
    refused(
        &mut env,
        "affinity",
        |c| c["process"]["execCPUAffinity"] = json!({"initial": "3-1"}),
        "invalid execCPUAffinity.initial \"3-1\"",
    );
}

#[test]
fn memory_policy_shows_in_numa_maps() {
    require_root!();
    let mut env = Env::new(&["sh", "-c", "head -n 1 /proc/self/numa_maps | cut -d ' ' -f 2"]);
    let cases = [
        (json!({"mode": "MPOL_BIND", "nodes": "0"}), "bind:0"),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}),
            "bind=static:0",
        ),
        (json!({"mode": "MPOL_PREFERRED", "nodes": "0"}), "prefer:0"),
        (json!({"mode": "MPOL_INTERLEAVE", "nodes": "0"}), "interleave:0"),
        (json!({"mode": "MPOL_DEFAULT"}), "default"),
    ];
    for (policy, want) in cases {
        env.config["linux"]["memoryPolicy"] = policy.clone();
        env.save();
        let o = env.run(&env.id("mpol"));
        assert_eq!(o.code, 0, "{policy}: {}", o.stderr);
        assert_eq!(o.stdout.trim(), want, "{policy}");
    }
    // exec gets the container's policy too.
    let id = running(&mut env, "mpol", |c| {
        c["linux"]["memoryPolicy"] =
            json!({"mode": "MPOL_PREFERRED", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES"]});
    });
    let o = env.berth(&[
        "exec",
        &id,
        "sh",
        "-c",
        "head -n 1 /proc/self/numa_maps | cut -d ' ' -f 2",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout.trim(), "prefer=relative:0");
}

/// No root needed: berth refuses this before anything privileged runs.
#[test]
fn bad_memory_policies_fail_create_with_runcs_texts_and_leave_nothing() {
    let mut env = Env::new(&["true"]);
    let cases = [
        (
            json!({"mode": "MPOL_DEFAULT", "nodes": "0-7"}),
            "mode requires 0 nodes but got 8",
        ),
        (
            json!({"mode": "MPOL_BIND"}),
            "invalid memory policy MPOL_BIND: mode requires at least 1 node but got 0",
        ),
        (
            json!({"mode": "INTERLEAVE", "nodes": "0"}),
            "invalid memory policy mode \"INTERLEAVE\"",
        ),
        (json!({}), "invalid memory policy mode \"\""),
        (
            json!({"mode": "MPOL_PREFERRED", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES", "badflag"]}),
            "invalid memory policy flag \"badflag\"",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0-9876543210"}),
            "invalid memory policy nodes",
        ),
    ];
    for (policy, want) in cases {
        refused(&mut env, "mpol", |c| c["linux"]["memoryPolicy"] = policy, want);
    }
}

#[test]
fn a_key_given_twice_reaches_the_process_once_with_the_last_value() {
    require_root!();
    let mut env = Env::new(&["sleep", "5"]);
    env.config["process"]["env"] = json!(["PATH=/bin", "A=1", "FOO=config", "A=2", "HOME="]);
    env.save();
    let id = env.id("env");
    let b = env.bundle.to_string_lossy().into_owned();
    env.berth(&["run", "-d", "-b", &b, &id]).ok();
    // exec -e overrides a key of process.env (runc keeps the last); an empty HOME counts as
    // unset and gets the user's home from /etc/passwd.
    let o = env.berth(&["exec", "-e", "FOO=cli", "-e", "B=x", "-e", "B=y", &id, "env"]);
    o.ok();
    let mut lines: Vec<&str> = o.stdout.lines().collect();
    lines.sort_unstable();
    assert_eq!(
        lines,
        ["A=2", "B=y", "FOO=cli", "HOME=/root", "PATH=/bin"],
        "{}",
        o.stdout
    );
    env.berth(&["kill", &id, "KILL"]).ok();
    env.wait_status(&id, "stopped");
}

#[test]
fn oci_version_must_be_semver() {
    let mut env = Env::new(&["true"]);
    env.config["ociVersion"] = json!("invalid");
    env.save();
    let id = env.id("semver");
    let o = env.create(&id);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr
            .contains(r#"ociVersion \"invalid\" is not a SemVer 2.0.0 version"#),
        "{}",
        o.stderr
    );
    env.assert_gone(&id);
}

#[test]
fn a_limit_for_a_controller_the_host_lacks_is_an_error_naming_it() {
    require_root!();
    // This kind of host has no hugetlb, net_cls or net_prio hierarchy; where one exists the limit
    // must simply hold, so neither branch passes without checking something.
    let cases = [
        (
            "hugetlb",
            json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 2097152}]}),
        ),
        ("net_cls", json!({"network": {"classID": 1048577}})),
        (
            "net_prio",
            json!({"network": {"priorities": [{"name": "lo", "priority": 1}]}}),
        ),
    ];
    for (ctrl, resources) in cases {
        let present = std::path::Path::new("/sys/fs/cgroup").join(ctrl).exists()
            || std::fs::read_to_string("/proc/self/mountinfo")
                .unwrap()
                .lines()
                .any(|l| l.contains(" - cgroup ") && l.split(',').any(|o| o.trim() == ctrl));
        let mut env = Env::new(&["true"]);
        env.config["linux"]["resources"] = resources;
        env.save();
        let id = env.id("noctrl");
        let o = env.run(&id);
        if present {
            assert_eq!(o.code, 0, "{ctrl}: {}", o.stderr);
        } else {
            assert_ne!(o.code, 0, "{ctrl}: the limit was silently dropped");
            assert!(
                o.stderr.contains(&format!("cannot set {ctrl} limit")),
                "{ctrl}: {}",
                o.stderr
            );
        }
        env.assert_gone(&id);
    }
}

#[test]
fn mounts_onto_sysfs_paths_the_config_names_work_as_with_runc() {
    require_root!();
    // Cilium binds /sys/fs/bpf, tracing agents /sys/kernel/debug: the destination is on the
    // container's sysfs, and the config names it itself (no image symlink redirected it).
    let mut env = Env::new(&[
        "sh",
        "-c",
        "grep -E ' /sys/(fs/bpf|kernel/debug) ' /proc/self/mountinfo | wc -l",
    ]);
    for dest in ["/sys/fs/bpf", "/sys/kernel/debug"] {
        env.config["mounts"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": dest, "type": "tmpfs", "source": "tmpfs"}));
    }
    env.save();
    let id = env.id("sysfs");
    let o = env.run(&id);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.stdout.trim(), "2");
    // An image symlink that redirects a destination onto sysfs is still refused.
    let mut env = Env::new(&["true"]);
    std::os::unix::fs::symlink("/sys/kernel", env.rootfs().join("data")).unwrap();
    env.config["mounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs"}));
    env.save();
    let id = env.id("sysfs-link");
    let o = env.run(&id);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("cannot be mounted because it is inside /sys"),
        "{}",
        o.stderr
    );
    env.assert_gone(&id);
}

#[test]
fn a_huge_hook_timeout_is_no_timeout_not_a_crash() {
    require_root!();
    let mut env = Env::new(&["true"]);
    let hook = json!({"path": "/bin/true", "timeout": i64::MAX});
    env.config["hooks"] = json!({"createRuntime": [hook.clone()], "startContainer": [hook]});
    env.save();
    let id = env.id("bigtimeout");
    let o = env.run(&id);
    assert_eq!(o.code, 0, "{}", o.stderr);
    env.assert_gone(&id);
}
