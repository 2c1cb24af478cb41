//! Device rules, for both cgroup versions: runc's default allowlist, the config's
//! `linux.resources.devices` rules (in order) and the devices the config creates. v1 writes them
//! to devices.deny/devices.allow (deny everything first, below); v2 compiles them into an eBPF
//! program (bpf.rs). Without them a container root with CAP_MKNOD could `mknod` a host disk and
//! read it raw. One list for both, so a container may reach the same devices on either.

use anyhow::{anyhow, bail, Result};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType, Spec};
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    /// 'a' (all), 'c' or 'b'.
    pub typ: char,
    /// None: any number.
    pub major: Option<i64>,
    pub minor: Option<i64>,
    /// A combination of r, w, m.
    pub access: String,
}

impl Rule {
    pub fn new(allow: bool, typ: char, major: Option<i64>, minor: Option<i64>, access: &str) -> Rule {
        Rule {
            allow,
            typ,
            major: major.filter(|m| *m >= 0),
            minor: minor.filter(|m| *m >= 0),
            access: access.to_string(),
        }
    }

    /// The line the v1 kernel interface expects ("c 1:3 rwm", "b *:* m", "a *:* rwm").
    pub fn line(&self) -> String {
        if self.typ == 'a' {
            return "a *:* rwm".to_string();
        }
        let n = |v: Option<i64>| v.map_or("*".to_string(), |v| v.to_string());
        format!("{} {}:{} {}", self.typ, n(self.major), n(self.minor), self.access)
    }

    /// BPF_DEVCG_ACC_* bits for the v2 program: mknod 1, read 2, write 4.
    pub fn access_bits(&self) -> i32 {
        self.access
            .chars()
            .map(|c| match c {
                'm' => 1,
                'r' => 2,
                'w' => 4,
                _ => 0,
            })
            .fold(0, |a, b| a | b)
    }
}

/// runc's default allowlist (libcontainer/specconv AllowedDevices). As in runc 1.2, not
/// /dev/net/tun (c 10:200): a container that needs it lists it in its config (engines do).
pub fn defaults() -> Vec<Rule> {
    let c = |maj, min| Rule::new(true, 'c', Some(maj), min, "rwm");
    vec![
        Rule::new(true, 'c', None, None, "m"),
        Rule::new(true, 'b', None, None, "m"),
        c(1, Some(3)), // null
        c(1, Some(5)), // zero
        c(1, Some(7)), // full
        c(1, Some(8)), // random
        c(1, Some(9)), // urandom
        c(5, Some(0)), // tty
        c(5, Some(2)), // ptmx
        c(136, None),  // pts
    ]
}

/// None for FIFOs: they are not device numbers either controller sees, so a rule or device of
/// type 'p' is skipped (as the v1 kernel interface has no such type).
fn type_char(t: Option<LinuxDeviceType>) -> Option<char> {
    match t {
        Some(LinuxDeviceType::C) | Some(LinuxDeviceType::U) => Some('c'),
        Some(LinuxDeviceType::B) => Some('b'),
        Some(LinuxDeviceType::P) => None,
        Some(LinuxDeviceType::A) | None => Some('a'),
    }
}

fn check_access(a: &str) -> Result<()> {
    if a.is_empty() || !a.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        bail!("linux.resources.devices: invalid access {a:?} (a combination of r, w, m)");
    }
    Ok(())
}

/// The effective list as runc builds it: the config's rules, then the defaults, then every
/// device the config creates (read, write, mknod). Later rules take precedence.
pub fn effective(resources: &[LinuxDeviceCgroup], devices: &[LinuxDevice]) -> Result<Vec<Rule>> {
    let mut out = Vec::new();
    for d in resources {
        let access = d.access().clone().unwrap_or_else(|| "rwm".to_string());
        check_access(&access)?;
        if let Some(typ) = type_char(d.typ()) {
            out.push(Rule::new(d.allow(), typ, d.major(), d.minor(), &access));
        }
    }
    out.extend(defaults());
    for d in devices {
        if let Some(typ) = type_char(Some(d.typ())) {
            out.push(Rule::new(true, typ, Some(d.major()), Some(d.minor()), "rwm"));
        }
    }
    Ok(out)
}

/// The rule list for a config, in the order it is written.
pub fn rules(spec: &Spec) -> Result<Vec<Rule>> {
    let linux = spec.linux().as_ref();
    effective(
        linux
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.devices().as_deref())
            .unwrap_or_default(),
        linux.and_then(|l| l.devices().as_deref()).unwrap_or_default(),
    )
}

/// (file, line) pairs: deny all first, so only what is listed is reachable.
pub fn writes(rules: &[Rule]) -> Vec<(&'static str, String)> {
    let mut w = vec![("devices.deny", "a".to_string())];
    for r in rules {
        let f = if r.allow { "devices.allow" } else { "devices.deny" };
        w.push((f, r.line()));
    }
    w
}

/// Apply to a v1 devices cgroup directory (each line is its own write, as the kernel parses them).
pub fn apply_v1(dir: &Path, rules: &[Rule]) -> Result<()> {
    for (file, line) in writes(rules) {
        let p = dir.join(file);
        std::fs::write(&p, &line).map_err(|e| anyhow!("write {line:?} to {}: {e}", p.display()))?;
    }
    Ok(())
}

/// The container's directory in the v1 devices hierarchy, if the host has one.
/// (Matched by mount point: rootless may have dropped hierarchies from `paths`.)
pub fn v1_dir(hs: &[super::detect::Hierarchy], paths: &[std::path::PathBuf]) -> Option<std::path::PathBuf> {
    let h = hs
        .iter()
        .find(|h| !h.v2 && h.controllers.iter().any(|c| c == "devices"))?;
    paths.iter().find(|p| p.starts_with(&h.mountpoint)).cloned()
}

/// `update` with devices: the new rules plus runc's defaults (the config's own device nodes
/// are not known to `update`; runc re-reads them from its saved config).
pub fn from_resources(devs: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>> {
    effective(devs, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_all_then_defaults_then_config() {
        let spec: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","linux":{"resources":{"devices":[
                {"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":10,"minor":229,"access":"rw"}]},
              "devices":[{"path":"/dev/sda","type":"b","major":8,"minor":0}]}}"#,
        )
        .unwrap();
        let w = writes(&rules(&spec).unwrap());
        assert_eq!(w[0], ("devices.deny", "a".to_string()));
        assert_eq!(w[1], ("devices.deny", "a *:* rwm".to_string()));
        assert_eq!(w[2], ("devices.allow", "c 10:229 rw".to_string()));
        assert_eq!(w[3], ("devices.allow", "c *:* m".to_string()));
        assert!(w.contains(&("devices.allow", "c 136:* rwm".to_string())));
        assert!(w.contains(&("devices.allow", "c 1:3 rwm".to_string())));
        assert_eq!(w.last().unwrap(), &("devices.allow", "b 8:0 rwm".to_string()));
        assert!(!w
            .iter()
            .any(|(f, l)| *f == "devices.allow" && l.starts_with("b 8:") && l != "b 8:0 rwm"));
    }

    #[test]
    fn fifos_are_skipped_and_tun_is_not_a_default() {
        let spec: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","linux":{"resources":{"devices":[
                {"allow":true,"type":"p","major":1,"minor":1,"access":"rw"}]},
              "devices":[{"path":"/dev/f","type":"p"}]}}"#,
        )
        .unwrap();
        let r = rules(&spec).unwrap();
        assert_eq!(r, defaults());
        assert!(!r.iter().any(|x| x.major == Some(10) && x.minor == Some(200)));
        assert_eq!(Rule::new(true, 'c', Some(-1), Some(3), "rw").line(), "c *:3 rw");
        assert_eq!(Rule::new(true, 'c', None, None, "rwm").access_bits(), 7);
        assert_eq!(Rule::new(true, 'c', None, None, "m").access_bits(), 1);
    }

    #[test]
    fn rejects_bad_access() {
        let spec: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.0.2","linux":{"resources":{"devices":[{"allow":true,"access":"rwx"}]}}}"#,
        )
        .unwrap();
        assert!(rules(&spec).is_err());
    }

    #[test]
    fn writes_into_a_fake_cgroupfs() {
        let dir = std::env::temp_dir().join(format!("berth-dev-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        apply_v1(&dir, &defaults()).unwrap();
        // Plain files keep the last write of each kind.
        assert_eq!(std::fs::read_to_string(dir.join("devices.deny")).unwrap(), "a");
        assert_eq!(
            std::fs::read_to_string(dir.join("devices.allow")).unwrap(),
            "c 136:* rwm"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(apply_v1(&dir, &defaults()).is_err());
    }
}
