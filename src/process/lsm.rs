//! AppArmor profiles and SELinux labels. Both are applied by writing to the init's own
//! `/proc/thread-self/attr/...exec`, which takes effect at the next execve (the container's
//! process). The file must be on procfs (fstatfs), or an image whose /proc is a symlink or a
//! fake mount would redirect the write (CVE-2019-16884). A label the host cannot enforce is an
//! error at create: silently running unconfined is worse than refusing.

use anyhow::{anyhow, bail, Result};
use std::path::Path;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HostLsm {
    pub apparmor: bool,
    pub selinux: bool,
}

/// What the running kernel enforces (runc's checks: the apparmor module parameter, selinuxfs).
pub fn detect() -> HostLsm {
    let apparmor = std::fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.trim() == "Y")
        && Path::new("/sys/kernel/security/apparmor").exists();
    let selinux = Path::new("/sys/fs/selinux/enforce").exists();
    HostLsm { apparmor, selinux }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LsmPlan {
    /// "exec <profile>" for attr/apparmor/exec.
    pub apparmor: Option<String>,
    /// The SELinux process label for attr/exec.
    pub selinux: Option<String>,
}

fn set(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// The decision, from the config and what the host enforces.
pub fn plan(
    apparmor: &Option<String>,
    selinux: &Option<String>,
    mount_label: &Option<String>,
    host: HostLsm,
) -> Result<LsmPlan> {
    let mut p = LsmPlan::default();
    if let Some(prof) = set(apparmor) {
        if !host.apparmor {
            bail!("process.apparmorProfile {prof:?}: apparmor is not enabled on this host");
        }
        p.apparmor = Some(format!("exec {prof}"));
    }
    if let Some(l) = set(selinux) {
        if !host.selinux {
            bail!("process.selinuxLabel {l:?}: selinux is not enabled on this host");
        }
        p.selinux = Some(l.to_string());
    }
    if let Some(l) = set(mount_label) {
        if !host.selinux {
            bail!("linux.mountLabel {l:?}: selinux is not enabled on this host");
        }
    }
    Ok(p)
}

/// runc's label.FormatMountLabel: the mount label as a `context=` option of a mount's data.
pub fn with_mount_label(data: &str, label: &str) -> String {
    match (data.is_empty(), label.is_empty()) {
        (_, true) => data.to_string(),
        (true, false) => format!("context=\"{label}\""),
        (false, false) => format!("{data},context=\"{label}\""),
    }
}

/// `linux.mountLabel` on every filesystem mount but proc, sysfs and mqueue (as runc).
pub fn label_mounts(mounts: &mut [crate::rootfs::MountPlan], label: &Option<String>) {
    let Some(label) = set(label) else { return };
    for m in mounts {
        if let crate::rootfs::Kind::Fs { typ, .. } = &m.kind {
            if !matches!(typ.as_str(), "proc" | "sysfs" | "mqueue") {
                m.data = with_mount_label(&m.data, label);
            }
        }
    }
}

fn write_attr(candidates: &[&str], value: &str) -> Result<()> {
    let mut last = None;
    for path in candidates {
        match crate::sys::open(*path, libc::O_WRONLY | libc::O_NOFOLLOW, 0) {
            Ok(fd) => {
                use std::os::fd::AsFd;
                if crate::sys::fs_type(fd.as_fd()).ok() != Some(libc::PROC_SUPER_MAGIC) {
                    bail!("{path} is not on procfs: refusing to write an LSM label there");
                }
                return nix::unistd::write(&fd, value.as_bytes())
                    .map(drop)
                    .map_err(|e| anyhow!("write {value:?} to {path}: {e}"));
            }
            Err(e) => last = Some(anyhow!("open {path}: {e}")),
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("no LSM attribute file")))
}

/// In the child, after pivot_root: label the next execve.
pub fn apply(p: &LsmPlan) -> Result<()> {
    if let Some(v) = &p.apparmor {
        write_attr(
            &["/proc/thread-self/attr/apparmor/exec", "/proc/thread-self/attr/exec"],
            v,
        )?;
    }
    if let Some(v) = &p.selinux {
        write_attr(&["/proc/thread-self/attr/exec"], v)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn labels_need_the_lsm_enabled() {
        let off = HostLsm::default();
        let on = HostLsm {
            apparmor: true,
            selinux: true,
        };
        assert_eq!(plan(&None, &s(""), &None, off).unwrap(), LsmPlan::default());
        let e = plan(&s("docker-default"), &None, &None, off).unwrap_err();
        assert!(e.to_string().contains("apparmor is not enabled"), "{e}");
        assert!(plan(&None, &s("system_u:system_r:container_t:s0"), &None, off).is_err());
        assert!(plan(&None, &None, &s("system_u:object_r:container_file_t:s0"), off).is_err());
        let p = plan(&s("docker-default"), &s("system_u:system_r:container_t:s0"), &None, on).unwrap();
        assert_eq!(p.apparmor.as_deref(), Some("exec docker-default"));
        assert_eq!(p.selinux.as_deref(), Some("system_u:system_r:container_t:s0"));
        let only_aa = HostLsm {
            apparmor: true,
            selinux: false,
        };
        assert!(plan(&s("p"), &None, &None, only_aa).is_ok());
        assert!(plan(&s("p"), &s("l"), &None, only_aa).is_err());
    }

    #[test]
    fn mount_label_becomes_a_context_option() {
        assert_eq!(with_mount_label("", "a:b:c:s0"), "context=\"a:b:c:s0\"");
        assert_eq!(
            with_mount_label("mode=755", "a:b:c:s0"),
            "mode=755,context=\"a:b:c:s0\""
        );
        assert_eq!(with_mount_label("mode=755", ""), "mode=755");
        let m = |j: &str| crate::rootfs::plan_mount(&serde_json::from_str(j).unwrap(), Path::new("/b")).unwrap();
        let mut ms = vec![
            m(r#"{"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["mode=755"]}"#),
            m(r#"{"destination":"/proc","type":"proc","source":"proc"}"#),
            m(r#"{"destination":"/x","type":"bind","source":"/s","options":["bind"]}"#),
        ];
        label_mounts(&mut ms, &s("l"));
        assert_eq!(ms[0].data, "mode=755,context=\"l\"");
        assert_eq!(ms[1].data, "");
        assert_eq!(ms[2].data, "");
    }
}
