//! Layout detection from /proc/self/mountinfo (pure v2, pure v1, hybrid) and runc's rules for
//! where a container's cgroup lives in each hierarchy.

use anyhow::{anyhow, Context, Result};
use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    pub mountpoint: PathBuf,
    /// The cgroup path the mount shows as its root (not "/" inside another container).
    pub root: String,
    pub v2: bool,
    /// v1: the controllers (and `name=...`) in the mount's super options.
    pub controllers: Vec<String>,
}

fn unescape(s: &str) -> String {
    String::from_utf8_lossy(&crate::rootfs::unescape_mountinfo(s.as_bytes())).into_owned()
}

/// Parse the cgroup mounts out of a mountinfo text.
#[cfg(test)]
pub fn parse_mountinfo(text: &str) -> Vec<Hierarchy> {
    parse_visible(text, |_, _| true)
}

/// Parse the cgroup mounts out of a mountinfo text, keeping only those `visible(mountpoint,
/// "major:minor")` accepts: mountinfo still lists mounts that a later mount hides (e.g. a
/// tmpfs mounted over /sys/fs/cgroup in a private mount namespace), and a hidden cgroup2
/// `unified` must not be taken for a hierarchy.
fn parse_visible(text: &str, visible: impl Fn(&Path, &str) -> bool) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        if l.len() < 5 || r.len() < 3 {
            continue;
        }
        let v2 = match r[0] {
            "cgroup2" => true,
            "cgroup" => false,
            _ => continue,
        };
        let controllers = if v2 {
            Vec::new()
        } else {
            r[2].split(',')
                .filter(|o| {
                    !matches!(*o, "rw" | "ro")
                        && !o.starts_with("release_agent")
                        && *o != "clone_children"
                        && *o != "noprefix"
                        && *o != "xattr"
                })
                .map(str::to_string)
                .collect()
        };
        let h = Hierarchy {
            mountpoint: PathBuf::from(unescape(l[4])),
            root: unescape(l[3]),
            v2,
            controllers,
        };
        if !visible(&h.mountpoint, l[2]) {
            continue;
        }
        // The same hierarchy may be mounted twice; the first mount wins.
        if !out.iter().any(|o| o.v2 == h.v2 && o.controllers == h.controllers) {
            out.push(h);
        }
    }
    out
}

/// The host's cgroup hierarchies, read once per process (create consults them several times).
pub fn hierarchies() -> Result<Vec<Hierarchy>> {
    static CACHE: std::sync::OnceLock<Vec<Hierarchy>> = std::sync::OnceLock::new();
    if let Some(hs) = CACHE.get() {
        return Ok(hs.clone());
    }
    let text = std::fs::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    Ok(CACHE.get_or_init(|| parse_visible(&text, mounted_at)).clone())
}

/// Whether the filesystem seen at `mountpoint` is the mount with device `dev` ("major:minor").
fn mounted_at(mountpoint: &Path, dev: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(mountpoint)
        .is_ok_and(|m| format!("{}:{}", nix::sys::stat::major(m.dev()), nix::sys::stat::minor(m.dev())) == dev)
}

/// This process's cgroup in a hierarchy, from /proc/self/cgroup text.
pub fn own_path(proc_cgroup: &str, h: &Hierarchy) -> Option<String> {
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrl, path) = (parts.next()?, parts.next()?, parts.next()?);
        let matches = if h.v2 {
            ctrl.is_empty()
        } else {
            let mut a: Vec<&str> = ctrl.split(',').collect();
            let mut b: Vec<&str> = h.controllers.iter().map(String::as_str).collect();
            a.sort_unstable();
            b.sort_unstable();
            !ctrl.is_empty() && a == b
        };
        if matches {
            return Some(path.to_string());
        }
    }
    None
}

/// Join cgroup path components, refusing `..` so a config can never name a directory outside
/// the hierarchy.
pub fn join_clean(base: &Path, rel: &str) -> Result<PathBuf> {
    let mut p = base.to_path_buf();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(n) => p.push(n),
            Component::RootDir | Component::CurDir => {}
            _ => return Err(anyhow!("linux.cgroupsPath {rel:?} must not contain '..'")),
        }
    }
    Ok(p)
}

/// The container's directory in each hierarchy, as runc's cgroupfs driver computes it: an
/// absolute cgroupsPath is taken from the hierarchy root; a relative one, or the container id
/// when it is empty, is placed under berth's own cgroup.
pub fn plan_paths(hs: &[Hierarchy], proc_cgroup: &str, cgroups_path: Option<&str>, id: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for h in hs {
        let rel_to_root = |p: &str| -> String {
            let p = p.strip_prefix(h.root.as_str()).filter(|_| h.root != "/").unwrap_or(p);
            p.to_string()
        };
        let path = match cgroups_path.filter(|p| !p.is_empty()) {
            Some(p) if p.starts_with('/') => join_clean(&h.mountpoint, &rel_to_root(p))?,
            other => {
                let own = own_path(proc_cgroup, h).unwrap_or_else(|| "/".into());
                let base = join_clean(&h.mountpoint, &rel_to_root(&own))?;
                join_clean(&base, other.unwrap_or(id))?
            }
        };
        out.push(path);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const OWN: &str = "9:cpu:/user/a\n8:memory:/user/a\n4:freezer:/\n1:name=systemd:/init.scope\n0::/init.scope\n";

    #[test]
    fn hidden_mounts_are_skipped() {
        // cgview.sh's layout: the host's tmpfs and its cgroup2 `unified` are overmounted by a
        // tmpfs holding only the v1 hierarchies.
        let text = format!("{HYBRID}63 31 0:39 / /sys/fs/cgroup ro - tmpfs cgview rw\n66 63 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n");
        let hs = parse_visible(&text, |_, dev| dev != "0:38");
        assert!(hs.iter().all(|h| !h.v2));
        assert_eq!(hs.len(), 4);
        // The real check: /proc is the proc mount listed for it, not the root filesystem.
        let proc_dev = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .map(|l| l.split(' ').collect::<Vec<_>>())
            .filter(|f| f.len() > 4 && f[4] == "/proc")
            .map(|f| f[2].to_string())
            .next_back()
            .unwrap();
        assert!(mounted_at(Path::new("/proc"), &proc_dev));
        assert!(!mounted_at(Path::new("/proc"), "0:0"));
    }

    #[test]
    fn detects_hybrid_layout() {
        let hs = parse_mountinfo(HYBRID);
        assert_eq!(hs.len(), 5);
        assert_eq!(hs[0].controllers, vec!["cpu"]);
        assert_eq!(hs[3].controllers, vec!["name=systemd"]);
        assert!(hs[4].v2 && hs[4].mountpoint == Path::new("/sys/fs/cgroup/unified"));
    }

    #[test]
    fn paths_follow_runc_rules() {
        let hs = parse_mountinfo(HYBRID);
        let rel = plan_paths(&hs, OWN, None, "c1").unwrap();
        assert_eq!(rel[0], Path::new("/sys/fs/cgroup/cpu/user/a/c1"));
        assert_eq!(rel[2], Path::new("/sys/fs/cgroup/freezer/c1"));
        assert_eq!(rel[4], Path::new("/sys/fs/cgroup/unified/init.scope/c1"));
        let abs = plan_paths(&hs, OWN, Some("/x/y"), "c1").unwrap();
        assert_eq!(abs[1], Path::new("/sys/fs/cgroup/memory/x/y"));
        let r2 = plan_paths(&hs, OWN, Some("sub/c"), "c1").unwrap();
        assert_eq!(r2[1], Path::new("/sys/fs/cgroup/memory/user/a/sub/c"));
        assert!(plan_paths(&hs, OWN, Some("/x/../../etc"), "c1").is_err());
    }

    #[test]
    fn pure_v2_layout() {
        let hs = parse_mountinfo("30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n");
        let p = plan_paths(&hs, "0::/a\n", None, "c").unwrap();
        assert_eq!(p, vec![PathBuf::from("/sys/fs/cgroup/a/c")]);
    }
}
