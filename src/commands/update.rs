//! `update [-r FILE|-] [flags] ID`: change a live container's resources. The flags (runc's
//! names and units) are turned into the same `LinuxResources` JSON that `-r` reads, so both
//! paths go through the one writer (cgroups::Manager::apply).

use super::Global;
use crate::cli::Update;
use crate::container::state::{Container, Op};
use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Map, Value};

/// docker/go-units RAMInBytes ("512", "10m", "1.5GiB", binary multipliers); "-1" = unlimited.
pub fn parse_mem(s: &str) -> Result<i64> {
    if s == "-1" {
        return Ok(-1);
    }
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: f64 = n.parse().map_err(|_| anyhow!("invalid size: {s:?}"))?;
    let u = unit.trim_start().to_ascii_lowercase();
    let u = u.strip_suffix('b').unwrap_or(&u);
    let u = u.strip_suffix('i').unwrap_or(u);
    let mult: f64 = match u {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024f64.powi(2),
        "g" => 1024f64.powi(3),
        "t" => 1024f64.powi(4),
        "p" => 1024f64.powi(5),
        _ => bail!("invalid size: {s:?}"),
    };
    Ok((n * mult) as i64)
}

fn set(obj: &mut Map<String, Value>, section: &str, key: &str, v: Value) {
    let s = obj.entry(section).or_insert_with(|| json!({}));
    s[key] = v;
}

/// The flags as a LinuxResources JSON object (only the ones given).
pub fn from_flags(u: &Update) -> Result<Value> {
    let mut o = Map::new();
    let mem = |v: &Option<String>, flag: &str| -> Result<Option<i64>> {
        v.as_deref()
            .map(|s| parse_mem(s).with_context(|| format!("invalid value for --{flag}")))
            .transpose()
    };
    for (flag, key, val) in [
        ("memory", "limit", &u.memory),
        ("memory-reservation", "reservation", &u.memory_reservation),
        ("memory-swap", "swap", &u.memory_swap),
        ("kernel-memory", "kernel", &u.kernel_memory),
        ("kernel-memory-tcp", "kernelTCP", &u.kernel_memory_tcp),
    ] {
        if let Some(v) = mem(val, flag)? {
            set(&mut o, "memory", key, json!(v));
        }
    }
    let cpu_u64 = [
        ("shares", u.cpu_share),
        ("period", u.cpu_period),
        ("burst", u.cpu_burst),
        ("realtimePeriod", u.cpu_rt_period),
    ];
    for (k, v) in cpu_u64 {
        if let Some(v) = v {
            set(&mut o, "cpu", k, json!(v));
        }
    }
    for (k, v) in [
        ("quota", u.cpu_quota),
        ("realtimeRuntime", u.cpu_rt_runtime),
        ("idle", u.cpu_idle),
    ] {
        if let Some(v) = v {
            set(&mut o, "cpu", k, json!(v));
        }
    }
    for (k, v) in [("cpus", &u.cpuset_cpus), ("mems", &u.cpuset_mems)] {
        if let Some(v) = v {
            set(&mut o, "cpu", k, json!(v));
        }
    }
    if let Some(w) = u.blkio_weight {
        set(&mut o, "blockIO", "weight", json!(w));
    }
    if let Some(p) = u.pids_limit {
        set(&mut o, "pids", "limit", json!(p));
    }
    if u.l3_cache_schema.is_some() || u.mem_bw_schema.is_some() {
        bail!("intel RDT (--l3-cache-schema, --mem-bw-schema) is not supported");
    }
    Ok(Value::Object(o))
}

fn read_resources(u: &Update) -> Result<LinuxResources> {
    let v = match u.resources.as_deref() {
        // As runc: with -r every other flag is ignored.
        Some("-") => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).context("read resources from stdin")?;
            serde_json::from_str(&s).context("parse resources JSON")?
        }
        Some(f) => {
            let s = std::fs::read_to_string(f).with_context(|| format!("read {f}"))?;
            serde_json::from_str(&s).with_context(|| format!("parse {f}"))?
        }
        None => from_flags(u)?,
    };
    serde_json::from_value(v).map_err(|e| anyhow!("invalid resources: {e}"))
}

pub fn run(g: &Global, u: &Update) -> Result<i32> {
    let r = read_resources(u)?;
    let c = Container::load(&g.root, &u.id, true)?;
    c.status().require(Op::Update, &u.id)?;
    if c.state.cgroup.paths.is_empty() {
        bail!(
            "container {} has no cgroups (created with --cgroup-manager disabled)",
            u.id
        );
    }
    let devices = r
        .devices()
        .as_deref()
        .map(crate::cgroups::devices::from_resources)
        .transpose()?;
    c.state.cgroup.apply(&r, devices.as_deref(), true)?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::parse_mem;

    #[test]
    fn sizes_like_go_units() {
        assert_eq!(parse_mem("512").unwrap(), 512);
        assert_eq!(parse_mem("10m").unwrap(), 10 << 20);
        assert_eq!(parse_mem("10MB").unwrap(), 10 << 20);
        assert_eq!(parse_mem("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_mem("1.5k").unwrap(), 1536);
        assert_eq!(parse_mem("-1").unwrap(), -1);
        assert!(parse_mem("ten").is_err() && parse_mem("5x").is_err());
    }
}
