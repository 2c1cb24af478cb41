//! A minimal rtnetlink (NETLINK_ROUTE) client: the few link and address requests
//! linux.netDevices needs (namespaces/netdev.rs). Five message kinds do not justify a crate;
//! the layouts are the kernel's uapi (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h,
//! linux/if_addr.h), all native-endian.

use anyhow::{anyhow, Result};
use nix::errno::Errno;
use nix::sys::socket::{recv, send, socket, AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_MULTI: u16 = 0x2;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_DUMP: u16 = 0x300;
const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_FD: u16 = 28;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const IFA_FLAGS: u16 = 8;
const IFF_UP: u32 = 0x1;
/// An address the user configured, not one with a lifetime (SLAAC, DHCP via a daemon).
pub const IFA_F_PERMANENT: u32 = 0x80;
pub const RT_SCOPE_UNIVERSE: u8 = 0;
const HDR: usize = 16;

/// A network device as RTM_GETLINK reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: i32,
    pub name: String,
    pub up: bool,
}

/// An address of a device, with the attributes needed to add it again elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub family: u8,
    pub prefix: u8,
    pub scope: u8,
    pub flags: u32,
    pub local: Option<Vec<u8>>,
    pub address: Option<Vec<u8>>,
    pub broadcast: Option<Vec<u8>>,
}

/// One request being built: nlmsghdr, the fixed family header, then rtattrs (4-byte aligned).
struct Req(Vec<u8>);

impl Req {
    fn new(ty: u16, flags: u16, seq: u32) -> Req {
        let mut v = Vec::with_capacity(64);
        v.extend_from_slice(&0u32.to_ne_bytes()); // length, set by `done`
        v.extend_from_slice(&ty.to_ne_bytes());
        v.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills in ours
        Req(v)
    }

    fn bytes(mut self, b: &[u8]) -> Req {
        self.0.extend_from_slice(b);
        self.0.resize(self.0.len().next_multiple_of(4), 0);
        self
    }

    fn attr(self, ty: u16, data: &[u8]) -> Req {
        let mut a = ((4 + data.len()) as u16).to_ne_bytes().to_vec();
        a.extend_from_slice(&ty.to_ne_bytes());
        a.extend_from_slice(data);
        self.bytes(&a)
    }

    fn done(mut self) -> Vec<u8> {
        let len = (self.0.len() as u32).to_ne_bytes();
        self.0[..4].copy_from_slice(&len);
        self.0
    }
}

/// struct ifinfomsg: family, type, index, flags, change.
fn ifinfomsg(index: i32, flags: u32, change: u32) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[4..8].copy_from_slice(&index.to_ne_bytes());
    m[8..12].copy_from_slice(&flags.to_ne_bytes());
    m[12..16].copy_from_slice(&change.to_ne_bytes());
    m
}

fn cstring(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The rtattrs of `b` (after the fixed header): (type, payload).
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let ty = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            break;
        }
        out.push((ty, &b[4..len]));
        b = &b[len.next_multiple_of(4).min(b.len())..];
    }
    out
}

fn parse_link(p: &[u8]) -> Option<Link> {
    let index = u32_at(p, 4)? as i32;
    let flags = u32_at(p, 8)?;
    let name = attrs(p.get(16..)?)
        .into_iter()
        .find(|(t, _)| *t == IFLA_IFNAME)
        .map(|(_, d)| String::from_utf8_lossy(d.split(|c| *c == 0).next().unwrap_or_default()).into_owned())?;
    Some(Link {
        index,
        name,
        up: flags & IFF_UP != 0,
    })
}

fn parse_addr(p: &[u8]) -> Option<(i32, Addr)> {
    let h = p.get(..8)?;
    let mut a = Addr {
        family: h[0],
        prefix: h[1],
        flags: h[2] as u32,
        scope: h[3],
        local: None,
        address: None,
        broadcast: None,
    };
    for (t, d) in attrs(&p[8..]) {
        match t {
            IFA_LOCAL => a.local = Some(d.to_vec()),
            IFA_ADDRESS => a.address = Some(d.to_vec()),
            IFA_BROADCAST => a.broadcast = Some(d.to_vec()),
            // The full 32-bit flags (the header's byte holds only the low 8).
            IFA_FLAGS => a.flags = u32_at(d, 0).unwrap_or(a.flags),
            _ => {}
        }
    }
    Some((u32_at(h, 4)? as i32, a))
}

/// A NETLINK_ROUTE socket. It acts in the network namespace it was made in.
pub struct Rtnl {
    fd: OwnedFd,
    seq: u32,
}

impl Rtnl {
    pub fn open() -> Result<Rtnl> {
        let fd = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )
        .map_err(|e| anyhow!("netlink socket: {e}"))?;
        // Connected to the kernel (port 0): the kernel then refuses to deliver any other
        // sender's message to this socket, so a process in the container's network namespace
        // (CAP_NET_ADMIN there) cannot queue forged replies to berth's requests.
        nix::sys::socket::connect(fd.as_raw_fd(), &nix::sys::socket::NetlinkAddr::new(0, 0))
            .map_err(|e| anyhow!("connect the netlink socket to the kernel: {e}"))?;
        Ok(Rtnl { fd, seq: 0 })
    }

    /// A socket in the network namespace `ns`: this thread enters it for the socket(2) only
    /// and goes back to `home` (a socket keeps the namespace it was made in).
    pub fn open_in(ns: BorrowedFd, home: BorrowedFd) -> Result<Rtnl> {
        super::setns(ns, libc::CLONE_NEWNET).map_err(|e| anyhow!("enter the network namespace: {e}"))?;
        let s = Rtnl::open();
        super::setns(home, libc::CLONE_NEWNET)
            .map_err(|e| anyhow!("return to the runtime's network namespace: {e}"))?;
        s
    }

    /// Send one request; `each` sees every answer's (type, payload) until the kernel's ack,
    /// the end of a dump, or the single answer of a plain get.
    fn exchange(&mut self, req: Req, mut each: impl FnMut(u16, &[u8])) -> Result<(), Errno> {
        let msg = req.done();
        let seq = u32_at(&msg, 8).unwrap_or(0);
        loop {
            match send(self.fd.as_raw_fd(), &msg, MsgFlags::empty()) {
                Err(Errno::EINTR) => continue,
                r => break r.map(drop)?,
            }
        }
        let mut buf = vec![0u8; 65536];
        loop {
            let n = match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Err(Errno::EINTR) => continue,
                r => r?,
            };
            let mut b = &buf[..n];
            while b.len() >= HDR {
                let len = (u32_at(b, 0).unwrap_or(0) as usize).clamp(HDR, b.len());
                let ty = u16::from_ne_bytes([b[4], b[5]]);
                let flags = u16::from_ne_bytes([b[6], b[7]]);
                let payload = &b[HDR..len];
                if u32_at(b, 8) == Some(seq) {
                    match ty {
                        NLMSG_ERROR => {
                            let e = u32_at(payload, 0).map_or(0, |e| e as i32);
                            return if e == 0 { Ok(()) } else { Err(Errno::from_raw(-e)) };
                        }
                        // A dump interrupted by a concurrent change still lists what it saw
                        // (runc ignores NLM_F_DUMP_INTR too).
                        NLMSG_DONE => return Ok(()),
                        _ => {
                            each(ty, payload);
                            if flags & NLM_F_MULTI == 0 && req_is_get(&msg) {
                                return Ok(());
                            }
                        }
                    }
                }
                b = &b[len.next_multiple_of(4).min(b.len())..];
            }
        }
    }

    fn link(&mut self, req: Req) -> Result<Option<Link>> {
        let mut found = None;
        match self.exchange(req, |ty, p| {
            if ty == RTM_NEWLINK {
                found = parse_link(p);
            }
        }) {
            Ok(()) => Ok(found),
            Err(Errno::ENODEV) => Ok(None),
            Err(e) => Err(anyhow!("get link: {e}")),
        }
    }

    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>> {
        self.seq += 1;
        let req = Req::new(RTM_GETLINK, 0, self.seq)
            .bytes(&ifinfomsg(0, 0, 0))
            .attr(IFLA_IFNAME, &cstring(name));
        self.link(req)
    }

    pub fn link_by_index(&mut self, index: i32) -> Result<Option<Link>> {
        self.seq += 1;
        self.link(Req::new(RTM_GETLINK, 0, self.seq).bytes(&ifinfomsg(index, 0, 0)))
    }

    /// Every address of the device `index` (the dump lists all devices': filtered here).
    pub fn addrs(&mut self, index: i32) -> Result<Vec<Addr>> {
        self.seq += 1;
        let req = Req::new(RTM_GETADDR, NLM_F_DUMP, self.seq).bytes(&[0u8; 8]);
        let mut out = Vec::new();
        self.exchange(req, |ty, p| {
            if let (RTM_NEWADDR, Some((i, a))) = (ty, parse_addr(p)) {
                if i == index {
                    out.push(a);
                }
            }
        })
        .map_err(|e| anyhow!("list addresses: {e}"))?;
        Ok(out)
    }

    pub fn add_addr(&mut self, index: i32, a: &Addr) -> Result<(), Errno> {
        self.seq += 1;
        let mut h = [a.family, a.prefix, 0, a.scope, 0, 0, 0, 0];
        h[4..8].copy_from_slice(&index.to_ne_bytes());
        let mut req = Req::new(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, self.seq).bytes(&h);
        for (ty, v) in [
            (IFA_LOCAL, &a.local),
            (IFA_ADDRESS, &a.address),
            (IFA_BROADCAST, &a.broadcast),
        ] {
            if let Some(v) = v {
                req = req.attr(ty, v);
            }
        }
        self.exchange(req, |_, _| {})
    }

    pub fn set_up(&mut self, index: i32, up: bool) -> Result<(), Errno> {
        self.seq += 1;
        let req =
            Req::new(RTM_NEWLINK, NLM_F_ACK, self.seq).bytes(&ifinfomsg(index, if up { IFF_UP } else { 0 }, IFF_UP));
        self.exchange(req, |_, _| {})
    }

    /// Move the device into the network namespace `ns`, named `name` there: one request, so it
    /// never exists under its new name in the old namespace (runc does the same).
    pub fn move_to(&mut self, index: i32, ns: BorrowedFd, name: &str) -> Result<(), Errno> {
        self.seq += 1;
        let req = Req::new(RTM_NEWLINK, NLM_F_ACK, self.seq)
            .bytes(&ifinfomsg(index, 0, 0))
            .attr(IFLA_NET_NS_FD, &(ns.as_raw_fd() as u32).to_ne_bytes())
            .attr(IFLA_IFNAME, &cstring(name));
        self.exchange(req, |_, _| {})
    }
}

/// A plain get (no dump, no ack asked) is answered by one message.
fn req_is_get(msg: &[u8]) -> bool {
    let flags = u16::from_ne_bytes([msg[6], msg[7]]);
    flags & (NLM_F_ACK | NLM_F_DUMP) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_aligned_and_sized() {
        let m = Req::new(RTM_GETLINK, 0, 7)
            .bytes(&ifinfomsg(3, 0, 0))
            .attr(IFLA_IFNAME, &cstring("eth0"))
            .done();
        assert_eq!(m.len(), 16 + 16 + 12);
        assert_eq!(u32_at(&m, 0), Some(44));
        assert_eq!(u32_at(&m, 8), Some(7));
        let a = attrs(&m[32..]);
        assert_eq!(a, vec![(IFLA_IFNAME, &b"eth0\0"[..])]);
        assert!(req_is_get(&m));
    }

    #[test]
    fn the_loopback_device_is_found_by_name_and_index() {
        let mut nl = Rtnl::open().unwrap();
        let lo = nl.link_by_name("lo").unwrap().expect("lo");
        assert_eq!(lo.name, "lo");
        assert_eq!(nl.link_by_index(lo.index).unwrap(), Some(lo.clone()));
        assert_eq!(nl.link_by_name("berth-none0").unwrap(), None);
        // 127.0.0.1 is host-scoped: never one a move carries over.
        let addrs = nl.addrs(lo.index).unwrap();
        assert!(addrs.iter().all(|a| a.scope != RT_SCOPE_UNIVERSE));
    }
}
