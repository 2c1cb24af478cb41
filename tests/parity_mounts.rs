//! runc 1.2+ parity for the mount list: processing order, bind sources the container's root
//! cannot reach, tmpfs modes, a read-only /dev, relative destinations, the exact flags of a
//! bind mount, masked paths, and procfs/sysfs visibility with --no-pivot.
mod common;
use common::*;
use serde_json::{json, Value};

fn add_mount(env: &mut Env, m: Value) {
    env.config["mounts"].as_array_mut().unwrap().push(m);
}

/// The /proc/self/mounts options of `dest` in the container's output.
fn mount_opts<'a>(out: &'a str, dest: &str) -> Vec<&'a str> {
    let line = out
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(dest))
        .unwrap_or_else(|| panic!("no mount on {dest} in:\n{out}"));
    line.split_whitespace().nth(3).unwrap().split(',').collect()
}

/// runtime-spec: a relative destination MAY be given and is relative to `/`; runc accepts it
/// with a warning.
#[test]
fn a_relative_mount_destination_is_taken_relative_to_the_root() {
    require_root!();
    let mut env = Env::new(&["cat", "/proc/self/mounts"]);
    add_mount(
        &mut env,
        json!({"destination": "rel/dir", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
    );
    env.save();
    let id = env.id("reldest");
    let o = env.run(&id);
    o.ok();
    assert!(mount_opts(&o.stdout, "/rel/dir").contains(&"rw"), "{}", o.stdout);
    assert!(
        o.stderr.contains("mount destination rel/dir is not absolute"),
        "no warning: {}",
        o.stderr
    );
    env.assert_gone(&id);
}
