//! create / start / state / kill / delete / run / list / spec through the real binary.
mod common;
use common::*;
use serde_json::json;
use std::time::Duration;

#[test]
fn run_prints_output_and_propagates_exit_code() {
    require_root!();
    let env = Env::new(&["sh", "-c", "echo hello from $(hostname); exit 3"]);
    let id = env.id("run");
    let o = env.run(&id);
    assert_eq!(o.code, 3, "stderr: {}", o.stderr);
    assert_eq!(o.stdout, "hello from runc\n");
    env.assert_gone(&id);
}

#[test]
fn run_exit_code_after_signal_is_128_plus_n() {
    require_root!();
    let env = Env::new(&["sleep", "100"]);
    let id = env.id("sig");
    let b = env.bundle.to_string_lossy().into_owned();
    let mut child = env
        .cmd(&["run", "-b", &b, &id])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    env.wait_status(&id, "running");
    env.berth(&["kill", &id, "KILL"]).ok();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(137));
    env.assert_gone(&id);
}

#[test]
fn run_forwards_signals_to_the_container() {
    require_root!();
    let env = Env::new(&["sh", "-c", "trap 'exit 42' TERM; while true; do sleep 0.05; done"]);
    let id = env.id("fwd");
    let b = env.bundle.to_string_lossy().into_owned();
    let mut child = env.cmd(&["run", "-b", &b, &id]).spawn().unwrap();
    env.wait_status(&id, "running");
    // Give sh time to install its trap.
    std::thread::sleep(Duration::from_millis(200));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let st = child.wait().unwrap();
    assert_eq!(st.code(), Some(42));
    env.assert_gone(&id);
}

#[test]
fn create_start_state_kill_delete() {
    require_root!();
    let env = Env::new(&["sh", "-c", "echo started > /tmp/marker; exec sleep 100"]);
    let id = env.id("life");
    let pidfile = env.dir.join("init.pid");
    let b = env.bundle.to_string_lossy().into_owned();
    env.berth(&["create", "--bundle", &b, "--pid-file", pidfile.to_str().unwrap(), &id])
        .ok();
    let st = env.state(&id);
    assert_eq!(st["status"], "created");
    assert_eq!(st["id"], json!(id));
    assert_eq!(st["bundle"], json!(b));
    assert_eq!(st["rootfs"], json!(format!("{b}/rootfs")));
    let pid = st["pid"].as_i64().unwrap();
    assert_eq!(std::fs::read_to_string(&pidfile).unwrap(), pid.to_string());
    // The init outlives `create` and waits: the process has not exec'd yet.
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(!env.rootfs().join("tmp/marker").exists());
    let raw = env.berth(&["state", &id]).stdout;
    let pos: Vec<usize> = [
        "ociVersion",
        "id",
        "pid",
        "status",
        "bundle",
        "rootfs",
        "created",
        "owner",
    ]
    .iter()
    .map(|k| raw.find(&format!("\"{k}\":")).unwrap())
    .collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "runc's field order: {raw}");
    env.berth(&["start", &id]).ok();
    env.wait_status(&id, "running");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !env.rootfs().join("tmp/marker").exists() {
        assert!(std::time::Instant::now() < deadline, "process did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Starting twice is an error.
    let o = env.berth(&["start", &id]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("cannot start an already running container"),
        "{}",
        o.stderr
    );
    // Delete without force refuses a running container, with runc's wording.
    let o = env.berth(&["delete", &id]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr
            .contains(&format!("cannot delete container {id} that is not stopped: running")),
        "{}",
        o.stderr
    );
    env.berth(&["kill", &id]).ok(); // default TERM: sleep as pid 1 ignores it
    env.berth(&["kill", &id, "9"]).ok();
    env.wait_status(&id, "stopped");
    assert_eq!(env.state(&id)["pid"], 0);
    let o = env.berth(&["kill", &id, "KILL"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("container not running"), "{}", o.stderr);
    env.berth(&["kill", "--all", &id, "KILL"]).ok();
    env.berth(&["delete", &id]).ok();
    env.assert_gone(&id);
    let o = env.berth(&["state", &id]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("container does not exist"), "{}", o.stderr);
}

#[test]
fn delete_of_a_created_container_kills_its_init() {
    require_root!();
    let env = Env::new(&["true"]);
    let id = env.id("delc");
    env.create(&id).ok();
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    env.berth(&["delete", &id]).ok();
    env.assert_gone(&id);
    std::thread::sleep(Duration::from_millis(50));
    let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(st.is_empty() || st.contains(") Z"), "init {pid} still alive: {st}");
}

/// No root needed: berth refuses this before anything privileged runs.
#[test]
fn delete_force_of_missing_id_succeeds() {
    let env = Env::new(&["true"]);
    let o = env.berth(&["delete", "--force", "nosuchcontainer"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = env.berth(&["delete", "nosuchcontainer"]);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("container does not exist"));
}

#[test]
fn run_detach_and_keep() {
    require_root!();
    let env = Env::new(&["sleep", "100"]);
    let id = env.id("det");
    let b = env.bundle.to_string_lossy().into_owned();
    let t = std::time::Instant::now();
    env.berth(&["run", "-d", "-b", &b, &id]).ok();
    assert!(t.elapsed() < Duration::from_secs(5));
    assert_eq!(env.status(&id), "running");
    env.berth(&["delete", "-f", &id]).ok();
    env.assert_gone(&id);

    let mut env2 = Env::new(&["true"]);
    let id2 = env2.id("keep");
    let b2 = env2.bundle.to_string_lossy().into_owned();
    env2.config["process"]["args"] = json!(["sh", "-c", "exit 7"]);
    env2.save();
    let o = env2.berth(&["run", "--keep", "-b", &b2, &id2]);
    assert_eq!(o.code, 7);
    assert_eq!(env2.status(&id2), "stopped");
    env2.berth(&["delete", &id2]).ok();
    env2.assert_gone(&id2);
}

#[test]
fn run_stdin_reaches_the_container() {
    require_root!();
    let env = Env::new(&["cat"]);
    let id = env.id("stdin");
    let b = env.bundle.to_string_lossy().into_owned();
    let o = env.berth_stdin(&["run", "-b", &b, &id], b"piped through\n");
    o.ok();
    assert_eq!(o.stdout, "piped through\n");
}

#[test]
fn list_table_json_and_quiet() {
    require_root!();
    let env = Env::new(&["sleep", "100"]);
    // (A --root that does not exist is an error: parity_cgroups::list_with_a_missing_root_fails.)
    std::fs::create_dir_all(&env.root).unwrap();
    let o = env.berth(&["list", "-f", "json"]);
    assert_eq!(o.stdout.trim(), "null");
    let id = env.id("lst");
    env.create(&id).ok();
    let o = env.berth(&["list"]);
    let lines: Vec<&str> = o.stdout.lines().collect();
    let head: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(head, ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]);
    // Columns line up (Go tabwriter): every column starts at the same offset in each row.
    assert_eq!(lines[0].find("PID"), lines[1].find(&env.state(&id)["pid"].to_string()));
    assert!(
        lines[1].starts_with(&id) && lines[1].contains("created") && lines[1].ends_with("root"),
        "{}",
        o.stdout
    );
    let o = env.berth(&["list", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(v[0]["id"], json!(id));
    assert_eq!(v[0]["status"], "created");
    assert_eq!(v[0]["owner"], "root");
    let o = env.berth(&["list", "-q"]);
    assert_eq!(o.stdout, format!("{id}\n"));
    let o = env.berth(&["list", "-f", "xml"]);
    assert_ne!(o.code, 0);
}

#[test]
fn spec_writes_runc_default_and_refuses_to_overwrite() {
    let dir = std::env::temp_dir().join(unique("spec"));
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap();
    let o = std::process::Command::new(BERTH)
        .args(["spec", "-b", d])
        .output()
        .unwrap();
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(v["process"]["args"], json!(["sh"]));
    assert_eq!(v["root"]["path"], "rootfs");
    let o = std::process::Command::new(BERTH)
        .args(["spec", "-b", d])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("File config.json exists. Remove it first"));
    std::fs::remove_file(dir.join("config.json")).unwrap();
    let o = std::process::Command::new(BERTH)
        .args(["spec", "--rootless", "-b", d])
        .output()
        .unwrap();
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert!(v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["type"] == "user"));
    assert!(!v["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["type"] == "network"));
    assert_eq!(
        v["linux"]["uidMappings"][0]["hostID"],
        json!(nix::unistd::geteuid().as_raw())
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn version_prints_runc_style_lines() {
    let o = std::process::Command::new(BERTH).arg("--version").output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    let lines: Vec<&str> = s.lines().collect();
    assert!(lines[0].starts_with("berth version "), "{s}");
    assert!(lines[1].starts_with("commit: "), "{s}");
    assert!(lines[2].starts_with("spec: 1."), "{s}");
}

#[test]
fn log_file_and_json_format_follow_runc() {
    let env = Env::new(&["true"]);
    let log = env.dir.join("log.json");
    let l = log.to_str().unwrap();
    let o = env.berth(&["--log", l, "--log-format", "json", "state", "nosuch"]);
    assert_eq!(o.code, 1);
    assert_eq!(o.stderr, "container does not exist\n");
    let line = std::fs::read_to_string(&log).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(v["level"], "error");
    assert_eq!(v["msg"], "container does not exist");
    assert!(v["time"].as_str().unwrap().ends_with('Z'));
    let keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    assert_eq!(keys.len(), 3);
    let o = env.berth(&["--log-format", "json", "kill", "nosuch"]);
    let v: serde_json::Value = serde_json::from_str(o.stderr.trim()).unwrap();
    assert_eq!(v["msg"], "container does not exist");
    let o = env.berth(&["delete", "nosuch"]);
    assert!(
        o.stderr.starts_with("time=\"") && o.stderr.contains("level=error msg=\"container does not exist\""),
        "{}",
        o.stderr
    );
    // --debug writes debug lines to the log.
    let dbg = env.dir.join("debug.log");
    env.berth(&["--debug", "--log", dbg.to_str().unwrap(), "state", "nosuch"]);
    assert!(std::fs::read_to_string(&dbg).unwrap().contains("level=error"));
}

#[test]
fn concurrent_creates_of_one_id_have_exactly_one_winner() {
    require_root!();
    let env = Env::new(&["sleep", "100"]);
    let id = env.id("race");
    let b = env.bundle.to_string_lossy().into_owned();
    // stderr goes to files: the winner's container inherits it and would hold a pipe open.
    let children: Vec<_> = (0..5)
        .map(|i| {
            let err = std::fs::File::create(env.dir.join(format!("err{i}"))).unwrap();
            env.cmd(&["create", "-b", &b, &id])
                .stdout(std::process::Stdio::null())
                .stderr(err)
                .spawn()
                .unwrap()
        })
        .collect();
    let codes: Vec<bool> = children.into_iter().map(|mut c| c.wait().unwrap().success()).collect();
    assert_eq!(codes.iter().filter(|ok| **ok).count(), 1, "{codes:?}");
    for (i, ok) in codes.iter().enumerate() {
        if !ok {
            let e = std::fs::read_to_string(env.dir.join(format!("err{i}"))).unwrap();
            assert!(e.contains("container with given ID already exists"), "{e}");
        }
    }
    assert_eq!(env.status(&id), "created");
    env.berth(&["delete", "-f", &id]).ok();
    env.assert_gone(&id);
}

#[test]
fn pid_reuse_is_detected_through_start_time() {
    require_root!();
    let env = Env::new(&["sleep", "100"]);
    let id = env.id("reuse");
    env.create(&id).ok();
    let path = env.root.join(&id).join("state.json");
    let mut st: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let real = st["start_time"].as_u64().unwrap();
    st["start_time"] = json!(real + 1);
    std::fs::write(&path, serde_json::to_vec(&st).unwrap()).unwrap();
    // Same pid, different start time: a different process, so the container is stopped and
    // berth must not signal the stranger.
    assert_eq!(env.status(&id), "stopped");
    let o = env.berth(&["kill", &id, "KILL"]);
    assert!(o.stderr.contains("container not running"));
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    assert_eq!(pid, 0);
    st["start_time"] = json!(real);
    std::fs::write(&path, serde_json::to_vec(&st).unwrap()).unwrap();
    assert_eq!(env.status(&id), "created");
    env.berth(&["delete", "-f", &id]).ok();
}
