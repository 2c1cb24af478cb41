//! containerd with berth as the runc binary of its runc v2 shim (`ctr run --runc-binary`), a
//! private daemon per test process and an image built from a local busybox rootfs.
mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const IMAGE: &str = "localhost/berth-bb:latest";

struct Containerd {
    dir: PathBuf,
    daemon: Child,
    /// The containerd namespace, one per test: it names the containers' parent cgroup
    /// (/<ns>/<id>) and the shim's runc root (/run/containerd/runc/<ns>), which a shared name
    /// made tests running at the same time share. berth then kept the parent it had made while
    /// the other test's container still lived in it, and that one's berth had not made it:
    /// /sys/fs/cgroup/*/<ns> was left behind.
    ns: String,
}

impl Containerd {
    fn new() -> Option<Containerd> {
        let why = "the image archive is made with podman";
        if !engine_available(&[("containerd", why), ("ctr", why), ("podman", why)]) {
            return None;
        }
        let dir = short_dir("bc");
        let d = dir.display();
        std::fs::write(
            dir.join("config.toml"),
            format!(
                "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n[grpc]\n  address = \"{d}/sock\"\n\
                 [ttrpc]\n  address = \"{d}/sock.ttrpc\"\n[debug]\n  address = \"{d}/debug.sock\"\n\
                 [metrics]\n  address = \"\"\n"
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let c = Containerd {
            dir,
            daemon,
            ns: unique("berth-ctr"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while c.out(&["version"]).0 != 0 {
            assert!(Instant::now() < deadline, "containerd did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        c.import_image();
        Some(c)
    }

    /// A docker-archive of a busybox rootfs, made with a throwaway podman store.
    fn import_image(&self) {
        let store = self.dir.join("pstore");
        std::fs::create_dir_all(&store).unwrap();
        // Private locks and temp dir: other tests run podman at the same time.
        let conf = store.join("containers.conf");
        std::fs::write(
            &conf,
            format!(
                "[engine]\nlock_type = \"file\"\ntmp_dir = \"{}/tmp\"\n",
                store.display()
            ),
        )
        .unwrap();
        let podman = |args: &[&str]| {
            let mut c = Command::new("podman");
            c.env("CONTAINERS_CONF", &conf)
                .arg("--root")
                .arg(store.join("root"))
                .arg("--runroot")
                .arg(store.join("run"))
                .args(args);
            c
        };
        import_busybox(
            &self.dir,
            podman(&["import", "-", "localhost/berth-bb:latest"]),
            "podman import",
        );
        let archive = self.dir.join("bb.tar");
        let st = podman(&[
            "save",
            "--format",
            "docker-archive",
            "-o",
            archive.to_str().unwrap(),
            "localhost/berth-bb:latest",
        ])
        .stdout(Stdio::null())
        .status();
        assert!(st.unwrap().success(), "podman save");
        let _ = podman(&["system", "reset", "-f"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        unmount_under(&self.dir);
        let (c, _, err) = self.out(&["images", "import", archive.to_str().unwrap()]);
        assert_eq!(c, 0, "ctr images import: {err}");
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ctr");
        c.arg("-a")
            .arg(self.dir.join("sock"))
            .arg("-n")
            .arg(&self.ns)
            .args(args);
        c
    }

    fn out(&self, args: &[&str]) -> (i32, String, String) {
        output3(self.cmd(args))
    }

    /// A detached task `id` running `sleep 1000`.
    fn run_detached_sleep(&self, id: &str) {
        let args = ["run", "-d", "--runc-binary", BERTH, IMAGE, id, "sleep", "1000"];
        let (code, _, err) = self.out(&args);
        assert_eq!(code, 0, "{err}");
    }

    fn run(&self, extra: &[&str], id: &str, cmd: &[&str]) -> (i32, String, String) {
        let mut args = vec!["run", "--rm", "--runc-binary", BERTH];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[IMAGE, id]);
        args.extend_from_slice(cmd);
        self.out(&args)
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let (_, tasks, _) = self.out(&["tasks", "ls", "-q"]);
        for t in tasks.split_whitespace() {
            let _ = self.out(&["tasks", "kill", "-s", "SIGKILL", t]);
            std::thread::sleep(Duration::from_millis(100));
            let _ = self.out(&["tasks", "delete", "-f", t]);
        }
        let (_, cs, _) = self.out(&["containers", "ls", "-q"]);
        for c in cs.split_whitespace() {
            let _ = self.out(&["containers", "delete", c]);
        }
        let _ = self.out(&["namespaces", "remove", &self.ns]);
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        unmount_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
        // The shim's runc root for our namespace.
        let _ = std::fs::remove_dir(format!("/run/containerd/runc/{}", self.ns));
        // berth made /<ns> and /<ns>/<id> in every hierarchy and must have removed them all.
        let left: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .map(|h| h.path().join(&self.ns))
            .filter(|d| d.is_dir())
            .collect();
        for d in &left {
            if let Ok(rd) = std::fs::read_dir(d) {
                for sub in rd.flatten().filter(|e| e.path().is_dir()) {
                    let _ = std::fs::remove_dir(sub.path());
                }
            }
            let _ = std::fs::remove_dir(d);
        }
        if !left.is_empty() && !std::thread::panicking() {
            panic!("cgroups left behind (now removed): {left:?}");
        }
    }
}

#[test]
fn containerd_runs_berth_through_the_runc_shim() {
    let Some(c) = Containerd::new() else { return };
    let (code, out, err) = c.run(&[], "echo", &["echo", "hello from containerd"]);
    assert_eq!((code, out.as_str()), (0, "hello from containerd\n"), "{err}");
    let (code, _, _) = c.run(&[], "exit", &["sh", "-c", "exit 7"]);
    assert_eq!(code, 7);
    let (code, out, err) = c.run(
        &["--env", "FOO=bar", "--cwd", "/tmp"],
        "env",
        &["sh", "-c", "echo $FOO; pwd"],
    );
    assert_eq!((code, out.as_str()), (0, "bar\n/tmp\n"), "{err}");
}

#[test]
fn containerd_detached_task_exec_kill() {
    let Some(c) = Containerd::new() else { return };
    c.run_detached_sleep("bg");
    let (code, out, err) = c.out(&[
        "tasks",
        "exec",
        "--exec-id",
        "e1",
        "bg",
        "sh",
        "-c",
        "echo in-task; exit 3",
    ]);
    assert_eq!(code, 3, "{err}");
    assert_eq!(out, "in-task\n");
    let (code, _, err) = c.out(&["tasks", "kill", "-s", "SIGKILL", "bg"]);
    assert_eq!(code, 0, "{err}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c.out(&["tasks", "ls"]).1.contains("STOPPED") {
        assert!(Instant::now() < deadline, "task did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, _, err) = c.out(&["tasks", "delete", "bg"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(c.out(&["containers", "delete", "bg"]).0, 0);
}

#[test]
fn containerd_pause_resume_and_ps() {
    let Some(c) = Containerd::new() else { return };
    c.run_detached_sleep("pr");
    let (code, out, err) = c.out(&["tasks", "ps", "pr"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().count() >= 2, "ps lists the task's pids: {out}");
    let (code, _, err) = c.out(&["tasks", "pause", "pr"]);
    assert_eq!(code, 0, "{err}");
    assert!(c.out(&["tasks", "ls"]).1.contains("PAUSED"));
    let (code, _, err) = c.out(&["tasks", "resume", "pr"]);
    assert_eq!(code, 0, "{err}");
    assert!(c.out(&["tasks", "ls"]).1.contains("RUNNING"));
    assert_eq!(c.out(&["tasks", "kill", "-s", "SIGKILL", "pr"]).0, 0);
}

/// A pid namespace whose init is a `sleep` that never reaps, as a pod's sandbox holds the
/// namespace its containers join (Kubernetes' shareProcessNamespace).
struct PidNsHolder {
    unshare: Child,
    /// The namespace's init, as the host sees it.
    init: i32,
}

impl PidNsHolder {
    fn new() -> Option<PidNsHolder> {
        let spawned = Command::new("unshare")
            .args(["--pid", "--fork", "--kill-child", "sleep", "1000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(mut unshare) = spawned else {
            skip("needs unshare (util-linux) to hold a pid namespace");
            return None;
        };
        let children = format!("/proc/{0}/task/{0}/children", unshare.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let list = std::fs::read_to_string(&children).unwrap_or_default();
            if let Some(init) = list.split_whitespace().next() {
                return Some(PidNsHolder {
                    unshare,
                    init: init.parse().unwrap(),
                });
            }
            if Instant::now() > deadline {
                let _ = unshare.kill();
                let _ = unshare.wait();
                panic!("unshare --pid --fork made no child");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn ns_path(&self) -> String {
        format!("/proc/{}/ns/pid", self.init)
    }

    /// The host pid of the process that is `nspid` in this namespace (alive or a zombie: the
    /// holder never reaps what is reparented to it).
    fn host_pid(&self, nspid: i32) -> Option<i32> {
        let ns = std::fs::read_link(self.ns_path()).unwrap();
        std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
            let pid: i32 = e.file_name().to_str()?.parse().ok()?;
            let status = std::fs::read_to_string(e.path().join("status")).ok()?;
            let ids: Vec<&str> = status
                .lines()
                .find(|l| l.starts_with("NSpid:"))?
                .split_whitespace()
                .collect();
            let inner = ids.len() >= 3 && ids[ids.len() - 1] == nspid.to_string();
            (inner && std::fs::read_link(e.path().join("ns/pid")).ok()? == ns).then_some(pid)
        })
    }
}

impl Drop for PidNsHolder {
    fn drop(&mut self) {
        // SIGKILL from the parent namespace reaches its init, and the kernel then kills
        // everything else in it.
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.init), nix::sys::signal::SIGKILL);
        let _ = self.unshare.wait();
    }
}

/// Dead: reaped, or a zombie (nothing runs, and its open files, the container's stdout among
/// them, are closed).
fn dead(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
        Err(_) => true,
    }
}

/// A container without a pid namespace of its own does not take its processes with it when
/// its init exits. The runc shim then runs `kill --all ID 9` (runc.ShouldKillAllOnExit: the
/// config joins a pid namespace), after the init is gone. berth must still signal what is left
/// in the container's cgroup: else the child lives on holding the container's stdout, and
/// `ctr run` returns only when the shim gives up waiting for the output (2 s), after which
/// `delete` kills the child.
#[test]
fn containerd_shared_pid_namespace_init_exit_kills_the_rest() {
    let Some(c) = Containerd::new() else { return };
    let Some(holder) = PidNsHolder::new() else { return };
    let with_ns = format!("pid:{}", holder.ns_path());
    let script = "echo one; echo two; sleep 1000 & echo $!; echo three";
    let mut ctr = c
        .cmd(&[
            "run",
            "--rm",
            "--runc-binary",
            BERTH,
            "--with-ns",
            &with_ns,
            IMAGE,
            "orphan",
            "sh",
            "-c",
            script,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = ctr.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let _ = tx.send((line.unwrap(), Instant::now()));
        }
    });
    let mut lines = Vec::new();
    let mut child = None;
    let mut last = None;
    while let Ok((line, at)) = rx.recv_timeout(Duration::from_secs(20)) {
        if lines.len() == 2 {
            let nspid: i32 = line.parse().unwrap_or_else(|_| panic!("the child's pid, not {line:?}"));
            child = Some(holder.host_pid(nspid).expect("the child in the holder's pid namespace"));
        }
        lines.push(line);
        if lines.len() == 4 {
            last = Some(at);
            break;
        }
    }
    let (Some(child), Some(last)) = (child, last) else {
        let _ = ctr.kill();
        let _ = ctr.wait();
        panic!("ctr run printed {lines:?}");
    };
    // The init exits right after its last line.
    while !dead(child) && last.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let child_dead_after = last.elapsed();
    let status = loop {
        if let Some(st) = ctr.try_wait().unwrap() {
            break st;
        }
        if last.elapsed() > Duration::from_secs(20) {
            let _ = ctr.kill();
            let _ = ctr.wait();
            panic!("ctr run did not return");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let returned_after = last.elapsed();
    reader.join().unwrap();
    lines.extend(rx.try_iter().map(|(l, _)| l));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut ctr.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(lines[..2], ["one", "two"]);
    assert_eq!(lines[3..], ["three"], "all the output, nothing after it");
    eprintln!("child dead after {child_dead_after:?}, ctr run returned after {returned_after:?}");
    assert!(
        child_dead_after < Duration::from_secs(1),
        "the child outlived the init by {child_dead_after:?}"
    );
    assert!(
        returned_after < Duration::from_secs(1),
        "ctr run returned {returned_after:?} after the init exited"
    );
}

/// A directory bind-mounted onto itself and made shared, as a kubelet's pod volume directory
/// is; the mounts in it are undone on drop.
struct SharedDir(PathBuf);

impl SharedDir {
    fn new(p: PathBuf) -> SharedDir {
        use nix::mount::{mount, MsFlags};
        std::fs::create_dir_all(p.join("inner")).unwrap();
        mount(Some(&p), &p, None::<&str>, MsFlags::MS_BIND, None::<&str>).unwrap();
        let d = SharedDir(p);
        mount(None::<&str>, &d.0, None::<&str>, MsFlags::MS_SHARED, None::<&str>).unwrap();
        d
    }
}

impl Drop for SharedDir {
    fn drop(&mut self) {
        unmount_under(&self.0);
    }
}

fn mount_points_under(dir: &Path) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| Path::new(m).starts_with(dir))
        .map(str::to_string)
        .collect()
}

/// Kubernetes' `mountPropagation: Bidirectional` as containerd's CRI plugin writes it:
/// rootfsPropagation rshared and an rbind mount with rshared. A mount the container makes in
/// the volume reaches the host; without rshared on the rootfs it does not.
#[test]
fn containerd_bidirectional_mount_propagation_reaches_the_host() {
    let Some(c) = Containerd::new() else { return };
    let vol = SharedDir::new(c.dir.join("vol"));
    let inner = vol.0.join("inner").to_string_lossy().into_owned();
    let bind = format!("type=bind,src={},dst=/vol,options=rbind:rshared", vol.0.display());
    let script = "mount -t tmpfs bidir /vol/inner && echo mounted";
    for (propagation, reaches_host) in [(Some("rshared"), true), (None, false)] {
        let mut extra = vec!["--cap-add", "CAP_SYS_ADMIN", "--mount", &bind];
        if let Some(p) = propagation {
            extra.extend_from_slice(&["--rootfs-propagation", p]);
        }
        let (code, out, err) = c.run(&extra, "bidir", &["sh", "-c", script]);
        assert_eq!((code, out.as_str()), (0, "mounted\n"), "{propagation:?}: {err}");
        let mounted = mount_points_under(&vol.0).contains(&inner);
        assert_eq!(mounted, reaches_host, "{propagation:?}: tmpfs on {inner} on the host");
        // Nothing of the container (its rootfs, /proc, /dev) stays mounted on the host.
        let state = c.dir.join("state");
        let leaked = mount_points_under(&state);
        assert!(leaked.is_empty(), "{propagation:?}: {leaked:?}");
        if mounted {
            nix::mount::umount2(inner.as_str(), nix::mount::MntFlags::MNT_DETACH).unwrap();
        }
    }
}
