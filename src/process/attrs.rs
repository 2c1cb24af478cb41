//! Attributes of the container's process that survive execve, so the init sets them on itself
//! right before it execs: linux.personality, process.scheduler, process.ioPriority,
//! linux.memoryPolicy and the CPU affinity (process.execCPUAffinity for `exec`, otherwise
//! every CPU of the container's cpuset). Everything is parsed and checked here, in the parent,
//! with runc's texts where runc has one; the init only issues the syscalls (`apply`), and the
//! parent sets the initial CPU affinity around the clone.

use crate::sys::{self, SchedAttr};
use anyhow::{anyhow, bail, Result};
use oci_spec::runtime::{
    IOPriorityClass, Linux, LinuxIOPriority, LinuxMemoryPolicy, LinuxPersonality, LinuxPersonalityDomain,
    LinuxSchedulerFlag, LinuxSchedulerPolicy, MemoryPolicyFlagType, MemoryPolicyModeType, Process,
};
use serde_json::Value;

#[derive(Debug, Default, PartialEq)]
pub struct Attrs {
    pub personality: Option<Personality>,
    pub scheduler: Option<Scheduler>,
    pub ioprio: Option<IoPrio>,
    pub mempolicy: Option<MemPolicy>,
    /// exec: the CPUs the process starts on, until it is in the container's cgroups.
    pub affinity_initial: Option<CpuList>,
    /// exec: the CPUs it runs on once it is in them.
    pub affinity_final: Option<CpuList>,
}

#[derive(Debug, PartialEq)]
pub struct Personality {
    pub persona: u64,
    /// "LINUX32|ADDR_NO_RANDOMIZE", for errors.
    pub name: String,
}

#[derive(Debug, PartialEq)]
pub struct Scheduler {
    pub attr: SchedAttr,
    pub policy: &'static str,
    /// linux.resources.cpu.cpus is set (the kernel refuses SCHED_DEADLINE on a partial cpuset).
    pub cpuset: bool,
}

#[derive(Debug, PartialEq)]
pub struct IoPrio {
    /// class << 13 | level, as ioprio_set(2) takes it.
    pub value: i32,
    pub name: String,
}

#[derive(Debug, PartialEq)]
pub struct MemPolicy {
    /// The mode with its MPOL_F_* flags.
    pub mode: i32,
    pub nodes: Vec<u64>,
    pub name: String,
}

#[derive(Debug, PartialEq)]
pub struct CpuList {
    pub mask: Vec<u64>,
    pub text: String,
}

/// personality(2) flags by their kernel names (include/uapi/linux/personality.h). The
/// runtime-spec defines none and runc ignores them with a warning; berth applies these and
/// refuses any other name, so a flag that is accepted works.
const PERSONALITY_FLAGS: [(&str, u64); 11] = [
    ("UNAME26", 0x0020000),
    ("ADDR_NO_RANDOMIZE", 0x0040000),
    ("FDPIC_FUNCPTRS", 0x0080000),
    ("MMAP_PAGE_ZERO", 0x0100000),
    ("ADDR_COMPAT_LAYOUT", 0x0200000),
    ("READ_IMPLIES_EXEC", 0x0400000),
    ("ADDR_LIMIT_32BIT", 0x0800000),
    ("SHORT_INODE", 0x1000000),
    ("WHOLE_SECONDS", 0x2000000),
    ("STICKY_TIMEOUTS", 0x4000000),
    ("ADDR_LIMIT_3GB", 0x8000000),
];

/// The scheduler flags: the runtime-spec's name, oci-spec's variant, the kernel's bit.
const SCHED_FLAGS: [(&str, LinuxSchedulerFlag, u64); 7] = [
    ("SCHED_FLAG_RESET_ON_FORK", LinuxSchedulerFlag::SchedResetOnFork, 0x01),
    ("SCHED_FLAG_RECLAIM", LinuxSchedulerFlag::SchedFlagReclaim, 0x02),
    ("SCHED_FLAG_DL_OVERRUN", LinuxSchedulerFlag::SchedFlagDLOverrun, 0x04),
    ("SCHED_FLAG_KEEP_POLICY", LinuxSchedulerFlag::SchedFlagKeepPolicy, 0x08),
    ("SCHED_FLAG_KEEP_PARAMS", LinuxSchedulerFlag::SchedFlagKeepParams, 0x10),
    (
        "SCHED_FLAG_UTIL_CLAMP_MIN",
        LinuxSchedulerFlag::SchedFlagUtilClampMin,
        0x20,
    ),
    (
        "SCHED_FLAG_UTIL_CLAMP_MAX",
        LinuxSchedulerFlag::SchedFlagUtilClampMax,
        0x40,
    ),
];

const MPOL_F_STATIC_NODES: i32 = 1 << 15;
const MPOL_F_RELATIVE_NODES: i32 = 1 << 14;
const MPOL_F_NUMA_BALANCING: i32 = 1 << 13;

/// The memory policy modes (kernel value, name), as `berth features` lists them.
pub const MPOL_MODES: [(MemoryPolicyModeType, i32, &str); 7] = [
    (MemoryPolicyModeType::MpolBind, 2, "MPOL_BIND"),
    (MemoryPolicyModeType::MpolDefault, 0, "MPOL_DEFAULT"),
    (MemoryPolicyModeType::MpolInterleave, 3, "MPOL_INTERLEAVE"),
    (MemoryPolicyModeType::MpolLocal, 4, "MPOL_LOCAL"),
    (MemoryPolicyModeType::MpolPreferred, 1, "MPOL_PREFERRED"),
    (MemoryPolicyModeType::MpolPreferredMany, 5, "MPOL_PREFERRED_MANY"),
    (
        MemoryPolicyModeType::MpolWeightedInterleave,
        6,
        "MPOL_WEIGHTED_INTERLEAVE",
    ),
];

pub const MPOL_FLAGS: [(MemoryPolicyFlagType, i32, &str); 3] = [
    (
        MemoryPolicyFlagType::MpolFNumaBalancing,
        MPOL_F_NUMA_BALANCING,
        "MPOL_F_NUMA_BALANCING",
    ),
    (
        MemoryPolicyFlagType::MpolFRelativeNodes,
        MPOL_F_RELATIVE_NODES,
        "MPOL_F_RELATIVE_NODES",
    ),
    (
        MemoryPolicyFlagType::MpolFStaticNodes,
        MPOL_F_STATIC_NODES,
        "MPOL_F_STATIC_NODES",
    ),
];

/// The highest CPU or node number a list may name (runc's limit).
const MAX_ID: u64 = 65536;

/// Everything checked and converted, for the container's init (`exec`: false) or a process
/// started with `exec`, the only one execCPUAffinity applies to (it is still checked at create).
pub fn plan(linux: &Linux, process: &Process, exec: bool) -> Result<Attrs> {
    let cpuset = linux
        .resources()
        .as_ref()
        .and_then(|r| r.cpu().as_ref())
        .and_then(|c| c.cpus().as_ref())
        .is_some_and(|c| !c.is_empty());
    let affinity = process.exec_cpu_affinity().as_ref();
    let list = |field: &str, v: Option<&String>| -> Result<Option<CpuList>> {
        match v.map(|s| s.as_str()).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => parse_list(s)
                .map(|(mask, text)| Some(CpuList { mask, text }))
                .map_err(|e| anyhow!("invalid execCPUAffinity.{field} {s:?}: {e}")),
        }
    };
    let initial = list("initial", affinity.and_then(|a| a.initial().as_ref()))?;
    let mut fin = list("final", affinity.and_then(|a| a.cpu_affinity_final().as_ref()))?;
    if initial.is_some() && fin.is_none() {
        // The process must not stay on the initial CPUs: as runc, it gets every CPU back once
        // in the cgroups (the kernel keeps it within their cpuset).
        fin = Some(CpuList {
            mask: ALL_CPUS.to_vec(),
            text: "all".into(),
        });
    }
    Ok(Attrs {
        personality: linux.personality().as_ref().map(personality).transpose()?,
        scheduler: process.scheduler().as_ref().map(|s| scheduler(s, cpuset)).transpose()?,
        ioprio: process.io_priority().as_ref().map(ioprio).transpose()?,
        mempolicy: linux.memory_policy().as_ref().map(mempolicy).transpose()?,
        affinity_initial: initial.filter(|_| exec),
        affinity_final: fin.filter(|_| exec),
    })
}

fn personality(p: &LinuxPersonality) -> Result<Personality> {
    let (mut persona, mut name) = match p.domain() {
        LinuxPersonalityDomain::PerLinux => (0, "LINUX".to_string()),
        LinuxPersonalityDomain::PerLinux32 => (0x0008, "LINUX32".to_string()),
    };
    for f in p.flags().iter().flatten() {
        let Some((_, bit)) = PERSONALITY_FLAGS.iter().find(|(n, _)| n == f) else {
            let known: Vec<&str> = PERSONALITY_FLAGS.iter().map(|(n, _)| *n).collect();
            bail!(
                "linux.personality.flags: unknown flag {f:?} (known: {})",
                known.join(", ")
            );
        };
        persona |= bit;
        name = format!("{name}|{f}");
    }
    Ok(Personality { persona, name })
}

/// runc's checks (libcontainer/configs/validate), plus the priority range the kernel takes.
fn scheduler(s: &oci_spec::runtime::Scheduler, cpuset: bool) -> Result<Scheduler> {
    use LinuxSchedulerPolicy as P;
    let (policy, name) = match s.policy() {
        P::SchedOther => (0, "SCHED_OTHER"),
        P::SchedFifo => (1, "SCHED_FIFO"),
        P::SchedRr => (2, "SCHED_RR"),
        P::SchedBatch => (3, "SCHED_BATCH"),
        P::SchedIso => bail!("invalid scheduler policy: SCHED_ISO is not implemented by Linux"),
        P::SchedIdle => (5, "SCHED_IDLE"),
        P::SchedDeadline => (6, "SCHED_DEADLINE"),
    };
    let nice = s.nice().unwrap_or(0);
    if matches!(s.policy(), P::SchedOther | P::SchedBatch) && !(-20..=19).contains(&nice) {
        bail!("invalid scheduler.nice: {nice} when scheduler.policy is {name}");
    }
    let rt = matches!(s.policy(), P::SchedFifo | P::SchedRr);
    let priority = s.priority().unwrap_or(0);
    if priority != 0 && !rt {
        bail!("scheduler.priority can only be specified for SchedFIFO or SchedRR policy");
    }
    let (runtime, deadline, period) = (
        s.runtime().unwrap_or(0),
        s.deadline().unwrap_or(0),
        s.period().unwrap_or(0),
    );
    if !matches!(s.policy(), P::SchedDeadline) && (runtime != 0 || deadline != 0 || period != 0) {
        bail!("scheduler runtime/deadline/period can only be specified for SchedDeadline policy");
    }
    if rt && !(1..=99).contains(&priority) {
        bail!("invalid scheduler.priority: {priority} when scheduler.policy is {name} (1 to 99)");
    }
    let mut flags = 0;
    for f in s.flags().iter().flatten() {
        flags |= SCHED_FLAGS
            .iter()
            .find(|(_, v, _)| v == f)
            .map_or(0, |(_, _, bit)| *bit);
    }
    Ok(Scheduler {
        attr: SchedAttr {
            policy,
            flags,
            nice,
            priority: priority as u32,
            runtime,
            deadline,
            period,
            ..Default::default()
        },
        policy: name,
        cpuset,
    })
}

fn ioprio(p: &LinuxIOPriority) -> Result<IoPrio> {
    let level = p.priority();
    if !(0..=7).contains(&level) {
        bail!("invalid ioPriority.Priority: {level}");
    }
    let (class, name) = match p.class() {
        IOPriorityClass::IoprioClassRt => (1, "IOPRIO_CLASS_RT"),
        IOPriorityClass::IoprioClassBe => (2, "IOPRIO_CLASS_BE"),
        IOPriorityClass::IoprioClassIdle => (3, "IOPRIO_CLASS_IDLE"),
    };
    Ok(IoPrio {
        value: class << 13 | level as i32,
        name: format!("{name} {level}"),
    })
}

/// The kernel's rules (mm/mempolicy.c), checked before anything runs.
fn mempolicy(m: &LinuxMemoryPolicy) -> Result<MemPolicy> {
    use MemoryPolicyModeType as M;
    let (_, mode, name) = MPOL_MODES
        .iter()
        .find(|(t, _, _)| *t == m.mode())
        .copied()
        .ok_or_else(|| anyhow!("invalid memory policy mode {:?}", m.mode().to_string()))?;
    let text = m.nodes().as_deref().unwrap_or("");
    let (nodes, count) = if text.is_empty() {
        (Vec::new(), 0)
    } else {
        let (mask, _) = parse_list(text).map_err(|e| anyhow!("invalid memory policy nodes {text:?}: {e}"))?;
        let count = mask.iter().map(|w| w.count_ones() as usize).sum();
        (mask, count)
    };
    let mut flags = 0;
    let mut full = name.to_string();
    for f in m.flags().iter().flatten() {
        let (_, bit, fname) = MPOL_FLAGS
            .iter()
            .find(|(t, _, _)| t == f)
            .copied()
            .unwrap_or((*f, 0, "?"));
        flags |= bit;
        full = format!("{full}|{fname}");
    }
    if flags & MPOL_F_STATIC_NODES != 0 && flags & MPOL_F_RELATIVE_NODES != 0 {
        bail!("invalid memory policy flags: MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES are mutually exclusive");
    }
    if flags & MPOL_F_NUMA_BALANCING != 0 && !matches!(m.mode(), M::MpolBind | M::MpolPreferredMany) {
        bail!("invalid memory policy flag \"MPOL_F_NUMA_BALANCING\": only with MPOL_BIND or MPOL_PREFERRED_MANY, not {name}");
    }
    match m.mode() {
        M::MpolDefault | M::MpolLocal if count > 0 => {
            bail!("invalid memory policy {name}: mode requires 0 nodes but got {count}")
        }
        M::MpolBind | M::MpolInterleave | M::MpolWeightedInterleave | M::MpolPreferredMany if count == 0 => {
            bail!("invalid memory policy {name}: mode requires at least 1 node but got 0")
        }
        M::MpolLocal | M::MpolPreferred if count == 0 && flags & (MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES) != 0 => {
            bail!("invalid memory policy {name}: MPOL_F_STATIC_NODES and MPOL_F_RELATIVE_NODES need nodes")
        }
        _ => {}
    }
    if count > 0 {
        full = format!("{full} nodes {text}");
    }
    Ok(MemPolicy {
        mode: mode | flags,
        nodes,
        name: full,
    })
}

/// A CPU or node list ("0-3,7"; runc's ToCPUSet: blanks around entries and empty entries are
/// ignored) as a bitmask, with its canonical text.
pub fn parse_list(s: &str) -> std::result::Result<(Vec<u64>, String), String> {
    let mut mask: Vec<u64> = Vec::new();
    let mut any = false;
    for part in s.split(',') {
        let part = part.trim_matches(|c| c == ' ' || c == '\t');
        if part.is_empty() {
            continue;
        }
        let num = |t: &str| -> std::result::Result<u64, String> {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("invalid entry {part:?}"));
            }
            match t.parse::<u64>() {
                Ok(n) if n <= MAX_ID => Ok(n),
                _ => Err(format!("{t} is above the maximum {MAX_ID}")),
            }
        };
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(part)?, num(part)?),
        };
        if lo > hi {
            return Err(format!("invalid range {part:?}: start is above end"));
        }
        let words = (hi / 64 + 1) as usize;
        if mask.len() < words {
            mask.resize(words, 0);
        }
        for n in lo..=hi {
            mask[(n / 64) as usize] |= 1 << (n % 64);
        }
        any = true;
    }
    if !any {
        return Err("no CPU or node listed".into());
    }
    let text = list_text(&mask);
    Ok((mask, text))
}

/// "0-3,7" for a bitmask.
pub fn list_text(mask: &[u64]) -> String {
    let mut out: Vec<String> = Vec::new();
    let bits = mask.len() * 64;
    let set = |n: usize| mask[n / 64] & (1 << (n % 64)) != 0;
    let mut n = 0;
    while n < bits {
        if !set(n) {
            n += 1;
            continue;
        }
        let start = n;
        while n + 1 < bits && set(n + 1) {
            n += 1;
        }
        out.push(if start == n {
            start.to_string()
        } else {
            format!("{start}-{n}")
        });
        n += 1;
    }
    out.join(",")
}

/// In the init, once it is in the container's cgroups: set what survives execve. The CPU
/// affinity comes after the cgroup join (joining a cpuset resets it); personality last, since
/// its flags may change how the init's own later allocations are placed.
pub fn apply(a: &Attrs) -> Result<()> {
    if a.affinity_final.is_none() {
        reset_affinity();
    }
    if let Some(m) = &a.mempolicy {
        sys::set_mempolicy(m.mode, &m.nodes).map_err(|e| anyhow!("set memory policy {}: {e}", m.name))?;
    }
    if let Some(io) = &a.ioprio {
        sys::ioprio_set_self(io.value).map_err(|e| anyhow!("set I/O priority {}: {e}", io.name))?;
    }
    if let Some(s) = &a.scheduler {
        sys::sched_setattr(&s.attr).map_err(|e| scheduler_error(s, e))?;
    }
    if let Some(c) = &a.affinity_final {
        sys::sched_setaffinity(0, &c.mask)
            .map_err(|e| anyhow!("set CPU affinity {} (execCPUAffinity.final): {e}", c.text))?;
    }
    if let Some(p) = &a.personality {
        sys::set_personality(p.persona).map_err(|e| anyhow!("set personality {}: {e}", p.name))?;
    }
    Ok(())
}

/// Every CPU the container's cpuset allows, not the caller's affinity. Since Linux 6.2 ("sched:
/// Enforce user requested affinity") joining a cpuset keeps an affinity the caller set (a
/// systemd unit's CPUAffinity=, `taskset berth run`), so without this the container would stay
/// on those CPUs; runc resets it the same way (libct: reset CPU affinity by default). The
/// kernel narrows an all-ones mask to the cpuset's CPUs, and keeps it as the requested mask,
/// so a later change of the cpuset applies in full. Before the scheduler: a SCHED_DEADLINE
/// task may not change its affinity. A failure leaves the inherited affinity (runc: a warning).
fn reset_affinity() {
    if let Err(e) = sys::sched_setaffinity(0, &ALL_CPUS) {
        crate::log::debug(&format!("reset CPU affinity to the cpuset's CPUs: {e}"));
    }
}

/// 8192 CPUs, the kernel's largest NR_CPUS: more than any cpumask, which the kernel truncates.
const ALL_CPUS: [u64; 128] = [u64::MAX; 128];

fn scheduler_error(s: &Scheduler, e: nix::errno::Errno) -> anyhow::Error {
    let what = format!(
        "set scheduler {} priority {} nice {}",
        s.policy, s.attr.priority, s.attr.nice
    );
    match (e, s.attr.policy) {
        // runc's text: the kernel refuses SCHED_DEADLINE on a cpuset that is not a whole root domain.
        (nix::errno::Errno::EPERM, 6) if s.cpuset => {
            anyhow!("process scheduler can't be used together with AllowedCPUs ({what}: {e})")
        }
        (nix::errno::Errno::EPERM, 1 | 2) => anyhow!(
            "{what}: {e} (a realtime policy needs CAP_SYS_NICE and, with CONFIG_RT_GROUP_SCHED, realtime runtime in the container's cpu cgroup: linux.resources.cpu.realtimeRuntime)"
        ),
        _ => anyhow!("{what}: {e}"),
    }
}

/// exec, in the parent: the clone (whose child inherits this thread's affinity) runs on the
/// initial CPUs. Returns the parent's own affinity, to `restore` once the child exists.
pub fn enter_initial(a: &Attrs) -> Result<Option<Vec<u64>>> {
    let Some(c) = &a.affinity_initial else { return Ok(None) };
    let saved = sys::sched_getaffinity(0).map_err(|e| anyhow!("get CPU affinity: {e}"))?;
    sys::sched_setaffinity(0, &c.mask)
        .map_err(|e| anyhow!("set CPU affinity {} (execCPUAffinity.initial): {e}", c.text))?;
    Ok(Some(saved))
}

/// The parent's own affinity back (see `enter_initial`); the child exists by now, so a failure
/// is only logged.
pub fn restore(saved: Option<Vec<u64>>) {
    if let Some(m) = saved {
        if let Err(e) = sys::sched_setaffinity(0, &m) {
            crate::log::debug(&format!("restore CPU affinity {}: {e}", list_text(&m)));
        }
    }
}

/// When strict parsing of config.json (`spec`) or process.json fails, look at the raw JSON:
/// a bad value in one of these fields gets runc's text (oci-spec's error names no field), and
/// what the runtime-spec allows but oci-spec 0.10 refuses is mended: the spec's scheduler flag
/// names (oci-spec spells them differently), runc's list syntax for execCPUAffinity ("",
/// blanks, stray commas), a process without `user`, and capability names oci-spec does not
/// know (dropped with runc's warning: the runtime-spec says warn, not fail). Ok(None): nothing
/// of ours, the parser's own error stands.
pub fn mend(data: &[u8], spec: bool) -> Result<Option<Value>> {
    let Ok(mut v) = serde_json::from_slice::<Value>(data) else {
        return Ok(None);
    };
    if spec {
        if let Some(l) = v.get("linux") {
            check_linux(l)?;
        }
    }
    let p = if spec { v.get_mut("process") } else { Some(&mut v) };
    let changed = match p {
        Some(p) if p.is_object() => mend_process(p)?,
        _ => false,
    };
    Ok(changed.then_some(v))
}

fn check_linux(l: &Value) -> Result<()> {
    if let Some(m) = l.get("memoryPolicy").filter(|m| m.is_object()) {
        let mode = m.get("mode").and_then(Value::as_str).unwrap_or("");
        if !MPOL_MODES.iter().any(|(_, _, n)| *n == mode) {
            bail!("invalid memory policy mode {mode:?}");
        }
        for f in m.get("flags").and_then(Value::as_array).into_iter().flatten() {
            let f = f.as_str().unwrap_or("");
            if !MPOL_FLAGS.iter().any(|(_, _, n)| *n == f) {
                bail!("invalid memory policy flag {f:?}");
            }
        }
    }
    if let Some(p) = l.get("personality").filter(|p| p.is_object()) {
        let d = p.get("domain").and_then(Value::as_str).unwrap_or("");
        if d != "LINUX" && d != "LINUX32" {
            bail!("invalid personality domain {d}");
        }
    }
    Ok(())
}

fn mend_process(p: &mut Value) -> Result<bool> {
    let mut changed = false;
    if p.get("user").is_none_or(Value::is_null) {
        // Only `cwd` is required in process (runtime-spec); without `user`, runc runs 0:0.
        p["user"] = serde_json::json!({});
        changed = true;
    }
    let mut unknown = Vec::new();
    for set in p
        .get_mut("capabilities")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|c| c.values_mut())
    {
        if let Some(list) = set.as_array_mut() {
            list.retain(|c| match c.as_str() {
                // Not a string: the parser's own error.
                None => true,
                Some(name) => {
                    let known = serde_json::from_value::<oci_spec::runtime::Capability>(c.clone()).is_ok();
                    if !known {
                        unknown.push(name.to_string());
                    }
                    known
                }
            });
        }
    }
    if !unknown.is_empty() {
        super::caps::warn_ignored(unknown);
        changed = true;
    }
    if let Some(io) = p.get("ioPriority").filter(|v| v.is_object()) {
        if let Some(c) = io.get("class").and_then(Value::as_str) {
            if !["IOPRIO_CLASS_RT", "IOPRIO_CLASS_BE", "IOPRIO_CLASS_IDLE"].contains(&c) {
                bail!("invalid io priority class: {c}");
            }
        }
    }
    if let Some(s) = p.get_mut("scheduler").filter(|v| v.is_object()) {
        let policy = s.get("policy").and_then(Value::as_str).unwrap_or("");
        if policy.is_empty() {
            bail!("scheduler policy is required");
        }
        if serde_json::from_value::<LinuxSchedulerPolicy>(Value::String(policy.into())).is_err() {
            bail!("invalid scheduler policy: {policy}");
        }
        for f in s.get_mut("flags").and_then(Value::as_array_mut).into_iter().flatten() {
            let name = f.as_str().unwrap_or("").to_string();
            if serde_json::from_value::<LinuxSchedulerFlag>(f.clone()).is_ok() {
                continue;
            }
            let Some((_, variant, _)) = SCHED_FLAGS.iter().find(|(n, _, _)| *n == name) else {
                bail!("invalid scheduler flag: {name}");
            };
            *f = serde_json::to_value(variant)?;
            changed = true;
        }
    }
    if let Some(a) = p.get_mut("execCPUAffinity").and_then(Value::as_object_mut) {
        for field in ["initial", "final"] {
            let Some(s) = a.get(field).and_then(Value::as_str).map(str::to_string) else {
                continue;
            };
            if s.is_empty() {
                a.remove(field);
                changed = true;
                continue;
            }
            let (_, text) = parse_list(&s).map_err(|e| anyhow!("invalid execCPUAffinity.{field} {s:?}: {e}"))?;
            if text != s {
                a.insert(field.into(), Value::String(text));
                changed = true;
            }
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec_with(linux: Value, process: Value) -> (Linux, Process) {
        let mut p = json!({"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0}});
        for (k, v) in process.as_object().unwrap() {
            p[k] = v.clone();
        }
        (
            serde_json::from_value(linux).unwrap(),
            serde_json::from_value(p).unwrap(),
        )
    }

    fn err(linux: Value, process: Value) -> String {
        let (l, p) = spec_with(linux, process);
        format!("{:#}", plan(&l, &p, true).unwrap_err())
    }

    #[test]
    fn lists_parse_as_runc_parses_them() {
        assert_eq!(parse_list("0-3,7").unwrap(), (vec![0x8f], "0-3,7".into()));
        assert_eq!(parse_list(" , 1 ,3, 5-7, ").unwrap().1, "1,3,5-7");
        assert_eq!(parse_list("127-129, 1").unwrap().1, "1,127-129");
        assert_eq!(parse_list("65536").unwrap().0.len(), 1025);
        for bad in [
            "",
            ",",
            " ",
            "-",
            "1-",
            "-3",
            "54-53",
            "1 - 2",
            "65537",
            "0-9876543210",
            "x",
        ] {
            assert!(parse_list(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn every_field_converts_to_what_the_syscalls_take() {
        let (l, p) = spec_with(
            json!({"personality": {"domain": "LINUX32", "flags": ["ADDR_NO_RANDOMIZE"]},
                   "memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}}),
            json!({"scheduler": {"policy": "SCHED_FIFO", "priority": 10, "flags": ["SCHED_RESET_ON_FORK"]},
                   "ioPriority": {"class": "IOPRIO_CLASS_IDLE", "priority": 0},
                   "execCPUAffinity": {"initial": "1", "final": "0-1"}}),
        );
        let a = plan(&l, &p, true).unwrap();
        assert_eq!(a.personality.unwrap().persona, 0x0008 | 0x0040000);
        let s = a.scheduler.unwrap();
        assert_eq!((s.attr.policy, s.attr.priority, s.attr.flags), (1, 10, 1));
        assert_eq!(a.ioprio.unwrap().value, 3 << 13);
        let m = a.mempolicy.unwrap();
        assert_eq!((m.mode, m.nodes), (2 | MPOL_F_STATIC_NODES, vec![1]));
        assert_eq!(a.affinity_initial.unwrap().mask, vec![2]);
        assert_eq!(a.affinity_final.unwrap().mask, vec![3]);
        // The container's init: execCPUAffinity is checked, never applied.
        let init = plan(&l, &p, false).unwrap();
        assert_eq!((init.affinity_initial, init.affinity_final), (None, None));
        // An initial list alone: every CPU back once in the cgroups.
        let (l, p) = spec_with(json!({}), json!({"execCPUAffinity": {"initial": "0"}}));
        assert_eq!(plan(&l, &p, true).unwrap().affinity_final.unwrap().text, "all");
    }

    #[test]
    fn bad_values_are_refused_with_runcs_texts() {
        let none = json!({});
        let sched = |s: Value| err(json!({}), json!({ "scheduler": s }));
        assert_eq!(
            sched(json!({"policy": "SCHED_OTHER", "nice": 20})),
            "invalid scheduler.nice: 20 when scheduler.policy is SCHED_OTHER"
        );
        assert_eq!(
            sched(json!({"policy": "SCHED_BATCH", "priority": 5})),
            "scheduler.priority can only be specified for SchedFIFO or SchedRR policy"
        );
        assert_eq!(
            sched(json!({"policy": "SCHED_RR", "runtime": 5})),
            "scheduler runtime/deadline/period can only be specified for SchedDeadline policy"
        );
        assert!(sched(json!({"policy": "SCHED_FIFO"})).contains("1 to 99"));
        assert_eq!(
            err(
                none.clone(),
                json!({"ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 8}})
            ),
            "invalid ioPriority.Priority: 8"
        );
        let mpol = |m: Value| err(json!({ "memoryPolicy": m }), json!({}));
        assert_eq!(
            mpol(json!({"mode": "MPOL_DEFAULT", "nodes": "0-7"})),
            "invalid memory policy MPOL_DEFAULT: mode requires 0 nodes but got 8"
        );
        assert!(mpol(json!({"mode": "MPOL_BIND"})).contains("requires at least 1 node"));
        assert!(mpol(json!({"mode": "MPOL_BIND", "nodes": "0-9876543210"})).starts_with("invalid memory policy nodes"));
        assert!(
            mpol(json!({"mode": "MPOL_PREFERRED", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"]}))
                .contains("MPOL_F_NUMA_BALANCING")
        );
        assert!(mpol(
            json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]})
        )
        .contains("mutually exclusive"));
        assert!(err(
            json!({"personality": {"domain": "LINUX", "flags": ["NOPE"]}}),
            json!({})
        )
        .starts_with("linux.personality.flags: unknown flag \"NOPE\""));
        assert!(err(none, json!({"execCPUAffinity": {"final": "70000"}})).starts_with("invalid execCPUAffinity.final"));
    }

    #[test]
    fn raw_json_gets_runcs_texts_and_the_specs_spellings() {
        let e = |v: Value| format!("{:#}", mend(v.to_string().as_bytes(), true).unwrap_err());
        assert_eq!(
            e(json!({"linux": {"memoryPolicy": {"mode": "INTERLEAVE", "nodes": "0"}}})),
            "invalid memory policy mode \"INTERLEAVE\""
        );
        assert_eq!(
            e(json!({"linux": {"memoryPolicy": {}}})),
            "invalid memory policy mode \"\""
        );
        assert_eq!(
            e(json!({"linux": {"memoryPolicy": {"mode": "MPOL_PREFERRED", "flags": ["badflag"]}}})),
            "invalid memory policy flag \"badflag\""
        );
        assert_eq!(
            e(json!({"linux": {"personality": {"domain": "LINUX64"}}})),
            "invalid personality domain LINUX64"
        );
        assert_eq!(
            e(json!({"process": {"scheduler": {"nice": 1}}})),
            "scheduler policy is required"
        );
        assert_eq!(
            e(json!({"process": {"scheduler": {"policy": "SCHED_X"}}})),
            "invalid scheduler policy: SCHED_X"
        );
        assert_eq!(
            e(json!({"process": {"ioPriority": {"class": "IOPRIO_CLASS_X"}}})),
            "invalid io priority class: IOPRIO_CLASS_X"
        );
        // The runtime-spec's flag names (oci-spec 0.10 only knows its own) parse after mending.
        let flags: Vec<&str> = SCHED_FLAGS.iter().map(|(n, _, _)| *n).collect();
        let raw = json!({"cwd": "/", "args": ["sh"], "user": {"uid": 0, "gid": 0},
            "scheduler": {"policy": "SCHED_DEADLINE", "flags": flags},
            "execCPUAffinity": {"initial": "", "final": " 1, 0 ,"}});
        assert!(serde_json::from_value::<Process>(raw.clone()).is_err());
        let mended = mend(raw.to_string().as_bytes(), false).unwrap().unwrap();
        let p: Process = serde_json::from_value(mended).unwrap();
        let s = scheduler(p.scheduler().as_ref().unwrap(), false).unwrap();
        assert_eq!(s.attr.flags, 0x7f);
        let a = p.exec_cpu_affinity().as_ref().unwrap();
        assert_eq!(
            (a.initial().as_deref(), a.cpu_affinity_final().as_deref()),
            (None, Some("0-1"))
        );
        // A process without `user` runs as 0:0; unknown capability names are left out.
        let raw = json!({"cwd": "/", "args": ["sh"],
            "capabilities": {"bounding": ["CAP_KILL", "CAP_NOPE"], "effective": ["CAP_X"]}});
        assert!(serde_json::from_value::<Process>(raw.clone()).is_err());
        let p: Process = serde_json::from_value(mend(raw.to_string().as_bytes(), false).unwrap().unwrap()).unwrap();
        assert_eq!((p.user().uid(), p.user().gid()), (0, 0));
        let c = p.capabilities().as_ref().unwrap();
        assert_eq!(c.bounding().as_ref().unwrap().len(), 1);
        assert!(c.effective().as_ref().unwrap().is_empty());
        // Nothing of ours: the parser's own error stands.
        assert!(mend(b"{\"process\": {\"args\": 5, \"user\": {}}}", true)
            .unwrap()
            .is_none());
    }
}
