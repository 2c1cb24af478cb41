//! podman with berth as its OCI runtime, end to end: a private containers.conf, storage and
//! image (imported from a local busybox rootfs: no registry), cleaned up afterwards.
mod common;
use common::*;
use std::path::PathBuf;
use std::process::{Command, Stdio};

struct Podman {
    dir: PathBuf,
    prefix: String,
}

impl Podman {
    /// None (with the reason printed) when podman is not installed.
    fn new() -> Option<Podman> {
        if !engine_available(&[("podman", "apt-get install podman")]) {
            return None;
        }
        let dir = std::env::temp_dir().join(unique("berth-podman"));
        std::fs::create_dir_all(&dir).unwrap();
        // podman passes no --root, and its cleanup process (run by conmon) would not carry a
        // --runtime-flag: a wrapper keeps berth's state (and seccomp cache) in the test's
        // directory instead of the host's /run/berth.
        let runtime = dir.join("berth-runtime");
        std::fs::write(
            &runtime,
            format!(
                "#!/bin/sh\nexec {BERTH} --root {} \"$@\"\n",
                dir.join("berth").display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&runtime, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        std::fs::write(
            dir.join("containers.conf"),
            format!(
                "[containers]\n# this host's bounding set lacks CAP_SYS_RESOURCE: podman's default 1048576 fails\n\
                 default_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\
                 [engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
                 # private locks and temp dir: parallel tests run separate podman instances\n\
                 lock_type = \"file\"\ntmp_dir = \"{dir}/tmp\"\nstatic_dir = \"{dir}/static\"\nvolume_path = \"{dir}/volumes\"\n\
                 runtime_supports_json = [\"crun\", \"runc\", \"berth\"]\n\
                 [engine.runtimes]\nberth = [\"{runtime}\"]\n",
                dir = dir.display(),
                runtime = runtime.display()
            ),
        )
        .unwrap();
        std::fs::write(
            dir.join("storage.conf"),
            format!(
                "[storage]\ndriver = \"overlay\"\ngraphroot = \"{0}/storage\"\nrunroot = \"{0}/run\"\n",
                dir.display()
            ),
        )
        .unwrap();
        let p = Podman {
            dir,
            prefix: unique("bp"),
        };
        import_busybox(
            &p.dir,
            p.cmd(&["import", "-", "localhost/berth-bb:latest"]),
            "podman import",
        );
        Some(p)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.dir.join("containers.conf"))
            .env("CONTAINERS_STORAGE_CONF", self.dir.join("storage.conf"))
            .arg("--root")
            .arg(self.dir.join("storage"))
            .arg("--runroot")
            .arg(self.dir.join("run"))
            .args(["--runtime", "berth", "--network-backend", "netavark"])
            .args(args);
        c
    }

    fn out(&self, args: &[&str]) -> (i32, String, String) {
        let (code, out, err) = output3(self.cmd(args));
        let err = err
            .lines()
            .filter(|l| !l.contains("CNI"))
            .collect::<Vec<_>>()
            .join("\n");
        (code, out, err)
    }

    fn name(&self, s: &str) -> String {
        format!("{}-{s}", self.prefix)
    }

    /// `podman run` with the defaults every scenario shares.
    fn run(&self, extra: &[&str], cmd: &[&str]) -> (i32, String, String) {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend_from_slice(extra);
        args.push("localhost/berth-bb");
        args.extend_from_slice(cmd);
        self.out(&args)
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self
            .cmd(&["rm", "-af", "-t", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self
            .cmd(&["pod", "rm", "-af"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self
            .cmd(&["system", "reset", "-f"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        unmount_under(&self.dir);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn podman_run_exit_codes_and_stdin() {
    let Some(p) = Podman::new() else { return };
    let (c, out, err) = p.run(&[], &["echo", "hello from berth"]);
    assert_eq!((c, out.as_str()), (0, "hello from berth\n"), "{err}");
    assert_eq!(p.run(&[], &["sh", "-c", "exit 42"]).0, 42);
    // podman maps runc's error texts to 127 (not found) and 126 (not executable).
    let (c, _, err) = p.run(&[], &["nosuchcommand"]);
    assert_eq!(c, 127, "{err}");
    let (c, _, err) = p.run(&[], &["/etc"]);
    assert_eq!(c, 126, "{err}");
    let mut child = p
        .cmd(&["run", "--rm", "-i", "--network", "none", "localhost/berth-bb", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"through stdin\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "through stdin\n");
}

#[test]
fn podman_detached_lifecycle_exec_logs_stop_kill_rm() {
    let Some(p) = Podman::new() else { return };
    let n = p.name("life");
    let mut args = vec!["run", "-d", "--name", &n, "--network", "none"];
    args.extend_from_slice(&["localhost/berth-bb", "sh", "-c", "echo started; exec sleep 1000"]);
    let (c, _, err) = p.out(&args);
    assert_eq!(c, 0, "{err}");
    let (c, out, err) = p.out(&[
        "exec",
        "-u",
        "1000:1000",
        "-w",
        "/tmp",
        "-e",
        "X=y",
        &n,
        "sh",
        "-c",
        "id -u; pwd; echo $X",
    ]);
    assert_eq!((c, out.as_str()), (0, "1000\n/tmp\ny\n"), "{err}");
    assert_eq!(p.out(&["exec", &n, "sh", "-c", "exit 9"]).0, 9);
    // conmon writes the log asynchronously.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while p.out(&["logs", &n]).1 != "started\n" {
        assert!(std::time::Instant::now() < deadline, "logs: {:?}", p.out(&["logs", &n]));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (_, out, _) = p.out(&["top", &n, "pid", "args"]);
    assert!(out.contains("sleep 1000"), "{out}");
    let (c, _, err) = p.out(&["stop", "-t", "1", &n]);
    assert_eq!(c, 0, "{err}");
    let (_, out, _) = p.out(&["inspect", "-f", "{{.State.Status}}", &n]);
    assert_eq!(out.trim(), "exited");
    let (c, _, err) = p.out(&["start", &n]);
    assert_eq!(c, 0, "{err}");
    let (c, _, err) = p.out(&["kill", &n]);
    assert_eq!(c, 0, "{err}");
    let (c, _, err) = p.out(&["rm", "-f", &n]);
    assert_eq!(c, 0, "{err}");
    assert_eq!(p.out(&["ps", "-aq", "--filter", &format!("name={n}")]).1.trim(), "");
}

#[test]
fn podman_container_options() {
    let Some(p) = Podman::new() else { return };
    let host = std::env::temp_dir().join(unique("berth-podman-bind"));
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("in"), "from host\n").unwrap();
    let v = format!("{}:/data", host.display());
    let (c, out, err) = p.run(
        &["--hostname", "hh", "--read-only", "--tmpfs", "/scratch", "-e", "FOO=bar", "-w", "/scratch", "-u", "1000:1000", "-v", &v],
        &["sh", "-c", "hostname; echo $FOO; pwd; id -u; touch /x 2>/dev/null || echo ro; touch /scratch/y && echo tmpfs; cat /data/in"],
    );
    assert_eq!(c, 0, "{err}");
    assert_eq!(out, "hh\nbar\n/scratch\n1000\nro\ntmpfs\nfrom host\n");
    let (_, out, _) = p.run(
        &["--cap-drop", "all", "--cap-add", "NET_ADMIN"],
        &["grep", "CapEff", "/proc/self/status"],
    );
    assert_eq!(
        out.split_whitespace().nth(1),
        Some("0000000000001000"),
        "only CAP_NET_ADMIN: {out}"
    );
    let (_, out, _) = p.run(&["--init"], &["sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '"]);
    assert!(
        out.contains("catatonit") || out.contains("init"),
        "--init runs an init as pid 1: {out}"
    );
    let _ = std::fs::remove_dir_all(&host);
}

#[test]
fn podman_terminal_and_shared_namespaces_and_pod() {
    let Some(p) = Podman::new() else { return };
    // -t through script(1) so podman sees a terminal.
    let dir = p.dir.display().to_string();
    let inner = format!(
        "CONTAINERS_CONF={dir}/containers.conf CONTAINERS_STORAGE_CONF={dir}/storage.conf podman --root {dir}/storage --runroot {dir}/run --runtime berth run --rm -it --network none localhost/berth-bb sh -c 'tty; exit 5'"
    );
    let (code, out) = in_terminal(&inner);
    assert!(out.contains("/dev/pts/0"), "{out}");
    assert_eq!(code, Some(5), "{out}");
    // A second container joining the first one's pid namespace sees its processes.
    let a = p.name("nsa");
    let mut args = vec!["run", "-d", "--name", &a, "--network", "none"];
    args.extend_from_slice(&["localhost/berth-bb", "sleep", "1000"]);
    assert_eq!(p.out(&args).0, 0);
    let pidns = format!("container:{a}");
    let (c, out, err) = p.run(&["--pid", &pidns], &["ps"]);
    assert_eq!(c, 0, "{err}");
    assert!(out.contains("sleep 1000"), "{out}");
}

#[test]
fn podman_pod() {
    let Some(p) = Podman::new() else { return };
    // A pod: its infra container and a member share namespaces.
    let pod = p.name("pod");
    let (c, _, err) = p.out(&["pod", "create", "--name", &pod, "--network", "none"]);
    assert_eq!(c, 0, "{err}");
    let (c, out, err) = p.run(&["--pod", &pod], &["hostname"]);
    assert_eq!(c, 0, "{err}");
    assert!(!out.trim().is_empty());
}

#[test]
fn podman_limits_pause_update_stats() {
    let Some(p) = Podman::new() else { return };
    let cg = "/sys/fs/cgroup";
    let (c, out, err) = p.run(
        &["--memory", "64m", "--pids-limit", "10", "--cpus", "0.5"],
        &[
            "sh",
            "-c",
            &format!("cat {cg}/memory/memory.limit_in_bytes {cg}/pids/pids.max {cg}/cpu/cpu.cfs_quota_us"),
        ],
    );
    assert_eq!(c, 0, "{err}");
    assert_eq!(out, "67108864\n10\n50000\n", "limits seen in the container's cgroup");
    let n = p.name("pause");
    let mut args = vec!["run", "-d", "--name", &n, "--network", "none"];
    args.extend_from_slice(&[
        "localhost/berth-bb",
        "sh",
        "-c",
        // Written by rename: a read between truncate and write would see no number.
        "i=0; while true; do i=$((i+1)); echo $i > /tmp/count.tmp; mv /tmp/count.tmp /tmp/count; sleep 0.02; done",
    ]);
    assert_eq!(p.out(&args).0, 0);
    let count = || {
        p.out(&["exec", &n, "cat", "/tmp/count"])
            .1
            .trim()
            .parse::<u64>()
            .unwrap_or(0)
    };
    let (c, _, err) = p.out(&["pause", &n]);
    assert_eq!(c, 0, "{err}");
    assert_eq!(p.out(&["inspect", "-f", "{{.State.Status}}", &n]).1.trim(), "paused");
    let (c, _, err) = p.out(&["unpause", &n]);
    assert_eq!(c, 0, "{err}");
    let a = count();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(count() > a, "counter runs again after unpause");
    let (c, out, err) = p.out(&["stats", "--no-stream", "--format", "{{.PIDs}}", &n]);
    assert_eq!(c, 0, "{err}");
    assert!(out.trim().parse::<u32>().unwrap_or(0) >= 1, "stats: {out}");
    // Debian's podman 4.3 has `update` without --pids-limit: a CPU quota goes through berth's
    // `update` the same way.
    let (c, _, err) = p.out(&["update", "--cpu-period", "100000", "--cpu-quota", "50000", &n]);
    assert_eq!(c, 0, "podman update: {err}");
    let (_, out, _) = p.out(&["exec", &n, "cat", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us"]);
    assert_eq!(out.trim(), "50000");
    assert_eq!(p.out(&["rm", "-f", "-t", "0", &n]).0, 0);
}

#[test]
fn podman_custom_seccomp_profile() {
    let Some(p) = Podman::new() else { return };
    let profile = p.dir.join("profile.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let (c, out, err) = p.run(
        &["--security-opt", &opt],
        &["sh", "-c", "mkdir /tmp/x 2>&1; echo rc=$?"],
    );
    assert_eq!(c, 0, "{err}");
    assert!(out.contains("Operation not permitted") && out.contains("rc=1"), "{out}");
    // podman's own default profile also works and still allows ordinary work.
    let (c, out, _) = p.run(&[], &["sh", "-c", "mkdir /tmp/y && echo made"]);
    assert_eq!((c, out.as_str()), (0, "made\n"));
}
