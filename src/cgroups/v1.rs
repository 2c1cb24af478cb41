//! cgroup v1 writers: one function per controller, runc's file names and write orders.

use super::resources::warn;
use super::{read_file, write_file};
use anyhow::{bail, Result};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources, LinuxThrottleDevice};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

type Dirs = BTreeMap<String, PathBuf>;

/// The directory of a controller the config sets a limit for. A host without it is an error,
/// as in runc ("cannot set hugetlb limit: ..."): the runtime-spec says a runtime that cannot
/// create the environment MUST error, and nobody may believe a limit holds that does not exist.
fn dir<'a>(dirs: &'a Dirs, ctrl: &str, field: &str) -> Result<&'a Path> {
    match dirs.get(ctrl) {
        Some(d) => Ok(d.as_path()),
        None => bail!(
            "cannot set {ctrl} limit: the {ctrl} cgroup controller is not available on this host (linux.resources.{field})"
        ),
    }
}

pub fn apply(dirs: &Dirs, r: &LinuxResources, update: bool) -> Result<()> {
    if r.unified().as_ref().is_some_and(|u| !u.is_empty()) {
        bail!("linux.resources.unified: invalid configuration: cannot use unified on cgroup v1");
    }
    if let Some(p) = r.pids() {
        let d = dir(dirs, "pids", "pids")?;
        pids(d, p.limit())?;
    }
    if let Some(m) = r.memory() {
        let d = dir(dirs, "memory", "memory")?;
        memory(d, m, update)?;
    }
    if let Some(c) = r.cpu() {
        if c.cpus().is_some() || c.mems().is_some() {
            let d = dir(dirs, "cpuset", "cpu.cpus")?;
            cpuset(d, c)?;
        }
        let d = dir(dirs, "cpu", "cpu")?;
        cpu(d, c)?;
    }
    if let Some(b) = r.block_io() {
        let d = dir(dirs, "blkio", "blockIO")?;
        blkio(d, b)?;
    }
    if let Some(h) = r.hugepage_limits().as_ref().filter(|h| !h.is_empty()) {
        let d = dir(dirs, "hugetlb", "hugepageLimits")?;
        for l in h {
            hugetlb(d, l.page_size(), l.limit(), "limit_in_bytes")?;
        }
    }
    if let Some(n) = r.network() {
        if let Some(id) = n.class_id() {
            let d = dir(dirs, "net_cls", "network.classID")?;
            write_file(d, "net_cls.classid", &id.to_string())?;
        }
        if let Some(ps) = n.priorities().as_ref().filter(|p| !p.is_empty()) {
            let d = dir(dirs, "net_prio", "network.priorities")?;
            for p in ps {
                write_file(d, "net_prio.ifpriomap", &format!("{} {}", p.name(), p.priority()))?;
            }
        }
    }
    if let Some(rd) = r.rdma().as_ref().filter(|r| !r.is_empty()) {
        let d = dir(dirs, "rdma", "rdma")?;
        for (dev, l) in rd {
            write_file(
                d,
                "rdma.max",
                &super::v2::rdma_line(dev, l.hca_handles(), l.hca_objects()),
            )?;
        }
    }
    Ok(())
}

/// pids.max as runtime-spec 1.3 clarified it (#1279): every limit >= 0 is a real limit, 0
/// included (no task may be forked), a negative one is "max"; only an absent `pids` leaves the
/// file alone. runc 1.1-1.3 ignored 0; runc 1.4 honours it but writes 1 (what systemd's
/// TasksMax can express), which forbids forks in a one-process container alike.
pub fn pids(d: &Path, limit: i64) -> Result<()> {
    let v = if limit >= 0 { limit.to_string() } else { "max".into() };
    write_file(d, "pids.max", &v)
}

fn read_u64(d: &Path, f: &str) -> Result<u64> {
    let s = read_file(d, f)?;
    s.parse()
        .map_err(|_| anyhow::anyhow!("parse {}: {s:?} is not a number", d.join(f).display()))
}

/// checkBeforeUpdate: refuse a limit below what the cgroup already uses (the kernel would
/// start reclaiming or OOM-kill instead of failing).
pub fn check_usage(d: &Path, limit: i64, usage_file: &str, peak_file: &str) -> Result<()> {
    if limit <= 0 {
        return Ok(());
    }
    let usage = read_u64(d, usage_file)?;
    if (limit as u64) < usage {
        let peak = read_u64(d, peak_file).unwrap_or(0);
        bail!("unable to set memory limit to {limit} (current usage: {usage}, peak usage: {peak})");
    }
    Ok(())
}

pub fn memory(d: &Path, m: &LinuxMemory, update: bool) -> Result<()> {
    if m.kernel().is_some() || m.kernel_tcp().is_some() {
        warn("linux.resources.memory.kernel and kernelTCP are ignored (deprecated by the kernel, as in runc)");
    }
    let limit = m.limit().unwrap_or(0);
    let mut swap = m.swap().unwrap_or(0);
    // runc: an unlimited memory limit with swap unset means both unlimited.
    if limit == -1 && swap == 0 && d.join("memory.memsw.limit_in_bytes").exists() {
        swap = -1;
    }
    if update && m.check_before_update() == Some(true) {
        check_usage(d, limit, "memory.usage_in_bytes", "memory.max_usage_in_bytes")?;
    }
    const LIMIT: &str = "memory.limit_in_bytes";
    const SWAP: &str = "memory.memsw.limit_in_bytes";
    if limit != 0 && swap != 0 {
        // The kernel requires limit <= memsw at every moment: raise memsw first when it grows
        // past the current limit, else lower the limit first.
        let cur = read_u64(d, LIMIT)?;
        if swap == -1 || cur < swap as u64 {
            write_file(d, SWAP, &swap.to_string())?;
            write_file(d, LIMIT, &limit.to_string())?;
        } else {
            write_file(d, LIMIT, &limit.to_string())?;
            write_file(d, SWAP, &swap.to_string())?;
        }
    } else {
        if limit != 0 {
            write_file(d, LIMIT, &limit.to_string())?;
        }
        if swap != 0 {
            write_file(d, SWAP, &swap.to_string())?;
        }
    }
    if let Some(r) = m.reservation().filter(|r| *r != 0) {
        write_file(d, "memory.soft_limit_in_bytes", &r.to_string())?;
    }
    if let Some(s) = m.swappiness() {
        if s > 100 {
            bail!("invalid value:{s}. valid memory swappiness range is 0-100");
        }
        write_file(d, "memory.swappiness", &s.to_string())?;
    }
    if m.disable_oom_killer() == Some(true) {
        write_file(d, "memory.oom_control", "1")?;
    }
    Ok(())
}

pub fn cpuset(d: &Path, c: &LinuxCpu) -> Result<()> {
    if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
        write_file(d, "cpuset.cpus", cpus)?;
    }
    if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
        write_file(d, "cpuset.mems", mems)?;
    }
    Ok(())
}

pub fn cpu(d: &Path, c: &LinuxCpu) -> Result<()> {
    // The kernel refuses shares for an idle group (EINVAL): leaving idle goes before them,
    // entering it after.
    let idle = c.idle();
    if idle == Some(0) {
        write_file(d, "cpu.idle", "0")?;
    }
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        write_file(d, "cpu.shares", &s.to_string())?;
        // The kernel clamps silently: report the clamp as runc does.
        let got = read_u64(d, "cpu.shares")?;
        if s > got {
            bail!("the maximum allowed cpu-shares is {got}");
        } else if s < got {
            bail!("the minimum allowed cpu-shares is {got}");
        }
    }
    let quota = c.quota().unwrap_or(0);
    let mut period_pending = None;
    if let Some(p) = c.period().filter(|p| *p != 0) {
        if let Err(e) = write_file(d, "cpu.cfs_period_us", &p.to_string()) {
            // A smaller period can exceed the parent's quota with the old quota (EINVAL):
            // retry it after the quota, as runc does.
            if quota == 0 || !e.to_string().ends_with("EINVAL") {
                return Err(e);
            }
            period_pending = Some(p);
        }
    }
    if quota != 0 {
        write_file(d, "cpu.cfs_quota_us", &quota.to_string())?;
        if let Some(p) = period_pending {
            write_file(d, "cpu.cfs_period_us", &p.to_string())?;
        }
    }
    if let Some(b) = c.burst() {
        write_file(d, "cpu.cfs_burst_us", &b.to_string())?;
    }
    let runtime = c.realtime_runtime().unwrap_or(0);
    let mut rt_period_pending = None;
    if let Some(p) = c.realtime_period().filter(|p| *p != 0) {
        if let Err(e) = write_file(d, "cpu.rt_period_us", &p.to_string()) {
            // A period below the current runtime is refused (EINVAL) until the runtime is
            // lowered: retried after it, as runc's SetRtSched.
            if runtime == 0 || !e.to_string().ends_with("EINVAL") {
                return Err(e);
            }
            rt_period_pending = Some(p);
        }
    }
    if runtime != 0 {
        write_file(d, "cpu.rt_runtime_us", &runtime.to_string())?;
        if let Some(p) = rt_period_pending {
            write_file(d, "cpu.rt_period_us", &p.to_string())?;
        }
    }
    if let Some(i) = idle.filter(|i| *i != 0) {
        write_file(d, "cpu.idle", &i.to_string())?;
    }
    Ok(())
}

fn throttle(d: &Path, file: &str, list: &Option<Vec<LinuxThrottleDevice>>) -> Result<()> {
    for t in list.iter().flatten() {
        write_file(d, file, &format!("{}:{} {}", t.major(), t.minor(), t.rate()))?;
    }
    Ok(())
}

pub fn blkio(d: &Path, b: &LinuxBlockIo) -> Result<()> {
    // Kernels with BFQ but without CFQ have only the blkio.bfq.* weight files.
    let bfq = !d.join("blkio.weight").exists() && d.join("blkio.bfq.weight").exists();
    let (wf, wdf) = if bfq {
        ("blkio.bfq.weight", "blkio.bfq.weight_device")
    } else {
        ("blkio.weight", "blkio.weight_device")
    };
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        write_file(d, wf, &w.to_string())?;
    }
    if let Some(w) = b.leaf_weight().filter(|w| *w != 0) {
        write_file(d, "blkio.leaf_weight", &w.to_string())?;
    }
    for wd in b.weight_device().iter().flatten() {
        if let Some(w) = wd.weight() {
            write_file(d, wdf, &format!("{}:{} {w}", wd.major(), wd.minor()))?;
        }
        if let Some(w) = wd.leaf_weight() {
            write_file(
                d,
                "blkio.leaf_weight_device",
                &format!("{}:{} {w}", wd.major(), wd.minor()),
            )?;
        }
    }
    throttle(d, "blkio.throttle.read_bps_device", b.throttle_read_bps_device())?;
    throttle(d, "blkio.throttle.write_bps_device", b.throttle_write_bps_device())?;
    throttle(d, "blkio.throttle.read_iops_device", b.throttle_read_iops_device())?;
    throttle(d, "blkio.throttle.write_iops_device", b.throttle_write_iops_device())?;
    Ok(())
}

/// hugetlb.<size>.<file>, plus the reservation limit where the kernel has it (5.7+): runc
/// sets both so a reservation cannot escape the limit.
pub fn hugetlb(d: &Path, size: &str, limit: i64, file: &str) -> Result<()> {
    let v = if limit < 0 && file == "max" {
        "max".to_string()
    } else {
        limit.to_string()
    };
    write_file(d, &format!("hugetlb.{size}.{file}"), &v)?;
    let rsvd = format!("hugetlb.{size}.rsvd.{file}");
    if d.join(&rsvd).exists() {
        write_file(d, &rsvd, &v)?;
    }
    Ok(())
}
