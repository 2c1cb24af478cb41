//! runtime-spec hooks: each gets the container state JSON on stdin, exactly its args and env,
//! and is killed after its timeout. Only poststop failures are warnings (the spec: all
//! poststop hooks run); any other failure fails the operation.

use anyhow::{anyhow, bail, Result};
use oci_spec::runtime::Hook;
use serde::Serialize;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

/// What hooks need, carried in the Plan (create) and in state.json (start, delete).
pub struct HookCtx {
    pub id: String,
    pub bundle: String,
    pub annotations: std::collections::BTreeMap<String, String>,
    pub hooks: oci_spec::runtime::Hooks,
}

pub fn list(h: &Option<Vec<Hook>>) -> &[Hook] {
    h.as_deref().unwrap_or(&[])
}

impl HookCtx {
    /// Hooks that run while the container is being created (parent and child meet for them).
    pub fn during_create(&self) -> bool {
        let h = &self.hooks;
        !(list(h.prestart()).is_empty()
            && list(h.create_runtime()).is_empty()
            && list(h.create_container()).is_empty()
            && list(h.start_container()).is_empty())
    }

    pub fn state(&self, status: &str, pid: i32) -> Vec<u8> {
        HookState {
            oci_version: crate::container::state::OCI_VERSION,
            id: &self.id,
            status,
            pid,
            bundle: &self.bundle,
            annotations: &self.annotations,
        }
        .json()
    }
}

/// The state document hooks read (runtime-spec "State").
#[derive(Serialize)]
pub struct HookState<'a> {
    #[serde(rename = "ociVersion")]
    pub oci_version: &'a str,
    pub id: &'a str,
    pub status: &'a str,
    pub pid: i32,
    pub bundle: &'a str,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: &'a std::collections::BTreeMap<String, String>,
}

impl HookState<'_> {
    pub fn json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Run one hook to completion (or its timeout).
pub fn run_one(kind: &str, i: usize, h: &Hook, state: &[u8]) -> Result<()> {
    let path = h.path();
    let mut cmd = std::process::Command::new(path);
    if let Some(args) = h.args() {
        if let Some((a0, rest)) = args.split_first() {
            cmd.arg0(a0).args(rest);
        }
    }
    cmd.env_clear();
    for e in h.env().iter().flatten() {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let name = format!("{kind} hook #{i} ({})", path.display());
    let mut child = cmd.spawn().map_err(|e| anyhow!("{name}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin must not make us fail (EPIPE).
        let _ = stdin.write_all(state);
    }
    let deadline = h
        .timeout()
        .filter(|t| *t > 0)
        .map(|t| Instant::now() + Duration::from_secs(t as u64));
    let status = loop {
        if let Some(st) = child.try_wait().map_err(|e| anyhow!("{name}: wait: {e}"))? {
            break st;
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            let _ = child.kill();
            let _ = child.wait();
            bail!("{name}: timed out after {} seconds", h.timeout().unwrap_or(0));
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    if !status.success() {
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        bail!("{name}: {status}, stderr: {}", err.trim());
    }
    Ok(())
}

pub fn run_all(kind: &str, hooks: &[Hook], state: &[u8]) -> Result<()> {
    for (i, h) in hooks.iter().enumerate() {
        run_one(kind, i, h, state)?;
    }
    Ok(())
}

/// poststart and poststop: every hook runs; failures are logged as warnings (runtime-spec).
pub fn run_warn(kind: &str, hooks: &[Hook], state: &[u8]) {
    for (i, h) in hooks.iter().enumerate() {
        if let Err(e) = run_one(kind, i, h, state) {
            crate::log::warn(&format!("{e:#}"));
        }
    }
}
