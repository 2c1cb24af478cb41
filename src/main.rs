//! berth: a daemonless, runc-compatible OCI container runtime.
//! Parse the command line, set up logging, dispatch, map errors to exit codes; no logic here
//! (the modules live in the library, src/lib.rs).
//!
//! `no_main`: berth is a short-lived CLI whose `state`/`start`/`kill`/`delete` are dominated by
//! process start-up, so it skips std's runtime initialisation (which reads /proc/self/maps for
//! the main thread's stack guard and installs an alternate signal stack) and does the two parts
//! berth relies on itself: SIGPIPE ignored and fds 0-2 open (sys::process_start).
#![no_main]

use berth::cli::{Cli, Command};
use berth::{commands, container, log, namespaces};
use clap::Parser;
use std::path::PathBuf;

/// runc's rule: /run/berth for real root; $XDG_RUNTIME_DIR/berth for an unprivileged user, and
/// for uid 0 inside a user namespace when XDG_RUNTIME_DIR is set (rootless engines).
fn default_root() -> PathBuf {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty());
    if nix::unistd::geteuid().is_root() {
        return match xdg {
            Some(d) if namespaces::running_in_userns() => PathBuf::from(d).join("berth"),
            _ => PathBuf::from("/run/berth"),
        };
    }
    match xdg {
        Some(d) => PathBuf::from(d).join("berth"),
        _ => PathBuf::from(format!("/tmp/berth-{}", nix::unistd::geteuid())),
    }
}

fn print_version() {
    let _ = commands::out(&format!(
        "berth version {}\ncommit: {}\nspec: {}\n",
        env!("CARGO_PKG_VERSION"),
        option_env!("BERTH_COMMIT").unwrap_or("unknown"),
        container::state::OCI_VERSION
    ));
}

fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    let rootless = match cli.rootless.as_deref().unwrap_or("auto") {
        "auto" => None,
        "true" => Some(true),
        "false" => Some(false),
        other => anyhow::bail!("invalid --rootless value {other:?} (true, false or auto)"),
    };
    let g = commands::Global {
        root_given: cli.root.is_some(),
        root: cli.root.map(PathBuf::from).unwrap_or_else(default_root),
        rootless,
        systemd_cgroup: cli.systemd_cgroup,
        cgroup_manager: cli.cgroup_manager,
    };
    let Some(cmd) = cli.command else {
        anyhow::bail!("no command given; see berth --help");
    };
    let prefixed = |name: &str, r: anyhow::Result<i32>| r.map_err(|e| anyhow::anyhow!("berth {name} failed: {e:#}"));
    match cmd {
        Command::Create(c) => prefixed("create", commands::create::create(&g, &c.opts, &c.id)),
        Command::Run(r) => prefixed("run", commands::create::run(&g, &r.opts, &r.id, r.detach, r.keep)),
        Command::Start(a) => commands::start::run(&g, &a.id),
        Command::State(a) => commands::state::run(&g, &a.id),
        Command::Exec(e) => commands::exec::run(&g, &e).map_err(|e| anyhow::anyhow!("exec failed: {e:#}")),
        Command::Kill(k) => commands::kill::run(&g, &k.id, k.signal.as_deref(), k.all),
        Command::Delete(d) => commands::delete::run(&g, &d.id, d.force),
        Command::List(l) => commands::list::run(&g, &l.format, l.quiet),
        Command::Spec(s) => commands::spec::run(&s.bundle, s.rootless),
        Command::Features => commands::features::run(),
        Command::Pause(a) => commands::pause::pause(&g, &a.id),
        Command::Resume(a) => commands::pause::resume(&g, &a.id),
        Command::Update(u) => commands::update::run(&g, &u),
        Command::Events(e) => commands::events::run(&g, &e.id, e.stats, &e.interval),
        Command::Ps(p) => commands::ps::run(&g, &p.id, &p.format, &p.ps_args),
        Command::Checkpoint(c) => commands::checkpoint::run(&g, &c),
        Command::Restore(r) => commands::restore::run(&g, &r),
    }
}

/// The C entry point (see `no_main` above). The arguments are taken from `argv`: std's
/// `env::args` is empty without its runtime on musl. The environment works either way.
#[no_mangle]
extern "C" fn main(argc: std::ffi::c_int, argv: *const *const std::ffi::c_char) -> std::ffi::c_int {
    berth::sys::process_start();
    // SAFETY: these are main's own argc and argv.
    let args = unsafe { berth::sys::args(argc, argv) };
    run_cli(args);
    0
}

fn run_cli(args: Vec<std::ffi::OsString>) {
    let parsed = match berth::cli::parse_fast(args.iter().skip(1).cloned()) {
        Some(c) => Ok(c),
        None => Cli::try_parse_from(args),
    };
    let cli = match parsed {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    if cli.version {
        print_version();
        return;
    }
    let format = match cli.log_format.as_str() {
        "text" => log::Format::Text,
        "json" => log::Format::Json,
        other => {
            log::error(&format!("invalid log-format: {other}"));
            std::process::exit(1);
        }
    };
    if let Err(e) = log::init(cli.log.as_deref(), format, cli.debug) {
        log::error(&format!("{e:#}"));
        std::process::exit(1);
    }
    // runc's exec exits 255 when it fails itself, keeping 1..254 for the process's own codes.
    let fail = if matches!(cli.command, Some(Command::Exec(_))) {
        255
    } else {
        1
    };
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            log::error(&format!("{e:#}"));
            fail
        }
    };
    std::process::exit(code);
}
