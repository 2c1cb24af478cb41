//! Capabilities and no_new_privs, observed in /proc/self/status and by what the process can do.
mod common;
use common::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;

fn status_field(out: &str, key: &str) -> u64 {
    let line = out
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("{key} missing in {out}"));
    u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
}

const CHOWN: u64 = 1 << 0;
const KILL: u64 = 1 << 5;
const SETUID: u64 = 1 << 7;
const NET_BIND: u64 = 1 << 10;

#[test]
fn sets_are_exactly_as_configured_for_a_non_root_user() {
    require_root!();
    let mut env = Env::new(&[
        "sh",
        "-c",
        "grep Cap /proc/self/status; touch /tmp/f && chown 0:0 /tmp/f && echo chown-ok; id -u",
    ]);
    env.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    env.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_SETUID", "CAP_NET_BIND_SERVICE"],
        "effective": ["CAP_CHOWN", "CAP_KILL"],
        "permitted": ["CAP_CHOWN", "CAP_KILL"],
        "inheritable": ["CAP_CHOWN"],
        "ambient": ["CAP_CHOWN"],
    });
    std::fs::set_permissions(env.rootfs().join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    env.save();
    let id = env.id("caps");
    let o = env.run(&id);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(status_field(&o.stdout, "CapBnd"), CHOWN | KILL | SETUID | NET_BIND);
    assert_eq!(status_field(&o.stdout, "CapInh"), CHOWN);
    assert_eq!(status_field(&o.stdout, "CapAmb"), CHOWN);
    // execve as a non-root user: permitted and effective become the ambient set.
    assert_eq!(status_field(&o.stdout, "CapPrm"), CHOWN);
    assert_eq!(status_field(&o.stdout, "CapEff"), CHOWN);
    // Kept across the uid change: uid 1000 may chown to root.
    assert!(o.stdout.contains("chown-ok"), "{}", o.stdout);
    assert!(o.stdout.trim_end().ends_with("1000"), "{}", o.stdout);
}

#[test]
fn inheritable_and_ambient_are_empty_by_default() {
    // CVE-2022-29162: the default spec lists no inheritable set; the process must get none.
    require_root!();
    let env = Env::new(&["grep", "Cap", "/proc/self/status"]);
    let id = env.id("caps-def");
    let o = env.run(&id);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(status_field(&o.stdout, "CapInh"), 0);
    assert_eq!(status_field(&o.stdout, "CapAmb"), 0);
    let bnd = status_field(&o.stdout, "CapBnd");
    assert_eq!(
        bnd,
        KILL | NET_BIND | (1 << 29),
        "runc spec default: AUDIT_WRITE, KILL, NET_BIND_SERVICE"
    );
}

/// runtime-spec 1.2: an unknown capability MUST be warned about and SHOULD NOT fail; runc
/// leaves it out with "ignoring unknown or unavailable capabilities: [...]".
#[test]
fn unknown_capability_is_ignored_with_a_warning() {
    require_root!();
    let mut env = Env::new(&["grep", "CapBnd", "/proc/self/status"]);
    env.config["process"]["capabilities"]["bounding"] = json!(["CAP_KILL", "CAP_NOT_A_CAP"]);
    env.save();
    let id = env.id("caps-unknown");
    let o = env.run(&id);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(status_field(&o.stdout, "CapBnd"), KILL, "only the known capability");
    let warning = "ignoring unknown or unavailable capabilities: [CAP_NOT_A_CAP]";
    assert_eq!(o.stderr.matches(warning).count(), 1, "{}", o.stderr);
    env.assert_gone(&id);
}

const EUID: &str = r#"#include <stdio.h>
#include <unistd.h>
int main(void) { printf("euid=%d\n", (int)geteuid()); return 0; }
"#;

#[test]
fn setuid_binary_gains_root_only_without_no_new_privs() {
    require_root!();
    for nnp in [true, false] {
        let mut env = Env::new(&["/bin/su-test"]);
        let bin = env.rootfs().join("bin/su-test");
        if cc_static(EUID, &bin).is_none() {
            skip("needs gcc with static libc (apt-get install gcc libc6-dev)");
            return;
        }
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o4755)).unwrap();
        env.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        env.config["process"]["noNewPrivileges"] = json!(nnp);
        env.save();
        let id = env.id("nnp");
        let o = env.run(&id);
        assert_eq!(o.code, 0, "{}", o.stderr);
        let want = if nnp { "euid=1000" } else { "euid=0" };
        assert_eq!(o.stdout.trim(), want, "noNewPrivileges={nnp}");
    }
}
