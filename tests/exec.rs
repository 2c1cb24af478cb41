//! `exec`: joins every namespace and the cgroups of the container, with runc's flags.
mod common;
use common::*;
use serde_json::json;

fn running(env: &Env, prefix: &str) -> String {
    let id = env.id(prefix);
    let b = env.bundle.to_string_lossy().into_owned();
    env.berth(&["run", "-d", "-b", &b, &id]).ok();
    id
}

fn field(status: &str, key: &str) -> String {
    status
        .lines()
        .find(|l| l.starts_with(key))
        .map(|l| l[key.len()..].trim().to_string())
        .unwrap_or_default()
}

#[test]
fn exec_joins_namespaces_and_cgroups() {
    require_root!();
    let env = Env::new(&["sleep", "100"]);
    let id = running(&env, "ex");
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let o = env.berth(&[
        "exec",
        &id,
        "sh",
        "-c",
        "hostname; echo $$; readlink /proc/self/ns/net; readlink /proc/self/ns/mnt; cat /proc/self/cgroup",
    ]);
    o.ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines[0], "runc");
    assert_ne!(
        lines[1], "1",
        "exec'd process is not the init, but in its pid namespace"
    );
    assert!(
        lines[1].parse::<u32>().unwrap() < 100,
        "pid {} is not a container pid",
        lines[1]
    );
    let host_net = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    let host_mnt = std::fs::read_link(format!("/proc/{pid}/ns/mnt")).unwrap();
    assert_eq!(lines[2], host_net.to_str().unwrap());
    assert_eq!(lines[3], host_mnt.to_str().unwrap());
    let init_cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let exec_cg: String = lines[4..].iter().map(|l| format!("{l}\n")).collect();
    assert_eq!(exec_cg, init_cg);
}

#[test]
fn exec_exit_codes_and_errors() {
    require_root!();
    let env = Env::new(&["sleep", "100"]);
    let id = running(&env, "exc");
    assert_eq!(env.berth(&["exec", &id, "sh", "-c", "exit 7"]).code, 7);
    let o = env.berth(&["exec", &id, "nosuchbinary"]);
    assert_eq!(o.code, 255);
    assert!(o.stderr.contains("executable file not found in $PATH"), "{}", o.stderr);
    let o = env.berth(&["exec", "nosuch", "true"]);
    assert_eq!(o.code, 255);
    assert!(o.stderr.contains("container does not exist"), "{}", o.stderr);
    env.berth(&["kill", &id, "KILL"]).ok();
    env.wait_status(&id, "stopped");
    let o = env.berth(&["exec", &id, "true"]);
    assert_eq!(o.code, 255);
    assert!(o.stderr.contains("cannot exec in a stopped container"), "{}", o.stderr);
}

#[test]
fn exec_user_cwd_env_caps_nnp() {
    require_root!();
    let env = Env::new(&["sleep", "100"]);
    let id = running(&env, "exu");
    let o = env.berth(&[
        "exec",
        "-u",
        "1000:1001",
        "-g",
        "20",
        "--cwd",
        "/tmp",
        "-e",
        "FOO=bar",
        &id,
        "sh",
        "-c",
        "id; pwd; echo $FOO",
    ]);
    o.ok();
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert!(
        lines[0].starts_with("uid=1000 gid=1001") && lines[0].contains("groups=20"),
        "{}",
        lines[0]
    );
    assert_eq!(lines[1], "/tmp");
    assert_eq!(lines[2], "bar");
    let o = env.berth(&[
        "exec",
        "--cap",
        "CAP_SYS_ADMIN",
        "--no-new-privs",
        &id,
        "cat",
        "/proc/self/status",
    ]);
    o.ok();
    let eff = u64::from_str_radix(&field(&o.stdout, "CapEff:"), 16).unwrap();
    assert_ne!(eff & (1 << 21), 0, "CAP_SYS_ADMIN added by --cap");
    assert_eq!(field(&o.stdout, "CapInh:"), "0000000000000000");
    assert_eq!(field(&o.stdout, "NoNewPrivs:"), "1");
    // An unknown name is warned about and left out (runtime-spec 1.2, runc).
    let o = env.berth(&["exec", "--cap", "CAP_BOGUS", &id, "true"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("CAP_BOGUS"), "{}", o.stderr);
}

#[test]
fn exec_process_json_detach_and_pid_file() {
    require_root!();
    let env = Env::new(&["sleep", "100"]);
    let id = running(&env, "exp");
    let pj = env.dir.join("process.json");
    std::fs::write(
        &pj,
        serde_json::to_vec(&json!({
            "args": ["sh", "-c", "echo $GREETING > /tmp/from-exec; exec sleep 100"],
            "env": ["GREETING=hello", "PATH=/bin"],
            "cwd": "/",
            "user": {"uid": 0, "gid": 0}
        }))
        .unwrap(),
    )
    .unwrap();
    let pidfile = env.dir.join("exec.pid");
    env.berth(&[
        "exec",
        "-d",
        "--pid-file",
        pidfile.to_str().unwrap(),
        "-p",
        pj.to_str().unwrap(),
        &id,
    ])
    .ok();
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().parse().unwrap();
    let init = env.state(&id)["pid"].as_i64().unwrap();
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/ns/pid")).unwrap(),
        std::fs::read_link(format!("/proc/{init}/ns/pid")).unwrap()
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !env.rootfs().join("tmp/from-exec").exists() {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(
        std::fs::read_to_string(env.rootfs().join("tmp/from-exec")).unwrap(),
        "hello\n"
    );
    // delete --force reaches the exec'd process too.
    env.berth(&["delete", "-f", &id]).ok();
    env.assert_gone(&id);
    std::thread::sleep(std::time::Duration::from_millis(50));
    let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        st.is_empty() || st.contains(") Z"),
        "exec'd process survived delete: {st}"
    );
}

#[test]
fn exec_into_a_created_container() {
    require_root!();
    let env = Env::new(&["sleep", "100"]);
    let id = env.id("excr");
    env.create(&id).ok();
    let o = env.berth(&["exec", &id, "sh", "-c", "echo $$"]);
    o.ok();
    assert_eq!(env.status(&id), "created");
}

/// `exec -p process.json` goes through create's process validation: each bad file fails with
/// one line naming the field and exit 255, before anything joins the container (no process is
/// started in it; it keeps running). `"args": []` used to panic the cloned child.
#[test]
fn exec_process_json_is_validated_like_config_json() {
    require_root!();
    let env = Env::new(&["sleep", "100"]);
    let id = running(&env, "expv");
    let base = json!({"args": ["true"], "cwd": "/", "env": ["PATH=/bin"], "user": {"uid": 0, "gid": 0}});
    let pj = env.dir.join("bad-process.json");
    type Edit = fn(&mut serde_json::Value);
    let cases: Vec<(Edit, &str)> = vec![
        (|p| p["args"] = json!([]), "args must not be empty"),
        (
            |p| p.as_object_mut().unwrap().remove("args").map(drop).unwrap(),
            "args must not be empty",
        ),
        (|p| p["cwd"] = json!("relative"), "process.cwd"),
        (|p| p["cwd"] = json!("/\0x"), "cwd contains a NUL byte"),
        (|p| p["args"] = json!(["sh\0", "-c"]), "args[0] contains a NUL byte"),
        (|p| p["env"] = json!(["NOEQUALS"]), "invalid environment variable"),
        (|p| p["env"] = json!(["=x"]), "invalid environment variable"),
        (
            |p| p["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 5}]),
            "RLIMIT_NOFILE soft limit 10 is above its hard limit 5",
        ),
    ];
    let procs = |env: &Env| -> usize {
        let o = env.berth(&["ps", &id]);
        o.ok();
        o.stdout.lines().count()
    };
    let before = procs(&env);
    for (edit, want) in cases {
        let mut p = base.clone();
        edit(&mut p);
        std::fs::write(&pj, serde_json::to_vec(&p).unwrap()).unwrap();
        let o = env.berth(&["exec", "-p", pj.to_str().unwrap(), &id]);
        assert_eq!(o.code, 255, "{p}: stdout {:?} stderr {:?}", o.stdout, o.stderr);
        assert_eq!(o.stderr.lines().count(), 1, "{p}: one line on stderr: {:?}", o.stderr);
        assert!(
            o.stderr.contains(want),
            "{p}: stderr {:?} should mention {want:?}",
            o.stderr
        );
        assert_eq!(env.status(&id), "running");
        assert_eq!(procs(&env), before, "{p}: a process was left in the container");
    }
    // The same checks apply to the process exec builds from config.json and the flags.
    let o = env.berth(&["exec", "--cwd", "relative", &id, "true"]);
    assert_eq!(o.code, 255);
    assert!(o.stderr.contains("process.cwd"), "{}", o.stderr);
    let o = env.berth(&["exec", "-e", "NOEQUALS", &id, "true"]);
    assert_eq!(o.code, 255);
    assert!(o.stderr.contains("invalid environment variable"), "{}", o.stderr);
}

/// exec inherits what create applied, recorded in state.json, not what config.json says now:
/// the caller edits config.json after create (drops the seccomp profile, swaps it for one that
/// allows what create's denied, drops the network and UTS namespaces), and exec still gets
/// create's filter and joins the init's namespaces. With `-p`, config.json is not read at all.
#[test]
fn exec_gets_what_create_applied_not_what_config_json_says_now() {
    require_root!();
    let mut env = Env::new(&["sleep", "100"]);
    env.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]});
    env.config["hostname"] = json!("created");
    env.save();
    let id = running(&env, "exinh");
    let init = env.state(&id)["pid"].as_i64().unwrap();
    let ns = |t: &str| std::fs::read_link(format!("/proc/{init}/ns/{t}")).unwrap();
    let probe = "mkdir /tmp/e && echo made; grep Seccomp: /proc/self/status; hostname; \
                 for n in net uts mnt; do readlink /proc/self/ns/$n; done";
    let check = |env: &Env, o: Output, what: &str| {
        o.ok();
        assert!(!o.stdout.contains("made"), "{what}: mkdir allowed: {}", o.stdout);
        assert!(o.stderr.contains("Operation not permitted"), "{what}: {}", o.stderr);
        assert!(o.stdout.contains("Seccomp:\t2"), "{what}: {}", o.stdout);
        assert!(o.stdout.contains("\ncreated\n"), "{what}: {}", o.stdout);
        for t in ["net", "uts", "mnt"] {
            let n = ns(t);
            assert!(
                o.stdout.contains(n.to_str().unwrap()),
                "{what}: not in the init's {t} namespace: {}",
                o.stdout
            );
        }
        assert!(!env.rootfs().join("tmp/e").exists(), "{what}");
    };
    // 1. No seccomp profile and no network/UTS namespace in config.json any more.
    env.config["linux"].as_object_mut().unwrap().remove("seccomp");
    let list = env.config["linux"]["namespaces"].as_array_mut().unwrap();
    list.retain(|n| n["type"] != "network" && n["type"] != "uts");
    env.save();
    check(&env, env.berth(&["exec", &id, "sh", "-c", probe]), "profile removed");
    // 2. A profile that allows mkdir and kills on something else.
    env.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["getppid"], "action": "SCMP_ACT_KILL"}]});
    env.save();
    check(&env, env.berth(&["exec", &id, "sh", "-c", probe]), "profile swapped");
    // 3. exec -p with config.json gone (runc reads only process.json then).
    std::fs::remove_file(env.bundle.join("config.json")).unwrap();
    let pj = env.dir.join("process.json");
    std::fs::write(
        &pj,
        serde_json::to_vec(&json!({"args": ["sh", "-c", probe], "cwd": "/", "env": ["PATH=/bin"],
            "user": {"uid": 0, "gid": 0}}))
        .unwrap(),
    )
    .unwrap();
    check(
        &env,
        env.berth(&["exec", "-p", pj.to_str().unwrap(), &id]),
        "config.json removed",
    );
    env.berth(&["kill", &id, "KILL"]).ok();
}

/// A container at its pids limit still gets an exec'd process, as with runc: the process is
/// moved into the cgroups once forked (a migration is not a fork), and only its own forks fail.
#[test]
fn exec_into_a_container_at_its_pids_limit() {
    require_root!();
    let mut env = Env::new(&["sleep", "100"]);
    env.config["linux"]["resources"] = json!({"pids": {"limit": 1}});
    env.save();
    let id = running(&env, "expids");
    let o = env.berth(&["exec", &id, "sh", "-c", "echo ran; sleep 1 & echo forked"]);
    assert!(o.stdout.contains("ran"), "{} {}", o.stdout, o.stderr);
    assert!(
        !o.stdout.contains("forked") && o.stderr.contains("can't fork"),
        "{} {}",
        o.stdout,
        o.stderr
    );
    env.berth(&["delete", "--force", &id]).ok();
}
