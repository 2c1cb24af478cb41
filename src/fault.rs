//! Crash points for the crash-safety tests. With `BERTH_FAULT=<point>` in the environment,
//! berth SIGKILLs itself at that point of `create`/`run`, exactly as an OOM kill or an engine's
//! `kill -9` would; `delete --force` must then leave nothing behind. Costs one getenv per point.

// The points: before-state, before-cgroups, after-cgroups, after-clone, after-ready, after-state.
pub fn point(name: &str) {
    if std::env::var_os("BERTH_FAULT").is_some_and(|v| v == name) {
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}
