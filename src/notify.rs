//! NOTIFY_SOCKET passthrough (podman --sdnotify=container), as runc does it: the container gets
//! a directory of berth's state bind-mounted at /run/notify and NOTIFY_SOCKET pointing into it;
//! whoever releases the process (`start`, `run`) binds the socket there and forwards the
//! container's READY=1 (with MAINPID) to the caller's socket.

use anyhow::{anyhow, Context, Result};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

pub const DIR: &str = "notify";
pub const IN_CONTAINER: &str = "/run/notify/notify.sock";

/// The mount and the environment entry the container needs (added to the spec at create).
pub fn prepare(container_dir: &Path, spec: &mut oci_spec::runtime::Spec) -> Result<()> {
    let dir = container_dir.join(DIR);
    // runc's 0755 whatever the umask: a container user other than root reaches the socket.
    std::fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .with_context(|| format!("chmod {}", dir.display()))?;
    let m: oci_spec::runtime::Mount = serde_json::from_value(serde_json::json!({
        "destination": "/run/notify", "type": "bind", "source": dir,
        "options": ["bind", "nosuid", "noexec", "nodev", "ro"]
    }))?;
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(m);
    spec.set_mounts(Some(mounts));
    if let Some(p) = spec.process_mut() {
        let mut env = p.env().clone().unwrap_or_default();
        env.retain(|e| !e.starts_with("NOTIFY_SOCKET="));
        env.push(format!("NOTIFY_SOCKET={IN_CONTAINER}"));
        p.set_env(Some(env));
    }
    Ok(())
}

pub struct Listener {
    sock: UnixDatagram,
    host: String,
}

/// The listener when the container was created with a NOTIFY_SOCKET (`host`), else None.
pub fn listen_if(container_dir: &Path, host: Option<&str>) -> Result<Option<Listener>> {
    host.map(|h| listen(container_dir, h)).transpose()
}

/// Bind the container-side socket (before the process is released, so no READY is lost).
fn listen(container_dir: &Path, host: &str) -> Result<Listener> {
    let path = container_dir.join(DIR).join("notify.sock");
    let _ = std::fs::remove_file(&path);
    let sock = UnixDatagram::bind(&path).map_err(|e| anyhow!("bind {}: {e}", path.display()))?;
    // Any user of the container may notify, as with systemd's own socket.
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o777))?;
    sock.set_read_timeout(Some(Duration::from_millis(100)))?;
    Ok(Listener {
        sock,
        host: host.to_string(),
    })
}

impl Listener {
    /// Wait for READY=1 from the container and forward it; returns early if `alive` says the
    /// container is gone.
    pub fn forward_ready(&self, pid: i32, alive: impl Fn() -> bool) -> Result<()> {
        let mut buf = vec![0u8; 4096];
        loop {
            match self.sock.recv(&mut buf) {
                Ok(n) => {
                    let msg = String::from_utf8_lossy(&buf[..n]);
                    if msg.lines().any(|l| l.trim() == "READY=1") {
                        let out = UnixDatagram::unbound()?;
                        out.send_to(format!("READY=1\nMAINPID={pid}\n").as_bytes(), &self.host)
                            .map_err(|e| anyhow!("notify {}: {e}", self.host))?;
                        return Ok(());
                    }
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    if !alive() {
                        return Ok(());
                    }
                }
                Err(e) => return Err(anyhow!("read notify socket: {e}")),
            }
        }
    }
}
