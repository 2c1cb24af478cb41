//! Container statistics in runc's `types.Stats` shape (the `data` of `events --stats`), read
//! from v1 or v2 files.

use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

#[derive(Serialize, Default, Debug)]
pub struct CpuUsage {
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(rename = "throttledPeriods", skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    #[serde(rename = "throttledTime", skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

#[derive(Serialize, Default, Debug)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct Memory {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

#[derive(Serialize, Default, Debug)]
pub struct Pids {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct BlkioEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct Blkio {
    #[serde(rename = "ioServiceBytesRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(rename = "ioServicedRecursive", skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

#[derive(Serialize, Default, Debug)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

#[derive(Serialize, Default, Debug)]
pub struct Stats {
    pub cpu: Cpu,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    pub hugetlb: BTreeMap<String, Hugetlb>,
}

fn num(d: &Path, f: &str) -> u64 {
    let s = std::fs::read_to_string(d.join(f)).unwrap_or_default();
    let s = s.trim();
    if s == "max" {
        return u64::MAX;
    }
    s.parse().unwrap_or(0)
}

/// "key value" lines (memory.stat, cpu.stat, memory.events).
pub fn kv(d: &Path, f: &str) -> BTreeMap<String, u64> {
    let s = std::fs::read_to_string(d.join(f)).unwrap_or_default();
    s.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// blkio.throttle.io_service_bytes ("8:0 Read 123") and io.stat ("8:0 rbytes=1 wbytes=2 ...").
fn blkio_v1(d: &Path, f: &str) -> Vec<BlkioEntry> {
    let s = std::fs::read_to_string(d.join(f)).unwrap_or_default();
    s.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let (maj, min) = it.next()?.split_once(':')?;
            Some(BlkioEntry {
                major: maj.parse().ok()?,
                minor: min.parse().ok()?,
                op: it.next()?.to_string(),
                value: it.next()?.parse().ok()?,
            })
        })
        .collect()
}

fn io_v2(d: &Path) -> Blkio {
    let mut b = Blkio::default();
    let s = std::fs::read_to_string(d.join("io.stat")).unwrap_or_default();
    for l in s.lines() {
        let mut it = l.split_whitespace();
        let Some((maj, min)) = it.next().and_then(|x| x.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (maj.parse(), min.parse()) else {
            continue;
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else { continue };
            let value = v.parse().unwrap_or(0);
            let (list, op) = match k {
                "rbytes" => (&mut b.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut b.io_service_bytes_recursive, "Write"),
                "rios" => (&mut b.io_serviced_recursive, "Read"),
                "wios" => (&mut b.io_serviced_recursive, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.into(),
                value,
            });
        }
    }
    b
}

fn hugetlb(d: &Path, usage: &str, max: &str, fail: &str) -> BTreeMap<String, Hugetlb> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        let Some(size) = n
            .strip_prefix("hugetlb.")
            .and_then(|r| r.strip_suffix(&format!(".{usage}")))
        else {
            continue;
        };
        if size.contains(".rsvd") {
            continue;
        }
        let f = |x: &str| num(d, &format!("hugetlb.{size}.{x}"));
        out.insert(
            size.to_string(),
            Hugetlb {
                usage: f(usage),
                max: if max.is_empty() { 0 } else { f(max) },
                // v2 keeps the count as "max N" in hugetlb.<size>.events.
                failcnt: if fail == "events" {
                    kv(d, &format!("hugetlb.{size}.events"))
                        .get("max")
                        .copied()
                        .unwrap_or(0)
                } else {
                    f(fail)
                },
            },
        );
    }
    out
}

pub fn v1(dirs: &BTreeMap<String, std::path::PathBuf>) -> Stats {
    let mut s = Stats::default();
    if let Some(d) = dirs.get("cpuacct") {
        s.cpu.usage.total = num(d, "cpuacct.usage");
        s.cpu.usage.percpu = std::fs::read_to_string(d.join("cpuacct.usage_percpu"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        // cpuacct.stat is in USER_HZ ticks; runc reports nanoseconds.
        let st = kv(d, "cpuacct.stat");
        let tick = 1_000_000_000 / 100;
        s.cpu.usage.user = st.get("user").copied().unwrap_or(0) * tick;
        s.cpu.usage.kernel = st.get("system").copied().unwrap_or(0) * tick;
    }
    if let Some(d) = dirs.get("cpu") {
        let st = kv(d, "cpu.stat");
        s.cpu.throttling.periods = st.get("nr_periods").copied().unwrap_or(0);
        s.cpu.throttling.throttled_periods = st.get("nr_throttled").copied().unwrap_or(0);
        s.cpu.throttling.throttled_time = st.get("throttled_time").copied().unwrap_or(0);
    }
    if let Some(d) = dirs.get("memory") {
        let e = |p: &str| MemoryEntry {
            limit: num(d, &format!("{p}limit_in_bytes")),
            usage: num(d, &format!("{p}usage_in_bytes")),
            max: num(d, &format!("{p}max_usage_in_bytes")),
            failcnt: num(d, &format!("{p}failcnt")),
        };
        s.memory.usage = e("memory.");
        s.memory.swap = e("memory.memsw.");
        s.memory.kernel = e("memory.kmem.");
        s.memory.kernel_tcp = e("memory.kmem.tcp.");
        s.memory.raw = kv(d, "memory.stat");
        s.memory.cache = s.memory.raw.get("total_cache").copied().unwrap_or(0);
    }
    if let Some(d) = dirs.get("pids") {
        s.pids.current = num(d, "pids.current");
        s.pids.limit = match num(d, "pids.max") {
            u64::MAX => 0,
            v => v,
        };
    }
    if let Some(d) = dirs.get("blkio") {
        s.blkio.io_service_bytes_recursive = blkio_v1(d, "blkio.throttle.io_service_bytes_recursive");
        s.blkio.io_serviced_recursive = blkio_v1(d, "blkio.throttle.io_serviced_recursive");
    }
    if let Some(d) = dirs.get("hugetlb") {
        s.hugetlb = hugetlb(d, "usage_in_bytes", "max_usage_in_bytes", "failcnt");
    }
    s
}

pub fn v2(d: &Path) -> Stats {
    let mut s = Stats::default();
    let cpu = kv(d, "cpu.stat");
    let g = |m: &BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    s.cpu.usage.total = g(&cpu, "usage_usec") * 1000;
    s.cpu.usage.user = g(&cpu, "user_usec") * 1000;
    s.cpu.usage.kernel = g(&cpu, "system_usec") * 1000;
    s.cpu.throttling.periods = g(&cpu, "nr_periods");
    s.cpu.throttling.throttled_periods = g(&cpu, "nr_throttled");
    s.cpu.throttling.throttled_time = g(&cpu, "throttled_usec") * 1000;
    let ev = kv(d, "memory.events");
    s.memory.usage = MemoryEntry {
        limit: num(d, "memory.max"),
        usage: num(d, "memory.current"),
        max: num(d, "memory.peak"),
        failcnt: g(&ev, "max"),
    };
    s.memory.swap = MemoryEntry {
        limit: num(d, "memory.swap.max"),
        usage: num(d, "memory.swap.current"),
        ..Default::default()
    };
    s.memory.raw = kv(d, "memory.stat");
    s.memory.cache = g(&s.memory.raw, "file");
    s.pids.current = num(d, "pids.current");
    s.pids.limit = match num(d, "pids.max") {
        u64::MAX => 0,
        v => v,
    };
    s.blkio = io_v2(d);
    s.hugetlb = hugetlb(d, "current", "", "events");
    s
}
