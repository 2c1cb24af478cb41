//! dockerd with berth added as a runtime (`--add-runtime berth=...`, `docker run --runtime
//! berth`), through containerd-shim-runc-v2 as Docker always does. A private daemon per test
//! process, an image imported from a local busybox rootfs, everything removed afterwards.
mod common;
use common::*;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Docker {
    dir: PathBuf,
    daemon: Child,
}

fn client() -> &'static str {
    // Debian's client matches Debian's daemon; a newer one elsewhere on PATH may not.
    if std::path::Path::new("/usr/bin/docker").exists() {
        "/usr/bin/docker"
    } else {
        "docker"
    }
}

impl Docker {
    fn new() -> Option<Docker> {
        if !engine_available(&[("dockerd", "apt-get install docker.io")]) {
            return None;
        }
        let dir = short_dir("bd");
        let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
        let daemon = Command::new("dockerd")
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("pid"))
            .arg("-H")
            .arg(format!("unix://{}/sock", dir.display()))
            .args([
                "--bridge=none",
                "--iptables=false",
                "--ip-masq=false",
                "--storage-driver=overlay2",
            ])
            .args(["--exec-opt", "native.cgroupdriver=cgroupfs"])
            .arg(format!("--add-runtime=berth={BERTH}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Docker { dir, daemon };
        let deadline = Instant::now() + Duration::from_secs(30);
        while d.out(&["version"]).0 != 0 {
            assert!(
                Instant::now() < deadline,
                "dockerd did not start: {}",
                std::fs::read_to_string(d.dir.join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        import_busybox(&d.dir, d.cmd(&["import", "-", "berth-bb:latest"]), "docker import");
        Some(d)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(client());
        c.arg("-H")
            .arg(format!("unix://{}/sock", self.dir.display()))
            .args(args);
        c
    }

    fn out(&self, args: &[&str]) -> (i32, String, String) {
        output3(self.cmd(args))
    }

    fn run(&self, extra: &[&str], cmd: &[&str]) -> (i32, String, String) {
        let mut args = vec!["run", "--rm", "--runtime", "berth", "--network", "none"];
        args.extend_from_slice(extra);
        args.push("berth-bb");
        args.extend_from_slice(cmd);
        self.out(&args)
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        let (_, ids, _) = self.out(&["ps", "-aq"]);
        for id in ids.split_whitespace() {
            let _ = self.out(&["rm", "-f", id]);
        }
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.daemon.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.daemon.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        unmount_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn docker_run_with_berth() {
    let Some(d) = Docker::new() else { return };
    let (c, out, err) = d.run(&[], &["echo", "hello from docker"]);
    assert_eq!((c, out.as_str()), (0, "hello from docker\n"), "{err}");
    assert_eq!(d.run(&[], &["sh", "-c", "exit 42"]).0, 42);
    assert_eq!(d.run(&[], &["nosuchcommand"]).0, 127);
    assert_eq!(d.run(&[], &["/etc"]).0, 126);
    let (c, out, err) = d.run(
        &[
            "--hostname",
            "hh",
            "--read-only",
            // Docker makes the working directory (root, 0755) before the runtime runs, and a
            // tmpfs over an existing directory takes its mode (runc): the mode is given here.
            "--tmpfs",
            "/scratch:mode=1777",
            "-e",
            "FOO=bar",
            "-w",
            "/scratch",
            "-u",
            "1000:1000",
        ],
        &[
            "sh",
            "-c",
            "hostname; echo $FOO; pwd; id -u; touch /x 2>/dev/null || echo ro; touch /scratch/y && echo tmpfs",
        ],
    );
    assert_eq!((c, out.as_str()), (0, "hh\nbar\n/scratch\n1000\nro\ntmpfs\n"), "{err}");
    let (_, out, _) = d.run(
        &["--cap-drop", "ALL", "--cap-add", "NET_ADMIN"],
        &["grep", "CapEff", "/proc/self/status"],
    );
    assert_eq!(out.split_whitespace().nth(1), Some("0000000000001000"), "{out}");
    let mut child = d
        .cmd(&[
            "run",
            "--rm",
            "-i",
            "--runtime",
            "berth",
            "--network",
            "none",
            "berth-bb",
            "cat",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"docker stdin\n").unwrap();
    assert_eq!(
        String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout),
        "docker stdin\n"
    );
}

#[test]
fn docker_detached_exec_logs_stop_rm() {
    let Some(d) = Docker::new() else { return };
    let mut args = vec!["run", "-d", "--name", "life", "--runtime", "berth", "--network", "none"];
    args.extend_from_slice(&["berth-bb", "sh", "-c", "echo started; exec sleep 1000"]);
    let (c, _, err) = d.out(&args);
    assert_eq!(c, 0, "{err}");
    let (c, out, err) = d.out(&[
        "exec",
        "-u",
        "1000",
        "-w",
        "/tmp",
        "-e",
        "X=y",
        "life",
        "sh",
        "-c",
        "id -u; pwd; echo $X",
    ]);
    assert_eq!((c, out.as_str()), (0, "1000\n/tmp\ny\n"), "{err}");
    assert_eq!(d.out(&["exec", "life", "sh", "-c", "exit 9"]).0, 9);
    let deadline = Instant::now() + Duration::from_secs(5);
    while d.out(&["logs", "life"]).1 != "started\n" {
        assert!(Instant::now() < deadline, "logs");
        std::thread::sleep(Duration::from_millis(50));
    }
    // `docker top` asks the runtime: `berth ps --format json`.
    let (_, out, err) = d.out(&["top", "life"]);
    assert!(out.contains("sleep 1000"), "{out} {err}");
    let (c, out, err) = d.run(&["--pid", "container:life"], &["ps"]);
    assert_eq!(c, 0, "{err}");
    assert!(out.contains("sleep 1000"), "shared pid namespace: {out}");
    let (c, _, err) = d.out(&["stop", "-t", "1", "life"]);
    assert_eq!(c, 0, "{err}");
    assert_eq!(
        d.out(&["inspect", "-f", "{{.State.Status}}", "life"]).1.trim(),
        "exited"
    );
    assert_eq!(d.out(&["start", "life"]).0, 0);
    assert_eq!(d.out(&["kill", "life"]).0, 0);
    assert_eq!(d.out(&["rm", "-f", "life"]).0, 0);
    let (_, out, _) = d.run(&["--init"], &["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"]);
    assert!(out.contains("init"), "--init runs docker-init as pid 1: {out}");
}

#[test]
fn docker_limits_pause_update() {
    let Some(d) = Docker::new() else { return };
    let cg = "/sys/fs/cgroup";
    let (c, out, err) = d.run(
        &["--memory", "64m", "--pids-limit", "10", "--cpus", "0.5"],
        &[
            "sh",
            "-c",
            &format!("cat {cg}/memory/memory.limit_in_bytes {cg}/pids/pids.max {cg}/cpu/cpu.cfs_quota_us"),
        ],
    );
    assert_eq!(c, 0, "{err}");
    assert_eq!(out, "67108864\n10\n50000\n");
    let mut args = vec![
        "run",
        "-d",
        "--name",
        "lim",
        "--runtime",
        "berth",
        "--network",
        "none",
        "--memory",
        "64m",
    ];
    args.extend_from_slice(&["berth-bb", "sleep", "1000"]);
    assert_eq!(d.out(&args).0, 0);
    let (c, _, err) = d.out(&["pause", "lim"]);
    assert_eq!(c, 0, "{err}");
    assert_eq!(d.out(&["inspect", "-f", "{{.State.Status}}", "lim"]).1.trim(), "paused");
    assert_eq!(d.out(&["unpause", "lim"]).0, 0);
    let (c, _, err) = d.out(&["update", "--memory", "128m", "--memory-swap", "256m", "lim"]);
    assert_eq!(c, 0, "{err}");
    let (_, out, _) = d.out(&["exec", "lim", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]);
    assert_eq!(out.trim(), "134217728");
    let (_, out, err) = d.out(&["top", "lim"]);
    assert!(out.contains("sleep 1000"), "{out} {err}");
    assert_eq!(d.out(&["rm", "-f", "lim"]).0, 0);
}
