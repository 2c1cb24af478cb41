//! Device rules, for both cgroup versions: the config's `linux.resources.devices` rules (in
//! order), then runc's default allowlist. v1 writes them
//! to devices.deny/devices.allow (deny everything first, below); v2 compiles them into an eBPF
//! program (bpf.rs). Without them a container root with CAP_MKNOD could `mknod` a host disk and
//! read it raw. One list for both, so a container may reach the same devices on either: v2's
//! program is compiled from `Policy`, a model of what the v1 kernel makes of the same writes.

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
    /// A negative number (the OCI "unset") or u32::MAX (the kernel's own wildcard, ~0) is any.
    pub fn new(allow: bool, typ: char, major: Option<i64>, minor: Option<i64>, access: &str) -> Rule {
        let any = |m: &i64| *m >= 0 && *m != u32::MAX as i64;
        Rule {
            allow,
            typ,
            major: major.filter(any),
            minor: minor.filter(any),
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

    /// BPF_DEVCG_ACC_* bits (the kernel's DEVCG_ACC_*): mknod 1, read 2, write 4.
    pub fn access_bits(&self) -> u8 {
        self.access
            .chars()
            .map(|c| match c {
                'm' => ACC_MKNOD,
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                _ => 0,
            })
            .fold(0, |a, b| a | b)
    }
}

pub const ACC_MKNOD: u8 = 1;
pub const ACC_READ: u8 = 2;
pub const ACC_WRITE: u8 = 4;
pub const ACC_ALL: u8 = 7;

/// One entry of a v1 devices cgroup's exception list: a 'b' or 'c' device (None: any number)
/// and the access bits it excepts from the default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exception {
    pub typ: char,
    pub major: Option<i64>,
    pub minor: Option<i64>,
    pub access: u8,
}

/// What a v1 devices cgroup holds after a list of devices.allow/deny writes
/// (security/device_cgroup.c): a default (allow everything or nothing) and the exceptions to
/// it. berth's v1 writes start with a deny-all, so a Policy starts as "deny, no exceptions".
/// `apply` is devcgroup_update_access; `allows` is the check of every open and mknod.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub default_allow: bool,
    pub exceptions: Vec<Exception>,
}

impl Policy {
    pub fn from_rules(rules: &[Rule]) -> Result<Policy> {
        let mut p = Policy::default();
        for r in rules {
            p.apply(r)?;
        }
        Ok(p)
    }

    /// One write. Type 'a' resets to allow-all or deny-all (the rest of its line is ignored).
    /// A rule with the default's verdict removes its access from the exception of exactly its
    /// type and numbers (a wildcard exception is not split); one against the default adds to
    /// that exception. Refused as runc refuses it (both versions: the config fails): a removal
    /// that a wider wildcard exception would silently undo ("cannot punch a hole").
    pub fn apply(&mut self, r: &Rule) -> Result<()> {
        if r.typ == 'a' {
            *self = Policy {
                default_allow: r.allow,
                exceptions: Vec::new(),
            };
            return Ok(());
        }
        let bits = r.access_bits();
        let exact = |e: &Exception| e.typ == r.typ && e.major == r.major && e.minor == r.minor;
        if r.allow != self.default_allow {
            match self.exceptions.iter_mut().find(|e| exact(e)) {
                Some(e) => e.access |= bits,
                None => self.exceptions.push(Exception {
                    typ: r.typ,
                    major: r.major,
                    minor: r.minor,
                    access: bits,
                }),
            }
            return Ok(());
        }
        let wider = |e: &Exception| {
            e.typ == r.typ
                && !exact(e)
                && (e.major.is_none() || e.major == r.major)
                && (e.minor.is_none() || e.minor == r.minor)
        };
        if let Some(w) = self.exceptions.iter().find(|e| wider(e) && e.access & bits != 0) {
            let verdict = |allow| if allow { "allow" } else { "deny" };
            bail!(
                "linux.resources.devices: {} {:?} inside the wider {} rule {:?} is not supported \
                 (cgroup v1 cannot punch a hole in a wildcard rule, and would ignore it)",
                verdict(r.allow),
                r.line(),
                verdict(!r.allow),
                Rule::new(!r.allow, w.typ, w.major, w.minor, &access_string(w.access)).line()
            );
        }
        if let Some(i) = self.exceptions.iter().position(exact) {
            self.exceptions[i].access &= !bits;
            if self.exceptions[i].access == 0 {
                self.exceptions.remove(i);
            }
        }
        Ok(())
    }

    /// Whether an access (ACC_* bits, as one open or mknod asks them) to a device is allowed:
    /// on deny-all, one exception must grant all of it; on allow-all, an exception refusing
    /// any part of it refuses it.
    pub fn allows(&self, typ: char, major: u32, minor: u32, access: u8) -> bool {
        let mut hits = self.exceptions.iter().filter(|e| {
            e.typ == typ && e.major.is_none_or(|m| m == major as i64) && e.minor.is_none_or(|m| m == minor as i64)
        });
        if self.default_allow {
            !hits.any(|e| e.access & access != 0)
        } else {
            hits.any(|e| access & !e.access == 0)
        }
    }
}

fn access_string(bits: u8) -> String {
    [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')]
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, c)| *c)
        .collect()
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

/// Device numbers are u32 to the kernel (which refuses a larger one in devices.allow), and the
/// v2 program compares 32-bit values: a larger number must not wrap onto a real device.
fn check_number(n: Option<i64>) -> Result<()> {
    match n {
        Some(n) if n > u32::MAX as i64 => bail!("linux.resources.devices: device number {n} out of range"),
        _ => Ok(()),
    }
}

/// The effective list as runc builds it (specconv.CreateCgroupConfig): the config's rules,
/// then the defaults, applied in order with v1's semantics (`Policy`); a list v1 would apply
/// differently from what it says is refused here. The devices the config creates are checked
/// but get no rule of their own, as in runc: a deny in linux.resources.devices holds for them
/// too, and engines allow what they add there (docker/podman `--device`, CRI device plugins).
pub fn effective(resources: &[LinuxDeviceCgroup], devices: &[LinuxDevice]) -> Result<Vec<Rule>> {
    let mut out = Vec::new();
    for d in resources {
        let access = d.access().clone().unwrap_or_else(|| "rwm".to_string());
        check_access(&access)?;
        check_number(d.major())?;
        check_number(d.minor())?;
        if let Some(typ) = type_char(d.typ()) {
            out.push(Rule::new(d.allow(), typ, d.major(), d.minor(), &access));
        }
    }
    out.extend(defaults());
    for d in devices {
        // (rootfs refuses these too, but only in the container's init, after this list was
        // written: as rules they would be wildcards)
        let p = d.path().display();
        if d.typ() == LinuxDeviceType::A {
            bail!("linux.devices: {p}: type 'a' is only valid in resources");
        }
        if [d.major(), d.minor()].iter().any(|n| !(0..u32::MAX as i64).contains(n)) {
            bail!("linux.devices: {p}: major/minor out of range");
        }
    }
    Policy::from_rules(&out)?;
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

/// `update` with devices: the new rules plus runc's defaults, the same list create writes.
pub fn from_resources(devs: &[LinuxDeviceCgroup]) -> Result<Vec<Rule>> {
    effective(devs, &[])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn deny_all_then_config_then_defaults() {
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
        // As runc: the device the config creates gets no rule of its own.
        assert!(!w.iter().any(|(_, l)| l.starts_with("b 8:")));
        assert_eq!(w.len(), 3 + defaults().len());
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

    /// "+c 1:3 rw" (allow) / "-b 8:* m" (deny) / "+a" (type a), as devices.allow/deny lines.
    pub(crate) fn rule(s: &str) -> Rule {
        let (allow, rest) = (s.starts_with('+'), &s[1..]);
        let mut it = rest.split(' ');
        let typ = it.next().unwrap().chars().next().unwrap();
        if typ == 'a' {
            return Rule::new(allow, 'a', None, None, "rwm");
        }
        let (maj, min) = it.next().unwrap().split_once(':').unwrap();
        let n = |v: &str| v.parse::<i64>().ok();
        Rule::new(allow, typ, n(maj), n(min), it.next().unwrap())
    }

    /// Rule sets over a small universe (types a/b/c, numbers 1, 8, 0, 3 or any, every access),
    /// from a fixed seed (xorshift), so that failures reproduce.
    pub(crate) fn random_rule_sets(n: usize) -> Vec<Vec<Rule>> {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        (0..n)
            .map(|_| {
                (0..1 + next(8))
                    .map(|_| {
                        let typ = ['a', 'b', 'c', 'b', 'c', 'b', 'c', 'b', 'c', 'c'][next(10) as usize];
                        let major = [None, Some(1), Some(8)][next(3) as usize];
                        let minor = [None, Some(0), Some(3)][next(3) as usize];
                        let access = access_string(1 + next(7) as u8);
                        Rule::new(next(2) == 1, typ, major, minor, &access)
                    })
                    .collect()
            })
            .collect()
    }

    /// Every (type, major, minor, access) the model and the program are compared on: the
    /// numbers the rule sets use and ones they do not.
    pub(crate) fn probes() -> Vec<(char, u32, u32, u8)> {
        let mut out = Vec::new();
        for typ in ['b', 'c'] {
            for major in [1, 8, 99] {
                for minor in [0, 3, 99] {
                    for access in 1..=ACC_ALL {
                        out.push((typ, major, minor, access));
                    }
                }
            }
        }
        out
    }

    /// v1's semantics (security/device_cgroup.c), case by case: (rules, [(probe, allowed)]),
    /// probes as "c 1:3 rw". berth's v1 writes start with a deny-all.
    #[test]
    fn policy_follows_the_v1_kernel() {
        type Case<'a> = (&'a [&'a str], &'a [(&'a str, bool)]);
        let cases: &[Case] = &[
            (&[], &[("c 1:3 r", false), ("b 8:0 m", false)]),
            (
                &["+c 1:3 r"],
                &[
                    ("c 1:3 r", true),
                    ("c 1:3 w", false),
                    ("c 1:3 rw", false),
                    ("c 1:3 m", false),
                    ("c 1:4 r", false),
                    ("b 1:3 r", false),
                ],
            ),
            // A deny of a subset removes just it.
            (
                &["+c 1:3 rw", "-c 1:3 w"],
                &[("c 1:3 r", true), ("c 1:3 w", false), ("c 1:3 rw", false)],
            ),
            // Allows of the same device merge; of different wildcards they do not: one
            // exception must grant the whole request.
            (&["+c 1:3 r", "+c 1:3 w"], &[("c 1:3 rw", true)]),
            (
                &["+c 1:* r", "+c *:3 w"],
                &[
                    ("c 1:3 r", true),
                    ("c 1:3 w", true),
                    ("c 1:3 rw", false),
                    ("c 2:3 w", true),
                ],
            ),
            (
                &["+c *:* m"],
                &[("c 5:7 m", true), ("c 5:7 r", false), ("b 5:7 m", false)],
            ),
            (&["+a"], &[("c 1:3 rw", true), ("b 8:0 rwm", true)]),
            (&["+c 1:3 rwm", "-a"], &[("c 1:3 r", false)]),
            // Allow-all: an exception refuses every request that touches it.
            (
                &["+a", "-c 1:3 w"],
                &[
                    ("c 1:3 r", true),
                    ("c 1:3 w", false),
                    ("c 1:3 rw", false),
                    ("c 1:4 rw", true),
                    ("b 1:3 w", true),
                ],
            ),
            (&["+a", "-c 1:3 w", "+c 1:3 w"], &[("c 1:3 rw", true)]),
            (
                &["+a", "-b 8:* rwm"],
                &[("b 8:0 r", false), ("b 9:0 r", true), ("c 8:0 r", true)],
            ),
            // A removal touches only the exception of exactly its numbers.
            (&["-c 1:3 rwm"], &[("c 1:3 r", false)]),
            (&["+b 8:0 rwm", "-b 8:* rwm"], &[("b 8:0 r", true), ("b 8:1 r", false)]),
            (&["+b 8:* r", "-b 8:0 w"], &[("b 8:0 r", true), ("b 8:0 w", false)]),
        ];
        for (rules, want) in cases {
            let p = Policy::from_rules(&rules.iter().map(|r| rule(r)).collect::<Vec<_>>()).unwrap();
            for (probe, allowed) in want.iter() {
                let q = rule(&format!("+{probe}"));
                let (maj, min) = (q.major.unwrap() as u32, q.minor.unwrap() as u32);
                assert_eq!(
                    p.allows(q.typ, maj, min, q.access_bits()),
                    *allowed,
                    "{rules:?}: {probe}"
                );
            }
        }
    }

    /// As runc: a removal inside a wider wildcard exception (which v1 silently ignores) fails
    /// the config, on both versions; so do numbers the kernel would refuse or v2 would wrap.
    #[test]
    fn refuses_what_v1_would_ignore_or_refuse() {
        for rules in [
            &["+b 8:* r", "-b 8:0 r"][..],
            &["+c *:* rwm", "-c 1:11 w"],
            &["+a", "-b 8:* rwm", "+b 8:0 r"],
            &["+a", "-c *:3 w", "+c 1:3 rw"],
        ] {
            let e = Policy::from_rules(&rules.iter().map(|r| rule(r)).collect::<Vec<_>>()).unwrap_err();
            assert!(e.to_string().contains("punch a hole"), "{rules:?}: {e}");
        }
        // The defaults come after the config's rules: a privileged config denying part of a
        // wildcard they re-allow is refused as a whole (runc too).
        let spec = |v| serde_json::from_value::<Vec<LinuxDeviceCgroup>>(v).unwrap();
        let privileged =
            spec(serde_json::json!([{"allow": true, "access": "rwm"}, {"allow": false, "type": "c", "access": "w"}]));
        assert!(effective(&privileged, &[]).is_err());
        let big =
            spec(serde_json::json!([{"allow": true, "type": "b", "major": 4294967304i64, "minor": 0, "access": "r"}]));
        assert!(effective(&big, &[]).unwrap_err().to_string().contains("out of range"));
        // u32::MAX is the kernel's own wildcard.
        assert_eq!(
            Rule::new(true, 'c', Some(u32::MAX as i64), Some(3), "r").line(),
            "c *:3 r"
        );
        let dev = |t: &str, maj: i64| {
            serde_json::from_value::<Vec<LinuxDevice>>(
                serde_json::json!([{"path": "/dev/x", "type": t, "major": maj, "minor": 0}]),
            )
            .unwrap()
        };
        assert!(effective(&[], &dev("a", 1)).is_err());
        assert!(effective(&[], &dev("b", -1)).is_err());
        assert!(effective(&[], &dev("b", 8)).is_ok());
    }

    /// The model against the real v1 controller: each rule set written (apply_v1) into a
    /// devices cgroup of our own, its devices.list must be the model's exceptions (deny-all)
    /// or "a *:* rwm" (allow-all, whose exceptions devices.list does not show).
    #[test]
    fn policy_matches_a_real_v1_devices_cgroup() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: writing a devices cgroup needs root");
            return;
        }
        let hs = super::super::hierarchies().unwrap();
        let Some(h) = hs
            .iter()
            .find(|h| !h.v2 && h.controllers.iter().any(|c| c == "devices"))
        else {
            eprintln!("skipped: no cgroup v1 devices hierarchy on this host");
            return;
        };
        let dir = h.mountpoint.join(format!("berth-unit-devices-{}", std::process::id()));
        std::fs::create_dir(&dir).unwrap();
        let result = std::panic::catch_unwind(|| {
            let mut compared = 0;
            for rules in random_rule_sets(300) {
                let Ok(p) = Policy::from_rules(&rules) else { continue };
                apply_v1(&dir, &rules).unwrap();
                let list = std::fs::read_to_string(dir.join("devices.list")).unwrap();
                let want: Vec<String> = if p.default_allow {
                    vec!["a *:* rwm".to_string()]
                } else {
                    p.exceptions
                        .iter()
                        .map(|e| Rule::new(true, e.typ, e.major, e.minor, &access_string(e.access)).line())
                        .collect()
                };
                assert_eq!(list.lines().collect::<Vec<_>>(), want, "{rules:?}");
                compared += 1;
            }
            compared
        });
        std::fs::remove_dir(&dir).unwrap();
        assert!(result.unwrap() > 200);
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
