//! `features` parses as the runtime-spec schema and claims nothing berth refuses.
mod common;
use common::*;
use serde_json::json;

fn features() -> serde_json::Value {
    let o = std::process::Command::new(BERTH).arg("features").output().unwrap();
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let _typed: oci_spec::runtime::Features = serde_json::from_value(v.clone()).expect("runtime-spec features schema");
    v
}

#[test]
fn features_follow_the_schema_and_list_what_works() {
    let f = features();
    assert_eq!(f["hooks"].as_array().unwrap().len(), 6);
    let ns: Vec<&str> = f["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for t in ["cgroup", "ipc", "mount", "network", "pid", "user", "uts", "time"] {
        assert!(ns.contains(&t), "{t}");
    }
    let opts: Vec<&str> = f["mountOptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for o in ["rro", "rnosuid", "tmpcopyup", "rbind", "rslave"] {
        assert!(opts.contains(&o), "{o}");
    }
    assert!(f["linux"]["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "CAP_SYS_ADMIN"));
}

/// Each feature flag must agree with what `create` really does.
#[test]
fn feature_claims_match_behaviour() {
    require_root!();
    let f = features();
    let claims = |v: &serde_json::Value| v.as_bool().unwrap_or(false);
    let mut env = Env::new(&["true"]);
    env.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/idm", "type": "bind", "source": "/tmp", "options": ["rbind", "idmap"],
        "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 1}],
        "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 1}]
    }));
    env.save();
    let idmap_works = env.run(&env.id("idmap")).code == 0;
    assert_eq!(claims(&f["linux"]["mountExtensions"]["idmap"]["enabled"]), idmap_works);
    let listed = |o: &str| f["mountOptions"].as_array().unwrap().iter().any(|v| v == o);
    assert_eq!(listed("idmap"), idmap_works);
    assert_eq!(listed("ridmap"), idmap_works);
    let mut env = Env::new(&["true"]);
    env.config["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []});
    env.save();
    let seccomp_works = env.run(&env.id("seccomp")).code == 0;
    assert_eq!(claims(&f["linux"]["seccomp"]["enabled"]), seccomp_works);
}

#[test]
fn features_list_the_memory_policy_modes_and_flags() {
    let f = features();
    let names = |k: &str| -> Vec<String> {
        f["linux"]["memoryPolicy"][k]
            .as_array()
            .unwrap_or_else(|| panic!("linux.memoryPolicy.{k} missing"))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names("modes"),
        [
            "MPOL_BIND",
            "MPOL_DEFAULT",
            "MPOL_INTERLEAVE",
            "MPOL_LOCAL",
            "MPOL_PREFERRED",
            "MPOL_PREFERRED_MANY",
            "MPOL_WEIGHTED_INTERLEAVE"
        ]
    );
    assert_eq!(
        names("flags"),
        ["MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES", "MPOL_F_STATIC_NODES"]
    );
}

#[test]
fn features_name_criu_only_when_it_is_there() {
    let f = features();
    let claim = f["annotations"]["io.github.berth.checkpoint"]
        .as_str()
        .unwrap()
        .to_string();
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("criu")).find(|p| p.is_file()))
        .unwrap_or(None);
    match found {
        Some(p) => assert!(claim.starts_with(&format!("criu ({})", p.display())), "{claim}"),
        None => assert_eq!(claim, "unavailable: no criu in PATH"),
    }
}
