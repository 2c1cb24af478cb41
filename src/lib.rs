//! berth as a library: the binary (src/main.rs) is a thin caller of these modules, and the fuzz
//! targets (fuzz/) drive the `fuzz_*` entry points below. Each entry point runs exactly the
//! input handling a command does before it touches the system (no files, mounts, cgroups or
//! processes), so arbitrary bytes can be thrown at it; bad input must end in an error, never a
//! panic or a hang.

pub mod cgroups;
pub mod cli;
pub mod commands;
pub mod container;
pub mod criu;
pub mod errtext;
pub mod fault;
pub mod hooks;
pub mod log;
pub mod namespaces;
pub mod notify;
pub mod passwd;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod sys;
pub mod timefmt;

use oci_spec::runtime::Spec;

/// config.json as `create`/`run` see it: parse, bundle validation, the device rules and the
/// terminal rules (every combination of console socket and foreground).
pub fn fuzz_config(data: &[u8]) {
    let Ok(spec) = container::bundle::parse(data) else {
        return;
    };
    let _ = spec.root().as_ref().map(|r| r.path().join("x"));
    if container::bundle::validate(&spec).is_err() {
        return;
    }
    if let Ok(rules) = cgroups::devices::rules(&spec) {
        let _ = cgroups::devices::writes(&rules);
    }
    for m in spec.mounts().iter().flatten() {
        let _ = rootfs::rel(m.destination());
    }
    let terminal = spec.process().as_ref().and_then(|p| p.terminal()).unwrap_or(false);
    for (socket, foreground) in [(false, false), (false, true), (true, false), (true, true)] {
        let _ = commands::create::check_terminal(terminal, socket, foreground);
    }
}

/// exec's `-p process.json`: parse it, then the checks create makes on a container's process.
pub fn fuzz_process(data: &[u8]) {
    let Ok(p) = commands::exec::parse_process(data) else {
        return;
    };
    let _ = container::bundle::refuse_nul(data, "process.json");
    let _ = container::bundle::validate_process(&p, process::lsm::HostLsm::default());
    // The same process inside the default config must still get through bundle validation or
    // fail with an error.
    if let Ok(mut spec) = serde_json::from_value::<Spec>(default_spec()) {
        spec.set_process(Some(p));
        let _ = container::bundle::validate(&spec);
    }
}

/// `<root>/<id>/state.json` as every command loads it; what berth writes it must read back.
pub fn fuzz_state(data: &[u8]) {
    let Ok(st) = container::state::State::parse(data, "fuzz") else {
        return;
    };
    let out = serde_json::to_vec(&st).expect("a loaded state serialises");
    container::state::State::parse(&out, "fuzz").expect("a saved state loads again");
    let oci = container::state::OciState {
        oci_version: container::state::OCI_VERSION,
        id: &st.id,
        pid: st.pid,
        status: container::state::Status::Running.as_str(),
        bundle: &st.bundle,
        rootfs: &st.rootfs,
        created: &st.created,
        owner: st.owner.to_string(),
        annotations: &st.annotations,
    };
    let _ = serde_json::to_string(&oci);
    let _ = container::state::validate_id(&st.id);
    if let Some(h) = &st.hooks {
        let _ = hooks::list(h.poststart()).len() + hooks::list(h.poststop()).len();
    }
}

/// The command line: clap parsing of arbitrary argv (checked against the fast path,
/// cli::parse_checked), then the argument checks each command makes before loading a container
/// (ids, signals, durations, sizes, exec overrides).
pub fn fuzz_cli(args: &[String]) {
    use cli::Command;
    let Ok(c) = cli::parse_checked(args).0 else {
        return;
    };
    let g = commands::Global {
        root: c.root.clone().unwrap_or_default().into(),
        root_given: c.root.is_some(),
        rootless: Some(c.rootless.as_deref() == Some("true")),
        systemd_cgroup: c.systemd_cgroup,
        cgroup_manager: c.cgroup_manager.clone(),
    };
    let _ = g.use_cgroups();
    let Some(cmd) = c.command else { return };
    let id = match &cmd {
        Command::Create(x) => x.id.as_str(),
        Command::Run(x) => x.id.as_str(),
        Command::Start(x) | Command::State(x) | Command::Pause(x) | Command::Resume(x) => x.id.as_str(),
        Command::Exec(x) => x.id.as_str(),
        Command::Kill(x) => x.id.as_str(),
        Command::Delete(x) => x.id.as_str(),
        Command::Update(x) => x.id.as_str(),
        Command::Events(x) => x.id.as_str(),
        Command::Ps(x) => x.id.as_str(),
        Command::Checkpoint(x) => x.id.as_str(),
        Command::Restore(x) => x.id.as_str(),
        Command::List(_) | Command::Spec(_) | Command::Features => "",
    };
    let _ = container::state::validate_id(id);
    match &cmd {
        Command::Kill(k) => {
            let _ = commands::kill::parse_signal(k.signal.as_deref().unwrap_or("SIGTERM"));
        }
        Command::Events(e) => {
            let _ = commands::events::parse_duration(&e.interval);
        }
        Command::Update(u) if u.resources.is_none() => {
            if let Ok(v) = commands::update::from_flags(u) {
                let _ = serde_json::from_value::<oci_spec::runtime::LinuxResources>(v);
            }
        }
        Command::Exec(e) if e.process.is_none() => {
            if let Ok(spec) = serde_json::from_value::<Spec>(default_spec()) {
                let _ = commands::exec::process_for(e, &spec);
            }
        }
        Command::Spec(s) => {
            let _ = commands::spec::generate(s.rootless);
        }
        _ => {}
    }
}

fn default_spec() -> serde_json::Value {
    commands::spec::generate(false).unwrap_or_default()
}
