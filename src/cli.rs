//! runc's command-line grammar: global flags before the command, one struct per command.

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    about = "berth: a daemonless, runc-compatible OCI container runtime",
    disable_version_flag = true
)]
pub struct Cli {
    /// root directory for storage of container state (default /run/berth, or $XDG_RUNTIME_DIR/berth for non-root)
    #[arg(long, global = false)]
    pub root: Option<String>,
    /// write log lines to this file instead of stderr
    #[arg(long)]
    pub log: Option<String>,
    /// log format: text or json
    #[arg(long = "log-format", default_value = "text")]
    pub log_format: String,
    /// enable debug logging
    #[arg(long)]
    pub debug: bool,
    /// use the systemd cgroup driver (a transient scope unit per container)
    #[arg(long = "systemd-cgroup")]
    pub systemd_cgroup: bool,
    /// cgroup manager: cgroupfs (default), systemd or disabled
    #[arg(long = "cgroup-manager")]
    pub cgroup_manager: Option<String>,
    /// rootless mode: true, false or auto
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub rootless: Option<String>,
    /// print the version
    #[arg(short = 'v', long)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// create a container
    Create(Create),
    /// start a created container
    Start(IdArg),
    /// create and start a container
    Run(Run),
    /// output the state of a container
    State(IdArg),
    /// execute a new process inside the container
    Exec(Box<Exec>),
    /// send a signal to the container's init process
    Kill(Kill),
    /// delete any resources held by the container
    Delete(Delete),
    /// list containers started by berth with the given root
    List(List),
    /// create a new specification file
    Spec(Spec),
    /// show the enabled features
    Features,
    /// suspend all processes inside the container
    Pause(IdArg),
    /// resume all processes that have been previously paused
    Resume(IdArg),
    /// update container resource constraints
    Update(Box<Update>),
    /// display container events such as OOM notifications and resource usage statistics
    Events(Events),
    /// display the processes running inside a container
    Ps(Ps),
    /// checkpoint a running container (CRIU)
    Checkpoint(Box<Checkpoint>),
    /// restore a container from a previous checkpoint (CRIU)
    Restore(Box<Restore>),
}

/// Flags `checkpoint` and `restore` share (runc's).
#[derive(Args, Debug, Clone, Default)]
pub struct CriuFlags {
    /// path for saving criu image files (default: ./checkpoint)
    #[arg(long = "image-path", default_value = "")]
    pub image_path: String,
    /// path for saving work files and logs (default: the image path)
    #[arg(long = "work-path", default_value = "")]
    pub work_path: String,
    /// allow open tcp connections
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// allow external unix sockets
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    /// allow shell jobs
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    /// use userfaultfd to lazily restore memory pages
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
    /// handle file locks, for safety
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    /// cgroups mode: soft, full, strict or ignore
    #[arg(long = "manage-cgroups-mode", default_value = "")]
    pub manage_cgroups_mode: String,
    /// create a namespace, but don't restore its properties (only "network")
    #[arg(long = "empty-ns")]
    pub empty_ns: Vec<String>,
    /// enable auto deduplication of memory images
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
}

#[derive(Args, Debug)]
pub struct Checkpoint {
    #[command(flatten)]
    pub criu: CriuFlags,
    /// path for previous criu image files in pre-dump (relative to the image path)
    #[arg(long = "parent-path", default_value = "")]
    pub parent_path: String,
    /// leave the process running after checkpointing
    #[arg(long = "leave-running")]
    pub leave_running: bool,
    /// criu writes \0 to this FD once lazy-pages is ready
    #[arg(long = "status-fd", default_value_t = -1, allow_hyphen_values = true)]
    pub status_fd: i32,
    /// ADDRESS:PORT of the page server
    #[arg(long = "page-server", default_value = "")]
    pub page_server: String,
    /// dump the container's memory information only, leave the container running after this
    #[arg(long = "pre-dump")]
    pub pre_dump: bool,
    pub id: String,
}

#[derive(Args, Debug)]
pub struct Restore {
    #[command(flatten)]
    pub criu: CriuFlags,
    /// path to an AF_UNIX socket which will receive the pty master
    #[arg(long = "console-socket")]
    pub console_socket: Option<String>,
    /// path to the root of the bundle directory
    #[arg(short = 'b', long, default_value = "")]
    pub bundle: String,
    /// detach from the container's process
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// file to write the process id to
    #[arg(long = "pid-file")]
    pub pid_file: Option<String>,
    /// disable the use of the subreaper used to reap reparented processes
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
    /// do not use pivot_root to jail the process inside the rootfs (CRIU restores the mounts)
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    pub id: String,
}

#[derive(Args, Debug)]
pub struct IdArg {
    pub id: String,
}

#[derive(Args, Debug, Clone)]
pub struct CreateOpts {
    /// path to the root of the bundle directory
    #[arg(short = 'b', long, default_value = "")]
    pub bundle: String,
    /// file to write the process id to
    #[arg(long = "pid-file")]
    pub pid_file: Option<String>,
    /// path to an AF_UNIX socket which will receive the pty master
    #[arg(long = "console-socket")]
    pub console_socket: Option<String>,
    /// path to an AF_UNIX socket which will receive a file descriptor referencing the init process
    #[arg(long = "pidfd-socket")]
    pub pidfd_socket: Option<String>,
    /// do not use pivot_root to jail the process inside the rootfs
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// do not create a new session keyring for the container
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// pass N additional file descriptors (3 .. 3+N-1) to the container
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
}

#[derive(Args, Debug)]
pub struct Create {
    #[command(flatten)]
    pub opts: CreateOpts,
    pub id: String,
}

#[derive(Args, Debug)]
pub struct Run {
    #[command(flatten)]
    pub opts: CreateOpts,
    /// detach from the container's process
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// do not delete the container after it exits
    #[arg(long)]
    pub keep: bool,
    pub id: String,
}

#[derive(Args, Debug)]
pub struct Exec {
    /// path to the process.json
    #[arg(short = 'p', long)]
    pub process: Option<String>,
    /// allocate a pseudo-TTY
    #[arg(short = 't', long)]
    pub tty: bool,
    /// path to an AF_UNIX socket which will receive the pty master
    #[arg(long = "console-socket")]
    pub console_socket: Option<String>,
    /// path to an AF_UNIX socket which will receive a file descriptor referencing the exec process
    #[arg(long = "pidfd-socket")]
    pub pidfd_socket: Option<String>,
    /// detach from the container's process
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// file to write the process id to
    #[arg(long = "pid-file")]
    pub pid_file: Option<String>,
    /// current working directory in the container
    #[arg(long)]
    pub cwd: Option<String>,
    /// set environment variables
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// UID (format: <uid>[:<gid>])
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// additional gids
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// add a capability to the bounding set for the process
    #[arg(short = 'c', long = "cap")]
    pub cap: Vec<String>,
    /// set the no new privileges value for the process
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// set the asm process label for the process commonly used with selinux
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// set the apparmor profile for the process
    #[arg(long)]
    pub apparmor: Option<String>,
    /// pass N additional file descriptors to the container
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// run the process in an (existing) sub-cgroup(s). Format is [<controller>:]<cgroup>.
    #[arg(long)]
    pub cgroup: Vec<String>,
    /// allow exec in a paused container
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    pub id: String,
    /// the command and its arguments (when no --process is given)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct Kill {
    /// send the signal to all processes in the container
    #[arg(short = 'a', long)]
    pub all: bool,
    pub id: String,
    /// signal name (KILL, SIGKILL) or number; default TERM
    pub signal: Option<String>,
}

#[derive(Args, Debug)]
pub struct Delete {
    /// forcibly delete the container if it is still running (uses SIGKILL)
    #[arg(short = 'f', long)]
    pub force: bool,
    pub id: String,
}

#[derive(Args, Debug)]
pub struct List {
    /// output format: table or json
    #[arg(short = 'f', long, default_value = "table")]
    pub format: String,
    /// display only container ids
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct Spec {
    /// path to the root of the bundle directory
    #[arg(short = 'b', long, default_value = "")]
    pub bundle: String,
    /// generate a configuration for a rootless container
    #[arg(long)]
    pub rootless: bool,
}

#[derive(Args, Debug, Default)]
pub struct Update {
    /// path to a file with the resources to update, or '-' for stdin (other flags are ignored)
    #[arg(short = 'r', long)]
    pub resources: Option<String>,
    /// specifies per cgroup weight, range is from 10 to 1000
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period to be used for hardcapping (in usecs)
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// CPU CFS hardcap limit (in usecs); allowed cpu time in a given period
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU CFS hardcap burst limit (in usecs)
    #[arg(long = "cpu-burst")]
    pub cpu_burst: Option<u64>,
    /// CPU shares (relative weight vs. other containers)
    #[arg(long = "cpu-share")]
    pub cpu_share: Option<u64>,
    /// CPU realtime period to be used for hardcapping (in usecs)
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    /// CPU realtime hardcap limit (in usecs)
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// set cgroup SCHED_IDLE or not, 0: default behavior, 1: SCHED_IDLE
    #[arg(long = "cpu-idle")]
    pub cpu_idle: Option<i64>,
    /// CPU(s) to use
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// memory node(s) to use
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// kernel memory limit (ignored, as in runc)
    #[arg(long = "kernel-memory", allow_hyphen_values = true)]
    pub kernel_memory: Option<String>,
    /// kernel memory limit for tcp buffer (ignored, as in runc)
    #[arg(long = "kernel-memory-tcp", allow_hyphen_values = true)]
    pub kernel_memory_tcp: Option<String>,
    /// memory limit (in bytes, or with a k/m/g unit; -1 for unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// memory reservation or soft_limit (in bytes)
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// total memory usage (memory + swap); set '-1' to enable unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// maximum number of pids allowed in the container
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// the string of Intel RDT/CAT L3 cache schema (not supported)
    #[arg(long = "l3-cache-schema")]
    pub l3_cache_schema: Option<String>,
    /// the string of Intel RDT/MBA memory bandwidth schema (not supported)
    #[arg(long = "mem-bw-schema")]
    pub mem_bw_schema: Option<String>,
    pub id: String,
}

#[derive(Args, Debug)]
pub struct Events {
    /// set the stats collection interval
    #[arg(long, default_value = "5s")]
    pub interval: String,
    /// display the container's stats then exit
    #[arg(long)]
    pub stats: bool,
    pub id: String,
}

#[derive(Args, Debug)]
#[command(trailing_var_arg = true)]
pub struct Ps {
    /// select one of: table or json
    #[arg(short = 'f', long, default_value = "table")]
    pub format: String,
    pub id: String,
    /// options passed to ps (default -ef)
    #[arg(allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

/// The argv forms engines use for the short commands, parsed without clap.
///
/// clap's derive builds the whole command tree (every subcommand, every flag and its help) on
/// each call, a large share of what the short commands (`state`, `start`, `kill`, `delete`)
/// cost, and engines run them for every container operation. This parser accepts only plain spellings (exact long or short names, `--opt value` or
/// `--opt=value`, no bundled shorts, no values that start with '-' or are empty, no repeats);
/// anything else returns None and goes to clap, so errors, help and every unusual form keep
/// clap's behaviour. `fast_path_agrees_with_clap` and the CLI fuzz target check that every
/// Some(..) equals what clap makes of the same argv.
pub fn parse_fast<I>(args: I) -> Option<Cli>
where
    I: IntoIterator<Item = std::ffi::OsString>,
{
    let args: Vec<String> = args.into_iter().map(|a| a.into_string().ok()).collect::<Option<_>>()?;
    let mut it = args.iter().map(String::as_str).peekable();
    let mut cli = Cli {
        root: None,
        log: None,
        log_format: "text".into(),
        debug: false,
        systemd_cgroup: false,
        cgroup_manager: None,
        rootless: None,
        version: false,
        command: None,
    };
    let mut seen = Seen::default();
    let name = loop {
        let tok = it.next()?;
        if !tok.starts_with('-') {
            break tok;
        }
        if tok == "--rootless" {
            seen.once("rootless")?;
            cli.rootless = Some("true".into());
            continue;
        }
        if let Some(v) = tok.strip_prefix("--rootless=") {
            seen.once("rootless")?;
            cli.rootless = Some(plain(v)?.into());
            continue;
        }
        let (flag, inline) = split_long(tok)?;
        match flag {
            "--debug" | "--systemd-cgroup" if inline.is_none() => {
                seen.once(flag)?;
                if flag == "--debug" {
                    cli.debug = true;
                } else {
                    cli.systemd_cgroup = true;
                }
            }
            "--root" | "--log" | "--log-format" | "--cgroup-manager" => {
                seen.once(flag)?;
                let v = value(inline, &mut it)?.to_string();
                match flag {
                    "--root" => cli.root = Some(v),
                    "--log" => cli.log = Some(v),
                    "--log-format" => cli.log_format = v,
                    _ => cli.cgroup_manager = Some(v),
                }
            }
            _ => return None,
        }
    };
    let mut seen = Seen::default();
    let mut flags = [false; 2];
    let mut pos: Vec<&str> = Vec::new();
    // (long, short) of the command's boolean flags; the two commands with any have one each.
    let known: &[(&str, &str)] = match name {
        "kill" => &[("--all", "-a")],
        "delete" => &[("--force", "-f")],
        "start" | "state" | "pause" | "resume" => &[],
        _ => return None,
    };
    for tok in it {
        if !tok.starts_with('-') {
            pos.push(plain(tok)?);
            continue;
        }
        let i = known.iter().position(|(l, s)| tok == *l || tok == *s)?;
        seen.once(known[i].0)?;
        flags[i] = true;
    }
    let max = if name == "kill" { 2 } else { 1 };
    if pos.is_empty() || pos.len() > max {
        return None;
    }
    let id = pos[0].to_string();
    cli.command = Some(match name {
        "start" => Command::Start(IdArg { id }),
        "state" => Command::State(IdArg { id }),
        "pause" => Command::Pause(IdArg { id }),
        "resume" => Command::Resume(IdArg { id }),
        "kill" => Command::Kill(Kill {
            all: flags[0],
            id,
            signal: pos.get(1).map(|s| s.to_string()),
        }),
        _ => Command::Delete(Delete { force: flags[0], id }),
    });
    Some(cli)
}

/// Flags already given: clap refuses a repeated flag, so the fast path leaves that to it.
#[derive(Default)]
struct Seen(Vec<String>);

impl Seen {
    fn once(&mut self, name: &str) -> Option<()> {
        if self.0.iter().any(|n| n == name) {
            return None;
        }
        self.0.push(name.to_string());
        Some(())
    }
}

/// `--name=value` -> ("--name", Some("value")); a token without '=' is the name alone.
fn split_long(tok: &str) -> Option<(&str, Option<&str>)> {
    if !tok.starts_with("--") {
        return None;
    }
    Some(match tok.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (tok, None),
    })
}

fn value<'a>(inline: Option<&'a str>, it: &mut dyn Iterator<Item = &'a str>) -> Option<&'a str> {
    match inline {
        Some(v) => plain(v),
        None => plain(it.next()?),
    }
}

/// A value clap takes as is: not empty and not looking like a flag.
fn plain(v: &str) -> Option<&str> {
    (!v.is_empty() && !v.starts_with('-')).then_some(v)
}

/// clap's parse of `args` (argv without the program name), checked against the fast path:
/// whatever `parse_fast` takes must be exactly clap's parse, or this panics. The second value
/// tells whether the fast path took it. For the unit tests and the CLI fuzz target.
pub fn parse_checked<S: AsRef<str>>(args: &[S]) -> (Result<Cli, clap::Error>, bool) {
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let parsed = Cli::try_parse_from(std::iter::once("berth").chain(args.iter().copied()));
    let Some(fast) = parse_fast(args.iter().map(std::ffi::OsString::from)) else {
        return (parsed, false);
    };
    match &parsed {
        Ok(c) => assert_eq!(format!("{fast:?}"), format!("{c:?}"), "argv {args:?}"),
        Err(e) => panic!("fast path took {args:?}, which clap refuses: {e}"),
    }
    (parsed, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn fast(argv: &[&str]) -> Option<Cli> {
        parse_fast(argv.iter().map(OsString::from))
    }

    /// Some(..) must be exactly clap's answer; returns whether the fast path took it. clap runs
    /// only for what the fast path takes (most random argvs it declines).
    fn agrees(argv: &[&str]) -> bool {
        fast(argv).is_some() && parse_checked(argv).1
    }

    #[test]
    fn fast_path_takes_the_forms_engines_use() {
        let forms: &[&[&str]] = &[
            &["state", "c1"],
            &["--root", "/run/x", "state", "c1"],
            &["--root=/run/x", "--log", "/l", "--log-format", "json", "start", "c1"],
            &["--root", "/r", "--systemd-cgroup", "--debug", "delete", "--force", "c1"],
            &["delete", "c1", "-f"],
            &["--rootless", "kill", "c1", "KILL"],
            &[
                "--rootless=false",
                "--cgroup-manager=cgroupfs",
                "kill",
                "--all",
                "c1",
                "9",
            ],
            &["kill", "-a", "c1"],
            &["pause", "c1"],
            &["resume", "c1"],
        ];
        for f in forms {
            assert!(agrees(f), "fast path declined {f:?}");
        }
    }

    #[test]
    fn fast_path_leaves_everything_else_to_clap() {
        let others: &[&[&str]] = &[
            &[],
            &["--version"],
            &["-v"],
            &["--help"],
            &["state", "--help"],
            &["help", "state"],
            &["state"],
            &["state", "a", "b"],
            &["kill", "a", "b", "c"],
            &["delete", "-f", "-f", "c1"],
            &["delete", "-fa", "c1"],
            &["delete", "--force=true", "c1"],
            &["--root", "a", "--root", "b", "state", "c1"],
            &["--root", "--debug", "state", "c1"],
            &["--root=", "state", "c1"],
            &["--rootless", "true", "state", "c1"],
            &["--debug=1", "state", "c1"],
            &["state", "--", "c1"],
            &["state", "-"],
            &["state", ""],
            &["create", "c1"],
            &["run", "c1"],
            &["exec", "c1", "true"],
            &["--unknown", "state", "c1"],
        ];
        for o in others {
            assert!(fast(o).is_none(), "fast path took {o:?}");
        }
        let bad = [
            OsString::from("state"),
            std::os::unix::ffi::OsStringExt::from_vec(vec![0xff]),
        ];
        assert!(parse_fast(bad).is_none());
    }

    /// Random argvs from a vocabulary of valid, odd and broken tokens (100,000 argvs): whatever the fast path
    /// takes, clap must take identically. Deterministic (fixed LCG seed) so a failure repeats.
    #[test]
    fn fast_path_agrees_with_clap() {
        let vocab = [
            "--root",
            "/r",
            "--root=/r",
            "--log",
            "/l",
            "--log=",
            "--log-format",
            "json",
            "text",
            "--debug",
            "--debug=true",
            "--systemd-cgroup",
            "--cgroup-manager",
            "systemd",
            "--rootless",
            "--rootless=auto",
            "--rootless=",
            "-v",
            "--version",
            "-h",
            "--help",
            "--",
            "-",
            "",
            "state",
            "start",
            "kill",
            "delete",
            "pause",
            "resume",
            "create",
            "help",
            "c1",
            "KILL",
            "9",
            "-9",
            "-a",
            "--all",
            "-f",
            "--force",
            "--force=1",
            "-fa",
            "x=y",
        ];
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n
        };
        let mut taken = 0;
        for _ in 0..100_000 {
            let len = 1 + next(7);
            let argv: Vec<&str> = (0..len).map(|_| vocab[next(vocab.len())]).collect();
            if agrees(&argv) {
                taken += 1;
            }
        }
        // The check means something only if the fast path took a fair share of the inputs.
        assert!(taken > 500, "fast path took only {taken} of 100000");
    }
}
