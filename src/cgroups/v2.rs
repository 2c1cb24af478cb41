//! cgroup v2 writers, runc's v1 -> v2 conversions, controller enabling and cgroup.freeze.

use super::resources::warn;
use super::{read_file, write_file};
use anyhow::{anyhow, bail, Result};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};
use std::path::{Path, PathBuf};

/// The controllers berth writes or reads; only these are enabled in the ancestors.
pub const NEEDED: [&str; 7] = ["cpu", "cpuset", "io", "memory", "pids", "hugetlb", "rdma"];

/// runc's ConvertCPUSharesToCgroupV2Value: [2, 262144] onto [1, 10000].
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.saturating_sub(2) * 9999) / 262142
}

/// runc's ConvertBlkIOToIOWeightValue: [10, 1000] onto [1, 10000].
pub fn blkio_to_io_weight(w: u64) -> u64 {
    if w == 0 {
        return 0;
    }
    1 + (w.saturating_sub(10) * 9999) / 990
}

/// runc's ConvertMemorySwapToCgroupV2Value: v1's memsw counts memory+swap, v2's swap.max
/// only swap. 0 means unchanged, -1 unlimited.
pub fn swap_to_v2(swap: i64, mem: i64) -> Result<i64> {
    if mem == -1 && swap == 0 {
        return Ok(-1);
    }
    if swap == -1 || swap == 0 {
        return Ok(swap);
    }
    if mem == 0 || mem == -1 {
        bail!("linux.resources.memory: unable to set swap limit without memory limit");
    }
    if mem < 0 {
        bail!("linux.resources.memory: invalid memory value: {mem}");
    }
    if swap < mem {
        bail!("linux.resources.memory: memory+swap limit should be >= memory limit");
    }
    Ok(swap - mem)
}

/// 0: leave alone; -1 (or less): "max".
fn num(v: i64) -> Option<String> {
    match v {
        0 => None,
        v if v < 0 => Some("max".into()),
        v => Some(v.to_string()),
    }
}

pub fn rdma_line(dev: &str, handles: Option<u32>, objects: Option<u32>) -> String {
    let f = |v: Option<u32>| v.map_or("max".to_string(), |v| v.to_string());
    format!("{dev} hca_handle={} hca_object={}", f(handles), f(objects))
}

/// Every cgroup2 directory from the hierarchy root down to the leaf's parent, root first.
fn ancestors(leaf: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut cur = leaf.parent();
    while let Some(d) = cur {
        if !d.join("cgroup.controllers").exists() {
            break;
        }
        out.push(d.to_path_buf());
        cur = d.parent();
    }
    out.reverse();
    out
}

/// Enable berth's controllers in each ancestor's cgroup.subtree_control (only the ones the
/// parent offers and has not enabled yet; nothing is ever disabled), so the leaf gets the
/// interface files. A no-op on hybrid hosts, whose cgroup2 has no controllers.
pub fn enable_controllers(leaf: &Path) -> Result<()> {
    for dir in ancestors(leaf) {
        let avail = read_file(&dir, "cgroup.controllers")?;
        let on = read_file(&dir, "cgroup.subtree_control").unwrap_or_default();
        let on: Vec<&str> = on.split_whitespace().collect();
        let want: Vec<String> = avail
            .split_whitespace()
            .filter(|c| NEEDED.contains(c) && !on.contains(c))
            .map(|c| format!("+{c}"))
            .collect();
        if !want.is_empty() {
            write_file(&dir, "cgroup.subtree_control", &want.join(" "))?;
        }
    }
    Ok(())
}

pub fn freeze(dir: &Path, frozen: bool) -> Result<()> {
    write_file(dir, "cgroup.freeze", if frozen { "1" } else { "0" })?;
    let want = if frozen { "frozen 1" } else { "frozen 0" };
    for _ in 0..5000 {
        let ev = read_file(dir, "cgroup.events")?;
        if ev.lines().any(|l| l == want) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    Err(anyhow!("{}: cgroup did not reach {want}", dir.display()))
}

pub fn apply(d: &Path, r: &LinuxResources, update: bool) -> Result<()> {
    if let Some(p) = r.pids() {
        super::v1::pids(d, p.limit())?;
    }
    if let Some(m) = r.memory() {
        memory(d, m, update)?;
    }
    if let Some(b) = r.block_io() {
        io(d, b)?;
    }
    if let Some(c) = r.cpu() {
        cpu(d, c)?;
        super::v1::cpuset(d, c)?;
    }
    for l in r.hugepage_limits().iter().flatten() {
        super::v1::hugetlb(d, l.page_size(), l.limit(), "max")?;
    }
    for (dev, l) in r.rdma().iter().flatten() {
        write_file(d, "rdma.max", &rdma_line(dev, l.hca_handles(), l.hca_objects()))?;
    }
    if r.network()
        .as_ref()
        .is_some_and(|n| n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty()))
    {
        // As on v1 without the controllers: a limit that cannot hold is an error, not a warning.
        bail!(
            "cannot set net_cls/net_prio limit: these controllers do not exist on cgroup v2 (linux.resources.network)"
        );
    }
    if let Some(u) = r.unified() {
        unified(d, u)?;
    }
    Ok(())
}

pub fn memory(d: &Path, m: &LinuxMemory, update: bool) -> Result<()> {
    if m.kernel().is_some() || m.kernel_tcp().is_some() {
        warn("linux.resources.memory.kernel and kernelTCP are ignored (deprecated by the kernel, as in runc)");
    }
    if m.swappiness().is_some() || m.disable_oom_killer() == Some(true) {
        warn("linux.resources.memory.swappiness and disableOOMKiller have no cgroup v2 equivalent; ignored");
    }
    let limit = m.limit().unwrap_or(0);
    let swap_in = m.swap().unwrap_or(0);
    if update && m.check_before_update() == Some(true) {
        super::v1::check_usage(d, limit, "memory.current", "memory.peak")?;
    }
    let swap = swap_to_v2(swap_in, limit)?;
    let mut swap_s = num(swap);
    // memory == memorySwap: swap disabled.
    if swap_s.is_none() && swap == 0 && swap_in > 0 {
        swap_s = Some("0".into());
    }
    if let Some(s) = swap_s {
        if let Err(e) = write_file(d, "memory.swap.max", &s) {
            // Without swap accounting, "unlimited" and "none" are what the host does anyway.
            let missing = !d.join("memory.swap.max").exists();
            if !(missing && (s == "max" || s == "0")) {
                return Err(e);
            }
        }
    }
    if let Some(v) = num(limit) {
        write_file(d, "memory.max", &v)?;
    }
    if let Some(v) = m.reservation().and_then(num) {
        write_file(d, "memory.low", &v)?;
    }
    Ok(())
}

pub fn cpu(d: &Path, c: &LinuxCpu) -> Result<()> {
    if c.realtime_period().is_some_and(|v| v != 0) || c.realtime_runtime().is_some_and(|v| v != 0) {
        bail!("linux.resources.cpu: realtimeRuntime/realtimePeriod are not supported on cgroup v2");
    }
    // The kernel refuses a weight for an idle group (EINVAL): leaving idle goes before it,
    // entering it after.
    let idle = c.idle();
    if idle == Some(0) {
        write_file(d, "cpu.idle", "0")?;
    }
    if let Some(s) = c.shares().filter(|s| *s != 0) {
        write_file(d, "cpu.weight", &shares_to_weight(s).to_string())?;
    }
    if let Some(i) = idle.filter(|i| *i != 0) {
        write_file(d, "cpu.idle", &i.to_string())?;
    }
    let quota = c.quota().unwrap_or(0);
    let period = c.period().unwrap_or(0);
    if quota != 0 || period != 0 {
        let mut v = if quota > 0 { quota.to_string() } else { "max".into() };
        if period != 0 {
            v += &format!(" {period}");
        }
        write_file(d, "cpu.max", &v)?;
    }
    if let Some(b) = c.burst() {
        write_file(d, "cpu.max.burst", &b.to_string())?;
    }
    Ok(())
}

pub fn io(d: &Path, b: &LinuxBlockIo) -> Result<()> {
    // BFQ takes blkio's 10..1000 scale unchanged; io.weight needs runc's conversion.
    let bfq = d.join("io.bfq.weight").exists();
    if let Some(w) = b.weight().filter(|w| *w != 0) {
        if bfq {
            write_file(d, "io.bfq.weight", &w.to_string())?;
        } else {
            write_file(d, "io.weight", &blkio_to_io_weight(w as u64).to_string())?;
        }
    }
    if b.leaf_weight().is_some() {
        warn("linux.resources.blockIO.leafWeight has no cgroup v2 equivalent; ignored");
    }
    for wd in b.weight_device().iter().flatten() {
        if let Some(w) = wd.weight() {
            if !bfq {
                bail!("linux.resources.blockIO.weightDevice needs the BFQ io scheduler (no io.bfq.weight)");
            }
            write_file(d, "io.bfq.weight", &format!("{}:{} {w}", wd.major(), wd.minor()))?;
        }
    }
    let lists = [
        ("rbps", b.throttle_read_bps_device()),
        ("wbps", b.throttle_write_bps_device()),
        ("riops", b.throttle_read_iops_device()),
        ("wiops", b.throttle_write_iops_device()),
    ];
    for (key, list) in lists {
        for t in list.iter().flatten() {
            write_file(d, "io.max", &format!("{}:{} {key}={}", t.major(), t.minor(), t.rate()))?;
        }
    }
    Ok(())
}

/// `unified` keys are file names in the container's own directory: no separators (so no
/// write escapes it) and the file must exist (a typo or a disabled controller is an error,
/// not a created file).
pub fn unified(d: &Path, u: &std::collections::HashMap<String, String>) -> Result<()> {
    let mut keys: Vec<&String> = u.keys().collect();
    keys.sort();
    for k in keys {
        if k.is_empty() || k.contains('/') || k == "." || k == ".." {
            bail!("linux.resources.unified: invalid key {k:?}");
        }
        if !d.join(k).exists() {
            let ctrl = k.split('.').next().unwrap_or(k);
            bail!(
                "linux.resources.unified: {k}: no such file in {} (is the {ctrl} controller enabled?)",
                d.display()
            );
        }
        write_file(d, k, &u[k])?;
    }
    Ok(())
}
