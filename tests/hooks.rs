//! runtime-spec hooks: moments, namespaces, stdin state, env/args, timeouts and failure rules.
mod common;
use common::*;
use serde_json::json;

fn hook(script: &str) -> serde_json::Value {
    json!({"path": "/bin/sh", "args": ["sh", "-c", script], "env": ["PATH=/usr/bin:/bin"]})
}

#[test]
fn hooks_run_in_order_with_state_and_namespaces() {
    require_root!();
    let mut env = Env::new(&["sh", "-c", "sleep 100"]);
    let log = env.dir.join("hooklog");
    std::fs::create_dir_all(&log).unwrap();
    let l = log.display().to_string();
    let rec = |name: &str| {
        hook(&format!(
            "cat > {l}/{name}.json; readlink /proc/self/ns/uts > {l}/{name}.uts; echo {name} >> {l}/order"
        ))
    };
    env.config["hooks"] = json!({
        "prestart": [rec("prestart")],
        "createRuntime": [rec("createRuntime")],
        "createContainer": [rec("createContainer")],
        // startContainer runs inside the container, after pivot_root: write into its rootfs.
        "startContainer": [{"path": "/bin/sh", "args": ["sh", "-c", "cat > /tmp/startContainer.json"]}],
        "poststart": [rec("poststart")],
        "poststop": [rec("poststop")]
    });
    env.config["annotations"] = json!({"org.example": "yes"});
    env.save();
    let id = env.id("hooks");
    env.create(&id).ok();
    let order = || std::fs::read_to_string(log.join("order")).unwrap_or_default();
    assert_eq!(order(), "prestart\ncreateRuntime\ncreateContainer\n");
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(log.join("createRuntime.json")).unwrap()).unwrap();
    assert_eq!(st["id"], json!(id));
    assert_eq!(st["pid"], json!(pid));
    assert_eq!(st["bundle"], json!(env.bundle.to_string_lossy()));
    assert_eq!(st["annotations"]["org.example"], "yes");
    // createRuntime in the runtime's namespaces, createContainer in the container's.
    let host_uts = std::fs::read_link("/proc/self/ns/uts").unwrap();
    let ctr_uts = std::fs::read_link(format!("/proc/{pid}/ns/uts")).unwrap();
    assert_ne!(host_uts, ctr_uts);
    let read = |f: &str| std::fs::read_to_string(log.join(f)).unwrap().trim().to_string();
    assert_eq!(read("createRuntime.uts"), host_uts.to_str().unwrap());
    assert_eq!(read("createContainer.uts"), ctr_uts.to_str().unwrap());
    assert!(
        !env.rootfs().join("tmp/startContainer.json").exists(),
        "startContainer ran before start"
    );
    env.berth(&["start", &id]).ok();
    assert_eq!(order(), "prestart\ncreateRuntime\ncreateContainer\npoststart\n");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !env.rootfs().join("tmp/startContainer.json").exists() {
        assert!(std::time::Instant::now() < deadline, "startContainer did not run");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    env.berth(&["delete", "-f", &id]).ok();
    assert_eq!(
        order(),
        "prestart\ncreateRuntime\ncreateContainer\npoststart\npoststop\n"
    );
    let post: serde_json::Value = serde_json::from_slice(&std::fs::read(log.join("poststop.json")).unwrap()).unwrap();
    assert_eq!(post["status"], "stopped");
    env.assert_gone(&id);
}

#[test]
fn hook_env_and_args_are_exact() {
    require_root!();
    let mut env = Env::new(&["true"]);
    let out = env.dir.join("envargs");
    env.config["hooks"] = json!({"createRuntime": [{
        "path": "/bin/sh",
        "args": ["custom-argv0", "-c", format!("echo \"$0 $FOO $HOME\" > {}", out.display())],
        "env": ["FOO=bar"]
    }]});
    env.save();
    let id = env.id("hookenv");
    env.run(&id).ok();
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "custom-argv0 bar \n");
}

#[test]
fn failing_or_slow_create_hooks_fail_create_and_leave_nothing() {
    require_root!();
    for (hooks, want) in [
        (json!({"prestart": [hook("exit 3")]}), "prestart hook #0"),
        (json!({"createContainer": [hook("echo broken >&2; exit 1")]}), "broken"),
        (
            json!({"createRuntime": [{"path": "/bin/sleep", "args": ["sleep", "10"], "timeout": 1}]}),
            "timed out after 1 seconds",
        ),
    ] {
        let mut env = Env::new(&["true"]);
        env.config["hooks"] = hooks;
        env.save();
        let id = env.id("hookfail");
        let t = std::time::Instant::now();
        let o = env.create(&id);
        assert_eq!(o.code, 1);
        assert!(o.stderr.contains(want), "{want}: {}", o.stderr);
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
        env.assert_root_empty();
        assert_no_cgroup(&id);
    }
}

#[test]
fn failing_poststart_and_poststop_hooks_are_warnings() {
    require_root!();
    let mut env = Env::new(&["true"]);
    env.config["hooks"] = json!({"poststart": [hook("exit 1")], "poststop": [hook("exit 1"), hook("exit 2")]});
    env.save();
    let id = env.id("hookwarn");
    let o = env.run(&id);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stderr.contains("level=warning") && o.stderr.contains("poststop hook #1"),
        "{}",
        o.stderr
    );
    env.assert_gone(&id);
}
