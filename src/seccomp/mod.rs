//! Seccomp: the OCI profile is compiled to classic BPF by libseccomp **in the parent**
//! (seccomp_export_bpf into a memfd, read back into the Plan), so libseccomp never runs in the
//! container's init; the child only hands the ready program to seccomp(2) (see sys::seccomp_filter).
//!
//! runc compatibility: syscall names libseccomp does not know for this architecture are skipped
//! (runc logs "unknown seccomp syscall ... ignored"), rules whose action equals the default
//! action are skipped (libseccomp refuses them), errnoRet defaults to EPERM, SCMP_ACT_KILL is
//! KILL_THREAD, and runc's -ENOSYS stub goes in front of the program (enosys.rs). Unknown
//! action, flag or operator names fail while parsing config.json.

pub mod cache;
pub mod enosys;
pub mod eval;
pub mod notify;

use anyhow::{anyhow, bail, Result};
use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction as Act, LinuxSeccompFilterFlag as Flag, LinuxSeccompOperator as Op,
    LinuxSyscall,
};
use std::io::{Read, Seek};
use std::os::fd::{AsRawFd, OwnedFd};
use std::str::FromStr;

/// A compiled filter, ready for seccomp(2) in the child.
pub struct Compiled {
    pub program: Vec<libc::sock_filter>,
    /// SECCOMP_FILTER_FLAG_* bits (NEW_LISTENER added when a rule uses SCMP_ACT_NOTIFY).
    pub flags: libc::c_ulong,
    pub notify: bool,
    /// How many libseccomp rules were added, and which names were skipped as unknown.
    pub rules: usize,
    pub skipped: Vec<String>,
}

const EPERM: i32 = libc::EPERM;
/// The kernel's limit on one classic BPF program.
const BPF_MAXINSNS: usize = 4096;

/// Syscalls the init makes between loading the filter and handing its listener to berth: a
/// NOTIFY rule on them would block it before any agent holds the listener. runc refuses `write`
/// (its sync message; same text here); berth sends the listener with sendmsg. Every later
/// syscall (read, close, the final execve, ...) waits for the agent, which has the listener by
/// then, as in runc. The trampoline is reached with execveat, so a rule on execve notifies the
/// agent of the container's program only.
const NOTIFY_FORBIDDEN: [&str; 2] = ["write", "sendmsg"];

fn action(a: Act, errno_ret: Option<u32>) -> Result<ScmpAction> {
    let ret = match errno_ret {
        Some(v) => i32::try_from(v).map_err(|_| anyhow!("errnoRet {v} out of range"))?,
        None => EPERM,
    };
    Ok(match a {
        Act::ScmpActKill | Act::ScmpActKillThread => ScmpAction::KillThread,
        Act::ScmpActKillProcess => ScmpAction::KillProcess,
        Act::ScmpActTrap => ScmpAction::Trap,
        Act::ScmpActErrno => ScmpAction::Errno(ret),
        Act::ScmpActTrace => ScmpAction::Trace(
            u16::try_from(ret).map_err(|_| anyhow!("errnoRet {ret} out of range for SCMP_ACT_TRACE"))?,
        ),
        Act::ScmpActAllow => ScmpAction::Allow,
        Act::ScmpActLog => ScmpAction::Log,
        Act::ScmpActNotify => ScmpAction::Notify,
    })
}

fn flag_bit(f: Flag) -> libc::c_ulong {
    match f {
        Flag::SeccompFilterFlagTsync => libc::SECCOMP_FILTER_FLAG_TSYNC,
        Flag::SeccompFilterFlagLog => libc::SECCOMP_FILTER_FLAG_LOG,
        Flag::SeccompFilterFlagSpecAllow => libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW,
        Flag::SeccompFilterFlagWaitKillableRecv => libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
    }
}

/// The config's spelling of an enum value ("SCMP_ARCH_X86_64"), as serde wrote it.
fn spelled<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn arch(a: Arch) -> Option<ScmpArch> {
    ScmpArch::from_str(&spelled(&a)).ok()
}

fn cmp(op: Op, value: u64, value_two: Option<u64>) -> (ScmpCompareOp, u64) {
    match op {
        Op::ScmpCmpNe => (ScmpCompareOp::NotEqual, value),
        Op::ScmpCmpLt => (ScmpCompareOp::Less, value),
        Op::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, value),
        Op::ScmpCmpEq => (ScmpCompareOp::Equal, value),
        Op::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, value),
        Op::ScmpCmpGt => (ScmpCompareOp::Greater, value),
        // runtime-spec: `value` is the mask, `valueTwo` the value compared after masking.
        Op::ScmpCmpMaskedEq => (ScmpCompareOp::MaskedEqual(value), value_two.unwrap_or(0)),
    }
}

/// Checks that need no libseccomp: done by bundle validation before anything is created.
pub fn validate(s: &LinuxSeccomp) -> Result<()> {
    let mut notify = s.default_action() == Act::ScmpActNotify;
    if notify {
        bail!("linux.seccomp: SCMP_ACT_NOTIFY cannot be the default action");
    }
    for call in s.syscalls().iter().flatten() {
        if call.action() == Act::ScmpActNotify {
            notify = true;
            if let Some(n) = call.names().iter().find(|n| NOTIFY_FORBIDDEN.contains(&n.as_str())) {
                bail!("linux.seccomp: SCMP_ACT_NOTIFY cannot be used for the {n} syscall");
            }
        }
        for a in call.args().iter().flatten() {
            if a.index() > 5 {
                bail!("linux.seccomp: argument index {} out of range (0-5)", a.index());
            }
        }
    }
    match s.listener_path() {
        Some(p) if !p.is_absolute() => {
            bail!("linux.seccomp.listenerPath {} must be an absolute path", p.display())
        }
        None if notify => bail!("linux.seccomp: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath"),
        _ => {}
    }
    Ok(())
}

fn add_call(f: &mut ScmpFilterContext, call: &LinuxSyscall, default: ScmpAction, c: &mut Compiled) -> Result<()> {
    let act = action(call.action(), call.errno_ret())?;
    if act == default {
        return Ok(());
    }
    let conds: Vec<ScmpArgCompare> = call
        .args()
        .iter()
        .flatten()
        .map(|a| {
            let (op, datum) = cmp(a.op(), a.value(), a.value_two());
            ScmpArgCompare::new(a.index() as u32, op, datum)
        })
        .collect();
    let mut idx: Vec<usize> = call.args().iter().flatten().map(|a| a.index()).collect();
    idx.sort_unstable();
    // libseccomp ANDs the conditions of one rule but refuses two on the same argument: like
    // runc, such a list becomes one rule per condition (any of them matches).
    let same_arg = idx.windows(2).any(|w| w[0] == w[1]);
    for name in call.names() {
        let Ok(nr) = ScmpSyscall::from_name(name) else {
            crate::log::debug(&format!("unknown seccomp syscall {name:?} ignored"));
            c.skipped.push(name.clone());
            continue;
        };
        let res = if conds.is_empty() {
            f.add_rule(act, nr).map(|_| 1)
        } else if same_arg {
            conds
                .iter()
                .try_for_each(|cd| f.add_rule_conditional(act, nr, std::slice::from_ref(cd)))
                .map(|_| conds.len())
        } else {
            f.add_rule_conditional(act, nr, &conds).map(|_| 1)
        };
        c.rules += res.map_err(|e| anyhow!("linux.seccomp: add rule for {name}: {e}"))?;
    }
    Ok(())
}

/// Classic BPF as libseccomp exports it (and the cache stores it): 8 bytes per instruction,
/// native endian. None unless the length is a non-zero multiple of 8.
pub fn program_from_bytes(bytes: &[u8]) -> Option<Vec<libc::sock_filter>> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(8) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(8)
            .map(|b| libc::sock_filter {
                code: u16::from_ne_bytes([b[0], b[1]]),
                jt: b[2],
                jf: b[3],
                k: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
            })
            .collect(),
    )
}

/// The inverse of `program_from_bytes`.
pub fn program_to_bytes(program: &[libc::sock_filter]) -> Vec<u8> {
    let mut out = Vec::with_capacity(program.len() * 8);
    for i in program {
        out.extend_from_slice(&i.code.to_ne_bytes());
        out.extend_from_slice(&[i.jt, i.jf]);
        out.extend_from_slice(&i.k.to_ne_bytes());
    }
    out
}

/// Read the exported program back.
fn read_program(mut fd: std::fs::File) -> Result<Vec<libc::sock_filter>> {
    fd.rewind()?;
    let mut bytes = Vec::new();
    fd.read_to_end(&mut bytes)?;
    program_from_bytes(&bytes)
        .ok_or_else(|| anyhow!("seccomp: exported BPF has an invalid size ({} bytes)", bytes.len()))
}

/// Profile -> BPF, in the parent.
pub fn compile(s: &LinuxSeccomp) -> Result<Compiled> {
    validate(s)?;
    compile_valid(s)
}

/// `compile` of a profile `validate` has passed.
fn compile_valid(s: &LinuxSeccomp) -> Result<Compiled> {
    let default = action(s.default_action(), s.default_errno_ret())?;
    let mut f = ScmpFilterContext::new_filter(default).map_err(|e| anyhow!("linux.seccomp: init filter: {e}"))?;
    let mut arches = Vec::new();
    for a in s.architectures().iter().flatten() {
        match arch(*a) {
            Some(sa) => {
                f.add_arch(sa)
                    .map_err(|e| anyhow!("linux.seccomp: add architecture {}: {e}", spelled(a)))?;
                arches.push(sa);
            }
            // Leaving a foreign architecture out only makes the filter stricter (its syscalls
            // get the bad-arch KILL), never weaker.
            None => crate::log::debug(&format!(
                "seccomp architecture {} unknown to libseccomp: skipped",
                spelled(a)
            )),
        }
    }
    let mut c = Compiled {
        program: Vec::new(),
        flags: 0,
        notify: false,
        rules: 0,
        skipped: Vec::new(),
    };
    for call in s.syscalls().iter().flatten() {
        c.notify |= call.action() == Act::ScmpActNotify;
        add_call(&mut f, call, default, &mut c)?;
    }
    for fl in s.flags().iter().flatten() {
        c.flags |= flag_bit(*fl);
    }
    if !c.notify {
        // The kernel refuses WAIT_KILLABLE_RECV without a listener; it only changes how a
        // listener's notifications wait, so without SCMP_ACT_NOTIFY rules it means nothing.
        c.flags &= !libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
    }
    if c.notify {
        c.flags |= libc::SECCOMP_FILTER_FLAG_NEW_LISTENER;
        if c.flags & libc::SECCOMP_FILTER_FLAG_TSYNC != 0 {
            // TSYNC and NEW_LISTENER are exclusive unless TSYNC failures report ESRCH.
            c.flags |= libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
        }
    }
    let memfd: OwnedFd = nix::sys::memfd::memfd_create(c"berth-seccomp", nix::sys::memfd::MemFdCreateFlag::MFD_CLOEXEC)
        .map_err(|e| anyhow!("seccomp: memfd_create: {e}"))?;
    let file = std::fs::File::from(memfd);
    let mut raw = RawFdRef(file.as_raw_fd());
    f.export_bpf(&mut raw)
        .map_err(|e| anyhow!("seccomp: export BPF: {e}"))?;
    c.program = enosys::stub(s, &arches);
    c.program.extend(read_program(file)?);
    if c.program.len() > BPF_MAXINSNS {
        bail!(
            "linux.seccomp: the filter compiles to {} BPF instructions, the kernel takes at most {BPF_MAXINSNS}",
            c.program.len()
        );
    }
    Ok(c)
}

/// The `linux.seccomp` part of the runtime-spec features document.
pub fn features() -> serde_json::Value {
    let actions = [
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_LOG",
        "SCMP_ACT_NOTIFY",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_TRAP",
    ];
    let operators = [
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_LE",
        "SCMP_CMP_LT",
        "SCMP_CMP_MASKED_EQ",
        "SCMP_CMP_NE",
    ];
    let all_arches: Vec<Arch> = serde_json::from_str(
        r#"["SCMP_ARCH_X86","SCMP_ARCH_X86_64","SCMP_ARCH_X32","SCMP_ARCH_ARM","SCMP_ARCH_AARCH64",
        "SCMP_ARCH_MIPS","SCMP_ARCH_MIPS64","SCMP_ARCH_MIPS64N32","SCMP_ARCH_MIPSEL","SCMP_ARCH_MIPSEL64",
        "SCMP_ARCH_MIPSEL64N32","SCMP_ARCH_PPC","SCMP_ARCH_PPC64","SCMP_ARCH_PPC64LE","SCMP_ARCH_S390",
        "SCMP_ARCH_S390X","SCMP_ARCH_PARISC","SCMP_ARCH_PARISC64","SCMP_ARCH_RISCV64"]"#,
    )
    .unwrap_or_default();
    let archs: Vec<String> = all_arches.iter().filter(|a| arch(**a).is_some()).map(spelled).collect();
    let flags = [
        (Flag::SeccompFilterFlagTsync, 0),
        (Flag::SeccompFilterFlagLog, 0),
        (Flag::SeccompFilterFlagSpecAllow, 0),
        (
            Flag::SeccompFilterFlagWaitKillableRecv,
            libc::SECCOMP_FILTER_FLAG_NEW_LISTENER,
        ),
    ];
    let known: Vec<String> = flags.iter().map(|(f, _)| spelled(f)).collect();
    let supported: Vec<String> = flags
        .iter()
        .filter(|(f, extra)| crate::sys::seccomp_flag_supported(flag_bit(*f) | extra))
        .map(|(f, _)| spelled(f))
        .collect();
    serde_json::json!({
        "enabled": true,
        "actions": actions,
        "operators": operators,
        "archs": archs,
        "knownFlags": known,
        "supportedFlags": supported,
    })
}

/// `compile`, through the compiled-filter cache in `state_root` when there is one (cache.rs).
pub fn compile_cached(s: &LinuxSeccomp, state_root: Option<&std::path::Path>) -> Result<Compiled> {
    let Some((dir, key)) = state_root.and_then(|r| Some((r.join(cache::DIR), cache::key(s)?))) else {
        return compile(s);
    };
    // Validation is cheap and also covers what the key leaves out (listenerPath).
    validate(s)?;
    if let Some(c) = cache::load(&dir, &key) {
        for name in &c.skipped {
            crate::log::debug(&format!("unknown seccomp syscall {name:?} ignored"));
        }
        return Ok(c);
    }
    let c = compile_valid(s)?;
    cache::store(&dir, &key, &c);
    Ok(c)
}

/// The container's filter and, with SCMP_ACT_NOTIFY rules, where its listener goes.
pub fn for_container(
    spec: &oci_spec::runtime::Spec,
    id: &str,
    bundle: &std::path::Path,
    state_root: Option<&std::path::Path>,
) -> Result<(Option<Compiled>, Option<notify::Listener>)> {
    let Some(s) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) else {
        return Ok((None, None));
    };
    let c = compile_cached(s, state_root)?;
    let listener = match s.listener_path() {
        Some(path) if c.notify => Some(notify::Listener {
            path: path.clone(),
            metadata: s.listener_metadata().clone().unwrap_or_default(),
            id: id.to_string(),
            bundle: bundle.to_string_lossy().into_owned(),
            annotations: spec.annotations().clone().unwrap_or_default().into_iter().collect(),
        }),
        _ => None,
    };
    Ok((Some(c), listener))
}

/// export_bpf only needs a raw fd for the duration of the call.
struct RawFdRef(std::os::fd::RawFd);
impl AsRawFd for RawFdRef {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn compiles_rules_and_skips_unknown_names() {
        let c = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86"],
            "syscalls":[{"names":["mkdir","mkdirat","no_such_call"],"action":"SCMP_ACT_ERRNO","errnoRet":1},
            {"names":["getpid"],"action":"SCMP_ACT_ALLOW"},
            {"names":["personality"],"action":"SCMP_ACT_ERRNO","args":[
              {"index":0,"value":1,"op":"SCMP_CMP_EQ"},{"index":0,"value":2,"op":"SCMP_CMP_EQ"}]},
            {"names":["kill"],"action":"SCMP_ACT_KILL","args":[
              {"index":0,"value":0,"op":"SCMP_CMP_GT"},{"index":1,"value":255,"valueTwo":9,"op":"SCMP_CMP_MASKED_EQ"}]}]}"#,
        ))
        .unwrap();
        // mkdir + mkdirat; getpid equals the default (skipped); personality split in two; kill one.
        assert_eq!(c.rules, 5);
        assert_eq!(c.skipped, vec!["no_such_call"]);
        assert!(c.program.len() > 10);
        assert_eq!(c.flags, 0);
        assert!(!c.notify);
    }

    #[test]
    fn every_operator_action_and_flag_compiles() {
        let ops = ["NE", "LT", "LE", "EQ", "GE", "GT", "MASKED_EQ"];
        let acts = [
            "KILL",
            "KILL_PROCESS",
            "KILL_THREAD",
            "TRAP",
            "ERRNO",
            "TRACE",
            "LOG",
            "ALLOW",
        ];
        let names = [
            "getuid", "getgid", "geteuid", "getegid", "getppid", "getpgrp", "uname", "sync",
        ];
        let mut calls = Vec::new();
        for (i, a) in acts.iter().enumerate() {
            let op = ops[i % ops.len()];
            calls.push(format!(
                r#"{{"names":["{}"],"action":"SCMP_ACT_{a}","args":[{{"index":0,"value":3,"valueTwo":1,"op":"SCMP_CMP_{op}"}}]}}"#,
                names[i]
            ));
        }
        let json = format!(
            r#"{{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":38,"flags":["SECCOMP_FILTER_FLAG_TSYNC","SECCOMP_FILTER_FLAG_LOG","SECCOMP_FILTER_FLAG_SPEC_ALLOW","SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],"syscalls":[{}]}}"#,
            calls.join(",")
        );
        let c = compile(&profile(&json)).unwrap();
        assert_eq!(c.rules, 8);
        // WAIT_KILLABLE_RECV is dropped: there is no listener.
        assert_eq!(
            c.flags,
            libc::SECCOMP_FILTER_FLAG_TSYNC | libc::SECCOMP_FILTER_FLAG_LOG | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
        );
    }

    #[test]
    fn notify_adds_the_listener_flag_and_needs_a_path() {
        let c = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/agent.sock","flags":["SECCOMP_FILTER_FLAG_TSYNC"],
            "syscalls":[{"names":["mknod"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        ))
        .unwrap();
        assert!(c.notify);
        assert_ne!(c.flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER, 0);
        assert_ne!(c.flags & libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH, 0);
        let e = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mknod"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        ))
        .err()
        .unwrap();
        assert!(e.to_string().contains("listenerPath"), "{e}");
        let e = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/a","syscalls":[{"names":["write"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        ))
        .err()
        .unwrap();
        assert!(e.to_string().contains("write"), "{e}");
    }

    #[test]
    fn features_list_what_compiles() {
        let f = features();
        assert_eq!(f["enabled"], true);
        assert!(f["archs"].as_array().unwrap().iter().any(|a| a == "SCMP_ARCH_X86_64"));
        for a in f["actions"].as_array().unwrap() {
            let p = profile(&format!(r#"{{"defaultAction":{a},"listenerPath":"/x"}}"#));
            assert!(p.default_action() == Act::ScmpActNotify || compile(&p).is_ok(), "{a}");
        }
        assert_eq!(f["knownFlags"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn unknown_action_flag_or_operator_is_a_parse_error() {
        for bad in [
            r#"{"defaultAction":"SCMP_ACT_NOPE"}"#,
            r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_NOPE"]}"#,
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":1,"op":"SCMP_CMP_NOPE"}]}]}"#,
        ] {
            assert!(serde_json::from_str::<LinuxSeccomp>(bad).is_err(), "{bad}");
        }
        let e = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":1,"op":"SCMP_CMP_EQ"}]}]}"#,
        ))
        .err()
        .unwrap();
        assert!(e.to_string().contains("index 6"), "{e}");
    }
}
