//! linux.namespaces -> clone flags, joins by path, id maps (`plan`, no I/O); the joined
//! namespaces are opened in the parent (`open`, or `join_process` for exec).

pub mod netdev;

use anyhow::{anyhow, Context, Result};
use oci_spec::runtime::{Linux, LinuxIdMapping, LinuxNamespaceType as T};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::PathBuf;

pub const CLONE_NEWTIME: i32 = 0x80;

pub fn flag(t: T) -> i32 {
    match t {
        T::Mount => libc::CLONE_NEWNS,
        T::Cgroup => libc::CLONE_NEWCGROUP,
        T::Uts => libc::CLONE_NEWUTS,
        T::Ipc => libc::CLONE_NEWIPC,
        T::User => libc::CLONE_NEWUSER,
        T::Pid => libc::CLONE_NEWPID,
        T::Network => libc::CLONE_NEWNET,
        T::Time => CLONE_NEWTIME,
    }
}

/// setns order (runc's), the mount namespace last; the init takes the user namespace out of it
/// and joins it after the others it may join with its host capabilities
/// (init::join_namespaces).
const JOIN_ORDER: [T; 8] = [
    T::User,
    T::Ipc,
    T::Uts,
    T::Network,
    T::Pid,
    T::Time,
    T::Cgroup,
    T::Mount,
];

/// A namespace joined by path, as the config names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinPath {
    pub typ: T,
    pub path: PathBuf,
}

/// A joined namespace, opened.
pub struct Join {
    pub flag: i32,
    pub fd: OwnedFd,
    pub path: PathBuf,
}

pub struct NsPlan {
    /// Namespaces to create.
    pub new: i32,
    /// Namespaces to join by path, in JOIN_ORDER: what `plan` decided.
    pub join: Vec<JoinPath>,
    /// `join`, opened (process::Plan::acquire); the init joins these.
    pub joins: Vec<Join>,
    pub uid_map: String,
    pub gid_map: String,
    /// "monotonic S N\nboottime S N\n" for /proc/self/timens_offsets.
    pub time_offsets: String,
}

fn map_text(m: &Option<Vec<LinuxIdMapping>>) -> String {
    m.iter()
        .flatten()
        .map(|e| format!("{} {} {}\n", e.container_id(), e.host_id(), e.size()))
        .collect()
}

impl NsPlan {
    /// The flags of the namespaces joined by path.
    pub fn joined(&self) -> i32 {
        self.join.iter().fold(0, |m, j| m | flag(j.typ))
    }
}

/// The namespaces to create and to join, from the config alone (no path is opened here).
pub fn plan(linux: &Linux) -> NsPlan {
    let mut new = 0;
    let mut join = Vec::new();
    let list = linux.namespaces().clone().unwrap_or_default();
    for t in JOIN_ORDER {
        let Some(ns) = list.iter().find(|n| n.typ() == t) else {
            continue;
        };
        match ns.path() {
            Some(p) if !p.as_os_str().is_empty() => join.push(JoinPath {
                typ: t,
                path: p.clone(),
            }),
            _ => new |= flag(t),
        }
    }
    let mut time_offsets = String::new();
    for (clock, off) in linux.time_offsets().iter().flatten() {
        time_offsets.push_str(&format!(
            "{clock} {} {}\n",
            off.secs().unwrap_or(0),
            off.nanosecs().unwrap_or(0)
        ));
    }
    NsPlan {
        new,
        join,
        joins: Vec::new(),
        uid_map: map_text(linux.uid_mappings()),
        gid_map: map_text(linux.gid_mappings()),
        time_offsets,
    }
}

/// Open the namespaces `plan` joins by path, in the parent (the init only calls setns).
pub fn open(join: &[JoinPath]) -> Result<Vec<Join>> {
    join.iter()
        .map(|j| {
            let fd = crate::sys::open(j.path.as_path(), libc::O_RDONLY, 0)
                .map_err(|e| anyhow!("linux.namespaces: open {} namespace {}: {e}", j.typ, j.path.display()))?;
            Ok(Join {
                flag: flag(j.typ),
                fd,
                path: j.path.clone(),
            })
        })
        .collect()
}

/// Join the namespaces `types` of a running process (exec into a container), each opened
/// through `proc_dir`, an fd of that process's /proc/<pid> directory: a lookup under it reaches
/// that process or fails once it is gone, never a process that reused the pid. Opened here, in
/// the parent, and joined in JOIN_ORDER by the child, as `open` does for paths.
pub fn join_process(proc_dir: BorrowedFd, pid: i32, types: &[T]) -> Result<Vec<Join>> {
    let mut joins = Vec::new();
    for t in JOIN_ORDER.into_iter().filter(|t| types.contains(t)) {
        let rel = format!("ns/{}", name(flag(t)));
        let path = PathBuf::from(format!("/proc/{pid}/{rel}"));
        let fd = crate::sys::openat(proc_dir, rel.as_str(), libc::O_RDONLY, 0)
            .map_err(|e| anyhow!("open {t} namespace {} of the container's init: {e}", path.display()))?;
        joins.push(Join {
            flag: flag(t),
            fd,
            path,
        });
    }
    Ok(joins)
}

/// Not the initial user namespace (e.g. inside rootless podman, where berth runs as uid 0 of
/// the user's namespace): the initial one maps all 2^32 ids.
pub fn running_in_userns() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .is_ok_and(|m| m.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"])
}

/// Is `map` the one line "N <id> 1" an unprivileged process may write for itself?
pub fn is_single_own(map: &str, id: u32) -> bool {
    let lines: Vec<Vec<&str>> = map.lines().map(|l| l.split_whitespace().collect()).collect();
    lines.len() == 1 && lines[0].len() == 3 && lines[0][1] == id.to_string() && lines[0][2] == "1"
}

/// newuidmap/newgidmap (Debian `uidmap`): setuid helpers that write the ranges /etc/subuid and
/// /etc/subgid grant to the caller.
fn helper(tool: &str, pid: i32, map: &str) -> Result<()> {
    let mut cmd = std::process::Command::new(tool);
    cmd.arg(pid.to_string()).args(map.split_whitespace());
    let out = cmd
        .output()
        .map_err(|e| anyhow!("run {tool} (install the uidmap package): {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(anyhow!(
            "{tool} {pid} {}: {}",
            map.split_whitespace().collect::<Vec<_>>().join(" "),
            err.trim()
        ));
    }
    Ok(())
}

/// Write a child's uid/gid maps from the parent. Root in the initial user namespace writes any
/// ranges itself. An unprivileged caller may write only the single mapping of its own id (after
/// "deny" in setgroups for the gid map, as the kernel demands); anything else goes through
/// newuidmap/newgidmap, as runc does.
pub fn write_maps(pid: i32, ns: &NsPlan) -> Result<()> {
    let euid = nix::unistd::geteuid().as_raw();
    let egid = nix::unistd::getegid().as_raw();
    let write = |file: &str, map: &str| {
        std::fs::write(format!("/proc/{pid}/{file}"), map).with_context(|| format!("write {file} {:?}", map.trim()))
    };
    if euid == 0 {
        write("uid_map", &ns.uid_map)?;
        return write("gid_map", &ns.gid_map);
    }
    if is_single_own(&ns.uid_map, euid) {
        write("uid_map", &ns.uid_map)?;
    } else {
        helper("newuidmap", pid, &ns.uid_map)?;
    }
    if is_single_own(&ns.gid_map, egid) {
        write("setgroups", "deny")?;
        write("gid_map", &ns.gid_map)
    } else {
        helper("newgidmap", pid, &ns.gid_map)
    }
}

pub fn name(flag: i32) -> &'static str {
    match flag {
        libc::CLONE_NEWNS => "mnt",
        libc::CLONE_NEWCGROUP => "cgroup",
        libc::CLONE_NEWUTS => "uts",
        libc::CLONE_NEWIPC => "ipc",
        libc::CLONE_NEWUSER => "user",
        libc::CLONE_NEWPID => "pid",
        libc::CLONE_NEWNET => "net",
        CLONE_NEWTIME => "time",
        _ => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_new_namespaces_and_maps() {
        let linux: Linux = serde_json::from_str(
            r#"{"namespaces":[{"type":"pid"},{"type":"mount"},{"type":"user"},{"type":"time"}],
                "uidMappings":[{"containerID":0,"hostID":1000,"size":1},{"containerID":1,"hostID":100000,"size":65536}],
                "gidMappings":[{"containerID":0,"hostID":1000,"size":1}],
                "timeOffsets":{"monotonic":{"secs":7,"nanosecs":0}}}"#,
        )
        .unwrap();
        let p = plan(&linux);
        assert_eq!(
            p.new,
            libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWUSER | CLONE_NEWTIME
        );
        assert!(p.join.is_empty());
        assert_eq!(p.uid_map, "0 1000 1\n1 100000 65536\n");
        assert_eq!(p.time_offsets, "monotonic 7 0\n");
    }

    #[test]
    fn single_own_mapping_is_recognised() {
        assert!(is_single_own("0 1000 1\n", 1000));
        assert!(!is_single_own("0 1000 1\n", 1001));
        assert!(!is_single_own("0 1000 2\n", 1000));
        assert!(!is_single_own("0 1000 1\n1 100000 65536\n", 1000));
    }

    /// exec's pid-reuse guard: namespaces are opened through the init's /proc directory, so
    /// once that process is gone (and its pid free for reuse) they cannot be opened at all.
    #[test]
    fn join_process_reaches_that_process_or_nothing() {
        let mut child = std::process::Command::new("sleep").arg("100").spawn().unwrap();
        let pid = child.id() as i32;
        let dir = crate::sys::open(format!("/proc/{pid}").as_str(), libc::O_PATH | libc::O_DIRECTORY, 0).unwrap();
        let p = join_process(std::os::fd::AsFd::as_fd(&dir), pid, &[T::Mount, T::User, T::Network]).unwrap();
        let order: Vec<i32> = p.iter().map(|j| j.flag).collect();
        assert_eq!(order, vec![libc::CLONE_NEWUSER, libc::CLONE_NEWNET, libc::CLONE_NEWNS]);
        let want = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
        let got = std::fs::read_link(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&p[1].fd)));
        assert_eq!(got.unwrap(), want);
        child.kill().unwrap();
        child.wait().unwrap();
        let e = join_process(std::os::fd::AsFd::as_fd(&dir), pid, &[T::Network])
            .err()
            .unwrap();
        assert!(e.to_string().contains(&format!("/proc/{pid}/ns/net")), "{e}");
    }

    #[test]
    fn joins_open_paths_in_order() {
        let linux: Linux = serde_json::from_str(
            r#"{"namespaces":[{"type":"mount","path":"/proc/self/ns/mnt"},{"type":"user","path":"/proc/self/ns/user"},{"type":"uts"}]}"#,
        )
        .unwrap();
        let p = plan(&linux);
        assert_eq!(p.new, libc::CLONE_NEWUTS);
        assert_eq!(p.joined(), libc::CLONE_NEWUSER | libc::CLONE_NEWNS);
        let joins = open(&p.join).unwrap();
        let order: Vec<i32> = joins.iter().map(|j| j.flag).collect();
        assert_eq!(order, vec![libc::CLONE_NEWUSER, libc::CLONE_NEWNS]);
        let bad: Linux =
            serde_json::from_str(r#"{"namespaces":[{"type":"network","path":"/nonexistent/ns"}]}"#).unwrap();
        let e = open(&plan(&bad).join).err().unwrap().to_string();
        assert!(
            e.starts_with("linux.namespaces: open net namespace /nonexistent/ns: "),
            "{e}"
        );
    }
}
