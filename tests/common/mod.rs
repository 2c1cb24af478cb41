//! Shared harness for the end-to-end tests: real `berth` binary, real busybox bundles, one
//! private `--root` per test, and a guard that force-deletes every container and removes every
//! file the test made, even when an assertion fails.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A missing prerequisite: under CI (the `CI` variable set, as `.ci/run` runs) a failure, so a
/// test that did not run can never count as passed there; elsewhere a printed skip.
pub fn skip(reason: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "prerequisite missing under CI: {reason}"
    );
    eprintln!("skipped: {reason}");
}

/// Skip (with a printed reason; a failure under CI) when not root: these tests create real
/// containers.
#[macro_export]
macro_rules! require_root {
    () => {
        if !common::is_root() {
            common::skip("needs root (real namespaces, mounts and cgroups)");
            return;
        }
    };
}

pub fn busybox() -> PathBuf {
    for p in ["/usr/bin/busybox", "/bin/busybox"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!("busybox not found: install busybox-static (apt-get install busybox-static)");
}

static SEQ: AtomicU32 = AtomicU32::new(0);

pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{}", std::process::id(), SEQ.fetch_add(1, Ordering::SeqCst))
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "expected success; stdout: {} stderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

/// A test's world: temp dir with a bundle and a private state root.
pub struct Env {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub bundle: PathBuf,
    pub config: Value,
    ids: std::cell::RefCell<Vec<String>>,
}

pub fn run_with_timeout(mut cmd: Command, secs: u64, stdin: Option<&[u8]>) -> Output {
    let tmp = std::env::temp_dir().join(unique("berth-out"));
    std::fs::create_dir_all(&tmp).unwrap();
    // Files, not pipes: a created container inherits our stdio and would hold a pipe open.
    let out = std::fs::File::create(tmp.join("out")).unwrap();
    let err = std::fs::File::create(tmp.join("err")).unwrap();
    cmd.stdout(out).stderr(err);
    cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = cmd.spawn().expect("spawn berth");
    if let Some(data) = stdin {
        use std::io::Write;
        let mut s = child.stdin.take().unwrap();
        s.write_all(data).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("command timed out after {secs}s: {cmd:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let stdout = std::fs::read_to_string(tmp.join("out")).unwrap_or_default();
    let stderr = std::fs::read_to_string(tmp.join("err")).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&tmp);
    use std::os::unix::process::ExitStatusExt;
    let code = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Output { code, stdout, stderr }
}

/// Install busybox and its applets into `rootfs/bin`.
pub fn make_rootfs(rootfs: &Path) {
    let bin = rootfs.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(busybox(), bin.join("busybox")).unwrap();
    let list = Command::new(busybox()).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
        }
    }
    for d in ["proc", "sys", "dev", "etc", "tmp", "root"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
}

impl Env {
    /// A bundle from `berth spec`, with terminal off and `args` as the process.
    pub fn new(args: &[&str]) -> Env {
        let dir = std::env::temp_dir().join(unique("berth-test"));
        let bundle = dir.join("bundle");
        let root = dir.join("state");
        std::fs::create_dir_all(&bundle).unwrap();
        make_rootfs(&bundle.join("rootfs"));
        let out = Command::new(BERTH).args(["spec", "-b"]).arg(&bundle).output().unwrap();
        assert!(
            out.status.success(),
            "berth spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut config: Value = serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(args);
        // Tests write into the rootfs; the few that test readonly set it back.
        config["root"]["readonly"] = json!(false);
        let env = Env {
            dir,
            root,
            bundle,
            config,
            ids: Default::default(),
        };
        env.save();
        env
    }

    /// Set the namespace entry of `typ` (replacing one already there); `path` joins an existing
    /// namespace instead of making one.
    pub fn set_ns(&mut self, typ: &str, path: Option<&str>) {
        let list = self.config["linux"]["namespaces"].as_array_mut().unwrap();
        list.retain(|n| n["type"] != typ);
        let mut entry = json!({ "type": typ });
        if let Some(p) = path {
            entry["path"] = json!(p);
        }
        list.push(entry);
    }

    /// Remove the namespace entry of `typ`: the container inherits the runtime's.
    pub fn drop_ns(&mut self, typ: &str) {
        let list = self.config["linux"]["namespaces"].as_array_mut().unwrap();
        list.retain(|n| n["type"] != typ);
    }

    /// The container's cgroup directories, from its state.json.
    pub fn cgroup_paths(&self, id: &str) -> Vec<PathBuf> {
        let st: Value = serde_json::from_slice(&std::fs::read(self.root.join(id).join("state.json")).unwrap()).unwrap();
        st["cgroup"]["paths"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| PathBuf::from(p.as_str().unwrap()))
            .collect()
    }

    /// A new user namespace mapping the container's ids 0..65536 to host ids `host`.., with
    /// the rootfs owned by the container's root (host `host`), as engines prepare it; saved.
    pub fn map_root_to(&mut self, host: u32) {
        self.set_ns("user", None);
        let map = json!([{"containerID": 0, "hostID": host, "size": 65536}]);
        self.config["linux"]["uidMappings"] = map.clone();
        self.config["linux"]["gidMappings"] = map;
        self.save();
        chown_tree(&self.rootfs(), host, host);
    }

    /// A bundle from `berth spec --rootless` run as uid:gid, with the bundle and the state
    /// directory owned by that user.
    pub fn rootless(args: &[&str], uid: u32, gid: u32) -> Env {
        let mut env = Env::new(args);
        std::fs::remove_file(env.bundle.join("config.json")).unwrap();
        chown_tree(&env.dir, uid, gid);
        let b = env.bundle.to_string_lossy().into_owned();
        env.berth_as(uid, gid, &["spec", "--rootless", "-b", &b]).ok();
        env.config = serde_json::from_slice(&std::fs::read(env.bundle.join("config.json")).unwrap()).unwrap();
        env.config["process"]["terminal"] = json!(false);
        env.config["process"]["args"] = json!(args);
        env.config["root"]["readonly"] = json!(false);
        env.save();
        std::fs::create_dir_all(&env.root).unwrap();
        chown_tree(&env.dir, uid, gid);
        env
    }

    pub fn save(&self) {
        std::fs::write(
            self.bundle.join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    pub fn rootfs(&self) -> PathBuf {
        self.bundle.join("rootfs")
    }

    pub fn id(&self, prefix: &str) -> String {
        let id = unique(prefix);
        self.ids.borrow_mut().push(id.clone());
        id
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BERTH);
        c.arg("--root").arg(&self.root).args(args);
        c
    }

    /// Run berth with a timeout (default 30 s); stdio go to files.
    pub fn berth(&self, args: &[&str]) -> Output {
        run_with_timeout(self.cmd(args), 30, None)
    }

    /// Run berth as another user (rootless tests).
    pub fn berth_as(&self, uid: u32, gid: u32, args: &[&str]) -> Output {
        use std::os::unix::process::CommandExt;
        let mut c = self.cmd(args);
        c.uid(uid).gid(gid).env_remove("XDG_RUNTIME_DIR");
        run_with_timeout(c, 30, None)
    }

    pub fn berth_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        run_with_timeout(self.cmd(args), 30, Some(stdin))
    }

    /// `run -b bundle ID` in the foreground.
    pub fn run(&self, id: &str) -> Output {
        let b = self.bundle.to_string_lossy().into_owned();
        self.berth(&["run", "-b", &b, id])
    }

    pub fn create(&self, id: &str) -> Output {
        let b = self.bundle.to_string_lossy().into_owned();
        self.berth(&["create", "-b", &b, id])
    }

    pub fn state(&self, id: &str) -> Value {
        let o = self.berth(&["state", id]);
        assert_eq!(o.code, 0, "state {id}: {}", o.stderr);
        serde_json::from_str(&o.stdout).expect("state JSON")
    }

    pub fn status(&self, id: &str) -> String {
        self.state(id)["status"].as_str().unwrap().to_string()
    }

    /// Poll until the container reaches `want` (or panic after 10 s). A container that does
    /// not exist yet (a `run` just spawned has not made its state directory) is waited for.
    pub fn wait_status(&self, id: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let o = self.berth(&["state", id]);
            let s = if o.code != 0 && o.stderr.contains("container does not exist") {
                "nonexistent".to_string()
            } else {
                assert_eq!(o.code, 0, "state {id}: {}", o.stderr);
                let v: Value = serde_json::from_str(&o.stdout).expect("state JSON");
                v["status"].as_str().unwrap().to_string()
            };
            if s == want {
                return;
            }
            assert!(Instant::now() < deadline, "container {id} stuck in {s}, wanted {want}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Nothing of this container is left: no state dir, no cgroup dir in any hierarchy.
    pub fn assert_gone(&self, id: &str) {
        assert!(!self.root.join(id).exists(), "state dir of {id} left behind");
        assert_no_cgroup(id);
    }

    /// The state root holds no container at all (the compiled-seccomp cache is not one).
    pub fn assert_root_empty(&self) {
        if let Ok(rd) = std::fs::read_dir(&self.root) {
            let left: Vec<_> = rd
                .filter_map(|e| e.ok())
                .map(|e| e.file_name())
                .filter(|n| n != "@seccomp-cache")
                .collect();
            assert!(left.is_empty(), "left in state root: {left:?}");
        }
    }
}

/// major:minor of a real (not virtual: no loop, ram or zram) block device of this host, the
/// disk berth runs on; else the first SCSI disk's (8:0): nothing answers there in the VM, but
/// the device cgroup is asked before any driver, so a denied open is EPERM either way (and
/// ENXIO when allowed).
pub fn host_disk() -> (u32, u32) {
    for e in std::fs::read_dir("/sys/dev/block").into_iter().flatten().flatten() {
        let real = std::fs::canonicalize(e.path()).unwrap_or_default();
        if !real.to_string_lossy().contains("/virtual/") {
            let name = e.file_name().to_string_lossy().into_owned();
            let (a, b) = name.split_once(':').unwrap();
            return (a.parse().unwrap(), b.parse().unwrap());
        }
    }
    (8, 0)
}

/// `chown -hR uid:gid p`: symlinks themselves, never what they point to (a rootfs's absolute
/// links name host paths).
pub fn chown_tree(p: &Path, uid: u32, gid: u32) {
    let st = Command::new("chown")
        .args(["-hR", &format!("{uid}:{gid}")])
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success(), "chown -hR {uid}:{gid} {}", p.display());
}

/// No directory named `id` anywhere under /sys/fs/cgroup (depth-limited walk).
pub fn assert_no_cgroup(id: &str) {
    fn walk(dir: &Path, id: &str, depth: u32) {
        if depth > 6 {
            return;
        }
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.filter_map(|e| e.ok()) {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                assert_ne!(
                    e.file_name().to_string_lossy(),
                    id,
                    "cgroup {} left behind",
                    e.path().display()
                );
                walk(&e.path(), id, depth + 1);
            }
        }
    }
    walk(Path::new("/sys/fs/cgroup"), id, 0);
}

impl Drop for Env {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let _ = run_with_timeout(self.cmd(&["delete", "--force", id]), 30, None);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Compile a small C program statically (for probes run inside a container). None without gcc.
pub fn cc_static(src: &str, out: &Path) -> Option<()> {
    let dir = std::env::temp_dir().join(unique("berth-cc"));
    std::fs::create_dir_all(&dir).ok()?;
    let c = dir.join("p.c");
    std::fs::write(&c, src).ok()?;
    let st = Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(out)
        .arg(&c)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    let _ = std::fs::remove_dir_all(&dir);
    st.ok().filter(|s| s.success()).map(drop)
}

/// Unmount every mount at or below `dir` (deepest first), as engines leave overlay and shm
/// mounts in their private state directories.
pub fn unmount_under(dir: &Path) {
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Run `cmd` under script(1) so it gets a terminal. script's own stdin stays open (a pipe we
/// hold) until the command is done: EOF on it would end the session early. Returns (exit, output).
pub fn in_terminal(cmd: &str) -> (Option<i32>, String) {
    use std::io::Read;
    let mut child = Command::new("script")
        .args(["-qec", cmd, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("script(1) from bsdutils");
    let keep = child.stdin.take();
    let mut out = String::new();
    let _ = child.stdout.take().unwrap().read_to_string(&mut out);
    let st = child.wait().unwrap();
    drop(keep);
    (st.code(), out)
}

// ---- container engines (engine_podman.rs, engine_docker.rs, engine_containerd.rs) ----

/// Root and every `(tool, why)` installed (`tool --version` runs); otherwise the reason is
/// printed ("skipped: needs TOOL (WHY)") and the engine test returns.
pub fn engine_available(tools: &[(&str, &str)]) -> bool {
    if !is_root() {
        skip("needs root");
        return false;
    }
    for (tool, why) in tools {
        if Command::new(tool).arg("--version").output().is_err() {
            skip(&format!("needs {tool} ({why})"));
            return false;
        }
    }
    true
}

/// A private directory for a daemon, short because Unix socket paths are limited to 108 bytes.
pub fn short_dir(tag: &str) -> PathBuf {
    let dir = PathBuf::from(format!(
        "/tmp/{tag}{}-{}",
        std::process::id(),
        unique("x").rsplit('-').next().unwrap()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// (exit code, stdout, stderr) of `cmd`, stdin from /dev/null.
pub fn output3(mut cmd: Command) -> (i32, String, String) {
    let o = cmd.stdin(Stdio::null()).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A busybox rootfs (made at `dir/image`, with the empty /etc/hostname podman mounts over) fed
/// as a tarball to `import`'s stdin (`podman import - NAME`, `docker import - NAME`); panics
/// naming `what` if it fails.
pub fn import_busybox(dir: &Path, mut import: Command, what: &str) {
    let rootfs = dir.join("image");
    make_rootfs(&rootfs);
    std::fs::write(rootfs.join("etc/hostname"), "").unwrap();
    let mut tar = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let st = import.stdin(tar.stdout.take().unwrap()).stdout(Stdio::null()).status();
    assert!(tar.wait().unwrap().success() && st.unwrap().success(), "{what}");
}
