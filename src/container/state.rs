//! The lifecycle state machine and the on-disk state of one container.
//!
//! `<root>/<id>/state.json` holds what the live process cannot tell us (bundle, cgroups, start
//! time); the status itself is always derived from the live process, never trusted from disk:
//! - `pid == 0`: the creating berth has not finished (`creating`); if it died, `delete` cleans up.
//! - the pid is gone, a zombie, or its start time differs (pid reuse): `stopped`.
//! - the container's freezer says FROZEN: `paused`.
//! - `exec.fifo` still exists (start removes it): `created`; otherwise `running`.
//!
//! Writes are atomic (temp file, fsync, rename) and every mutating command holds an exclusive
//! flock on the container directory, so concurrent commands on one id serialise.

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const STATE_FILE: &str = "state.json";
pub const FIFO: &str = "exec.fifo";
/// The seccomp profile create applied (`linux.seccomp` as JSON), when there was one: `exec`
/// loads the same filter. Beside state.json, not in it, so the commands that only read the
/// state never parse a profile of tens of kilobytes.
pub const SECCOMP_FILE: &str = "seccomp.json";
/// The runtime-spec version berth implements (printed by `--version` and `state`).
pub const OCI_VERSION: &str = "1.3.0";

#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct State {
    pub id: String,
    pub pid: i32,
    /// Field 22 of /proc/<pid>/stat at create time: guards against pid reuse.
    pub start_time: u64,
    pub bundle: String,
    pub rootfs: String,
    pub created: String,
    pub owner: u32,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub cgroup: crate::cgroups::Manager,
    /// The container has its own pid namespace: killing init kills everything.
    #[serde(default)]
    pub own_pidns: bool,
    /// The caller's NOTIFY_SOCKET: `start` forwards the container's READY=1 there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_socket: Option<String>,
    /// poststart hooks run by `start`, poststop hooks by `delete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// What `exec` inherits, as create applied it (None in the state of an older berth; exec
    /// then falls back to config.json as it is now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherit: Option<Inherited>,
    /// No mount namespace of the container's own: where its mounts are, for delete to remove
    /// them and for exec to enter its root (rootfs/inplace.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_place: Option<crate::rootfs::inplace::InPlace>,
}

/// Recorded by create for `exec`, which must give its process what the container has, not
/// what config.json says after the caller edited it.
#[derive(Serialize, Deserialize, Debug, Clone, Default, PartialEq)]
pub struct Inherited {
    /// The container's namespaces: the type, and the path create joined for the ones it did
    /// not make. exec joins each type through the init's /proc directory.
    pub namespaces: Vec<oci_spec::runtime::LinuxNamespace>,
    /// Create loaded a seccomp filter; its profile is in SECCOMP_FILE.
    #[serde(default)]
    pub seccomp: bool,
    /// linux.personality and linux.memoryPolicy: container-wide, so exec'd processes get them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personality: Option<oci_spec::runtime::LinuxPersonality>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_policy: Option<oci_spec::runtime::LinuxMemoryPolicy>,
}

impl State {
    /// state.json's bytes as `load` reads them (the fuzz targets' seam).
    pub fn parse(data: &[u8], id: &str) -> Result<State> {
        serde_json::from_slice(data).map_err(|e| anyhow!("corrupt state file for {id}: {e}"))
    }
}

/// `berth state` / `list -f json` output; field order is runc's.
#[derive(Serialize)]
pub struct OciState<'a> {
    #[serde(rename = "ociVersion")]
    pub oci_version: &'static str,
    pub id: &'a str,
    pub pid: i32,
    pub status: &'static str,
    pub bundle: &'a str,
    pub rootfs: &'a str,
    pub created: &'a str,
    pub owner: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: &'a BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }

    /// May `op` run in this state? The one table of the lifecycle's transitions.
    pub fn allows(self, op: Op) -> bool {
        use Status::*;
        match op {
            Op::Start => self == Created,
            Op::Kill | Op::Update | Op::Events => matches!(self, Created | Running | Paused),
            // Without --force only a container that is not running may be deleted (runc: a
            // created container is deleted by killing its waiting init).
            Op::Delete => matches!(self, Created | Stopped | Creating),
            Op::Pause => matches!(self, Created | Running),
            Op::Resume => self == Paused,
            Op::Exec { ignore_paused } => matches!(self, Created | Running) || (ignore_paused && self == Paused),
        }
    }

    /// `allows`, or runc's error text for the refused transition (tests and callers such as
    /// containerd's shim match these texts, so they are runc's byte for byte).
    pub fn require(self, op: Op, id: &str) -> Result<()> {
        if self.allows(op) {
            return Ok(());
        }
        use Status::*;
        match (op, self) {
            (Op::Start, Stopped) => bail!("cannot start a container that has stopped"),
            (Op::Start, Running) => bail!("cannot start an already running container"),
            (Op::Start, s) => bail!("cannot start a container in the {} state", s.as_str()),
            (Op::Delete, s) => bail!("cannot delete container {id} that is not stopped: {}", s.as_str()),
            (Op::Pause, Paused) => bail!("container {id} is already paused"),
            (Op::Resume, _) => bail!("container not paused"),
            (Op::Exec { .. }, Paused) => {
                bail!("cannot exec in a paused container (use --ignore-paused to override)")
            }
            (Op::Exec { .. }, Creating) => bail!("cannot exec in a container that is being created"),
            (Op::Exec { .. }, _) => bail!("cannot exec in a stopped container"),
            (Op::Events, _) => bail!("container with id {id} is not running"),
            (Op::Kill | Op::Update | Op::Pause, _) => bail!("container not running"),
        }
    }
}

/// What a command asks of the container (see `Status::allows`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Start,
    Kill,
    Delete,
    Pause,
    Resume,
    Exec { ignore_paused: bool },
    Update,
    Events,
}

/// `Container::load` of an id that has no state directory: `delete --force` succeeds on it.
#[derive(Debug)]
pub struct NotExist;

impl std::fmt::Display for NotExist {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("container does not exist")
    }
}

impl std::error::Error for NotExist {}

/// runc's container id rule: `^[\w+-\.]+$`, not `.` or `..`; berth also caps the length so an id
/// always fits a file name.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'));
    if !ok {
        bail!("invalid container ID format");
    }
    Ok(())
}

/// Start time (field 22 of /proc/<pid>/stat) and the state letter; None if the pid is gone.
pub fn proc_stat(pid: i32) -> Option<(u64, char)> {
    parse_stat(std::fs::File::open(format!("/proc/{pid}/stat")).ok()?)
}

/// `proc_stat` of the process whose /proc directory `dir` is.
pub fn proc_stat_in(dir: std::os::fd::BorrowedFd) -> Option<(u64, char)> {
    parse_stat(crate::sys::openat(dir, "stat", libc::O_RDONLY, 0).ok()?.into())
}

fn parse_stat(mut f: std::fs::File) -> Option<(u64, char)> {
    // One read into a page-sized buffer (the line is at most ~1 KiB): fs::read would stat the
    // file (size 0 in /proc) and then grow its buffer over four reads.
    use std::io::Read;
    let mut buf = [0u8; 4096];
    let mut len = 0;
    while len < buf.len() {
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    let s = String::from_utf8_lossy(&buf[..len]);
    // The command name (field 2) may contain spaces and ')': split after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let mut fields = rest.split(' ');
    let state = fields.next()?.chars().next()?;
    let start = fields.nth(18)?.parse().ok()?;
    Some((start, state))
}

/// One container directory, locked for the lifetime of this value when `locked`.
pub struct Container {
    pub dir: PathBuf,
    pub state: State,
    lock: Option<OwnedFd>,
}

/// runc's modes for the state (libcontainer: the root `os.MkdirAll(root, 0o700)`, each
/// container's directory 0711, state.json 0600), set explicitly: a umask only ever takes bits
/// away, and too strict is as wrong as too loose (a 0700 container directory, say).
pub const ROOT_MODE: u32 = 0o700;
pub const DIR_MODE: u32 = 0o711;
pub const STATE_MODE: u32 = 0o600;
/// exec.fifo: not runc's 0622. In runc the container's init opens it to write and `runc start`
/// reads; in berth the init holds a read end it inherited and `berth start` writes, so a write
/// bit for others would let any local user who can reach it start the container.
pub const FIFO_MODE: u32 = 0o600;

pub fn set_mode(fd: std::os::fd::BorrowedFd, mode: u32) -> nix::Result<()> {
    use std::os::fd::AsRawFd;
    nix::sys::stat::fchmod(fd.as_raw_fd(), nix::sys::stat::Mode::from_bits_truncate(mode))
}

/// The state root: made 0700 with any missing parents, as runc's `os.MkdirAll(root, 0o700)`;
/// a root that already exists keeps the mode its owner gave it (runc does not touch it either).
fn make_root(root: &Path) -> Result<()> {
    let made = match std::fs::DirBuilder::new().mode(ROOT_MODE).create(root) {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(ROOT_MODE)
                .create(root)
                .with_context(|| format!("create state root {}", root.display()))?;
            true
        }
        Err(e) => return Err(e).with_context(|| format!("create state root {}", root.display())),
    };
    if made {
        std::fs::set_permissions(root, std::fs::Permissions::from_mode(ROOT_MODE))
            .with_context(|| format!("chmod state root {}", root.display()))?;
    }
    Ok(())
}

fn lock_dir(dir: &Path) -> Result<OwnedFd> {
    let fd = crate::sys::open(dir, libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .with_context(|| format!("open {}", dir.display()))?;
    crate::sys::lock_exclusive(fd.as_fd()).with_context(|| format!("lock {}", dir.display()))?;
    Ok(fd)
}

impl Container {
    pub fn dir_of(root: &Path, id: &str) -> PathBuf {
        root.join(id)
    }

    /// Make the container directory; exactly one of concurrent creators of an id wins the mkdir.
    /// It is 0711 (runc's mode, whatever the umask): its files are reached only by name, and
    /// state.json itself is 0600 (`save`).
    pub fn create(root: &Path, id: &str) -> Result<Container> {
        validate_id(id)?;
        make_root(root)?;
        let dir = Self::dir_of(root, id);
        match std::fs::DirBuilder::new().mode(DIR_MODE).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                bail!("container with given ID already exists")
            }
            Err(e) => return Err(anyhow!("create state directory {}: {e}", dir.display())),
        }
        let lock = lock_dir(&dir)?;
        set_mode(lock.as_fd(), DIR_MODE).with_context(|| format!("chmod {}", dir.display()))?;
        let state = State {
            id: id.to_string(),
            ..Default::default()
        };
        Ok(Container {
            dir,
            state,
            lock: Some(lock),
        })
    }

    /// Load a container; `lock` takes the exclusive lock first (for mutating commands).
    pub fn load(root: &Path, id: &str, lock: bool) -> Result<Container> {
        validate_id(id)?;
        let dir = Self::dir_of(root, id);
        let lock = if lock {
            match lock_dir(&dir) {
                Ok(l) => Some(l),
                Err(_) if !dir.exists() => return Err(NotExist.into()),
                Err(e) => return Err(e),
            }
        } else {
            None
        };
        let data = match std::fs::read(dir.join(STATE_FILE)) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if dir.is_dir() {
                    // A create that died before its first state write: only delete may touch it.
                    let state = State {
                        id: id.to_string(),
                        ..Default::default()
                    };
                    return Ok(Container { dir, state, lock });
                }
                return Err(NotExist.into());
            }
            Err(e) => bail!("read state of {id}: {e}"),
        };
        let state = State::parse(&data, id)?;
        Ok(Container { dir, state, lock })
    }

    /// Atomic replace of state.json: a reader sees the old or the new file, never half of one,
    /// and after a crash the file is the old or the new one, never empty (hence the fsync: a
    /// no-op on the default tmpfs root, a disk flush on a disk-backed --root).
    /// The temp file is 0600 from its creation on (a stale one left by a crash is chmodded
    /// before anything is written into it): the state is never readable by others, not even
    /// for a moment.
    pub fn save(&self) -> Result<()> {
        let tmp = self.dir.join(".state.json.tmp");
        let data = serde_json::to_vec(&self.state)?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(STATE_MODE)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
            .with_context(|| format!("write {}", tmp.display()))?;
        set_mode(f.as_fd(), STATE_MODE).with_context(|| format!("chmod {}", tmp.display()))?;
        f.write_all(&data).with_context(|| format!("write {}", tmp.display()))?;
        f.sync_all().with_context(|| format!("fsync {}", tmp.display()))?;
        std::fs::rename(&tmp, self.dir.join(STATE_FILE)).with_context(|| format!("rename {}", tmp.display()))?;
        Ok(())
    }

    /// Is the recorded init still the same live process?
    pub fn init_alive(&self) -> bool {
        self.state.pid > 0 && self.is_init(proc_stat(self.state.pid))
    }

    fn is_init(&self, stat: Option<(u64, char)>) -> bool {
        matches!(stat, Some((start, st)) if start == self.state.start_time && st != 'Z' && st != 'X')
    }

    /// An O_PATH fd of the init's /proc/<pid> directory, verified against the recorded start
    /// time *through that fd* after opening it. Lookups under the directory (`ns/net`, ...)
    /// then reach the init or fail once it is gone, never a process that reused its pid.
    pub fn init_proc_dir(&self) -> Option<OwnedFd> {
        if self.state.pid <= 0 {
            return None;
        }
        let dir = crate::sys::open(
            format!("/proc/{}", self.state.pid).as_str(),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
        )
        .ok()?;
        self.is_init(proc_stat_in(dir.as_fd())).then_some(dir)
    }

    /// Record a new container's bundle in its state (create and restore): paths, creation time,
    /// owner, annotations, whether it has a pid namespace of its own, its hooks, and what
    /// `exec` inherits (`record_inherited`). state.json is saved by the caller.
    pub fn record_bundle(
        &mut self,
        b: &crate::container::bundle::Bundle,
        linux: &oci_spec::runtime::Linux,
    ) -> Result<()> {
        let st = &mut self.state;
        st.bundle = b.dir.to_string_lossy().into_owned();
        st.rootfs = b.rootfs.to_string_lossy().into_owned();
        st.created = crate::timefmt::rfc3339_nanos(std::time::SystemTime::now());
        st.owner = nix::unistd::geteuid().as_raw();
        st.annotations = b.spec.annotations().clone().unwrap_or_default().into_iter().collect();
        st.own_pidns = linux
            .namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Pid && n.path().is_none());
        st.hooks = b.spec.hooks().clone();
        self.record_inherited(linux)
    }

    /// Record what `exec` inherits from this create: the namespaces and the seccomp profile
    /// (written to SECCOMP_FILE here; state.json is saved by the caller).
    pub fn record_inherited(&mut self, linux: &oci_spec::runtime::Linux) -> Result<()> {
        let seccomp = linux.seccomp().as_ref();
        if let Some(s) = seccomp {
            let path = self.dir.join(SECCOMP_FILE);
            std::fs::write(&path, serde_json::to_vec(s)?).with_context(|| format!("write {}", path.display()))?;
        }
        self.state.inherit = Some(Inherited {
            namespaces: linux.namespaces().clone().unwrap_or_default(),
            seccomp: seccomp.is_some(),
            personality: linux.personality().clone(),
            memory_policy: linux.memory_policy().clone(),
        });
        Ok(())
    }

    /// The seccomp profile create applied, if it applied one (see `record_inherited`).
    pub fn inherited_seccomp(&self) -> Result<Option<oci_spec::runtime::LinuxSeccomp>> {
        if !self.state.inherit.as_ref().is_some_and(|i| i.seccomp) {
            return Ok(None);
        }
        let path = self.dir.join(SECCOMP_FILE);
        let data = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
        serde_json::from_slice(&data).map_err(|e| anyhow!("corrupt {}: {e}", path.display()))
    }

    pub fn status(&self) -> Status {
        if self.state.pid == 0 {
            return if self.lock.is_some() {
                Status::Stopped
            } else {
                Status::Creating
            };
        }
        if !self.init_alive() {
            return Status::Stopped;
        }
        if self.state.cgroup.is_frozen() {
            return Status::Paused;
        }
        if self.dir.join(FIFO).exists() {
            Status::Created
        } else {
            Status::Running
        }
    }

    /// Created → Running. The init waits on exec.fifo, which only a created container has:
    /// one byte written releases it, and the fifo is removed so the status reads `running`.
    /// The NOTIFY_SOCKET listener is bound before the release so no READY=1 is lost; it is
    /// returned for the caller to forward READY once the poststart hooks have run.
    pub fn start(&self) -> Result<Option<crate::notify::Listener>> {
        self.status().require(Op::Start, &self.state.id)?;
        let listener = crate::notify::listen_if(&self.dir, self.state.notify_socket.as_deref())?;
        let fifo = self.dir.join(FIFO);
        // Non-blocking: if the init died there is no reader and open fails with ENXIO at once.
        let fd = crate::sys::open(&fifo, libc::O_WRONLY | libc::O_NONBLOCK, 0).map_err(|e| match e {
            nix::errno::Errno::ENXIO => anyhow!("cannot start a container that has stopped"),
            e => anyhow!("open {}: {e}", fifo.display()),
        })?;
        nix::unistd::write(&fd, b"0").map_err(|e| anyhow!("write {}: {e}", fifo.display()))?;
        std::fs::remove_file(&fifo).map_err(|e| anyhow!("remove {}: {e}", fifo.display()))?;
        // The init holds the fifo's only read end until its final execve closes it
        // (trampoline.c): once our write end polls POLLERR (no reader left) the startContainer
        // hooks have run and the process is executed (or the init died). poststart hooks run
        // after that (runtime-spec).
        let mut fds = [nix::poll::PollFd::new(fd.as_fd(), nix::poll::PollFlags::empty())];
        loop {
            match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
                Ok(_) if fds[0].any().unwrap_or(true) => return Ok(listener),
                Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => bail!("wait for the container process to start: {e}"),
            }
        }
    }

    /// A pidfd for the init, verified against the recorded start time after opening it, so a
    /// signal can never reach a process that merely reused the pid.
    pub fn init_pidfd(&self) -> Option<OwnedFd> {
        let fd = crate::sys::pidfd_open(self.state.pid).ok()?;
        if self.init_alive() {
            Some(fd)
        } else {
            None
        }
    }

    pub fn signal_init(&self, sig: i32) -> Result<()> {
        let fd = self.init_pidfd().ok_or_else(|| anyhow!("container not running"))?;
        crate::sys::pidfd_send_signal(fd.as_fd(), sig).map_err(|e| match e {
            nix::errno::Errno::ESRCH => anyhow!("container not running"),
            e => anyhow!("signal {sig} to pid {}: {e}", self.state.pid),
        })
    }

    /// The lock's fd number: the cloned init must close its copy, or the flock (which belongs
    /// to the shared open file description) would stay held by the container.
    pub fn lock_fd(&self) -> Option<std::os::fd::RawFd> {
        self.lock.as_ref().map(std::os::fd::AsRawFd::as_raw_fd)
    }

    /// Give up the exclusive lock early (a foreground `run` must not block other commands).
    pub fn unlock(&mut self) {
        self.lock = None;
    }

    /// The directory holds only berth's own files, normally just state.json: unlinking the
    /// known names and one rmdir skips the open, getdents and stat calls of a generic recursive
    /// removal (delete is on every container's path). Anything else in it (a crash's temp file) makes rmdir fail, and the generic way runs.
    pub fn remove_dir(&self) -> Result<()> {
        let seccomp = self.state.inherit.as_ref().is_some_and(|i| i.seccomp);
        for name in [STATE_FILE, FIFO].into_iter().chain(seccomp.then_some(SECCOMP_FILE)) {
            let _ = std::fs::remove_file(self.dir.join(name));
        }
        if std::fs::remove_dir(&self.dir).is_ok() {
            return Ok(());
        }
        std::fs::remove_dir_all(&self.dir).with_context(|| format!("remove {}", self.dir.display()))
    }

    /// The state document the poststart and poststop hooks read.
    fn hook_state(&self, status: Status) -> Vec<u8> {
        crate::hooks::HookState {
            oci_version: OCI_VERSION,
            id: &self.state.id,
            status: status.as_str(),
            pid: self.state.pid,
            bundle: &self.state.bundle,
            annotations: &self.state.annotations,
        }
        .json()
    }

    /// The poststart hooks recorded at create. runtime-spec 1.3 (runc 1.2+): the first failure
    /// is the operation's error, and the later hooks do not run.
    pub fn run_poststart(&self) -> Result<()> {
        let hooks = self
            .state
            .hooks
            .as_ref()
            .map_or(&[][..], |h| crate::hooks::list(h.poststart()));
        if hooks.is_empty() {
            return Ok(());
        }
        crate::hooks::run_all(
            "poststart",
            hooks,
            &self.hook_state(Status::Running),
            crate::hooks::bundle_dir(&self.state.bundle),
        )
    }

    /// The poststop hooks recorded at create: all run, failures are warnings.
    pub fn run_poststop(&self) {
        let hooks = self
            .state
            .hooks
            .as_ref()
            .map_or(&[][..], |h| crate::hooks::list(h.poststop()));
        if !hooks.is_empty() {
            crate::hooks::run_warn(
                "poststop",
                hooks,
                &self.hook_state(Status::Stopped),
                crate::hooks::bundle_dir(&self.state.bundle),
            );
        }
    }

    /// The OCI state document, in runc's field order.
    pub fn oci_state(&self, status: Status, owner: String) -> OciState<'_> {
        OciState {
            oci_version: OCI_VERSION,
            id: &self.state.id,
            pid: if status == Status::Stopped { 0 } else { self.state.pid },
            status: status.as_str(),
            bundle: &self.state.bundle,
            rootfs: &self.state.rootfs,
            created: &self.state.created,
            owner,
            annotations: &self.state.annotations,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_rule_matches_runc() {
        for ok in ["a", "abc-DEF_1.2+3", &"x".repeat(1024)] {
            assert!(validate_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "../x", "a b", "a\nb", "é", &"x".repeat(1025)] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn status_machine() {
        use Status::*;
        assert!(Created.allows(Op::Start) && !Running.allows(Op::Start));
        assert!(Running.allows(Op::Kill) && !Stopped.allows(Op::Kill));
        assert!(Stopped.allows(Op::Delete) && Created.allows(Op::Delete));
        assert!(!Running.allows(Op::Delete) && !Paused.allows(Op::Delete));
        assert!(Running.allows(Op::Pause) && !Paused.allows(Op::Pause) && Paused.allows(Op::Resume));
        let exec = |ignore_paused| Op::Exec { ignore_paused };
        assert!(!Paused.allows(exec(false)) && Paused.allows(exec(true)) && !Stopped.allows(exec(true)));
        let text = |s: Status, op| s.require(op, "c1").unwrap_err().to_string();
        assert_eq!(text(Paused, Op::Pause), "container c1 is already paused");
        assert_eq!(text(Stopped, Op::Start), "cannot start a container that has stopped");
        assert_eq!(text(Paused, Op::Start), "cannot start a container in the paused state");
        assert_eq!(
            text(Running, Op::Delete),
            "cannot delete container c1 that is not stopped: running"
        );
        assert_eq!(text(Stopped, Op::Events), "container with id c1 is not running");
    }

    #[test]
    fn missing_container_is_a_typed_error() {
        let root = std::env::temp_dir().join(format!("berth-notexist-unit-{}", std::process::id()));
        for lock in [false, true] {
            let e = Container::load(&root, "nope", lock).err().unwrap();
            assert!(e.is::<NotExist>());
            assert_eq!(e.to_string(), "container does not exist");
        }
    }

    /// exec's pid-reuse guard: the /proc directory is checked against the start time through
    /// the opened fd (namespaces::tests::join_process_reaches_that_process_or_nothing shows
    /// lookups under it fail once the process is gone).
    #[test]
    fn init_proc_dir_needs_the_recorded_start_time() {
        let me = std::process::id() as i32;
        let (start, _) = proc_stat(me).unwrap();
        let c = |pid, start_time| Container {
            dir: PathBuf::new(),
            state: State {
                pid,
                start_time,
                ..Default::default()
            },
            lock: None,
        };
        assert!(c(me, start).init_proc_dir().is_some());
        assert!(c(me, start + 1).init_proc_dir().is_none());
        assert!(c(0, 0).init_proc_dir().is_none());
    }

    #[test]
    fn state_without_inherit_still_loads_and_inherit_round_trips() {
        let old = br#"{"id":"a","pid":1,"start_time":2,"bundle":"/b","rootfs":"/r","created":"t","owner":0}"#;
        assert!(State::parse(old, "a").unwrap().inherit.is_none());
        let linux: oci_spec::runtime::Linux =
            serde_json::from_str(r#"{"namespaces":[{"type":"pid"},{"type":"network","path":"/var/run/netns/x"}]}"#)
                .unwrap();
        let st = State {
            inherit: Some(Inherited {
                namespaces: linux.namespaces().clone().unwrap(),
                seccomp: true,
                personality: Some(serde_json::from_str(r#"{"domain":"LINUX32"}"#).unwrap()),
                memory_policy: None,
            }),
            ..Default::default()
        };
        let back = State::parse(&serde_json::to_vec(&st).unwrap(), "a").unwrap();
        assert_eq!(back.inherit, st.inherit);
    }

    #[test]
    fn state_is_private_even_over_a_stale_temp_file() {
        let root = std::env::temp_dir().join(format!("berth-state-unit-{}", std::process::id()));
        let c = Container::create(&root.join("a/b"), "c1").unwrap();
        let mode = |p: &Path| std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&root.join("a/b")), ROOT_MODE);
        assert_eq!(mode(&c.dir), DIR_MODE);
        // A crash left a world-readable temp file behind: the next save must not reuse its mode.
        let tmp = c.dir.join(".state.json.tmp");
        std::fs::write(&tmp, b"{}").unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();
        c.save().unwrap();
        assert_eq!(mode(&c.dir.join(STATE_FILE)), STATE_MODE);
        assert!(!tmp.exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn proc_stat_of_self() {
        let (start, st) = proc_stat(std::process::id() as i32).unwrap();
        assert!(start > 0);
        assert!(st == 'R' || st == 'S');
        assert!(proc_stat(i32::MAX).is_none());
    }
}
