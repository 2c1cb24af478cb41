//! /dev, /proc and /sys inside the container: default and configured device nodes and links,
//! maskedPaths, readonlyPaths and linux.sysctl — observed from inside and checked on the host.
mod common;
use common::*;
use serde_json::json;

/// The /proc/self/mounts line of `dest` in the container's output.
fn mount_line<'a>(out: &'a str, dest: &str) -> &'a str {
    out.lines()
        .find(|l| l.split_whitespace().nth(1) == Some(dest))
        .unwrap_or_else(|| panic!("no mount on {dest} in:\n{out}"))
}

#[test]
fn default_and_configured_devices() {
    require_root!();
    let script =
        "stat -c '%n %F %t:%T %a %u:%g' /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty /dev/mynull; \
                  for l in ptmx fd stdin stdout stderr; do echo $l $(readlink /dev/$l); done; \
                  grep -E ' /dev/(pts|shm) ' /proc/self/mounts; echo x > /dev/null && echo null-ok";
    let mut env = Env::new(&["sh", "-c", script]);
    env.config["linux"]["devices"] = json!([{"path": "/dev/mynull", "type": "c", "major": 1, "minor": 3,
        "fileMode": 384, "uid": 1000, "gid": 1000}]);
    env.save();
    let id = env.id("dev");
    let o = env.run(&id);
    o.ok();
    let out = &o.stdout;
    for (name, dev) in [
        ("null", "1:3"),
        ("zero", "1:5"),
        ("full", "1:7"),
        ("random", "1:8"),
        ("urandom", "1:9"),
        ("tty", "5:0"),
    ] {
        let want = format!("/dev/{name} character special file {dev} 666 0:0\n");
        assert!(out.contains(&want), "want {want:?} in\n{out}");
    }
    assert!(
        out.contains("/dev/mynull character special file 1:3 600 1000:1000\n"),
        "{out}"
    );
    for (l, t) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        assert!(out.contains(&format!("{l} {t}\n")), "/dev/{l} -> {t} missing in\n{out}");
    }
    assert!(
        mount_line(out, "/dev/pts").starts_with("devpts /dev/pts devpts "),
        "{out}"
    );
    assert!(mount_line(out, "/dev/shm").starts_with("shm /dev/shm tmpfs "), "{out}");
    assert!(out.contains("null-ok\n"), "{out}");
}

#[test]
fn masked_paths_are_empty_and_readonly_paths_refuse_writes() {
    require_root!();
    // Only masks of paths the host really has prove anything (this kernel has no /proc/kcore).
    let files: Vec<&str> = ["/proc/kcore", "/proc/timer_list", "/proc/keys"]
        .into_iter()
        .filter(|p| std::fs::read(p).map(|d| !d.is_empty()).unwrap_or(false))
        .collect();
    assert!(!files.is_empty(), "no maskable /proc file with content on this host");
    let host_fw = std::fs::read_dir("/sys/firmware").map(|d| d.count()).unwrap_or(0);
    assert!(
        host_fw > 0,
        "the host's /sys/firmware is empty: this test needs entries to mask"
    );
    let current = std::fs::read_to_string("/proc/sys/vm/overcommit_memory").unwrap();
    // Writes the host's current value: harmless even if the protection were missing.
    let script = format!(
        "for f in {}; do echo $f=$(cat $f | wc -c); done; echo fw=$(ls -A /sys/firmware | wc -l); \
         echo {} > /proc/sys/vm/overcommit_memory; echo sysw=$?",
        files.join(" "),
        current.trim()
    );
    let mut env = Env::new(&["sh", "-c", &script]);
    // Strong capabilities: only the masks and the read-only mount may stop these reads and writes.
    let strong = ["CAP_SYS_ADMIN", "CAP_SYS_RAWIO", "CAP_DAC_OVERRIDE", "CAP_FOWNER"];
    for set in ["bounding", "effective", "permitted"] {
        env.config["process"]["capabilities"][set] = json!(strong);
    }
    env.save();
    let id = env.id("mask");
    let o = env.run(&id);
    o.ok();
    for f in &files {
        assert!(o.stdout.contains(&format!("{f}=0\n")), "{f} not masked: {}", o.stdout);
    }
    assert!(o.stdout.contains("fw=0\n"), "{}", o.stdout);
    assert!(o.stdout.contains("sysw=1\n"), "{}", o.stdout);
    assert!(o.stderr.contains("Read-only file system"), "{}", o.stderr);
    env.assert_gone(&id);
}

#[test]
fn without_masks_the_same_paths_are_visible() {
    require_root!();
    // The contrast that makes the test above meaningful: same container, no masks.
    let mut env = Env::new(&[
        "sh",
        "-c",
        "echo timer=$(cat /proc/timer_list | wc -c); echo fw=$(ls -A /sys/firmware | wc -l)",
    ]);
    env.config["linux"]["maskedPaths"] = json!([]);
    env.save();
    let id = env.id("nomask");
    let o = env.run(&id);
    o.ok();
    assert!(!o.stdout.contains("timer=0\n"), "{}", o.stdout);
    assert!(!o.stdout.contains("fw=0\n"), "{}", o.stdout);
}

#[test]
fn namespaced_sysctl_is_set_inside_only() {
    require_root!();
    let host_before = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let mut env = Env::new(&["cat", "/proc/sys/net/ipv4/ip_forward"]);
    let want = if host_before.trim() == "1" { "0" } else { "1" };
    env.config["linux"]["sysctl"] = json!({ "net.ipv4.ip_forward": want });
    env.save();
    let id = env.id("sysctl");
    let o = env.run(&id);
    o.ok();
    assert_eq!(o.stdout.trim(), want);
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap(),
        host_before
    );
    env.assert_gone(&id);
}

/// No root needed: berth refuses this before anything privileged runs.
#[test]
fn host_wide_sysctl_is_refused_at_create() {
    // This kernel may be built without magic SysRq: the refusal must not depend on the file.
    let host_before = std::fs::read_to_string("/proc/sys/kernel/sysrq").ok();
    let mut env = Env::new(&["true"]);
    env.config["linux"]["sysctl"] = json!({ "kernel.sysrq": "1" });
    env.save();
    let id = env.id("sysrq");
    let o = env.create(&id);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("kernel.sysrq"), "{}", o.stderr);
    assert!(o.stderr.contains("not namespaced"), "{}", o.stderr);
    env.assert_root_empty();
    assert_no_cgroup(&id);
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/sysrq").ok(), host_before);
}

#[test]
fn ipc_sysctl_is_set_and_unowned_namespace_keys_are_refused() {
    require_root!();
    let mut env = Env::new(&["cat", "/proc/sys/kernel/msgmax"]);
    env.config["linux"]["sysctl"] = json!({ "kernel.msgmax": "12345" });
    env.save();
    let id = env.id("ipcsys");
    let o = env.run(&id);
    o.ok();
    assert_eq!(o.stdout.trim(), "12345");
    assert_ne!(
        std::fs::read_to_string("/proc/sys/kernel/msgmax").unwrap().trim(),
        "12345"
    );
    // Without its own network namespace a net.* key would change the host: refused up front.
    env.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "network");
    env.config["linux"]["sysctl"] = json!({ "net.ipv4.ip_forward": "1" });
    env.save();
    let id = env.id("netsys");
    let o = env.create(&id);
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("net.ipv4.ip_forward"), "{}", o.stderr);
    env.assert_root_empty();
}

#[test]
fn host_dev_bind_skips_device_setup() {
    require_root!();
    // A privileged-style config binds the host's /dev: berth must not mknod or relink in it.
    let mut env = Env::new(&["sh", "-c", "stat -c '%t:%T' /dev/null; echo ok"]);
    let mounts = env.config["mounts"].as_array_mut().unwrap();
    mounts.retain(|m| {
        m["destination"] != "/dev"
            && m["destination"] != "/dev/pts"
            && m["destination"] != "/dev/shm"
            && m["destination"] != "/dev/mqueue"
    });
    mounts.push(json!({"destination": "/dev", "type": "bind", "source": "/dev", "options": ["rbind", "nosuid"]}));
    env.save();
    let before = std::fs::read_link("/dev/ptmx").ok();
    let id = env.id("hostdev");
    let o = env.run(&id);
    o.ok();
    assert_eq!(o.stdout, "1:3\nok\n");
    // The host's /dev/ptmx is untouched (no pts/ptmx symlink replaced it).
    assert_eq!(std::fs::read_link("/dev/ptmx").ok(), before);
    env.assert_gone(&id);
}
