//! CRIU through its RPC interface, as runc drives it: `criu swrk <fd>` serves one
//! SOCK_SEQPACKET socket, one protobuf message (rpc.proto's criu_req / criu_resp) per packet.
//! A request is answered by zero or more NOTIFY messages (each acknowledged before CRIU goes
//! on: the caller runs hooks or records the restored pid in between) and one final response.
//! Every fd a request names is passed as an inheritable duplicate, open at the same number in
//! berth and in CRIU until CRIU answers: CRIU opens the images and work directories through
//! /proc/<peer>/fd/N (the peer of its socket, berth), and uses inherit_fd and status_fd
//! numbers in its own table.

pub mod proto;

use anyhow::{anyhow, bail, Context, Result};
use proto::{decode, get, Enc};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// criu_req_type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReqType {
    Dump = 1,
    Restore = 2,
    Check = 3,
    PreDump = 4,
    Notify = 6,
}

/// rpc.proto's names, for the error text (runc prints them the same way).
pub fn type_name(t: u64) -> String {
    let names = [
        "EMPTY",
        "DUMP",
        "RESTORE",
        "CHECK",
        "PRE_DUMP",
        "PAGE_SERVER",
        "NOTIFY",
        "CPUINFO_DUMP",
        "CPUINFO_CHECK",
        "FEATURE_CHECK",
        "VERSION",
        "WAIT_PID",
        "PAGE_SERVER_CHLD",
    ];
    names.get(t as usize).map_or_else(|| t.to_string(), |s| s.to_string())
}

/// criu_cg_mode; `--manage-cgroups-mode` takes runc's names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgMode {
    Ignore = 0,
    Soft = 3,
    Full = 4,
    Strict = 5,
}

impl CgMode {
    pub fn parse(s: &str) -> Result<CgMode> {
        Ok(match s {
            "soft" => CgMode::Soft,
            "full" => CgMode::Full,
            "strict" => CgMode::Strict,
            "ignore" => CgMode::Ignore,
            _ => bail!("Invalid manage cgroups mode"),
        })
    }
}

/// criu_opts: the fields berth sets (rpc.proto field numbers in `encode`).
#[derive(Default, Debug, Clone, PartialEq)]
pub struct Opts {
    pub images_dir_fd: i32,
    pub pid: Option<i32>,
    pub leave_running: bool,
    pub ext_unix_sk: bool,
    pub tcp_established: bool,
    pub evasive_devices: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub log_level: i32,
    pub log_file: String,
    /// criu_page_server_info: address and port.
    pub page_server: Option<(String, i32)>,
    pub notify_scripts: bool,
    pub root: Option<String>,
    pub parent_img: Option<String>,
    pub track_mem: bool,
    pub auto_dedup: bool,
    pub work_dir_fd: Option<i32>,
    /// ext_mount_map: (key, val). Dump: (mountpoint in the container, the name stored in the
    /// image); restore: (that name, the host path to mount there).
    pub ext_mnt: Vec<(String, String)>,
    pub manage_cgroups: bool,
    /// cgroup_root: (controllers, path) where the restored tasks' cgroups go.
    pub cg_root: Vec<(String, String)>,
    pub rst_sibling: bool,
    /// inherit_fd: (key as in the image, e.g. "pipe:[1234]", fd number in CRIU).
    pub inherit_fd: Vec<(String, i32)>,
    pub manage_cgroups_mode: Option<CgMode>,
    /// `external`: e.g. "net[4026531993]:extRootNetNS" (a namespace not to dump).
    pub external: Vec<String>,
    pub empty_ns: u32,
    pub freeze_cgroup: Option<String>,
    pub lazy_pages: bool,
    pub status_fd: Option<i32>,
    pub orphan_pts_master: bool,
}

impl Opts {
    pub fn encode(&self) -> Enc {
        let mut e = Enc::default();
        e.int32(1, self.images_dir_fd);
        if let Some(p) = self.pid {
            e.int32(2, p);
        }
        for (f, v) in [
            (3, self.leave_running),
            (4, self.ext_unix_sk),
            (5, self.tcp_established),
            (6, self.evasive_devices),
            (7, self.shell_job),
            (8, self.file_locks),
        ] {
            if v {
                e.bool(f, true);
            }
        }
        e.int32(9, self.log_level);
        e.string(10, &self.log_file);
        if let Some((addr, port)) = &self.page_server {
            let mut ps = Enc::default();
            ps.string(1, addr).int32(2, *port);
            e.message(11, &ps);
        }
        if self.notify_scripts {
            e.bool(12, true);
        }
        if let Some(r) = &self.root {
            e.string(13, r);
        }
        if let Some(p) = &self.parent_img {
            e.string(14, p);
        }
        if self.track_mem {
            e.bool(15, true);
        }
        if self.auto_dedup {
            e.bool(16, true);
        }
        if let Some(fd) = self.work_dir_fd {
            e.int32(17, fd);
        }
        for (k, v) in &self.ext_mnt {
            let mut m = Enc::default();
            m.string(1, k).string(2, v);
            e.message(23, &m);
        }
        if self.manage_cgroups {
            e.bool(24, true);
        }
        for (ctrl, path) in &self.cg_root {
            let mut m = Enc::default();
            m.string(1, ctrl).string(2, path);
            e.message(25, &m);
        }
        if self.rst_sibling {
            e.bool(26, true);
        }
        for (k, fd) in &self.inherit_fd {
            let mut m = Enc::default();
            m.string(1, k).int32(2, *fd);
            e.message(27, &m);
        }
        if let Some(m) = self.manage_cgroups_mode {
            e.uint(34, m as u64);
        }
        for x in &self.external {
            e.string(37, x);
        }
        if self.empty_ns != 0 {
            e.uint(38, self.empty_ns as u64);
        }
        if let Some(f) = &self.freeze_cgroup {
            e.string(44, f);
        }
        if self.lazy_pages {
            e.bool(48, true);
        }
        if let Some(fd) = self.status_fd {
            e.int32(49, fd);
        }
        if self.orphan_pts_master {
            e.bool(50, true);
        }
        e
    }
}

/// criu_req.
#[derive(Debug, Clone, PartialEq)]
pub struct Req {
    pub typ: ReqType,
    pub opts: Option<Opts>,
    pub notify_success: bool,
}

impl Req {
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::default();
        e.uint(1, self.typ as u64);
        if let Some(o) = &self.opts {
            e.message(2, &o.encode());
        }
        if self.notify_success {
            e.bool(3, true);
        }
        e.0
    }
}

/// criu_resp, the fields berth reads.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Resp {
    pub typ: u64,
    pub success: bool,
    /// criu_restore_resp.pid
    pub restored_pid: Option<i32>,
    /// criu_notify: the script name ("post-dump", "setup-namespaces", "post-restore", ...)
    /// and the pid it concerns.
    pub notify: Option<(String, i32)>,
    pub cr_errno: Option<i32>,
    pub cr_errmsg: Option<String>,
}

impl Resp {
    pub fn decode(buf: &[u8]) -> Result<Resp> {
        let f = decode(buf)?;
        let typ = get(&f, 1)
            .and_then(|v| v.as_u64())
            .ok_or_else(|| anyhow!("criu_resp without a type"))?;
        let success = get(&f, 2)
            .and_then(|v| v.as_bool())
            .ok_or_else(|| anyhow!("criu_resp without success"))?;
        let restored_pid = match get(&f, 4).and_then(|v| v.as_bytes()) {
            Some(b) => get(&decode(b)?, 1).and_then(|v| v.as_i32()),
            None => None,
        };
        let notify = match get(&f, 5).and_then(|v| v.as_bytes()) {
            Some(b) => {
                let n = decode(b)?;
                Some((
                    get(&n, 1).and_then(|v| v.as_str()).unwrap_or_default(),
                    get(&n, 2).and_then(|v| v.as_i32()).unwrap_or(0),
                ))
            }
            None => None,
        };
        Ok(Resp {
            typ,
            success,
            restored_pid,
            notify,
            cr_errno: get(&f, 7).and_then(|v| v.as_i32()),
            cr_errmsg: get(&f, 9).and_then(|v| v.as_str()),
        })
    }
}

/// The criu binary: $BERTH_CRIU (tests, a CRIU built elsewhere), else `criu` from PATH.
fn criu_path() -> String {
    std::env::var("BERTH_CRIU")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "criu".into())
}

/// The criu executable berth would run, if there is one.
pub fn find() -> Option<PathBuf> {
    let c = criu_path();
    if c.contains('/') {
        return Path::new(&c).is_file().then(|| PathBuf::from(&c));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(&c)).find(|p| p.is_file())
}

/// An fd a request names: a duplicate without close-on-exec, which std's Command leaves at
/// its number in CRIU too. Closed once CRIU has answered.
pub struct Inherit(OwnedFd);

impl Inherit {
    pub fn new(fd: BorrowedFd) -> Result<Inherit> {
        Ok(Inherit(crate::sys::dup_inheritable(fd).context("dup an fd for criu")?))
    }

    pub fn num(&self) -> i32 {
        self.0.as_raw_fd()
    }
}

/// A NOTIFY's handler: script, pid, and an fd if one came with it ("orphan-pts-master").
pub type OnNotify<'a> = &'a mut dyn FnMut(&str, i32, Option<OwnedFd>) -> Result<()>;

/// What one `criu swrk` run needs besides the request.
pub struct Run<'a> {
    /// Where CRIU writes its log (named in every error).
    pub log: PathBuf,
    /// Called with CRIU's pid before the request is sent (restore: move it into the
    /// container's cgroups and fill in cg_root).
    pub before: &'a mut dyn FnMut(i32, &mut Req) -> Result<()>,
    pub notify: OnNotify<'a>,
}

/// Send `req` to a fresh `criu swrk` and serve it to its final response. `fds` (their numbers
/// are already in the request) stay open until then.
pub fn swrk(mut req: Req, fds: Vec<Inherit>, run: Run) -> Result<Resp> {
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
    let logmsg = || format!("log file: {}", run.log.display());
    let (client, server) = socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC)
        .context("socketpair for criu")?;
    let server = Inherit::new(server.as_fd())?;
    let criu = criu_path();
    let mut child = std::process::Command::new(&criu)
        .arg("swrk")
        .arg(server.num().to_string())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                anyhow!("{criu} not found: checkpoint and restore need CRIU (criu.org) in PATH")
            }
            _ => anyhow!("run {criu} swrk: {e}"),
        })?;
    // Only CRIU holds the server end now: if it dies, our reads see EOF instead of hanging.
    drop(server);
    let pid = child.id() as i32;
    let r = serve(&client, &mut req, pid, run.before, run.notify, &logmsg);
    // CRIU opens the images and work directories through /proc/<our pid>/fd/N (the peer of
    // its socket), not its own table: they stay open here until it has answered.
    drop(fds);
    // EOF for CRIU (it waits for another request otherwise), then reap it.
    drop(client);
    let status = child.wait().context("wait for criu")?;
    let resp = r?;
    // A PRE_DUMP's CRIU waits for the final DUMP, which runc (and berth) never sends: its exit
    // after our EOF is not a failure.
    if !status.success() && req.typ != ReqType::PreDump && req.typ != ReqType::Notify {
        bail!("criu failed: {status}\n{}", logmsg());
    }
    Ok(resp)
}

fn serve(
    sock: &OwnedFd,
    req: &mut Req,
    pid: i32,
    before: &mut dyn FnMut(i32, &mut Req) -> Result<()>,
    notify: OnNotify,
    logmsg: &dyn Fn() -> String,
) -> Result<Resp> {
    before(pid, req)?;
    let typ = req.typ;
    send(sock, &req.encode())?;
    let mut buf = vec![0u8; 10 * 4096];
    loop {
        let (n, fd) = crate::sys::recv_with_fd(sock.as_fd(), &mut buf).map_err(|e| anyhow!("read from criu: {e}"))?;
        if n == 0 {
            bail!("criu exited without a response\n{}", logmsg());
        }
        if n == buf.len() {
            bail!("criu's response is too large");
        }
        let resp = Resp::decode(&buf[..n]).context("decode criu's response")?;
        if !resp.success {
            let mut msg = format!(
                "criu failed: type {} errno {}",
                type_name(resp.typ),
                resp.cr_errno.unwrap_or(0)
            );
            if let Some(m) = resp.cr_errmsg.as_deref().filter(|m| !m.is_empty()) {
                msg.push_str(&format!(": {m}"));
            }
            bail!("{msg}\n{}", logmsg());
        }
        if resp.typ == ReqType::Notify as u64 {
            let (script, npid) = resp.notify.clone().unwrap_or_default();
            notify(&script, npid, fd)?;
            let ack = Req {
                typ: ReqType::Notify,
                opts: None,
                notify_success: true,
            };
            send(sock, &ack.encode())?;
            continue;
        }
        if resp.typ != typ as u64 {
            bail!(
                "criu answered {} to a {} request",
                type_name(resp.typ),
                type_name(typ as u64)
            );
        }
        return Ok(resp);
    }
}

fn send(sock: &OwnedFd, data: &[u8]) -> Result<()> {
    let n = nix::unistd::write(sock, data).map_err(|e| anyhow!("write to criu: {e}"))?;
    if n != data.len() {
        bail!("short write to criu ({n} of {} bytes)", data.len());
    }
    Ok(())
}

/// The images directory (or the work directory, when given) where CRIU's log lands.
pub fn log_path(images: &Path, work: Option<&Path>, file: &str) -> PathBuf {
    work.unwrap_or(images).join(file)
}

/// `criu check` over RPC: does CRIU work on this kernel? `dir` takes its log (check.log).
pub fn check(dir: &Path) -> Result<()> {
    let d = crate::sys::open(dir, libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .map_err(|e| anyhow!("open {}: {e}", dir.display()))?;
    let d = Inherit::new(d.as_fd())?;
    let req = Req {
        typ: ReqType::Check,
        opts: Some(Opts {
            images_dir_fd: d.num(),
            log_level: 4,
            log_file: "check.log".into(),
            ..Opts::default()
        }),
        notify_success: false,
    };
    swrk(
        req,
        vec![d],
        Run {
            log: dir.join("check.log"),
            before: &mut |_, _| Ok(()),
            notify: &mut |_, _, _| Ok(()),
        },
    )?;
    Ok(())
}

/// "N:ctrl,ctrl:path" lines of /proc/<pid>/cgroup as cgroup_root entries, one per
/// controller (runc's criuApplyCgroups through ParseCgroupFile; v2's line has controller "").
pub fn cg_roots(proc_cgroup: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in proc_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        for c in ctrls.split(',') {
            out.push((c.to_string(), path.to_string()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dump_request_encodes_rpc_proto_field_numbers() {
        let req = Req {
            typ: ReqType::Dump,
            opts: Some(Opts {
                images_dir_fd: 5,
                pid: Some(1234),
                leave_running: true,
                log_level: 4,
                log_file: "dump.log".into(),
                root: Some("/r".into()),
                ext_mnt: vec![("/a".into(), "/a".into())],
                manage_cgroups_mode: Some(CgMode::Soft),
                empty_ns: libc::CLONE_NEWNET as u32,
                orphan_pts_master: true,
                ..Opts::default()
            }),
            notify_success: false,
        };
        let bytes = req.encode();
        let f = decode(&bytes).unwrap();
        assert_eq!(get(&f, 1).unwrap().as_u64(), Some(1));
        let o = decode(get(&f, 2).unwrap().as_bytes().unwrap()).unwrap();
        assert_eq!(get(&o, 1).unwrap().as_i32(), Some(5));
        assert_eq!(get(&o, 2).unwrap().as_i32(), Some(1234));
        assert_eq!(get(&o, 3).unwrap().as_bool(), Some(true));
        assert!(get(&o, 7).is_none(), "false bools stay unset");
        assert_eq!(get(&o, 9).unwrap().as_i32(), Some(4));
        assert_eq!(get(&o, 10).unwrap().as_str().as_deref(), Some("dump.log"));
        assert_eq!(get(&o, 13).unwrap().as_str().as_deref(), Some("/r"));
        let m = decode(get(&o, 23).unwrap().as_bytes().unwrap()).unwrap();
        assert_eq!(get(&m, 1).unwrap().as_str().as_deref(), Some("/a"));
        assert_eq!(get(&o, 34).unwrap().as_u64(), Some(3));
        assert_eq!(get(&o, 38).unwrap().as_u64(), Some(0x4000_0000));
        assert_eq!(get(&o, 50).unwrap().as_bool(), Some(true));
        // byte-exact start: type DUMP, then the opts' length-delimited key (field 2)
        assert_eq!(&bytes[..3], &[0x08, 0x01, 0x12]);
    }

    #[test]
    fn restore_and_notify_responses_decode() {
        let mut rr = Enc::default();
        rr.int32(1, 4242);
        let mut r = Enc::default();
        r.uint(1, 2).bool(2, true).message(4, &rr);
        let resp = Resp::decode(&r.0).unwrap();
        assert!(resp.success);
        assert_eq!(resp.restored_pid, Some(4242));

        let mut n = Enc::default();
        n.string(1, "post-restore").int32(2, 77);
        let mut r = Enc::default();
        r.uint(1, 6).bool(2, true).message(5, &n);
        assert_eq!(Resp::decode(&r.0).unwrap().notify, Some(("post-restore".into(), 77)));

        let mut r = Enc::default();
        r.uint(1, 1).bool(2, false).int32(7, 2).string(9, "boom");
        let resp = Resp::decode(&r.0).unwrap();
        assert!(!resp.success);
        assert_eq!((resp.cr_errno, resp.cr_errmsg.as_deref()), (Some(2), Some("boom")));
        assert!(Resp::decode(&[0x10, 0x01]).is_err(), "no type");
    }

    #[test]
    fn notify_ack_is_type_and_success() {
        let ack = Req {
            typ: ReqType::Notify,
            opts: None,
            notify_success: true,
        };
        assert_eq!(ack.encode(), [0x08, 0x06, 0x18, 0x01]);
    }

    #[test]
    fn cgroup_roots_per_controller() {
        let v = cg_roots("12:cpu,cpuacct:/c1\n1:name=systemd:/c1\n0::/c1\n");
        assert_eq!(
            v,
            [("cpu", "/c1"), ("cpuacct", "/c1"), ("name=systemd", "/c1"), ("", "/c1")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        assert_eq!(CgMode::parse("full").unwrap(), CgMode::Full);
        assert_eq!(
            CgMode::parse("x").unwrap_err().to_string(),
            "Invalid manage cgroups mode"
        );
        assert_eq!(type_name(4), "PRE_DUMP");
    }

    /// CHECK through swrk, on a kernel where CRIU works (the VM stage runs it).
    #[test]
    #[ignore = "needs CRIU: the VM stage runs it"]
    fn check_over_rpc() {
        let d = std::env::temp_dir().join(format!("berth-criu-check-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let r = check(&d);
        let log = std::fs::read_to_string(d.join("check.log")).unwrap_or_default();
        std::fs::remove_dir_all(&d).unwrap();
        r.unwrap_or_else(|e| panic!("criu check over RPC: {e:#}\n{log}"));
    }
}
