use super::Global;
use crate::container::state::{Container, Op};
use anyhow::{bail, Result};

/// runc's parseSignal: a number, or a name with or without SIG, any case.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if !(0..=64).contains(&n) {
            bail!("invalid signal number {n}");
        }
        return Ok(n);
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") { up } else { format!("SIG{up}") };
    if let Some(rest) = name
        .strip_prefix("SIGRTMIN+")
        .or(if name == "SIGRTMIN" { Some("0") } else { None })
    {
        if let Ok(n) = rest.parse::<i32>() {
            if (0..=30).contains(&n) {
                return Ok(libc::SIGRTMIN() + n);
            }
        }
    }
    match name.parse::<nix::sys::signal::Signal>() {
        Ok(sig) => Ok(sig as i32),
        Err(_) => bail!("unknown signal {s:?}"),
    }
}

pub fn run(g: &Global, id: &str, signal: Option<&str>, all: bool) -> Result<i32> {
    let sig = parse_signal(signal.unwrap_or("SIGTERM"))?;
    let c = Container::load(&g.root, id, false)?;
    if let Err(refused) = c.status().require(Op::Kill, id) {
        if !all {
            return Err(refused);
        }
        // runc: --all signals whatever is left in the container's cgroup even after its init
        // exited. Without its own pid namespace (a pod's shared one, hostPID) the init's
        // children outlive it, and containerd's shim relies on this to end them.
        c.state.cgroup.signal_all(sig)?;
        return Ok(0);
    }
    if all {
        c.state.cgroup.signal_all(sig)?;
        // Without cgroups (or a process already gone from them) init still gets the signal.
        let _ = c.signal_init(sig);
    } else {
        c.signal_init(sig)?;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::parse_signal;

    #[test]
    fn signals_like_runc() {
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("SIGKILL").unwrap(), 9);
        assert_eq!(parse_signal("term").unwrap(), 15);
        assert_eq!(parse_signal("15").unwrap(), 15);
        assert_eq!(parse_signal("0").unwrap(), 0);
        assert_eq!(parse_signal("RTMIN+1").unwrap(), libc::SIGRTMIN() + 1);
        assert!(parse_signal("FOO").is_err());
        assert!(parse_signal("99").is_err());
        assert!(parse_signal("-1").is_err());
    }
}
