//! `linux.resources` as systemd unit properties, with runc's conversions
//! (opencontainers/cgroups systemd/{common,v1,v2}.go, devices/systemd.go).
//!
//! Why properties and not only files: systemd owns a delegated unit's own cgroup files and
//! rewrites them from the unit's properties whenever it re-applies the unit (every
//! `systemctl daemon-reload`), so a limit written only to the file falls back to `max`. What
//! systemd has no property for is still written to the files by the cgroupfs writers (the
//! files are written after the properties, with the same values).

use super::dbus::Value;
use super::Prop;
use crate::cgroups::devices::{Policy, Rule, ACC_MKNOD, ACC_READ, ACC_WRITE};
use crate::cgroups::v2::{blkio_to_io_weight, shares_to_weight, swap_to_v2};
use anyhow::{anyhow, bail, Result};
use oci_spec::runtime::LinuxResources;
use std::collections::HashMap;

/// The kernel's default CFS period (100 ms), on v1 and v2.
const DEFAULT_PERIOD: u64 = 100_000;
/// systemd's USEC_INFINITY / CGROUP_LIMIT_MAX: "no limit".
const INFINITY: u64 = u64::MAX;

fn prop(name: &str, v: Value) -> Prop {
    (name.to_string(), v)
}

/// runc's addCPUQuota: CPUQuotaPeriodUSec (systemd >= 242) and CPUQuotaPerSecUSec. systemd
/// keeps the quota as whole percents of a CPU, so a quota that is not a multiple of 10 ms per
/// second is rounded up to one, and the quota written to cpu.max is changed to match
/// (returned), so that the file and the property agree.
pub fn cpu_quota(props: &mut Vec<Prop>, quota: i64, period: u64, version: u32) -> i64 {
    if period != 0 && version >= 242 {
        props.push(prop("CPUQuotaPeriodUSec", Value::U64(period)));
    }
    let mut quota_out = quota;
    if quota != 0 || period != 0 {
        let mut per_sec = INFINITY;
        if quota > 0 {
            let period = if period == 0 { DEFAULT_PERIOD } else { period };
            per_sec = (quota as u64).saturating_mul(1_000_000) / period;
            if !per_sec.is_multiple_of(10_000) {
                per_sec = (per_sec / 10_000 + 1) * 10_000;
                quota_out = (per_sec as i64).saturating_mul(period as i64) / 1_000_000;
            }
        }
        props.push(prop("CPUQuotaPerSecUSec", Value::U64(per_sec)));
    }
    quota_out
}

/// runc's RangeToBits: a cpuset list ("0-3,7") as the byte array AllowedCPUs= and
/// AllowedMemoryNodes= take (byte 0 holds CPUs 0-7, lowest bit first).
pub fn range_to_bits(s: &str) -> Result<Vec<u8>> {
    let mut bits: Vec<u8> = Vec::new();
    let mut set = |i: usize| {
        if bits.len() <= i / 8 {
            bits.resize(i / 8 + 1, 0);
        }
        bits[i / 8] |= 1 << (i % 8);
    };
    // The kernel's own limit on a cpu or node number is far lower; this keeps a typo such
    // as "0-4000000000" from allocating half a gigabyte.
    const MAX: u32 = 1 << 16;
    let num = |t: &str| -> Result<u32> {
        let n: u32 = t.parse().map_err(|_| anyhow!("invalid number {t:?}"))?;
        if n >= MAX {
            bail!("{n} is out of range");
        }
        Ok(n)
    };
    for r in s.split(',') {
        let r = r.trim();
        if r.is_empty() {
            continue;
        }
        match r.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    bail!("invalid range: {r}");
                }
                (a..=b).for_each(|i| set(i as usize));
            }
            None => set(num(r)? as usize),
        }
    }
    while bits.last() == Some(&0) {
        bits.pop();
    }
    if bits.is_empty() {
        bail!("empty value");
    }
    Ok(bits)
}

fn bytes(b: Vec<u8>) -> Value {
    Value::Array("y".into(), b.into_iter().map(Value::Byte).collect())
}

fn perms(bits: u8) -> String {
    [(ACC_READ, 'r'), (ACC_WRITE, 'w'), (ACC_MKNOD, 'm')]
        .iter()
        .filter(|(b, _)| bits & b != 0)
        .map(|(_, c)| *c)
        .collect()
}

fn device_allow(entries: Vec<(String, String)>) -> Value {
    Value::Array(
        "(ss)".into(),
        entries
            .into_iter()
            .map(|(p, a)| Value::Struct(vec![Value::Str(p), Value::Str(a)]))
            .collect(),
    )
}

/// runc's systemdProperties for the device rules (the full list, defaults included):
/// DevicePolicy=strict and one DeviceAllow entry per exception of the resulting allowlist.
/// systemd has no denylist: an allow-all list becomes DevicePolicy=auto, any other denylist a
/// deny-all (berth's own eBPF filter, attached after, enforces the real list either way).
pub fn devices(rules: &[Rule], version: u32) -> Result<Vec<Prop>> {
    let policy = Policy::from_rules(rules)?;
    if policy.default_allow {
        if policy.exceptions.is_empty() {
            return Ok(vec![
                prop("DevicePolicy", Value::str("auto")),
                prop("DeviceAllow", device_allow(vec![])),
            ]);
        }
        crate::log::warn("systemd doesn't support blacklist device rules -- applying temporary deny-all rule");
        return Ok(vec![
            prop("DevicePolicy", Value::str("strict")),
            prop("DeviceAllow", device_allow(vec![])),
        ]);
    }
    let mut list = Vec::new();
    for e in &policy.exceptions {
        let group = if e.typ == 'b' { "block-" } else { "char-" };
        let path = match (e.major, e.minor) {
            (None, None) => format!("{group}*"),
            (None, Some(_)) => {
                // systemd has no form for "any major, this minor"; the eBPF filter has it.
                crate::log::warn(&format!(
                    "systemd doesn't support '*:n' device rules -- temporarily ignoring rule: {} *:{} {}",
                    e.typ,
                    e.minor.unwrap_or(0),
                    perms(e.access)
                ));
                continue;
            }
            // {block,char}-MAJOR since systemd 240 (before, it wanted /proc/devices names).
            (Some(maj), None) if version >= 240 => format!("{group}{maj}"),
            (Some(_), None) => continue,
            (Some(maj), Some(min)) => {
                let kind = if e.typ == 'b' { "block" } else { "char" };
                format!("/dev/{kind}/{maj}:{min}")
            }
        };
        list.push((path, perms(e.access)));
    }
    Ok(vec![
        prop("DevicePolicy", Value::str("strict")),
        // an empty list first resets what an earlier SetUnitProperties added
        prop("DeviceAllow", device_allow(vec![])),
        prop("DeviceAllow", device_allow(list)),
    ])
}

/// The properties for `r` (runc's genV2ResourcesProperties / genV1ResourcesProperties) and
/// the resources to write to the files afterwards: the same, with the CPU quota rounded as
/// the property is. `rules`: the effective device rules when devices are (re)applied.
pub fn resources(
    r: &LinuxResources,
    rules: Option<&[Rule]>,
    version: u32,
    v2: bool,
) -> Result<(Vec<Prop>, LinuxResources)> {
    let mut props = Vec::new();
    let mut files = r.clone();
    if let Some(rules) = rules {
        props.extend(devices(rules, version)?);
    }
    let mem = r.memory().as_ref();
    let limit = mem.and_then(|m| m.limit()).unwrap_or(0);
    if limit != 0 {
        // -1 as u64 is systemd's infinity
        props.push(prop(
            if v2 { "MemoryMax" } else { "MemoryLimit" },
            Value::U64(limit as u64),
        ));
    }
    if v2 {
        if let Some(res) = mem.and_then(|m| m.reservation()).filter(|v| *v != 0) {
            props.push(prop("MemoryLow", Value::U64(res as u64)));
        }
        let swap_in = mem.and_then(|m| m.swap()).unwrap_or(0);
        let swap = swap_to_v2(swap_in, limit)?;
        if swap != 0 {
            props.push(prop("MemorySwapMax", Value::U64(swap as u64)));
        } else if swap_in > 0 {
            // memory == memory+swap: no swap at all. runc sets no property here and writes 0
            // to the file, which the next daemon-reload resets to max; the property keeps it.
            props.push(prop("MemorySwapMax", Value::U64(0)));
        }
    }
    let cpu = r.cpu().as_ref();
    let shares = cpu.and_then(|c| c.shares()).unwrap_or(0);
    if v2 {
        // cpu.idle=1 is CPUWeight=0 to systemd >= 252, and then it replaces the weight.
        let idle = cpu.and_then(|c| c.idle()) == Some(1) && version >= 252;
        if idle {
            props.push(prop("CPUWeight", Value::U64(0)));
        }
        if shares != 0 {
            if idle {
                crate::log::warn("unable to apply both CPUWeight and CpuIdle to systemd, ignoring CPUWeight");
            } else {
                props.push(prop("CPUWeight", Value::U64(shares_to_weight(shares))));
            }
        }
    } else if shares != 0 {
        props.push(prop("CPUShares", Value::U64(shares)));
    }
    let quota = cpu.and_then(|c| c.quota()).unwrap_or(0);
    let period = cpu.and_then(|c| c.period()).unwrap_or(0);
    let rounded = cpu_quota(&mut props, quota, period, version);
    if rounded != quota {
        if let Some(mut c) = files.cpu().clone() {
            c.set_quota(Some(rounded));
            files.set_cpu(Some(c));
        }
    }
    if let Some(w) = r.block_io().as_ref().and_then(|b| b.weight()).filter(|w| *w != 0) {
        // runc sets no IOWeight on v2, but systemd writes io.weight (default 100) on every
        // re-apply of a unit with IOAccounting=yes, which would undo the file.
        if v2 {
            props.push(prop("IOWeight", Value::U64(blkio_to_io_weight(w as u64))));
        } else {
            props.push(prop("BlockIOWeight", Value::U64(w as u64)));
        }
    }
    if let Some(p) = r.pids().as_ref().map(|p| p.limit()).filter(|l| *l > 0 || *l == -1) {
        props.push(prop("TasksMax", Value::U64(p as u64)));
    }
    let cpus = cpu.and_then(|c| c.cpus().clone()).unwrap_or_default();
    let mems = cpu.and_then(|c| c.mems().clone()).unwrap_or_default();
    // AllowedCPUs/AllowedMemoryNodes since systemd 244; older ones get only the files.
    if version >= 244 {
        if !cpus.is_empty() {
            let b = range_to_bits(&cpus).map_err(|e| anyhow!("resources.CPU.Cpus={cpus:?} conversion error: {e}"))?;
            props.push(prop("AllowedCPUs", bytes(b)));
        }
        if !mems.is_empty() {
            let b = range_to_bits(&mems).map_err(|e| anyhow!("resources.CPU.Mems={mems:?} conversion error: {e}"))?;
            props.push(prop("AllowedMemoryNodes", bytes(b)));
        }
    }
    if let Some(u) = r.unified().as_ref() {
        if !v2 {
            bail!("invalid configuration: cannot use unified on cgroup v1");
        }
        props.extend(unified(u, version)?);
    }
    Ok((props, files))
}

fn max_or_u64(k: &str, v: &str) -> Result<u64> {
    if v == "max" {
        return Ok(INFINITY);
    }
    v.parse()
        .map_err(|e| anyhow!("unified resource {k:?} value conversion error: {e}"))
}

/// runc's unifiedResToSystemdProps: the `unified` keys systemd has a property for; the others
/// only go to the files. Keys in sorted order (runc's map order is random).
pub fn unified(u: &HashMap<String, String>, version: u32) -> Result<Vec<Prop>> {
    let mut props = Vec::new();
    let mut keys: Vec<&String> = u.keys().collect();
    keys.sort();
    let idle = |v: &str| v.trim() == "1" && version >= 252;
    for k in keys {
        if k.contains('/') {
            bail!("unified resource {k:?} must be a file name (no slashes)");
        }
        if k.find('.').is_none_or(|i| i == 0) {
            bail!("unified resource {k:?} must be in the form CONTROLLER.PARAMETER");
        }
        let v = u[k].trim();
        match k.as_str() {
            "cpu.idle" if idle(v) => props.push(prop("CPUWeight", Value::U64(0))),
            "cpu.max" => {
                let f: Vec<&str> = v.split_whitespace().collect();
                if f.is_empty() || f.len() > 2 {
                    bail!("unified resource {k:?} value invalid: {v:?}");
                }
                let quota = match f[0] {
                    "max" => 0,
                    q => q
                        .parse()
                        .map_err(|e| anyhow!("unified resource {k:?} quota value conversion error: {e}"))?,
                };
                let period = match f.get(1) {
                    Some(p) => p
                        .parse()
                        .map_err(|e| anyhow!("unified resource {k:?} period value conversion error: {e}"))?,
                    None => DEFAULT_PERIOD,
                };
                cpu_quota(&mut props, quota, period, version);
            }
            "cpu.weight" => {
                if u.get("cpu.idle").is_some_and(|i| idle(i)) {
                    crate::log::warn("unable to apply both cpu.weight and cpu.idle to systemd, ignoring cpu.weight");
                    continue;
                }
                let n: u64 = v
                    .parse()
                    .map_err(|e| anyhow!("unified resource {k:?} value conversion error: {e}"))?;
                props.push(prop("CPUWeight", Value::U64(n)));
            }
            "cpuset.cpus" | "cpuset.mems" => {
                let b = range_to_bits(v).map_err(|e| anyhow!("unified resource {k:?}={v:?} conversion error: {e}"))?;
                if version >= 244 {
                    let name = if k == "cpuset.cpus" {
                        "AllowedCPUs"
                    } else {
                        "AllowedMemoryNodes"
                    };
                    props.push(prop(name, bytes(b)));
                }
            }
            "memory.high" | "memory.low" | "memory.min" | "memory.max" | "memory.swap.max" => {
                let name = match k.as_str() {
                    "memory.high" => "MemoryHigh",
                    "memory.low" => "MemoryLow",
                    "memory.min" => "MemoryMin",
                    "memory.max" => "MemoryMax",
                    _ => "MemorySwapMax",
                };
                props.push(prop(name, Value::U64(max_or_u64(k, v)?)));
            }
            "pids.max" => props.push(prop("TasksMax", Value::U64(max_or_u64(k, v)?))),
            _ => {}
        }
    }
    Ok(props)
}

/// memory.oom.group as OOMPolicy=, which only a unit's start takes (runc's Apply).
pub fn oom_policy(u: Option<&HashMap<String, String>>) -> Result<Option<Prop>> {
    let Some(v) = u.and_then(|u| u.get("memory.oom.group")) else {
        return Ok(None);
    };
    let n: u64 = v
        .trim()
        .parse()
        .map_err(|e| anyhow!("unified resource \"memory.oom.group\" value conversion error: {e}"))?;
    Ok(match n {
        0 => Some(prop("OOMPolicy", Value::str("continue"))),
        1 => Some(prop("OOMPolicy", Value::str("kill"))),
        _ => None,
    })
}

/// runc's initSystemdProps: every `org.systemd.property.<Name>` annotation is a unit
/// property, its value in GVariant text form (`uint64 123`, `'str'`, `true`, `['a', 'b']`).
/// `<x>Sec` names become `<x>USec` with the value in microseconds, as systemd's D-Bus API has
/// only the latter. Sorted by name (runc's map order is random).
pub fn annotations(a: &HashMap<String, String>) -> Result<Vec<Prop>> {
    let mut out = Vec::new();
    let mut keys: Vec<&String> = a.keys().collect();
    keys.sort();
    for k in keys {
        let Some(name) = k.strip_prefix("org.systemd.property.") else {
            continue;
        };
        let v = &a[k];
        if name.len() < 3 {
            bail!("annotation {k} name incorrect: too short");
        }
        if !name.bytes().all(|c| c.is_ascii_alphabetic()) {
            bail!("annotation {k} name incorrect: contains non-alphabetic character");
        }
        let mut value = parse_gvariant(v).map_err(|e| anyhow!("annotation {k}={v} value parse error: {e}"))?;
        let mut name = name.to_string();
        if let Some(stem) = name.strip_suffix("Sec") {
            if stem.bytes().last().is_some_and(|c| c.is_ascii_lowercase()) {
                let stem = stem.to_string();
                value =
                    sec_to_usec(&value).ok_or_else(|| anyhow!("annotation {k}={v} value parse error: not a number"))?;
                name = stem + "USec";
            }
        }
        out.push((name, value));
    }
    Ok(out)
}

fn sec_to_usec(v: &Value) -> Option<Value> {
    const M: u64 = 1_000_000;
    Some(Value::U64(match v {
        Value::Byte(n) => *n as u64 * M,
        Value::I16(n) => (*n as u64).wrapping_mul(M),
        Value::U16(n) => *n as u64 * M,
        Value::I32(n) => (*n as u64).wrapping_mul(M),
        Value::U32(n) => *n as u64 * M,
        Value::I64(n) => (*n as u64).wrapping_mul(M),
        Value::U64(n) => n.wrapping_mul(M),
        Value::Double(d) => (d * M as f64) as u64,
        _ => return None,
    }))
}

/// The part of the GVariant text format (as godbus's ParseVariant reads it) that unit
/// properties use: booleans, numbers (bare integers are int32, as in GVariant; a type word
/// or `@t`-style annotation picks another type), strings in single or double quotes, and
/// arrays of those (`@as []` for an empty one).
pub fn parse_gvariant(s: &str) -> Result<Value> {
    let mut p = GvParser { s: s.as_bytes(), i: 0 };
    let v = p.value(None)?;
    p.ws();
    if p.i != p.s.len() {
        bail!("unexpected {:?}", String::from_utf8_lossy(&p.s[p.i..]));
    }
    Ok(v)
}

struct GvParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl GvParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn word(&mut self) -> &str {
        let st = self.i;
        while self.i < self.s.len() && (self.s[self.i].is_ascii_alphanumeric() || b"_.+-".contains(&self.s[self.i])) {
            self.i += 1;
        }
        std::str::from_utf8(&self.s[st..self.i]).unwrap_or("")
    }

    /// `want`: the type signature an annotation or the array's first element fixed.
    fn value(&mut self, want: Option<&str>) -> Result<Value> {
        self.ws();
        let Some(&c) = self.s.get(self.i) else {
            bail!("no value");
        };
        if c == b'@' {
            self.i += 1;
            let st = self.i;
            while self.i < self.s.len() && !self.s[self.i].is_ascii_whitespace() {
                self.i += 1;
            }
            let sig = std::str::from_utf8(&self.s[st..self.i])?.to_string();
            return self.value(Some(&sig));
        }
        if c == b'\'' || c == b'"' {
            let s = self.string(c)?;
            return match want {
                None | Some("s") => Ok(Value::Str(s)),
                Some("o") => Ok(Value::Path(s)),
                Some("g") => Ok(Value::Sig(s)),
                Some(t) => bail!("a string where {t} was expected"),
            };
        }
        if c == b'[' {
            self.i += 1;
            let elem = match want {
                Some(t) if t.starts_with('a') => Some(t[1..].to_string()),
                Some(t) => bail!("an array where {t} was expected"),
                None => None,
            };
            let mut items: Vec<Value> = Vec::new();
            let mut sig = elem.clone();
            loop {
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                    break;
                }
                if !items.is_empty() {
                    if self.s.get(self.i) != Some(&b',') {
                        bail!("expected ',' or ']' in an array");
                    }
                    self.i += 1;
                }
                let v = self.value(sig.as_deref())?;
                let vs = v.signature();
                match &sig {
                    Some(s) if *s != vs => bail!("array elements of different types ({s} and {vs})"),
                    _ => sig = Some(vs),
                }
                items.push(v);
            }
            let Some(sig) = sig else {
                bail!("an empty array needs a type (@as [])");
            };
            return Ok(Value::Array(sig, items));
        }
        let w = self.word().to_string();
        let typed = |t: &str, me: &mut Self| -> Result<Value> {
            me.ws();
            let n = me.word().to_string();
            number(&n, Some(t))
        };
        match w.as_str() {
            "true" | "false" => match want {
                None | Some("b") => Ok(Value::Bool(w == "true")),
                Some(t) => bail!("a boolean where {t} was expected"),
            },
            "boolean" => self.value(Some("b")),
            "byte" => typed("y", self),
            "int16" => typed("n", self),
            "uint16" => typed("q", self),
            "int32" => typed("i", self),
            "uint32" => typed("u", self),
            "int64" => typed("x", self),
            "uint64" => typed("t", self),
            "double" => typed("d", self),
            "string" => self.value(Some("s")),
            "objectpath" => self.value(Some("o")),
            "" => bail!("unexpected {:?}", c as char),
            n => number(n, want),
        }
    }

    fn string(&mut self, q: u8) -> Result<String> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.i) else {
                bail!("unterminated string");
            };
            self.i += 1;
            match c {
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        bail!("unterminated string");
                    };
                    self.i += 1;
                    out.push(match e {
                        b'n' => b'\n',
                        b't' => b'\t',
                        e => e,
                    });
                }
                c if c == q => break,
                c => out.push(c),
            }
        }
        Ok(String::from_utf8(out)?)
    }
}

/// A number of type `t` (None: int32 for an integer, double otherwise, as GVariant). 0x-hex
/// allowed for integers.
fn number(n: &str, t: Option<&str>) -> Result<Value> {
    let int = |n: &str| -> Result<i128> {
        let (neg, m) = match n.strip_prefix('-') {
            Some(m) => (true, m),
            None => (false, n.strip_prefix('+').unwrap_or(n)),
        };
        let v = match m.strip_prefix("0x").or_else(|| m.strip_prefix("0X")) {
            Some(h) => i128::from_str_radix(h, 16),
            None => m.parse::<i128>(),
        }
        .map_err(|_| anyhow!("{n:?} is not a number"))?;
        Ok(if neg { -v } else { v })
    };
    let range = |v: i128, lo: i128, hi: i128| -> Result<i128> {
        if v < lo || v > hi {
            bail!("{n} is out of range");
        }
        Ok(v)
    };
    let is_float = n.contains(['.', 'e', 'E']) && !n.starts_with("0x");
    Ok(match t {
        None if is_float => Value::Double(n.parse().map_err(|_| anyhow!("{n:?} is not a number"))?),
        None | Some("i") => Value::I32(range(int(n)?, i32::MIN as i128, i32::MAX as i128)? as i32),
        Some("y") => Value::Byte(range(int(n)?, 0, u8::MAX as i128)? as u8),
        Some("n") => Value::I16(range(int(n)?, i16::MIN as i128, i16::MAX as i128)? as i16),
        Some("q") => Value::U16(range(int(n)?, 0, u16::MAX as i128)? as u16),
        Some("u") => Value::U32(range(int(n)?, 0, u32::MAX as i128)? as u32),
        Some("x") => Value::I64(range(int(n)?, i64::MIN as i128, i64::MAX as i128)? as i64),
        Some("t") => Value::U64(range(int(n)?, 0, u64::MAX as i128)? as u64),
        Some("d") => Value::Double(n.parse().map_err(|_| anyhow!("{n:?} is not a number"))?),
        Some(t) => bail!("a number where {t} was expected"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(j: serde_json::Value) -> LinuxResources {
        serde_json::from_value(j).unwrap()
    }

    fn names(p: &[Prop]) -> Vec<&str> {
        p.iter().map(|(n, _)| n.as_str()).collect()
    }

    fn get<'a>(p: &'a [Prop], n: &str) -> Option<&'a Value> {
        p.iter().rev().find(|(k, _)| k == n).map(|(_, v)| v)
    }

    #[test]
    fn cpu_quota_rounds_up_to_10ms_per_second() {
        let mut p = Vec::new();
        // 50000/100000 = 500000 us/s: exact
        assert_eq!(cpu_quota(&mut p, 50_000, 100_000, 252), 50_000);
        assert_eq!(
            p,
            vec![
                prop("CPUQuotaPeriodUSec", Value::U64(100_000)),
                prop("CPUQuotaPerSecUSec", Value::U64(500_000))
            ]
        );
        // 12345/100000 = 123450 us/s -> 130000; the file's quota becomes 13000
        p.clear();
        assert_eq!(cpu_quota(&mut p, 12_345, 100_000, 252), 13_000);
        assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(130_000)));
        // no period: the default 100 ms for the computation, no period property
        p.clear();
        assert_eq!(cpu_quota(&mut p, 20_000, 0, 252), 20_000);
        assert_eq!(p, vec![prop("CPUQuotaPerSecUSec", Value::U64(200_000))]);
        // a period alone (quota -1 or 0): infinity per second
        p.clear();
        cpu_quota(&mut p, -1, 50_000, 252);
        assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(u64::MAX)));
        // systemd < 242 has no CPUQuotaPeriodUSec
        p.clear();
        cpu_quota(&mut p, 10_000, 50_000, 241);
        assert_eq!(names(&p), ["CPUQuotaPerSecUSec"]);
        assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(200_000)));
        // nothing set: nothing
        p.clear();
        assert_eq!(cpu_quota(&mut p, 0, 0, 252), 0);
        assert!(p.is_empty());
    }

    #[test]
    fn cpusets_as_bitmasks() {
        assert_eq!(range_to_bits("0").unwrap(), [1]);
        assert_eq!(range_to_bits("0-3").unwrap(), [0x0f]);
        assert_eq!(range_to_bits("1,3,8").unwrap(), [0x0a, 0x01]);
        assert_eq!(range_to_bits(" 0-1 , ,9").unwrap(), [0x03, 0x02]);
        assert_eq!(range_to_bits("16").unwrap(), [0, 0, 1]);
        assert_eq!(range_to_bits("3-2").unwrap_err().to_string(), "invalid range: 3-2");
        assert_eq!(range_to_bits("").unwrap_err().to_string(), "empty value");
        assert_eq!(range_to_bits(",").unwrap_err().to_string(), "empty value");
        assert!(range_to_bits("a").is_err());
        assert!(range_to_bits("0-4000000000").is_err());
    }

    #[test]
    fn v2_resources() {
        let r = res(serde_json::json!({
            "memory": {"limit": 1073741824, "reservation": 536870912, "swap": 2147483648u64},
            "cpu": {"shares": 1024, "quota": 12345, "period": 100000, "cpus": "0-1", "mems": "0"},
            "pids": {"limit": 100},
            "blockIO": {"weight": 500}
        }));
        let (p, files) = resources(&r, None, 252, true).unwrap();
        assert_eq!(get(&p, "MemoryMax"), Some(&Value::U64(1 << 30)));
        assert_eq!(get(&p, "MemoryLow"), Some(&Value::U64(1 << 29)));
        // v2's swap.max is swap only: memsw - mem
        assert_eq!(get(&p, "MemorySwapMax"), Some(&Value::U64(1 << 30)));
        // runc's shares -> weight: 1024 -> 39
        assert_eq!(get(&p, "CPUWeight"), Some(&Value::U64(39)));
        assert_eq!(get(&p, "CPUQuotaPerSecUSec"), Some(&Value::U64(130_000)));
        assert_eq!(get(&p, "CPUQuotaPeriodUSec"), Some(&Value::U64(100_000)));
        assert_eq!(get(&p, "TasksMax"), Some(&Value::U64(100)));
        assert_eq!(get(&p, "IOWeight"), Some(&Value::U64(blkio_to_io_weight(500))));
        assert_eq!(get(&p, "AllowedCPUs"), Some(&bytes(vec![3])));
        assert_eq!(get(&p, "AllowedMemoryNodes"), Some(&bytes(vec![1])));
        assert!(get(&p, "MemoryLimit").is_none() && get(&p, "CPUShares").is_none());
        // the files get the rounded quota, the rest unchanged
        assert_eq!(files.cpu().as_ref().unwrap().quota(), Some(13_000));
        assert_eq!(files.memory(), r.memory());
    }

    #[test]
    fn unlimited_values_are_infinity() {
        let r = res(serde_json::json!({"memory": {"limit": -1, "swap": -1}, "pids": {"limit": -1}}));
        let (p, _) = resources(&r, None, 252, true).unwrap();
        assert_eq!(get(&p, "MemoryMax"), Some(&Value::U64(u64::MAX)));
        assert_eq!(get(&p, "MemorySwapMax"), Some(&Value::U64(u64::MAX)));
        assert_eq!(get(&p, "TasksMax"), Some(&Value::U64(u64::MAX)));
        // pids 0 is "unset" (as runc): no property
        let r = res(serde_json::json!({"pids": {"limit": 0}}));
        assert!(resources(&r, None, 252, true).unwrap().0.is_empty());
    }

    #[test]
    fn swap_equal_to_memory_means_no_swap() {
        let r = res(serde_json::json!({"memory": {"limit": 1000000, "swap": 1000000}}));
        let (p, _) = resources(&r, None, 252, true).unwrap();
        assert_eq!(get(&p, "MemorySwapMax"), Some(&Value::U64(0)));
        // swap below memory: runc's error
        let r = res(serde_json::json!({"memory": {"limit": 1000000, "swap": 10}}));
        assert!(resources(&r, None, 252, true).is_err());
    }

    #[test]
    fn idle_replaces_the_weight() {
        let r = res(serde_json::json!({"cpu": {"shares": 1024, "idle": 1}}));
        let (p, _) = resources(&r, None, 252, true).unwrap();
        assert_eq!(p, vec![prop("CPUWeight", Value::U64(0))]);
        // systemd < 252 cannot: the weight, and cpu.idle goes to the file only
        let (p, _) = resources(&r, None, 251, true).unwrap();
        assert_eq!(p, vec![prop("CPUWeight", Value::U64(39))]);
    }

    #[test]
    fn old_systemd_gets_no_cpuset() {
        let r = res(serde_json::json!({"cpu": {"cpus": "0"}}));
        assert!(resources(&r, None, 243, true).unwrap().0.is_empty());
        let r = res(serde_json::json!({"cpu": {"cpus": "x"}}));
        let e = resources(&r, None, 252, true).unwrap_err().to_string();
        assert!(e.starts_with("resources.CPU.Cpus=\"x\" conversion error"), "{e}");
    }

    #[test]
    fn v1_resources() {
        let r = res(serde_json::json!({
            "memory": {"limit": 1000000},
            "cpu": {"shares": 512, "quota": 50000},
            "blockIO": {"weight": 300},
            "pids": {"limit": 10}
        }));
        let (p, _) = resources(&r, None, 252, false).unwrap();
        assert_eq!(
            names(&p),
            [
                "MemoryLimit",
                "CPUShares",
                "CPUQuotaPerSecUSec",
                "BlockIOWeight",
                "TasksMax"
            ]
        );
        assert_eq!(get(&p, "CPUShares"), Some(&Value::U64(512)));
        assert_eq!(get(&p, "BlockIOWeight"), Some(&Value::U64(300)));
        let r = res(serde_json::json!({"unified": {"memory.max": "1"}}));
        assert!(resources(&r, None, 252, false).is_err());
    }

    #[test]
    fn unified_keys() {
        let u: HashMap<String, String> = [
            ("memory.high", " 1000 "),
            ("memory.min", "max"),
            ("pids.max", "5"),
            ("cpu.max", "max 50000"),
            ("cpu.weight", "200"),
            ("cpuset.cpus", "1"),
            ("io.max", "8:0 rbps=1"),
            ("memory.oom.group", "1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let p = unified(&u, 252).unwrap();
        assert_eq!(
            p,
            vec![
                prop("CPUQuotaPeriodUSec", Value::U64(50_000)),
                prop("CPUQuotaPerSecUSec", Value::U64(u64::MAX)),
                prop("CPUWeight", Value::U64(200)),
                prop("AllowedCPUs", bytes(vec![2])),
                prop("MemoryHigh", Value::U64(1000)),
                prop("MemoryMin", Value::U64(u64::MAX)),
                prop("TasksMax", Value::U64(5)),
            ]
        );
        let one = |k: &str, v: &str| unified(&[(k.to_string(), v.to_string())].into_iter().collect(), 252);
        assert_eq!(
            one("cpu.max", "20000").unwrap()[1],
            prop("CPUQuotaPerSecUSec", Value::U64(200_000))
        );
        assert_eq!(
            one("a/b", "1").unwrap_err().to_string(),
            "unified resource \"a/b\" must be a file name (no slashes)"
        );
        assert_eq!(
            one("memory", "1").unwrap_err().to_string(),
            "unified resource \"memory\" must be in the form CONTROLLER.PARAMETER"
        );
        assert!(one(".max", "1").is_err());
        assert!(one("cpu.max", "1 2 3").is_err());
        assert!(one("memory.max", "lots").is_err());
        assert!(one("cpu.weight", "x").is_err());
        // idle wins over weight (systemd >= 252), cpu.idle=0 has no property
        let both: HashMap<String, String> = [("cpu.idle", "1"), ("cpu.weight", "50")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(unified(&both, 252).unwrap(), vec![prop("CPUWeight", Value::U64(0))]);
        assert!(one("cpu.idle", "0").unwrap().is_empty());
    }

    #[test]
    fn oom_group_is_a_start_property() {
        let u = |v: &str| -> HashMap<String, String> { [("memory.oom.group".to_string(), v.to_string())].into() };
        assert_eq!(
            oom_policy(Some(&u("1"))).unwrap(),
            Some(prop("OOMPolicy", Value::str("kill")))
        );
        assert_eq!(
            oom_policy(Some(&u("0"))).unwrap(),
            Some(prop("OOMPolicy", Value::str("continue")))
        );
        assert_eq!(oom_policy(Some(&u("2"))).unwrap(), None);
        assert!(oom_policy(Some(&u("x"))).is_err());
        assert_eq!(oom_policy(None).unwrap(), None);
    }

    #[test]
    fn device_rules() {
        let defaults = crate::cgroups::devices::defaults();
        let p = devices(&defaults, 252).unwrap();
        assert_eq!(names(&p), ["DevicePolicy", "DeviceAllow", "DeviceAllow"]);
        assert_eq!(get(&p, "DevicePolicy"), Some(&Value::str("strict")));
        let Some(Value::Array(sig, list)) = get(&p, "DeviceAllow") else {
            panic!()
        };
        assert_eq!(sig, "(ss)");
        let list: Vec<(String, String)> = list
            .iter()
            .map(|v| match v {
                Value::Struct(f) => (f[0].as_str().unwrap().into(), f[1].as_str().unwrap().into()),
                _ => panic!(),
            })
            .collect();
        let want = [
            ("char-*", "m"),
            ("block-*", "m"),
            ("/dev/char/1:3", "rwm"),
            ("/dev/char/1:5", "rwm"),
            ("/dev/char/1:7", "rwm"),
            ("/dev/char/1:8", "rwm"),
            ("/dev/char/1:9", "rwm"),
            ("/dev/char/5:0", "rwm"),
            ("/dev/char/5:2", "rwm"),
            ("char-136", "rwm"),
        ];
        assert_eq!(list, want.map(|(a, b)| (a.to_string(), b.to_string())));
        // systemd < 240: no char-MAJOR form, the rule is left to berth's filter
        let p = devices(&defaults, 239).unwrap();
        let Some(Value::Array(_, list)) = get(&p, "DeviceAllow") else {
            panic!()
        };
        assert_eq!(list.len(), 9);
        // allow-all: policy auto, empty list
        let all = vec![Rule::new(true, 'a', None, None, "rwm")];
        let p = devices(&all, 252).unwrap();
        assert_eq!(get(&p, "DevicePolicy"), Some(&Value::str("auto")));
        assert_eq!(get(&p, "DeviceAllow"), Some(&device_allow(vec![])));
        // a denylist: deny-all to systemd
        let deny = vec![all[0].clone(), Rule::new(false, 'c', Some(1), Some(3), "rwm")];
        let p = devices(&deny, 252).unwrap();
        assert_eq!(get(&p, "DevicePolicy"), Some(&Value::str("strict")));
        assert_eq!(get(&p, "DeviceAllow"), Some(&device_allow(vec![])));
        // any major with a minor: no systemd form
        let odd = vec![Rule::new(true, 'c', None, Some(3), "r")];
        let p = devices(&odd, 252).unwrap();
        assert_eq!(get(&p, "DeviceAllow"), Some(&device_allow(vec![])));
        // block devices and partial access
        let blk = vec![Rule::new(true, 'b', Some(8), Some(0), "rw")];
        let p = devices(&blk, 252).unwrap();
        assert_eq!(
            get(&p, "DeviceAllow"),
            Some(&device_allow(vec![("/dev/block/8:0".into(), "rw".into())]))
        );
        // and in the resource conversion
        let (p, _) = resources(&LinuxResources::default(), Some(&defaults), 252, true).unwrap();
        assert_eq!(get(&p, "DevicePolicy"), Some(&Value::str("strict")));
    }

    #[test]
    fn gvariant_text() {
        assert_eq!(parse_gvariant("true").unwrap(), Value::Bool(true));
        assert_eq!(parse_gvariant(" false ").unwrap(), Value::Bool(false));
        assert_eq!(parse_gvariant("10").unwrap(), Value::I32(10));
        assert_eq!(parse_gvariant("-3").unwrap(), Value::I32(-3));
        assert_eq!(parse_gvariant("1.5").unwrap(), Value::Double(1.5));
        assert_eq!(parse_gvariant("uint64 123").unwrap(), Value::U64(123));
        assert_eq!(parse_gvariant("@t 5").unwrap(), Value::U64(5));
        assert_eq!(parse_gvariant("uint32 0x10").unwrap(), Value::U32(16));
        assert_eq!(parse_gvariant("byte 255").unwrap(), Value::Byte(255));
        assert_eq!(parse_gvariant("int64 -1").unwrap(), Value::I64(-1));
        assert_eq!(
            parse_gvariant("'inactive-or-failed'").unwrap(),
            Value::str("inactive-or-failed")
        );
        assert_eq!(parse_gvariant("\"a'b\"").unwrap(), Value::str("a'b"));
        assert_eq!(parse_gvariant("'it\\'s'").unwrap(), Value::str("it's"));
        assert_eq!(
            parse_gvariant("['a.service', 'b.service']").unwrap(),
            Value::Array("s".into(), vec![Value::str("a.service"), Value::str("b.service")])
        );
        assert_eq!(parse_gvariant("@as []").unwrap(), Value::Array("s".into(), vec![]));
        assert_eq!(
            parse_gvariant("@at [1, 2]").unwrap(),
            Value::Array("t".into(), vec![Value::U64(1), Value::U64(2)])
        );
        for bad in [
            "",
            "[]",
            "'open",
            "uint8 1",
            "byte 256",
            "int32 3000000000",
            "[1, 'a']",
            "1 2",
            "@t 'x'",
            "uint64 -1",
        ] {
            assert!(parse_gvariant(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn annotation_properties() {
        let a: HashMap<String, String> = [
            ("org.systemd.property.CollectMode", "'inactive-or-failed'"),
            ("org.systemd.property.TimeoutStopSec", "uint64 30"),
            ("org.systemd.property.RuntimeMaxSec", "2"),
            ("org.systemd.property.CPUQuotaPerSecUSec", "uint64 100000"),
            ("io.kubernetes.other", "x"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let p = annotations(&a).unwrap();
        assert_eq!(
            p,
            vec![
                prop("CPUQuotaPerSecUSec", Value::U64(100_000)),
                prop("CollectMode", Value::str("inactive-or-failed")),
                prop("RuntimeMaxUSec", Value::U64(2_000_000)),
                prop("TimeoutStopUSec", Value::U64(30_000_000)),
            ]
        );
        let one = |k: &str, v: &str| annotations(&[(k.to_string(), v.to_string())].into_iter().collect());
        assert_eq!(
            one("org.systemd.property.AB", "1").unwrap_err().to_string(),
            "annotation org.systemd.property.AB name incorrect: too short"
        );
        assert_eq!(
            one("org.systemd.property.A_B", "1").unwrap_err().to_string(),
            "annotation org.systemd.property.A_B name incorrect: contains non-alphabetic character"
        );
        let e = one("org.systemd.property.Foo", "'x").unwrap_err().to_string();
        assert!(
            e.starts_with("annotation org.systemd.property.Foo='x value parse error"),
            "{e}"
        );
        // a Sec name with a string value cannot be converted
        assert!(one("org.systemd.property.TimeoutSec", "'x'").is_err());
        // "USec" itself is not converted again (upper-case before "Sec")
        assert_eq!(one("org.systemd.property.FooUSec", "uint64 1").unwrap()[0].0, "FooUSec");
    }
}
