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
    /// use the systemd cgroup driver (not built yet: refused by create and run)
    #[arg(long = "systemd-cgroup")]
    pub systemd_cgroup: bool,
    /// cgroup manager: cgroupfs (default), systemd (not built yet) or disabled
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
    /// run the process in an (existing) sub-cgroup of the container's cgroup
    #[arg(long)]
    pub cgroup: Option<String>,
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
