//! linux.netDevices (runtime-spec 1.3): existing network devices of the runtime's namespace
//! moved into the container's network namespace, renamed when `name` says so, with their
//! permanent global addresses and up, before anything of the container runs (runc 1.3's
//! devChangeNetNamespace).
//!
//! The parent does all of it (the init only tells it when its network namespace exists, see
//! process/sync.rs): `plan` resolves each device before the clone, `move_in` moves them.
//! Nothing moves them back when the container goes: the spec forbids it (the devices follow
//! their namespace; when it is freed the kernel returns physical devices to the initial
//! namespace and destroys virtual ones). Only a create that fails after the move gives them
//! back, under their own names and with their addresses: no container ever existed.

use crate::sys::netlink::{Addr, Link, Rtnl, IFA_F_PERMANENT, RT_SCOPE_UNIVERSE};
use anyhow::{anyhow, bail, Result};
use oci_spec::runtime::{Linux, LinuxNamespaceType};
use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};

const NO_NETNS: &str = "linux.netDevices: unable to move network devices without a private NET namespace";

/// One device to move: its name and index on the host, its name in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dev {
    pub host: String,
    pub index: i32,
    pub target: String,
}

/// The kernel's dev_valid_name (net/core/dev.c), which runc's validation copies: 1 to 15
/// bytes, not "." or "..", no '/', ':' or whitespace. A '%' is the kernel's template "%d"
/// (the kernel picks the number), allowed once and only in a name inside the container.
fn valid_name(name: &str, template: bool) -> bool {
    let ok = !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name != "."
        && name != ".."
        && !name.bytes().any(|b| b == b'/' || b == b':' || b.is_ascii_whitespace());
    let pct = name.matches('%').count();
    ok && (pct == 0 || (template && pct == 1 && name.contains("%d")))
}

/// (host name, name in the container) for every entry, sorted by host name.
fn entries(linux: &Linux) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = linux
        .net_devices()
        .iter()
        .flatten()
        .map(|(host, d)| {
            let target = d.name().as_deref().filter(|n| !n.is_empty()).unwrap_or(host);
            (host.clone(), target.to_string())
        })
        .collect();
    v.sort();
    v
}

/// The config checks, with runc's texts: the container needs a network namespace of its own,
/// the names must be ones the kernel accepts, and no two devices may end up with one name.
pub fn validate(linux: &Linux) -> Result<()> {
    let devs = entries(linux);
    if devs.is_empty() {
        return Ok(());
    }
    if !linux
        .namespaces()
        .iter()
        .flatten()
        .any(|n| n.typ() == LinuxNamespaceType::Network)
    {
        bail!(NO_NETNS);
    }
    let mut names = BTreeMap::new();
    for (host, target) in &devs {
        if !valid_name(host, false) {
            bail!("linux.netDevices: invalid network device name {host:?}");
        }
        if !valid_name(target, true) {
            bail!("linux.netDevices: invalid network device name {target:?}");
        }
        if target.contains('%') {
            continue;
        }
        if let Some(other) = names.insert(target.as_str(), host.as_str()) {
            bail!("linux.netDevices: {other:?} and {host:?} would both be {target:?} in the container");
        }
    }
    Ok(())
}

fn same_file(a: std::os::fd::BorrowedFd, b: std::os::fd::BorrowedFd) -> bool {
    match (
        nix::sys::stat::fstat(a.as_raw_fd()),
        nix::sys::stat::fstat(b.as_raw_fd()),
    ) {
        (Ok(x), Ok(y)) => x.st_dev == y.st_dev && x.st_ino == y.st_ino,
        _ => false,
    }
}

fn own_netns() -> Result<OwnedFd> {
    crate::sys::open("/proc/thread-self/ns/net", libc::O_RDONLY, 0)
        .map_err(|e| anyhow!("open /proc/thread-self/ns/net: {e}"))
}

/// Before the clone: every device must exist in the runtime's network namespace, and the
/// container's must be another one (a joined path may name the runtime's own).
pub fn plan(linux: &Linux, ns: &super::NsPlan) -> Result<Vec<Dev>> {
    let devs = entries(linux);
    if devs.is_empty() {
        return Ok(Vec::new());
    }
    // Moving devices takes CAP_NET_ADMIN over both namespaces (runc refuses it rootless too).
    if !nix::unistd::geteuid().is_root() || super::running_in_userns() {
        bail!("linux.netDevices: network devices are not supported for rootless containers");
    }
    if let Some(j) = ns.joins.iter().find(|j| j.flag == libc::CLONE_NEWNET) {
        if same_file(j.fd.as_fd(), own_netns()?.as_fd()) {
            bail!(NO_NETNS);
        }
    }
    let mut nl = Rtnl::open()?;
    let mut out = Vec::with_capacity(devs.len());
    for (host, target) in devs {
        let link = nl
            .link_by_name(&host)?
            .ok_or_else(|| anyhow!("linux.netDevices: link not found for interface {host} on runtime namespace"))?;
        out.push(Dev {
            host,
            index: link.index,
            target,
        });
    }
    Ok(out)
}

/// A device in the container's namespace, with what giving it back needs.
struct MovedDev {
    host: String,
    index: i32,
    addrs: Vec<Addr>,
    was_up: bool,
}

/// The devices a create moved. Dropped armed (the create failed), it moves them back; its
/// hold on the container's network namespace keeps that alive until then, even if the init
/// is already dead.
pub struct Moved {
    home: OwnedFd,
    ns: OwnedFd,
    devs: Vec<MovedDev>,
}

impl Moved {
    /// The container exists: the devices are its own from now on.
    pub fn disarm(&mut self) {
        self.devs.clear();
    }

    fn give_back(&self, ctr: &mut Rtnl, host: &mut Rtnl, d: &MovedDev) -> Result<()> {
        let e = |what: &str, e: nix::errno::Errno| anyhow!("{what}: {e}");
        ctr.set_up(d.index, false).map_err(|x| e("set it down", x))?;
        ctr.move_to(d.index, self.home.as_fd(), &d.host)
            .map_err(|x| e("move it", x))?;
        let l = host
            .link_by_name(&d.host)?
            .ok_or_else(|| anyhow!("not found after the move"))?;
        for a in &d.addrs {
            host.add_addr(l.index, a).map_err(|x| e("add an address", x))?;
        }
        if d.was_up {
            host.set_up(l.index, true).map_err(|x| e("set it up", x))?;
        }
        Ok(())
    }
}

impl Drop for Moved {
    fn drop(&mut self) {
        if self.devs.is_empty() {
            return;
        }
        let socks = Rtnl::open_in(self.ns.as_fd(), self.home.as_fd()).and_then(|c| Ok((c, Rtnl::open()?)));
        let (mut ctr, mut host) = match socks {
            Ok(s) => s,
            Err(e) => {
                crate::log::warn(&format!("linux.netDevices: cannot give the devices back: {e:#}"));
                return;
            }
        };
        for d in self.devs.iter().rev() {
            if let Err(e) = self.give_back(&mut ctr, &mut host, d) {
                crate::log::warn(&format!("linux.netDevices: give {} back to the host: {e:#}", d.host));
            }
        }
    }
}

/// `name` as the kernel may have made it from `template` ("eth%d" -> "eth3").
fn from_template(name: &str, template: &str) -> bool {
    let Some((pre, post)) = template.split_once("%d") else {
        return name == template;
    };
    name.len() > pre.len() + post.len()
        && name.starts_with(pre)
        && name.ends_with(post)
        && name[pre.len()..name.len() - post.len()]
            .bytes()
            .all(|b| b.is_ascii_digit())
}

/// Move the planned devices into the network namespace of `pid` (the container's init, which
/// waits meanwhile). runc's order per device: down on the host, its permanent global
/// addresses noted (a move flushes them), moved and renamed in one request, addresses added
/// again, up.
pub fn move_in(devs: &[Dev], pid: i32) -> Result<Moved> {
    let ns_path = format!("/proc/{pid}/ns/net");
    let ns = crate::sys::open(ns_path.as_str(), libc::O_RDONLY, 0).map_err(|e| anyhow!("open {ns_path}: {e}"))?;
    let home = own_netns()?;
    let mut host = Rtnl::open()?;
    let mut ctr = Rtnl::open_in(ns.as_fd(), home.as_fd())?;
    let mut moved = Moved {
        home,
        ns,
        devs: Vec::with_capacity(devs.len()),
    };
    for d in devs {
        let fail = |what: &str, e: nix::errno::Errno| {
            anyhow!("linux.netDevices: {what} network device {} ({}): {e}", d.host, d.target)
        };
        // The index was resolved before the clone; the name must still be on it.
        let link = host
            .link_by_index(d.index)?
            .filter(|l| l.name == d.host)
            .ok_or_else(|| {
                anyhow!(
                    "linux.netDevices: link not found for interface {} on runtime namespace",
                    d.host
                )
            })?;
        // The spec: a name already taken in the container's namespace is an error (the kernel
        // would move the device, then fail to rename it).
        if !d.target.contains('%') && ctr.link_by_name(&d.target)?.is_some() {
            bail!(
                "linux.netDevices: network device {:?} already exists in the container's network namespace",
                d.target
            );
        }
        let addrs: Vec<Addr> = host
            .addrs(d.index)?
            .into_iter()
            .filter(|a| a.flags & IFA_F_PERMANENT != 0 && a.scope == RT_SCOPE_UNIVERSE)
            .collect();
        host.set_up(d.index, false).map_err(|e| fail("set down", e))?;
        if let Err(e) = host.move_to(d.index, moved.ns.as_fd(), &d.target) {
            if link.up {
                let _ = host.set_up(d.index, true);
            }
            return Err(fail("move", e));
        }
        let found = if d.target.contains('%') {
            ctr.link_by_index(d.index)?
                .filter(|l| from_template(&l.name, &d.target))
        } else {
            ctr.link_by_name(&d.target)?
        };
        let Some(Link { index, .. }) = found else {
            bail!(
                "linux.netDevices: {} was moved but is not found in the container's network namespace",
                d.host
            );
        };
        moved.devs.push(MovedDev {
            host: d.host.clone(),
            index,
            addrs: addrs.clone(),
            was_up: link.up,
        });
        for a in &addrs {
            ctr.add_addr(index, a).map_err(|e| fail("add an address to", e))?;
        }
        ctr.set_up(index, true).map_err(|e| fail("set up", e))?;
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linux(v: serde_json::Value) -> Linux {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn names_follow_the_kernel_rules() {
        for ok in ["eth0", "a", "x-y_z.1", &"n".repeat(15)] {
            assert!(valid_name(ok, false), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "a\tb", &"n".repeat(16), "eth%d"] {
            assert!(!valid_name(bad, false), "{bad:?}");
        }
        assert!(valid_name("eth%d", true));
        assert!(!valid_name("eth%s", true));
        assert!(!valid_name("e%d%d", true));
        assert!(from_template("eth12", "eth%d"));
        assert!(from_template("c3x", "c%dx"));
        assert!(!from_template("eth", "eth%d"));
        assert!(!from_template("ethx", "eth%d"));
    }

    #[test]
    fn validation_has_runc_texts() {
        let net = serde_json::json!([{"type": "network"}]);
        let err = |v| validate(&linux(v)).unwrap_err().to_string();
        assert_eq!(
            err(serde_json::json!({"netDevices": {"eth0": {}}})),
            "linux.netDevices: unable to move network devices without a private NET namespace"
        );
        assert_eq!(
            err(serde_json::json!({"namespaces": net, "netDevices": {"eth0": {"name": "a b"}}})),
            "linux.netDevices: invalid network device name \"a b\""
        );
        assert!(
            err(serde_json::json!({"namespaces": net, "netDevices": {"a": {"name": "c"}, "b": {"name": "c"}}}))
                .contains("would both be \"c\"")
        );
        assert!(
            err(serde_json::json!({"namespaces": net, "netDevices": {"a": {}, "b": {"name": "a"}}}))
                .contains("would both be \"a\"")
        );
        let ok = serde_json::json!({"namespaces": net, "netDevices": {"a": {"name": "c%d"}, "b": {"name": "c%d"}, "eth0": {}}});
        validate(&linux(ok)).unwrap();
        validate(&linux(serde_json::json!({}))).unwrap();
    }
}
