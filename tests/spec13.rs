//! runtime-spec 1.3.0: linux.netDevices moved into the container, linux.intelRdt refused,
//! poststart failures (tests/hooks.rs), and 1.3.0 advertised by state, spec and features.
mod common;
use common::*;
use serde_json::json;
use std::process::Command;

fn ip(args: &[&str]) -> std::process::Output {
    Command::new("ip").args(args).output().expect("run ip (iproute2)")
}

fn link_exists(name: &str) -> bool {
    ip(&["link", "show", "dev", name]).status.success()
}

/// A veth pair on the host (the kernel has no dummy links here; a veth end moves like any
/// device). Both ends are deleted on drop; a moved end goes with its namespace anyway.
struct Veth {
    a: String,
    b: String,
}

impl Veth {
    fn new(tag: &str) -> Option<Veth> {
        // Interface names have at most 15 bytes.
        let n = unique(tag).replace('-', "");
        let n = &n[n.len().saturating_sub(11)..];
        let v = Veth {
            a: format!("{n}a"),
            b: format!("{n}b"),
        };
        ip(&["link", "add", &v.a, "type", "veth", "peer", "name", &v.b])
            .status
            .success()
            .then_some(v)
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.a]);
        let _ = ip(&["link", "del", &self.b]);
    }
}

/// `ip -o addr show dev NAME` on the host.
fn host_addrs(name: &str) -> String {
    String::from_utf8_lossy(&ip(&["-o", "addr", "show", "dev", name]).stdout).into_owned()
}

/// The device's flags as `ip link` shows them, e.g. "<BROADCAST,MULTICAST,UP>".
fn flags_up(ip_output: &str) -> bool {
    ip_output
        .split(['<', '>'])
        .nth(1)
        .is_some_and(|f| f.split(',').any(|x| x == "UP"))
}

/// A veth end with an IPv4 (and, where the host has IPv6, an IPv6) address, up.
fn addressed_veth(tag: &str) -> Option<(Veth, bool)> {
    let v = Veth::new(tag)?;
    assert!(ip(&["addr", "add", "192.0.2.7/24", "dev", &v.a]).status.success());
    let v6 = ip(&["-6", "addr", "add", "2001:db8::7/64", "dev", &v.a, "nodad"])
        .status
        .success();
    assert!(ip(&["link", "set", &v.a, "up"]).status.success());
    Some((v, v6))
}

#[test]
fn net_devices_move_in_renamed_with_their_addresses_and_up() {
    require_root!();
    let Some((veth, v6)) = addressed_veth("nd") else {
        return skip("cannot create a veth pair (ip link add ... type veth)");
    };
    let mut env = Env::new(&["sh", "-c", "ip addr show dev ctr0; ip link show dev ctr0"]);
    env.config["linux"]["netDevices"] = json!({ veth.a.as_str(): {"name": "ctr0"} });
    env.save();
    let id = env.id("netdev");
    let o = env.run(&id);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("ctr0"), "{}", o.stdout);
    assert!(o.stdout.contains("inet 192.0.2.7/24"), "{}", o.stdout);
    if v6 {
        assert!(o.stdout.contains("inet6 2001:db8::7/64"), "{}", o.stdout);
    }
    assert!(flags_up(&o.stdout), "not up in the container: {}", o.stdout);
    env.assert_gone(&id);
    // Not moved back (the spec forbids it): a virtual device goes with its namespace.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while link_exists(&veth.b) {
        assert!(
            std::time::Instant::now() < deadline,
            "veth peer {} outlived the namespace",
            veth.b
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!link_exists(&veth.a), "{} came back to the host", veth.a);
}

#[test]
fn net_devices_leave_the_host_at_create_and_a_template_name_is_numbered() {
    require_root!();
    let Some(veth) = Veth::new("nt") else {
        return skip("cannot create a veth pair (ip link add ... type veth)");
    };
    let mut env = Env::new(&["sleep", "100"]);
    env.config["linux"]["netDevices"] = json!({ veth.a.as_str(): {"name": "net%d"} });
    env.save();
    let id = env.id("netdevtpl");
    env.create(&id).ok();
    assert!(!link_exists(&veth.a), "{} still on the host after create", veth.a);
    let pid = env.state(&id)["pid"].as_i64().unwrap().to_string();
    let inside = Command::new("nsenter")
        .args(["-t", &pid, "-n", "ip", "-o", "link", "show"])
        .output()
        .unwrap();
    let inside = String::from_utf8_lossy(&inside.stdout);
    assert!(inside.contains(": net0@"), "{inside}");
    env.berth(&["delete", "-f", &id]).ok();
    env.assert_gone(&id);
}

#[test]
fn net_devices_come_back_when_create_fails() {
    require_root!();
    let Some((veth, v6)) = addressed_veth("nf") else {
        return skip("cannot create a veth pair (ip link add ... type veth)");
    };
    let before = host_addrs(&veth.a);
    let mut env = Env::new(&["true"]);
    env.config["linux"]["netDevices"] = json!({ veth.a.as_str(): {"name": "ctr0"} });
    // After the move (createRuntime runs once the init's namespaces and mounts exist).
    env.config["hooks"] = json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "exit 3"]}]});
    env.save();
    let id = env.id("netdevfail");
    let o = env.create(&id);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("createRuntime hook #0"), "{}", o.stderr);
    env.assert_root_empty();
    assert!(link_exists(&veth.a), "{} was not given back: {}", veth.a, o.stderr);
    let after = host_addrs(&veth.a);
    assert!(after.contains("192.0.2.7/24"), "{after}");
    if v6 {
        assert!(after.contains("2001:db8::7/64"), "{after}");
    }
    let link = String::from_utf8_lossy(&ip(&["link", "show", "dev", &veth.a]).stdout).into_owned();
    assert!(flags_up(&link), "{link}");
    assert!(before.contains("192.0.2.7/24"));

    // A name the container's namespace already has is an error before anything moves.
    env.config.as_object_mut().unwrap().remove("hooks");
    env.config["linux"]["netDevices"] = json!({ veth.a.as_str(): {"name": "lo"} });
    env.save();
    let o = env.create(&env.id("netdevlo"));
    assert_eq!(o.code, 1);
    assert!(
        o.stderr
            .contains(r#"network device \"lo\" already exists in the container's network namespace"#),
        "{}",
        o.stderr
    );
    assert!(link_exists(&veth.a));
    assert!(host_addrs(&veth.a).contains("192.0.2.7/24"));
    env.assert_root_empty();
}

/// Refusals need no device (and no VM): each names the problem with runc's text.
#[test]
fn net_devices_refusals_have_runc_texts() {
    require_root!();
    let cases = [
        (
            json!({"eth0": {}}),
            false,
            "unable to move network devices without a private NET namespace",
        ),
        (json!({"a b": {}}), true, r#"invalid network device name \"a b\""#),
        (
            json!({"eth0": {"name": "x/y"}}),
            true,
            r#"invalid network device name \"x/y\""#,
        ),
        (
            json!({"eth0": {"name": "abcdefghijklmnop"}}),
            true,
            r#"invalid network device name \"abcdefghijklmnop\""#,
        ),
        (
            json!({"ethA": {"name": "c0"}, "ethB": {"name": "c0"}}),
            true,
            r#"\"ethA\" and \"ethB\" would both be \"c0\" in the container"#,
        ),
        (
            json!({"berthnone0": {}}),
            true,
            "link not found for interface berthnone0 on runtime namespace",
        ),
    ];
    for (devs, netns, want) in cases {
        let mut env = Env::new(&["true"]);
        if !netns {
            env.config["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .retain(|n| n["type"] != "network");
        }
        env.config["linux"]["netDevices"] = devs;
        env.save();
        let o = env.run(&env.id("netdevbad"));
        assert_eq!(o.code, 1, "{want}: {}", o.stderr);
        assert!(o.stderr.contains(want), "{want}: {}", o.stderr);
        env.assert_root_empty();
    }
    // A joined network namespace that is the runtime's own is no private one.
    let mut env = Env::new(&["true"]);
    let own = format!("/proc/{}/ns/net", std::process::id());
    env.set_ns("network", Some(&own));
    env.config["linux"]["netDevices"] = json!({"eth0": {}});
    env.save();
    let o = env.run(&env.id("netdevhost"));
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(
        o.stderr
            .contains("unable to move network devices without a private NET namespace"),
        "{}",
        o.stderr
    );
    env.assert_root_empty();
}

#[test]
fn intel_rdt_is_refused_with_runc_text() {
    for rdt in [
        json!({}),
        json!({"closID": "berth"}),
        json!({"schemata": ["L3:0=f"]}),
        json!({"enableMonitoring": true}),
        json!({"l3CacheSchema": "L3:0=f", "memBwSchema": "MB:0=50"}),
    ] {
        let mut env = Env::new(&["true"]);
        env.config["linux"]["intelRdt"] = rdt.clone();
        env.save();
        let o = env.create(&env.id("rdt"));
        assert_eq!(o.code, 1, "{rdt}: {}", o.stderr);
        assert!(
            o.stderr
                .contains("intelRdt is specified in config, but Intel RDT is not supported or enabled"),
            "{rdt}: {}",
            o.stderr
        );
        env.assert_root_empty();
    }
}

#[test]
fn runtime_spec_1_3_0_is_advertised() {
    let env = Env::new(&["true"]);
    assert_eq!(env.config["ociVersion"], "1.3.0", "berth spec");
    let v = Command::new(BERTH).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).contains("spec: 1.3.0"));
    let o = Command::new(BERTH).arg("features").output().unwrap();
    let f: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let _typed: oci_spec::runtime::Features = serde_json::from_value(f.clone()).unwrap();
    assert_eq!(f["ociVersionMax"], "1.3.0");
    assert_eq!(f["linux"]["netDevices"], json!({"enabled": true}));
    assert_eq!(
        f["linux"]["intelRdt"],
        json!({"enabled": false, "schemata": false, "monitoring": false})
    );
    if !is_root() {
        return skip("state needs a container (root)");
    }
    // Sections of other platforms (VM-based runtimes' hwConfig, FreeBSD) are ignored, as runc
    // ignores them.
    let mut env = Env::new(&["sleep", "100"]);
    env.config["vm"] = json!({"kernel": {"path": "/boot/vmlinuz"}, "hwConfig": {"vcpus": 2, "memory": 268435456}});
    env.config["freebsd"] = json!({"jail": {"host": "new"}});
    env.save();
    let id = env.id("v13");
    env.create(&id).ok();
    assert_eq!(env.state(&id)["ociVersion"], "1.3.0");
    env.berth(&["delete", "-f", &id]).ok();
    env.assert_gone(&id);
}
