//! The container's root filesystem. The parent turns the config into a `RootfsPlan` (parsed
//! options, C strings, cgroup sub-mounts); the child (setup.rs) only executes it, resolving
//! every container path inside the rootfs (resolve.rs) and never through string joins.

mod copy;
pub mod idmap;
pub mod inplace;
pub mod resolve;
pub mod setup;

use crate::sys::*;
use anyhow::{anyhow, bail, Result};
use nix::mount::MsFlags;
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Spec};
use std::ffi::CString;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attrs {
    pub set: u64,
    pub clr: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Bind {
        src: PathBuf,
        recursive: bool,
    },
    Fs {
        typ: String,
        src: String,
    },
    /// `cgroup`/`cgroup2` mounts: expanded per host layout (see setup.rs).
    Cgroup,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MountPlan {
    /// Destination relative to the container root ("proc", "dev/pts").
    pub dest: PathBuf,
    pub kind: Kind,
    /// mount(2) flags for filesystem mounts (MS_RDONLY, MS_NOSUID, ...).
    pub flags: MsFlags,
    /// Flags the options explicitly clear (`rw`, `suid`, `dev`, ...: runc's ClearedFlags).
    pub cleared: MsFlags,
    /// Filesystem-specific data ("mode=755,size=65536k").
    pub data: String,
    /// Attributes applied to the new mount alone (bind mounts: ro, nosuid, ... as runc's remount).
    pub attrs: Attrs,
    /// Attributes applied recursively (the `r*` options: rro, rnosuid, ...) with mount_setattr.
    pub rattrs: Attrs,
    /// Propagation changes applied after mounting (MS_SHARED, MS_REC|MS_SLAVE, ...).
    pub propagation: Vec<MsFlags>,
    /// `tmpcopyup` (runc extension podman uses): fill a new tmpfs with what it covers.
    pub copy_up: bool,
    /// `idmap`/`ridmap` or mount-level id mappings (idmap.rs).
    pub idmap: Option<idmap::Idmap>,
    /// The bind source as a detached tree the parent made (idmap.rs), which the child attaches
    /// instead of opening the source by path.
    pub tree: Option<idmap::Tree>,
    /// A bind source inside the rootfs, relative to it: resolved inside the root when the
    /// mount's turn comes, so it sees what earlier mounts of the list put there (runc opens
    /// sources in order) and never leaves the rootfs through an image symlink.
    pub in_root: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct DevicePlan {
    pub path: PathBuf,
    pub kind: u32,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// One cgroup hierarchy as the container sees it under a `cgroup` mount.
#[derive(Debug, Clone)]
pub struct CgroupSubMount {
    /// Directory name under the mount point ("memory", "cpu,cpuacct", "unified"; "" for v2).
    pub name: String,
    pub v2: bool,
    /// mount data for a fresh cgroupfs ("memory", "none,name=systemd").
    pub options: String,
    /// The container's cgroup on the host, bind-mounted when there is no cgroup namespace.
    pub host_dir: PathBuf,
    /// Extra names that get a symlink to `name` (comounted controllers).
    pub links: Vec<String>,
}

pub struct RootfsPlan {
    pub rootfs: PathBuf,
    pub readonly: bool,
    pub root_propagation: MsFlags,
    pub post_propagation: Option<MsFlags>,
    pub mounts: Vec<MountPlan>,
    /// /dev is not bind-mounted from the host: create default devices and links (runc's setupDev).
    pub setup_dev: bool,
    pub devices: Vec<DevicePlan>,
    pub masked: Vec<String>,
    pub readonly_paths: Vec<String>,
    pub no_pivot: bool,
    /// No mount namespace of the container's own (inherited or joined): the rootfs is a tree
    /// attached in that namespace, entered with chroot (inplace.rs).
    pub in_place: bool,
    /// The container has a user namespace: device nodes are bind-mounted from the host (mknod is
    /// refused there) and sysfs/mqueue fall back to binds when their namespace is not ours.
    pub userns: bool,
    pub cgroup_ns: bool,
    pub cgroup_mounts: Vec<CgroupSubMount>,
    /// berth runs as root: its host side can open bind sources in the container's mount
    /// namespace for the init (idmap.rs `host_source`), as runc's does.
    pub host_sources: bool,
    /// --no-pivot: the host's procfs and sysfs mounts (outside the rootfs) the init detaches
    /// before it moves the rootfs over `/` (setup.rs `hide_host_pseudo_fs`).
    pub host_pseudo_fs: Vec<PathBuf>,
}

/// runc refuses mounts inside /proc except over these files (lxcfs-style overrides).
const PROC_OK: [&str; 9] = [
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/net/dev",
];

/// Mounts over /proc redirect procfs writes (CVE-2019-19921, CVE-2023-27561, CVE-2025-52881).
pub fn check_destination(dest: &Path) -> Result<()> {
    let mut clean = PathBuf::from("/");
    for c in dest.components() {
        match c {
            Component::Normal(n) => clean.push(n),
            Component::ParentDir => {
                clean.pop();
            }
            _ => {}
        }
    }
    if clean.starts_with("/proc") && clean != Path::new("/proc") && !PROC_OK.iter().any(|p| clean == Path::new(p)) {
        bail!("mounts: destination {} is inside /proc: not allowed", dest.display());
    }
    Ok(())
}

const SYSFS_MAGIC: i64 = 0x6265_6572;

/// runc's checkProcMount, applied to a destination as the kernel resolved it inside the root
/// (`rel`: relative to the root; `fs`: the filesystem it is on), not to the string in the
/// config: an image symlink (`/data -> /proc/sys/kernel`) must not carry a volume over procfs,
/// where it would fake the files berth or the kernel's users read (CVE-2019-19921 class).
/// Refused: anything inside /proc but runc's lxcfs-style files, anything else on procfs, and a
/// destination that an image symlink redirected onto sysfs (`rel` is not the config's own
/// `dest`); a sysfs path the config names itself (/sys/fs/bpf for Cilium, /sys/kernel/debug
/// for tracing agents) is allowed, as runc allows it. /proc itself only takes a fresh procfs or
/// a bind of one, as in runc. Err is runc's text without the path.
pub fn check_resolved(
    rel: &Path,
    dest: &Path,
    fs: i64,
    kind: &Kind,
    src_fs: Option<i64>,
) -> std::result::Result<(), &'static str> {
    const INSIDE_PROC: &str = "cannot be mounted because it is inside /proc";
    let proc = Path::new("proc");
    if rel == proc {
        return match kind {
            Kind::Fs { typ, .. } if typ == "proc" => Ok(()),
            Kind::Bind { .. } if src_fs == Some(libc::PROC_SUPER_MAGIC) => Ok(()),
            _ => Err("cannot be mounted because it is not of type proc"),
        };
    }
    let under_proc = rel.starts_with(proc);
    if under_proc || fs == libc::PROC_SUPER_MAGIC {
        let abs = Path::new("/").join(rel);
        return match PROC_OK.iter().any(|p| abs == Path::new(p)) && under_proc {
            true => Ok(()),
            false => Err(INSIDE_PROC),
        };
    }
    if fs == SYSFS_MAGIC && rel != dest && !rel.starts_with("sys/fs/cgroup") && !matches!(kind, Kind::Cgroup) {
        return Err("cannot be mounted because it is inside /sys");
    }
    Ok(())
}

/// Relative, normalised container path ("/dev/../dev/pts" -> "dev/pts"). `..` never climbs
/// above the root, as the kernel resolves it inside a chroot.
pub fn rel(dest: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in dest.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Every mount option berth understands (reported by `features`; a unit test keeps this list and
/// the parsers below in step).
pub const MOUNT_OPTIONS: [&str; 70] = [
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "rbind",
    "relatime",
    "remount",
    "ro",
    "rw",
    "silent",
    "strictatime",
    "suid",
    "sync",
    "symfollow",
    "private",
    "rprivate",
    "shared",
    "rshared",
    "slave",
    "rslave",
    "unbindable",
    "runbindable",
    "rro",
    "rrw",
    "rnosuid",
    "rsuid",
    "rnodev",
    "rdev",
    "rnoexec",
    "rexec",
    "rnodiratime",
    "rdiratime",
    "rrelatime",
    "rnorelatime",
    "rnoatime",
    "ratime",
    "rstrictatime",
    "rnostrictatime",
    "rnosymfollow",
    "rsymfollow",
    "tmpcopyup",
    "idmap",
    "ridmap",
    "mode",
    "size",
    "uid",
    "gid",
    "nr_inodes",
    "newinstance",
    "ptmxmode",
    "nr_blocks",
];

fn parse_propagation(o: &str) -> Option<MsFlags> {
    Some(match o {
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// runc's option table: (set flag, clear flag) pairs.
fn parse_flag(o: &str) -> Option<(MsFlags, MsFlags)> {
    let e = MsFlags::empty();
    Some(match o {
        "async" => (e, MsFlags::MS_SYNCHRONOUS),
        "atime" => (e, MsFlags::MS_NOATIME),
        "bind" => (MsFlags::MS_BIND, e),
        "defaults" => (e, e),
        "dev" => (e, MsFlags::MS_NODEV),
        "diratime" => (e, MsFlags::MS_NODIRATIME),
        "dirsync" => (MsFlags::MS_DIRSYNC, e),
        "exec" => (e, MsFlags::MS_NOEXEC),
        "iversion" => (MsFlags::MS_I_VERSION, e),
        "lazytime" => (MsFlags::MS_LAZYTIME, e),
        "loud" => (e, MsFlags::MS_SILENT),
        "mand" => (MsFlags::MS_MANDLOCK, e),
        "noatime" => (MsFlags::MS_NOATIME, e),
        "nodev" => (MsFlags::MS_NODEV, e),
        "nodiratime" => (MsFlags::MS_NODIRATIME, e),
        "noexec" => (MsFlags::MS_NOEXEC, e),
        "noiversion" => (e, MsFlags::MS_I_VERSION),
        "nolazytime" => (e, MsFlags::MS_LAZYTIME),
        "nomand" => (e, MsFlags::MS_MANDLOCK),
        "norelatime" => (e, MsFlags::MS_RELATIME),
        "nostrictatime" => (e, MsFlags::MS_STRICTATIME),
        "nosuid" => (MsFlags::MS_NOSUID, e),
        "nosymfollow" => (MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW), e),
        "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, e),
        "relatime" => (MsFlags::MS_RELATIME, e),
        "remount" => (MsFlags::MS_REMOUNT, e),
        "ro" => (MsFlags::MS_RDONLY, e),
        "rw" => (e, MsFlags::MS_RDONLY),
        "silent" => (MsFlags::MS_SILENT, e),
        "strictatime" => (MsFlags::MS_STRICTATIME, e),
        "suid" => (e, MsFlags::MS_NOSUID),
        "sync" => (MsFlags::MS_SYNCHRONOUS, e),
        "symfollow" => (e, MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW)),
        _ => return None,
    })
}

/// The recursive `r*` options (mount_setattr(2) with AT_RECURSIVE), as runc and crun accept them.
fn parse_rattr(o: &str) -> Option<(u64, u64)> {
    Some(match o {
        "rro" => (MOUNT_ATTR_RDONLY, 0),
        "rrw" => (0, MOUNT_ATTR_RDONLY),
        "rnosuid" => (MOUNT_ATTR_NOSUID, 0),
        "rsuid" => (0, MOUNT_ATTR_NOSUID),
        "rnodev" => (MOUNT_ATTR_NODEV, 0),
        "rdev" => (0, MOUNT_ATTR_NODEV),
        "rnoexec" => (MOUNT_ATTR_NOEXEC, 0),
        "rexec" => (0, MOUNT_ATTR_NOEXEC),
        "rnodiratime" => (MOUNT_ATTR_NODIRATIME, 0),
        "rdiratime" => (0, MOUNT_ATTR_NODIRATIME),
        "rrelatime" => (MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME),
        // The access-time modes are an enum, not bits: mount_setattr(2) takes a new one only
        // with the whole MOUNT_ATTR__ATIME field in attr_clr (EINVAL otherwise). Turning
        // noatime or strictatime off means the kernel's default, relatime (0).
        "rnorelatime" => (0, 0),
        "rnoatime" => (MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME),
        "ratime" => (MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME),
        "rstrictatime" => (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME),
        "rnostrictatime" => (MOUNT_ATTR_RELATIME, MOUNT_ATTR__ATIME),
        "rnosymfollow" => (MOUNT_ATTR_NOSYMFOLLOW, 0),
        "rsymfollow" => (0, MOUNT_ATTR_NOSYMFOLLOW),
        _ => return None,
    })
}

/// MS_* flags a mount applies through a follow-up attribute change: the set ones set, the
/// cleared ones cleared, nothing else touched.
fn flags_to_attrs(set: MsFlags, clr: MsFlags) -> Attrs {
    let map = [
        (MsFlags::MS_RDONLY, MOUNT_ATTR_RDONLY),
        (MsFlags::MS_NOSUID, MOUNT_ATTR_NOSUID),
        (MsFlags::MS_NODEV, MOUNT_ATTR_NODEV),
        (MsFlags::MS_NOEXEC, MOUNT_ATTR_NOEXEC),
        (MsFlags::MS_NODIRATIME, MOUNT_ATTR_NODIRATIME),
        (MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW), MOUNT_ATTR_NOSYMFOLLOW),
    ];
    let mut a = Attrs::default();
    for (f, attr) in map {
        if set.contains(f) {
            a.set |= attr;
        }
        if clr.contains(f) {
            a.clr |= attr;
        }
    }
    // The access-time mode is one field (see parse_rattr): `atime` and `nostrictatime` set the
    // default, relatime, unless an explicit mode is also asked for.
    let mut atime = None;
    if clr.intersects(MsFlags::MS_NOATIME | MsFlags::MS_STRICTATIME) {
        atime = Some(MOUNT_ATTR_RELATIME);
    }
    for (f, attr) in [
        (MsFlags::MS_NOATIME, MOUNT_ATTR_NOATIME),
        (MsFlags::MS_STRICTATIME, MOUNT_ATTR_STRICTATIME),
        (MsFlags::MS_RELATIME, MOUNT_ATTR_RELATIME),
    ] {
        if set.contains(f) {
            atime = Some(attr);
        }
    }
    if let Some(mode) = atime {
        a.set |= mode;
        a.clr |= MOUNT_ATTR__ATIME;
    }
    a
}

const PER_MOUNT: u64 =
    MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC | MOUNT_ATTR_NOSYMFOLLOW;

/// The attributes of a bind mount with options, as runc's MS_BIND|MS_REMOUNT sets them: once
/// any flag option is given (set or cleared), the mount gets exactly the flags asked for and
/// loses the source's others (unlike mount(8), see util-linux#2433); the access-time mode is
/// the source's unless one is asked for (the kernel's remount rule). No flag option: the
/// source's flags stay. Flags the kernel locks in a user namespace are handled at mount time
/// (setup.rs `apply_attrs`).
fn bind_attrs(set: MsFlags, clr: MsFlags) -> Attrs {
    let ignored = MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT;
    if (set | clr).difference(ignored).is_empty() {
        return Attrs::default();
    }
    let mut a = flags_to_attrs(set, MsFlags::empty());
    a.set &= PER_MOUNT;
    a.clr = PER_MOUNT & !a.set;
    let atime = MsFlags::MS_NOATIME | MsFlags::MS_NODIRATIME | MsFlags::MS_RELATIME | MsFlags::MS_STRICTATIME;
    if set.intersects(atime) {
        a.clr |= MOUNT_ATTR__ATIME | MOUNT_ATTR_NODIRATIME;
        a.set |= if set.contains(MsFlags::MS_STRICTATIME) {
            MOUNT_ATTR_STRICTATIME
        } else if set.contains(MsFlags::MS_NOATIME) {
            MOUNT_ATTR_NOATIME
        } else {
            MOUNT_ATTR_RELATIME
        };
        if set.contains(MsFlags::MS_NODIRATIME) {
            a.set |= MOUNT_ATTR_NODIRATIME;
        }
    }
    a
}

pub fn plan_mount(m: &oci_spec::runtime::Mount, bundle: &Path) -> Result<MountPlan> {
    let dest = m.destination();
    let mut set = MsFlags::empty();
    let mut clr = MsFlags::empty();
    let mut data = Vec::new();
    let mut rattrs = Attrs::default();
    let mut propagation = Vec::new();
    let mut copy_up = false;
    let mut idmap_opt = None;
    for o in m.options().iter().flatten() {
        if let Some((s, c)) = parse_flag(o) {
            set = (set - c) | s;
            clr |= c;
        } else if let Some(p) = parse_propagation(o) {
            propagation.push(p);
        } else if let Some((s, c)) = parse_rattr(o) {
            rattrs.set = (rattrs.set & !c) | s;
            rattrs.clr |= c;
        } else if o == "idmap" || o == "ridmap" {
            idmap_opt = Some(o == "ridmap");
        } else if o == "tmpcopyup" {
            copy_up = true;
        } else {
            data.push(o.as_str());
        }
    }
    let idmap = idmap::parse(m, idmap_opt)?;
    let typ = m.typ().clone().unwrap_or_default();
    let src = m.source().clone().unwrap_or_default();
    let is_bind = set.contains(MsFlags::MS_BIND) || typ == "bind";
    let kind = if is_bind {
        if src.as_os_str().is_empty() {
            bail!("mounts: {}: a bind mount needs a source", dest.display());
        }
        Kind::Bind {
            src: crate::container::bundle::mount_source(bundle, &src),
            recursive: set.contains(MsFlags::MS_REC),
        }
    } else if typ == "cgroup" || typ == "cgroup2" {
        Kind::Cgroup
    } else {
        if typ.is_empty() || typ == "none" {
            bail!("mounts: {}: type must be set for a non-bind mount", dest.display());
        }
        Kind::Fs {
            typ: typ.clone(),
            src: src.to_string_lossy().into_owned(),
        }
    };
    let attrs = if is_bind {
        bind_attrs(set, clr)
    } else {
        Attrs::default()
    };
    let flags = set - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
    if copy_up && typ != "tmpfs" {
        bail!("mounts: {}: tmpcopyup is only valid for tmpfs", dest.display());
    }
    Ok(MountPlan {
        dest: rel(dest),
        kind,
        flags,
        cleared: clr,
        data: data.join(","),
        attrs,
        rattrs,
        propagation,
        copy_up,
        idmap,
        tree: None,
        in_root: None,
    })
}

const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("dev/null", 1, 3),
    ("dev/zero", 1, 5),
    ("dev/full", 1, 7),
    ("dev/random", 1, 8),
    ("dev/urandom", 1, 9),
    ("dev/tty", 5, 0),
];

/// A `linux.devices` entry's path, cleaned lexically (`.`, `..`, `//`) and relative to the
/// container root, and its node type. The clean path must lie under /dev and not be /dev: a
/// prefix check alone let `/dev/../etc/shadow` make a node at the container's /etc/shadow, or,
/// in a user namespace (where nodes are bind mounts of the host's node of the same path), put
/// the host's /etc/shadow there.
pub fn check_device(d: &LinuxDevice) -> Result<(PathBuf, u32)> {
    let path = d.path();
    let clean = rel(path);
    if !path.is_absolute() || !clean.starts_with("dev") || clean == Path::new("dev") {
        bail!("linux.devices: {path:?} must be under /dev");
    }
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
        LinuxDeviceType::B => libc::S_IFBLK,
        LinuxDeviceType::P => libc::S_IFIFO,
        LinuxDeviceType::A => bail!("linux.devices: {path:?}: type 'a' is only valid in resources"),
    };
    if d.major() < 0 || d.minor() < 0 {
        bail!("linux.devices: {path:?}: negative major/minor");
    }
    Ok((clean, kind))
}

fn plan_devices(spec: &Spec, setup_dev: bool) -> Result<Vec<DevicePlan>> {
    let mut out: Vec<DevicePlan> = Vec::new();
    if setup_dev {
        for (p, major, minor) in DEFAULT_DEVICES {
            out.push(DevicePlan {
                path: p.into(),
                kind: libc::S_IFCHR,
                major,
                minor,
                mode: 0o666,
                uid: 0,
                gid: 0,
            });
        }
    }
    for d in spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().as_ref())
        .into_iter()
        .flatten()
    {
        let (path, kind) = check_device(d)?;
        let dp = DevicePlan {
            path,
            kind,
            major: d.major() as u64,
            minor: d.minor() as u64,
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        };
        out.retain(|o| o.path != dp.path);
        out.push(dp);
    }
    Ok(out)
}

fn cgroup_submounts(paths: &[PathBuf]) -> Result<Vec<CgroupSubMount>> {
    let hs = crate::cgroups::hierarchies()?;
    let pure_v2 = hs.len() == 1 && hs[0].v2;
    let mut out = Vec::new();
    // Rootless may have dropped hierarchies it cannot write: match each path to its hierarchy.
    for h in &hs {
        let Some(host_dir) = paths.iter().find(|p| p.starts_with(&h.mountpoint)) else {
            continue;
        };
        let base = h
            .mountpoint
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (name, options, links) = if h.v2 {
            (if pure_v2 { String::new() } else { base }, String::new(), Vec::new())
        } else {
            let named = h.controllers.iter().find(|c| c.starts_with("name="));
            let options = match named {
                Some(n) => format!("none,{n}"),
                None => h.controllers.join(","),
            };
            let links = h
                .controllers
                .iter()
                .filter(|c| **c != base && !c.starts_with("name="))
                .cloned()
                .collect();
            (base, options, links)
        };
        out.push(CgroupSubMount {
            name,
            v2: h.v2,
            options,
            host_dir: host_dir.clone(),
            links,
        });
    }
    Ok(out)
}

impl RootfsPlan {
    /// The mounts, devices and paths from the config alone (no I/O): `acquire` adds what the
    /// host has to give. `host_root`: berth runs as root (`host_sources`).
    pub fn build(
        spec: &Spec,
        bundle: &Path,
        rootfs: &Path,
        no_pivot: bool,
        userns: bool,
        cgroup_ns: bool,
        host_root: bool,
    ) -> Result<RootfsPlan> {
        let linux = spec
            .linux()
            .as_ref()
            .ok_or_else(|| anyhow!("config.json: linux must be set"))?;
        let mut mounts = Vec::new();
        for m in spec.mounts().iter().flatten() {
            let mut p = plan_mount(m, bundle)?;
            p.idmap = idmap::check(&p, linux)?;
            if let Kind::Bind { src, .. } = &p.kind {
                p.in_root = inside(rootfs, src);
            }
            mounts.push(p);
        }
        let setup_dev = !mounts
            .iter()
            .any(|m| m.dest == Path::new("dev") && matches!(m.kind, Kind::Bind { .. }));
        let (root_propagation, post_propagation) = match linux.rootfs_propagation().as_deref() {
            None | Some("") => (MsFlags::MS_SLAVE | MsFlags::MS_REC, None),
            Some(p) => {
                let f = parse_propagation(p).ok_or_else(|| anyhow!("linux.rootfsPropagation: unknown value {p:?}"))?;
                // private: what was asked, recursively. shared (Kubernetes' Bidirectional
                // mounts): as runc, `/` keeps the host's peer groups, so a bind mount of a
                // shared volume joins the host's group and mounts made in it reach the host;
                // the rootfs itself is bound below a private mount (setup::prepare), so nothing
                // else the container mounts does. Anything else starts from rslave. The mode
                // asked for is applied to the container's root after pivot_root too.
                if f.contains(MsFlags::MS_PRIVATE) {
                    (f | MsFlags::MS_REC, None)
                } else if f.contains(MsFlags::MS_SHARED) {
                    (f, Some(f))
                } else {
                    (MsFlags::MS_SLAVE | MsFlags::MS_REC, Some(f))
                }
            }
        };
        Ok(RootfsPlan {
            rootfs: rootfs.to_path_buf(),
            readonly: spec.root().as_ref().and_then(|r| r.readonly()).unwrap_or(false),
            root_propagation,
            post_propagation,
            devices: plan_devices(spec, setup_dev)?,
            setup_dev,
            mounts,
            masked: linux.masked_paths().clone().unwrap_or_default(),
            readonly_paths: linux.readonly_paths().clone().unwrap_or_default(),
            host_pseudo_fs: Vec::new(),
            no_pivot,
            in_place: false,
            userns,
            cgroup_ns,
            cgroup_mounts: Vec::new(),
            host_sources: host_root,
        })
    }

    /// What the host gives the plan, in the parent before the clone: the cgroup mounts'
    /// hierarchies (the container's cgroup directories `cgroup_paths`), the idmapped and
    /// detached bind sources (`state_root`: berth's state, see idmap::detach_private), and with
    /// --no-pivot the host's procfs and sysfs mounts.
    pub fn acquire(&mut self, cgroup_paths: &[PathBuf], state_root: Option<&Path>) -> Result<()> {
        if self.mounts.iter().any(|m| m.kind == Kind::Cgroup) {
            self.cgroup_mounts = cgroup_submounts(cgroup_paths)?;
        }
        idmap::make_trees(&mut self.mounts, self.root_propagation)?;
        if self.no_pivot {
            self.host_pseudo_fs = host_pseudo_fs(&self.rootfs)?;
        }
        if let (true, Some(dir)) = (self.userns, state_root) {
            idmap::detach_private(&mut self.mounts, dir, self.root_propagation)?;
        }
        Ok(())
    }
}

/// `src` relative to the rootfs when it lies inside it (plain components only: a `..` keeps
/// its host meaning).
fn inside(rootfs: &Path, src: &Path) -> Option<PathBuf> {
    let rest = src.strip_prefix(rootfs).ok()?;
    rest.components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        .then(|| rest.to_path_buf())
}

/// Mount points of full procfs and sysfs mounts of this (the host's) mount namespace outside
/// the rootfs, from mountinfo: with --no-pivot they stay in the container's mount namespace,
/// and the kernel lets a nested user namespace mount a fresh procfs or sysfs as long as one
/// fully visible mount of it exists there (mount_too_revealing). runc's msMoveRoot.
fn host_pseudo_fs(rootfs: &Path) -> Result<Vec<PathBuf>> {
    let info =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| anyhow!("read /proc/self/mountinfo: {e}"))?;
    Ok(pseudo_fs_mounts(&info, rootfs))
}

fn pseudo_fs_mounts(info: &str, rootfs: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for line in info.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let Some(sep) = f.iter().position(|x| *x == "-") else {
            continue;
        };
        let (Some(root), Some(point), Some(typ)) = (f.get(3), f.get(4), f.get(sep + 1)) else {
            continue;
        };
        let point = PathBuf::from(<std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(
            unescape_mountinfo(point.as_bytes()),
        ));
        if *root == "/" && (*typ == "proc" || *typ == "sysfs") && !point.starts_with(rootfs) {
            out.push(point);
        }
    }
    out
}

/// A field of /proc/self/mountinfo as the kernel meant it: mountinfo escapes space, tab,
/// newline and backslash as `\ooo` (cgroups/detect.rs and rootfs/inplace.rs read it too).
pub fn unescape_mountinfo(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let oct = s
            .get(i + 1..i + 4)
            .filter(|o| o.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (s[i], oct) {
            (b'\\', Some(o)) => {
                out.push(o.iter().fold(0u8, |n, c| n.wrapping_mul(8).wrapping_add(c - b'0')));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

pub fn cstr(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| anyhow!("{s:?} contains a NUL byte"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(json: &str) -> MountPlan {
        let m: oci_spec::runtime::Mount = serde_json::from_str(json).unwrap();
        plan_mount(&m, Path::new("/bundle")).unwrap()
    }

    #[test]
    fn parses_runc_options() {
        let m = mount(
            r#"{"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]}"#,
        );
        assert_eq!(m.dest, Path::new("dev"));
        assert_eq!(m.flags, MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME);
        assert_eq!(m.data, "mode=755,size=65536k");
        let b = mount(
            r#"{"destination":"/data/../x","source":"rel/dir","options":["rbind","ro","nosuid","rnoexec","rshared"]}"#,
        );
        assert_eq!(b.dest, Path::new("x"));
        assert_eq!(
            b.kind,
            Kind::Bind {
                src: "/bundle/rel/dir".into(),
                recursive: true
            }
        );
        assert_eq!(b.attrs.set, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID);
        assert_eq!(b.rattrs.set, MOUNT_ATTR_NOEXEC);
        assert_eq!(b.propagation, vec![MsFlags::MS_SHARED | MsFlags::MS_REC]);
        let rw = mount(r#"{"destination":"/x","type":"bind","source":"/s","options":["ro","rw"]}"#);
        assert_eq!(rw.attrs.set, 0);
        assert_eq!(rw.attrs.clr, PER_MOUNT);
        assert_eq!(rw.cleared, MsFlags::MS_RDONLY);
    }

    #[test]
    fn bind_options_give_exactly_the_flags_asked_for() {
        let attrs = |opts: &str| {
            mount(&format!(
                r#"{{"destination":"/x","type":"bind","source":"/s","options":{opts}}}"#
            ))
            .attrs
        };
        // Propagation and rbind alone: the source's flags stay.
        assert_eq!(attrs(r#"["rbind","rprivate"]"#), Attrs::default());
        // Any flag: the others are cleared, the access time is kept.
        let ro = attrs(r#"["bind","ro"]"#);
        assert_eq!(ro.set, MOUNT_ATTR_RDONLY);
        assert_eq!(ro.clr, PER_MOUNT & !MOUNT_ATTR_RDONLY);
        // An access-time option replaces the whole access-time state.
        let na = attrs(r#"["bind","nodev","noatime","nodiratime"]"#);
        assert_eq!(na.set, MOUNT_ATTR_NODEV | MOUNT_ATTR_NOATIME | MOUNT_ATTR_NODIRATIME);
        assert_eq!(
            na.clr & (MOUNT_ATTR__ATIME | MOUNT_ATTR_NODIRATIME),
            MOUNT_ATTR__ATIME | MOUNT_ATTR_NODIRATIME
        );
        assert_eq!(attrs(r#"["bind","strictatime"]"#).set, MOUNT_ATTR_STRICTATIME);
        // Clearing an access-time flag asks for no mode (the kernel's remount rule).
        assert_eq!(attrs(r#"["bind","atime"]"#).clr & MOUNT_ATTR__ATIME, 0);
    }

    #[test]
    fn sources_inside_the_rootfs_are_taken_relative_to_it() {
        let r = Path::new("/b/rootfs");
        assert_eq!(inside(r, Path::new("/b/rootfs/a/x")), Some(PathBuf::from("a/x")));
        assert_eq!(inside(r, Path::new("/b/rootfs")), Some(PathBuf::new()));
        assert_eq!(inside(r, Path::new("/b/rootfs/../x")), None);
        assert_eq!(inside(r, Path::new("/b/rootfsx")), None);
    }

    #[test]
    fn host_procfs_and_sysfs_mounts_come_from_mountinfo() {
        let r = Path::new("/b/rootfs");
        let info = "22 27 0:21 / /proc rw,relatime - proc proc rw\n\
                    23 27 0:22 / /sys rw shared:7 - sysfs sysfs rw\n\
                    24 23 0:22 /kernel /mnt/k rw - sysfs sysfs rw\n\
                    25 27 0:21 / /b/rootfs/proc rw - proc proc rw\n\
                    26 27 0:23 / /run/a\\040b rw - proc proc rw\n\
                    27 1 8:1 / / rw - ext4 /dev/sda1 rw\n";
        assert_eq!(
            pseudo_fs_mounts(info, r),
            [Path::new("/proc"), Path::new("/sys"), Path::new("/run/a b")]
        );
    }

    #[test]
    fn every_reported_option_is_understood() {
        let data = [
            "mode",
            "size",
            "uid",
            "gid",
            "nr_inodes",
            "newinstance",
            "ptmxmode",
            "nr_blocks",
            "tmpcopyup",
            "idmap",
            "ridmap",
        ];
        for o in MOUNT_OPTIONS {
            let known = parse_flag(o).is_some()
                || parse_propagation(o).is_some()
                || parse_rattr(o).is_some()
                || data.contains(&o);
            assert!(known, "{o}");
        }
    }

    #[test]
    fn refuses_resolved_destinations_on_procfs_and_sysfs() {
        const P: i64 = libc::PROC_SUPER_MAGIC;
        const EXT4: i64 = 0xef53;
        let bind = Kind::Bind {
            src: "/x".into(),
            recursive: false,
        };
        let proc = Kind::Fs {
            typ: "proc".into(),
            src: "proc".into(),
        };
        let ok =
            |rel: &str, fs, kind: &Kind, src| check_resolved(Path::new(rel), Path::new("data"), fs, kind, src).is_ok();
        // A sysfs path the config itself names is allowed (Cilium's /sys/fs/bpf, tracing).
        let named = |rel: &str| check_resolved(Path::new(rel), Path::new(rel), SYSFS_MAGIC, &bind, None).is_ok();
        assert!(named("sys/fs/bpf"));
        assert!(named("sys/kernel/debug"));
        // A volume that resolved into procfs, before or after /proc is mounted.
        assert!(!ok("proc/sys/kernel", P, &bind, None));
        assert!(!ok("proc/sys/kernel", EXT4, &bind, None));
        assert!(!ok("data", P, &bind, None));
        assert!(ok("proc/meminfo", P, &bind, None));
        assert!(ok("proc", EXT4, &proc, None));
        assert!(!ok("proc", EXT4, &bind, None));
        assert!(ok("proc", EXT4, &bind, Some(P)));
        assert!(!ok("sys/kernel/security", SYSFS_MAGIC, &bind, None));
        assert!(ok("sys/fs/cgroup", SYSFS_MAGIC, &Kind::Cgroup, None));
        assert!(ok("sys/fs/cgroup/memory", SYSFS_MAGIC, &bind, None));
        assert!(ok("sys", EXT4, &bind, None));
        assert!(ok("data", EXT4, &bind, None));
        assert!(ok("procfoo", EXT4, &bind, None));
    }

    #[test]
    fn device_paths_are_cleaned_and_stay_under_dev() {
        let dev = |path: &str| -> LinuxDevice {
            serde_json::from_value(serde_json::json!({"path": path, "type": "c", "major": 1, "minor": 3})).unwrap()
        };
        for (ok, want) in [
            ("/dev/null", "dev/null"),
            ("/dev//x/../mynull", "dev/mynull"),
            ("/dev/./pts/../net/tun", "dev/net/tun"),
            ("/../dev/null", "dev/null"),
        ] {
            assert_eq!(check_device(&dev(ok)).unwrap().0, Path::new(want), "{ok}");
        }
        for bad in [
            "/dev/../etc/shadow",
            "/dev/pts/../../etc/shadow",
            "/dev",
            "/dev/",
            "/dev/.",
            "/dev/x/../..",
            "/",
            "",
            "dev/null",
            "/devices/x",
            "/etc/shadow",
        ] {
            let e = check_device(&dev(bad)).unwrap_err().to_string();
            assert!(e.contains("must be under /dev"), "{bad}: {e}");
        }
    }

    #[test]
    fn refuses_mounts_into_proc() {
        assert!(check_destination(Path::new("/proc/sys/kernel")).is_err());
        assert!(check_destination(Path::new("/x/../proc/self")).is_err());
        assert!(check_destination(Path::new("/proc")).is_ok());
        assert!(check_destination(Path::new("/proc/meminfo")).is_ok());
        assert!(check_destination(Path::new("/procfoo")).is_ok());
    }
}
