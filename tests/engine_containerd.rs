//! containerd with berth as the runc binary of its runc v2 shim (`ctr run --runc-binary`), a
//! private daemon per test process and an image built from a local busybox rootfs.
mod common;
use common::*;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

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
        let args = [
            "run",
            "-d",
            "--runc-binary",
            BERTH,
            "localhost/berth-bb:latest",
            id,
            "sleep",
            "1000",
        ];
        let (code, _, err) = self.out(&args);
        assert_eq!(code, 0, "{err}");
    }

    fn run(&self, extra: &[&str], id: &str, cmd: &[&str]) -> (i32, String, String) {
        let mut args = vec!["run", "--rm", "--runc-binary", BERTH];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["localhost/berth-bb:latest", id]);
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
