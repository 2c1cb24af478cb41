//! Where a container lives under the systemd driver: runc's reading of `linux.cgroupsPath`
//! (libcontainer/specconv CreateCgroupConfig, cgroups/systemd ExpandSlice and getUnitName).

use anyhow::{bail, Result};
use std::path::PathBuf;

/// The unit prefix when cgroupsPath is empty. runc uses "runc"; berth uses its own name so
/// that a berth container and a runc container with the same id (each runtime has its own
/// state root, so both may exist) never fight over one unit, and so that `systemctl` shows
/// which runtime owns a scope.
pub const DEFAULT_PREFIX: &str = "berth";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitPath {
    /// The parent slice unit ("system.slice", "machine.slice", "-.slice" for the root).
    pub slice: String,
    pub prefix: String,
    pub name: String,
}

impl UnitPath {
    /// `cgroups_path`: the config's, None or "" for the default `<slice>:berth:<id>` where the
    /// slice is system.slice, or user.slice for rootless (the user's own systemd).
    pub fn parse(cgroups_path: Option<&str>, id: &str, rootless: bool) -> Result<UnitPath> {
        let default_slice = if rootless { "user.slice" } else { "system.slice" };
        let p = cgroups_path.unwrap_or("");
        if p.is_empty() {
            return Ok(UnitPath {
                slice: default_slice.into(),
                prefix: DEFAULT_PREFIX.into(),
                name: id.into(),
            });
        }
        let parts: Vec<&str> = p.split(':').collect();
        if parts.len() != 3 {
            bail!("expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups, got {p:?} instead");
        }
        let slice = if parts[0].is_empty() { default_slice } else { parts[0] };
        // Validated here rather than when systemd refuses the unit, so that nothing is made
        // for a path that cannot work.
        expand_slice(slice)?;
        if parts[2].is_empty() {
            bail!("cgroupsPath {p:?}: empty name");
        }
        Ok(UnitPath {
            slice: slice.into(),
            prefix: parts[1].into(),
            name: parts[2].into(),
        })
    }

    /// `<prefix>-<name>.scope`, or the name itself when it is a slice (runc's getUnitName:
    /// kubelet asks for pod slices this way).
    pub fn unit(&self) -> String {
        if self.name.ends_with(".slice") {
            return self.name.clone();
        }
        format!("{}-{}.scope", self.prefix, self.name)
    }

    /// The unit's directory relative to the cgroup root of the systemd instance:
    /// the expanded slice, then the unit. `manager_cgroup`: the user instance's own cgroup
    /// (rootless: "/user.slice/user-1000.slice/user@1000.service"), under which its slices live.
    pub fn cgroup(&self, manager_cgroup: Option<&str>) -> Result<PathBuf> {
        let mut p = PathBuf::from("/");
        if let Some(m) = manager_cgroup {
            p.push(m.trim_start_matches('/'));
        }
        p.push(expand_slice(&self.slice)?.trim_start_matches('/'));
        p.push(self.unit());
        Ok(p)
    }
}

/// A cgroupsPath written for the systemd driver ("machine.slice:libpod:<id>"): refused by the
/// cgroupfs driver rather than made into a directory of that name.
pub fn looks_like_unit_path(p: &str) -> bool {
    !p.starts_with('/') && p.matches(':').count() == 2
}

/// runc's ExpandSlice: systemd names nested slices with dashes, "a-b-c.slice" lives at
/// /a.slice/a-b.slice/a-b-c.slice; "-.slice" is the root.
pub fn expand_slice(slice: &str) -> Result<String> {
    let bad = || anyhow::anyhow!("invalid slice name: {slice}");
    let Some(stem) = slice.strip_suffix(".slice") else {
        return Err(bad());
    };
    if slice.contains('/') {
        return Err(bad());
    }
    if stem == "-" {
        return Ok("/".into());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for c in stem.split('-') {
        // "a--b.slice", "-a.slice", "a-.slice" and ".slice" have an empty component.
        if c.is_empty() {
            return Err(bad());
        }
        path += &format!("/{prefix}{c}.slice");
        prefix += &format!("{c}-");
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_nested_slices() {
        assert_eq!(expand_slice("system.slice").unwrap(), "/system.slice");
        assert_eq!(expand_slice("a-b-c.slice").unwrap(), "/a.slice/a-b.slice/a-b-c.slice");
        assert_eq!(
            expand_slice("kubepods-burstable-pod1234.slice").unwrap(),
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234.slice"
        );
        assert_eq!(expand_slice("-.slice").unwrap(), "/");
        for bad in [
            "",
            ".slice",
            "a",
            "a.scope",
            "a--b.slice",
            "-a.slice",
            "a-.slice",
            "a/b.slice",
            "slice",
        ] {
            let e = expand_slice(bad).unwrap_err().to_string();
            assert_eq!(e, format!("invalid slice name: {bad}"));
        }
    }

    #[test]
    fn parses_slice_prefix_name() {
        let u = UnitPath::parse(Some("machine.slice:libpod:abc"), "id", false).unwrap();
        assert_eq!(u.slice, "machine.slice");
        assert_eq!(u.unit(), "libpod-abc.scope");
        assert_eq!(
            u.cgroup(None).unwrap(),
            PathBuf::from("/machine.slice/libpod-abc.scope")
        );
        let u = UnitPath::parse(Some("kubepods-besteffort-pod1.slice:cri-containerd:c1"), "id", false).unwrap();
        assert_eq!(
            u.cgroup(None).unwrap(),
            PathBuf::from(
                "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-c1.scope"
            )
        );
        // a slice as the name: the unit is that slice
        let u = UnitPath::parse(Some("system.slice:x:pod.slice"), "id", false).unwrap();
        assert_eq!(u.unit(), "pod.slice");
    }

    #[test]
    fn defaults() {
        let u = UnitPath::parse(None, "c1", false).unwrap();
        assert_eq!(u.cgroup(None).unwrap(), PathBuf::from("/system.slice/berth-c1.scope"));
        assert_eq!(UnitPath::parse(Some(""), "c1", false).unwrap(), u);
        // an empty slice part is the default slice
        let u = UnitPath::parse(Some(":docker:c2"), "c1", false).unwrap();
        assert_eq!(u.unit(), "docker-c2.scope");
        assert_eq!(u.slice, "system.slice");
        // rootless: user.slice under the user instance's own cgroup
        let u = UnitPath::parse(None, "c1", true).unwrap();
        assert_eq!(
            u.cgroup(Some("/user.slice/user-1000.slice/user@1000.service")).unwrap(),
            PathBuf::from("/user.slice/user-1000.slice/user@1000.service/user.slice/berth-c1.scope")
        );
        let u = UnitPath::parse(Some("-.slice:p:n"), "c1", false).unwrap();
        assert_eq!(u.cgroup(None).unwrap(), PathBuf::from("/p-n.scope"));
    }

    #[test]
    fn malformed_paths_have_runc_errors() {
        for p in ["/a/b", "a:b", "a:b:c:d", "system.slice"] {
            let e = UnitPath::parse(Some(p), "id", false).unwrap_err().to_string();
            assert_eq!(
                e,
                format!(
                    "expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups, got {p:?} instead"
                )
            );
        }
        let e = UnitPath::parse(Some("system:p:n"), "id", false)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "invalid slice name: system");
        assert!(UnitPath::parse(Some("system.slice:p:"), "id", false).is_err());
    }
}
