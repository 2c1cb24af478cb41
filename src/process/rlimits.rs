//! process.rlimits: converted to (resource, soft, hard) in the parent, applied in the child
//! while it still has CAP_SYS_RESOURCE-equivalent privileges in its namespace.

use anyhow::{bail, Result};
use oci_spec::runtime::{PosixRlimitType as T, Process};

#[derive(Clone, Copy, Debug)]
pub struct Rlimit {
    pub resource: u32,
    pub name: &'static str,
    pub soft: u64,
    pub hard: u64,
}

/// glibc types the RLIMIT_* constants as `__rlimit_resource_t` (u32), musl as `c_int`.
#[allow(clippy::unnecessary_cast)]
fn resource(t: T) -> (u32, &'static str) {
    match t {
        T::RlimitCpu => (libc::RLIMIT_CPU as u32, "RLIMIT_CPU"),
        T::RlimitFsize => (libc::RLIMIT_FSIZE as u32, "RLIMIT_FSIZE"),
        T::RlimitData => (libc::RLIMIT_DATA as u32, "RLIMIT_DATA"),
        T::RlimitStack => (libc::RLIMIT_STACK as u32, "RLIMIT_STACK"),
        T::RlimitCore => (libc::RLIMIT_CORE as u32, "RLIMIT_CORE"),
        T::RlimitRss => (libc::RLIMIT_RSS as u32, "RLIMIT_RSS"),
        T::RlimitNproc => (libc::RLIMIT_NPROC as u32, "RLIMIT_NPROC"),
        T::RlimitNofile => (libc::RLIMIT_NOFILE as u32, "RLIMIT_NOFILE"),
        T::RlimitMemlock => (libc::RLIMIT_MEMLOCK as u32, "RLIMIT_MEMLOCK"),
        T::RlimitAs => (libc::RLIMIT_AS as u32, "RLIMIT_AS"),
        T::RlimitLocks => (libc::RLIMIT_LOCKS as u32, "RLIMIT_LOCKS"),
        T::RlimitSigpending => (libc::RLIMIT_SIGPENDING as u32, "RLIMIT_SIGPENDING"),
        T::RlimitMsgqueue => (libc::RLIMIT_MSGQUEUE as u32, "RLIMIT_MSGQUEUE"),
        T::RlimitNice => (libc::RLIMIT_NICE as u32, "RLIMIT_NICE"),
        T::RlimitRtprio => (libc::RLIMIT_RTPRIO as u32, "RLIMIT_RTPRIO"),
        T::RlimitRttime => (libc::RLIMIT_RTTIME as u32, "RLIMIT_RTTIME"),
    }
}

pub fn list(process: &Process) -> Result<Vec<Rlimit>> {
    let mut out: Vec<Rlimit> = Vec::new();
    for r in process.rlimits().iter().flatten() {
        let (resource, name) = resource(r.typ());
        if r.soft() > r.hard() {
            bail!(
                "process.rlimits: {name} soft limit {} is above its hard limit {}",
                r.soft(),
                r.hard()
            );
        }
        if out.iter().any(|o| o.resource == resource) {
            bail!("process.rlimits: duplicate {name}");
        }
        out.push(Rlimit {
            resource,
            name,
            soft: r.soft(),
            hard: r.hard(),
        });
    }
    Ok(out)
}

pub fn validate(process: &Process) -> Result<()> {
    list(process).map(drop)
}

pub fn apply(limits: &[Rlimit]) -> Result<()> {
    for l in limits {
        crate::sys::set_rlimit(l.resource, l.soft, l.hard)
            .map_err(|e| anyhow::anyhow!("setrlimit {} to soft {} hard {}: {e}", l.name, l.soft, l.hard))?;
    }
    Ok(())
}
