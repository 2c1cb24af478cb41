//! SCMP_ACT_NOTIFY: the init loads its filter with SECCOMP_FILTER_FLAG_NEW_LISTENER and passes
//! the listener fd to the parent over the sync socket (SCM_RIGHTS); the parent hands it to the
//! seccomp agent listening on `linux.seccomp.listenerPath`, as the runtime-spec's "Seccomp
//! listener" section says: one message on a unix stream socket carrying the fd and the
//! container process state JSON (with `listenerMetadata`).

use anyhow::{anyhow, Result};
use serde_json::json;
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::path::PathBuf;

pub struct Listener {
    pub path: PathBuf,
    pub metadata: String,
    pub id: String,
    pub bundle: String,
    pub annotations: BTreeMap<String, String>,
}

/// The runtime-spec `containerProcessState` document.
pub fn state_json(l: &Listener, pid: i32) -> String {
    let state = json!({
        "ociVersion": crate::container::state::OCI_VERSION,
        "id": l.id,
        "status": "creating",
        "pid": pid,
        "bundle": l.bundle,
        "annotations": l.annotations,
    });
    json!({
        "ociVersion": crate::container::state::OCI_VERSION,
        "fds": ["seccompFd"],
        "pid": pid,
        "metadata": l.metadata,
        "state": state,
    })
    .to_string()
}

/// Connect to the agent and send it the listener fd with the state.
pub fn send_to_agent(l: &Listener, pid: i32, fd: BorrowedFd) -> Result<()> {
    let sock = std::os::unix::net::UnixStream::connect(&l.path)
        .map_err(|e| anyhow!("connect to seccomp agent {}: {e}", l.path.display()))?;
    let body = state_json(l, pid);
    crate::process::sync::send_with_fd(sock.as_raw_fd(), body.as_bytes(), fd)
        .map_err(|e| anyhow!("send seccomp fd to agent {}: {e}", l.path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_has_the_runtime_spec_fields() {
        let l = Listener {
            path: "/a".into(),
            metadata: "m=1".into(),
            id: "c1".into(),
            bundle: "/b".into(),
            annotations: BTreeMap::from([("k".to_string(), "v".to_string())]),
        };
        let v: serde_json::Value = serde_json::from_str(&state_json(&l, 42)).unwrap();
        assert_eq!(v["fds"], json!(["seccompFd"]));
        assert_eq!(v["pid"], 42);
        assert_eq!(v["metadata"], "m=1");
        assert_eq!(v["state"]["id"], "c1");
        assert_eq!(v["state"]["status"], "creating");
        assert_eq!(v["state"]["annotations"]["k"], "v");
    }
}
