//! `tmpcopyup` (podman's --read-only uses it): a tmpfs that starts with what it covers.
mod common;
use common::*;
use serde_json::json;

#[test]
fn tmpcopyup_fills_the_tmpfs_with_the_covered_directory() {
    require_root!();
    let mut env = Env::new(&["sh", "-c", "cat /data/file; readlink /data/link; cat /data/sub/deep; stat -c '%a %u' /data/file; grep ' /data ' /proc/self/mounts | cut -d' ' -f3; echo new > /data/new"]);
    let data = env.rootfs().join("data");
    std::fs::create_dir_all(data.join("sub")).unwrap();
    std::fs::write(data.join("file"), "content\n").unwrap();
    std::fs::write(data.join("sub/deep"), "deep\n").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", data.join("link")).unwrap();
    std::fs::set_permissions(data.join("file"), std::os::unix::fs::PermissionsExt::from_mode(0o640)).unwrap();
    std::os::unix::fs::chown(data.join("file"), Some(1234), None).unwrap();
    env.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup", "mode=755"]
    }));
    env.save();
    let id = env.id("copyup");
    let o = env.run(&id);
    o.ok();
    assert_eq!(o.stdout, "content\n/etc/passwd\ndeep\n640 1234\ntmpfs\n");
    // Writes went to the tmpfs, not the image.
    assert!(!data.join("new").exists());
}

/// No root needed: berth refuses this before anything privileged runs.
#[test]
fn tmpcopyup_needs_tmpfs() {
    let mut env = Env::new(&["true"]);
    env.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "bind", "source": "/tmp", "options": ["bind", "tmpcopyup"]
    }));
    env.save();
    let o = env.create(&env.id("copyupbad"));
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("tmpcopyup is only valid for tmpfs"), "{}", o.stderr);
    env.assert_root_empty();
}
