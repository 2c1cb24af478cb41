//! runc's -ENOSYS stub (libcontainer/seccomp/patchbpf): a few BPF instructions put in front of
//! libseccomp's program. A syscall number above the highest one the profile names for the
//! caller's architecture is newer than the profile: it gets ENOSYS instead of the default
//! action, so libc falls back to an older call (glibc's clone3 -> clone, faccessat2 ->
//! faccessat, ...) instead of failing with EPERM or being killed. Not added when the default
//! action lets calls through (allow, log, trace), as in runc.

use libseccomp::{ScmpArch, ScmpSyscall};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction as Act};

const LE: u32 = 0x4000_0000;
const B64: u32 = 0x8000_0000;
/// __AUDIT_ARCH_CONVENTION_MIPS64_N32
const N32: u32 = 0x2000_0000;
/// x32 syscalls are x86_64's with this bit set in the number.
const X32_BIT: u32 = 0x4000_0000;
/// s390(x) multiplexes large syscall numbers through number 0 (setup(2), long gone): one the
/// kernel does not know stays 0 and must get ENOSYS too.
const S390_MULTIPLEX: u32 = 0;

/// The AUDIT_ARCH_* value the kernel puts in seccomp_data.arch (libseccomp's SCMP_ARCH_X32 is
/// not one: x32 runs as x86_64, told apart by X32_BIT).
fn audit_arch(a: ScmpArch) -> Option<u32> {
    Some(match a {
        ScmpArch::Native => return audit_arch(ScmpArch::native()),
        ScmpArch::X86 => 3 | LE,
        ScmpArch::X8664 | ScmpArch::X32 => 62 | B64 | LE,
        ScmpArch::Arm => 40 | LE,
        ScmpArch::Aarch64 => 183 | B64 | LE,
        ScmpArch::Mips => 8,
        ScmpArch::Mips64 => 8 | B64,
        ScmpArch::Mips64N32 => 8 | B64 | N32,
        ScmpArch::Mipsel => 8 | LE,
        ScmpArch::Mipsel64 => 8 | B64 | LE,
        ScmpArch::Mipsel64N32 => 8 | B64 | LE | N32,
        ScmpArch::Ppc => 20,
        ScmpArch::Ppc64 => 21 | B64,
        ScmpArch::Ppc64Le => 21 | B64 | LE,
        ScmpArch::S390 => 22,
        ScmpArch::S390X => 22 | B64,
        ScmpArch::Parisc => 15,
        ScmpArch::Parisc64 => 15 | B64,
        ScmpArch::Riscv64 => 243 | B64 | LE,
        _ => return None,
    })
}

/// Per native architecture (in the profile's order): the highest syscall number the profile
/// names, for x86_64 separately for the x86_64 and the x32 ABI. Architectures the profile does
/// not list get libseccomp's bad-arch action anyway (and a profile listing none gets no stub,
/// as in runc).
#[derive(Debug, Default, PartialEq)]
struct Section {
    audit: u32,
    /// Highest number of the native ABI (x86_64 on x86_64), if any is named.
    max: Option<u32>,
    /// x86_64 only: highest x32 number (with X32_BIT), if x32 is listed.
    x32: Option<u32>,
}

fn sections(s: &LinuxSeccomp, arches: &[ScmpArch]) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for &a in arches {
        let Some(audit) = audit_arch(a) else { continue };
        // Negative numbers are libseccomp's pseudo-syscalls (not on this architecture).
        let max = s
            .syscalls()
            .iter()
            .flatten()
            .flat_map(|c| c.names())
            .filter_map(|n| ScmpSyscall::from_name_by_arch(n, a).ok())
            .map(i32::from)
            .filter(|n| *n > 0)
            .max()
            .map(|n| n as u32);
        let Some(max) = max else { continue };
        let i = match out.iter().position(|x| x.audit == audit) {
            Some(i) => i,
            None => {
                out.push(Section {
                    audit,
                    ..Default::default()
                });
                out.len() - 1
            }
        };
        if a == ScmpArch::X32 {
            out[i].x32 = Some(max);
        } else {
            out[i].max = Some(max);
        }
    }
    out
}

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGT: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
const JSET: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
/// offsetof(struct seccomp_data, nr) and (, arch).
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;

/// Where a conditional jump goes, resolved once the stub's length is known.
#[derive(Clone, Copy)]
enum To {
    Next,
    /// The instruction after the next one.
    Skip1,
    Enosys,
    Filter,
    Section(usize),
}

struct Insn {
    code: u16,
    k: u32,
    jt: To,
    jf: To,
}

fn insn(code: u16, k: u32, jt: To, jf: To) -> Insn {
    Insn { code, k, jt, jf }
}

/// The body of one architecture's section: load the number, then send it to ENOSYS or on to
/// libseccomp's filter.
fn section_body(s: &Section) -> Vec<Insn> {
    let mut v = vec![insn(LD_W_ABS, OFF_NR, To::Next, To::Next)];
    // s390 and s390x: 22 is EM_S390 with or without the 64-bit bit.
    if s.audit & !B64 == 22 {
        v.push(insn(JEQ, S390_MULTIPLEX, To::Enosys, To::Next));
    }
    match (s.max, s.x32) {
        (Some(max), Some(x32)) => {
            v.push(insn(JSET, X32_BIT, To::Skip1, To::Next));
            v.push(insn(JGT, max, To::Enosys, To::Filter));
            v.push(insn(JGT, x32, To::Enosys, To::Filter));
        }
        (Some(max), None) => {
            if s.audit == audit_arch(ScmpArch::X8664).unwrap_or(0) {
                // An x32 call when only x86_64 is listed: libseccomp's filter decides.
                v.push(insn(JSET, X32_BIT, To::Filter, To::Next));
            }
            v.push(insn(JGT, max, To::Enosys, To::Filter));
        }
        (None, Some(x32)) => {
            v.push(insn(JSET, X32_BIT, To::Next, To::Filter));
            v.push(insn(JGT, x32, To::Enosys, To::Filter));
        }
        (None, None) => v.push(insn(JA, 0, To::Filter, To::Filter)),
    }
    v
}

/// The stub for `s` (empty when none is needed): `ld arch; jeq ARCH_i -> section_i ...; ja
/// filter; section_0; ...; ret ERRNO(ENOSYS)`, then libseccomp's program follows.
pub fn stub(s: &LinuxSeccomp, arches: &[ScmpArch]) -> Vec<libc::sock_filter> {
    if matches!(
        s.default_action(),
        Act::ScmpActAllow | Act::ScmpActLog | Act::ScmpActTrace
    ) {
        return Vec::new();
    }
    let secs = sections(s, arches);
    if secs.is_empty() {
        return Vec::new();
    }
    let mut prog = vec![insn(LD_W_ABS, OFF_ARCH, To::Next, To::Next)];
    for (i, sec) in secs.iter().enumerate() {
        prog.push(insn(JEQ, sec.audit, To::Section(i), To::Next));
    }
    prog.push(insn(JA, 0, To::Filter, To::Filter));
    let mut starts = Vec::new();
    for sec in &secs {
        starts.push(prog.len());
        prog.extend(section_body(sec));
    }
    let enosys = prog.len();
    prog.push(insn(
        RET_K,
        libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        To::Next,
        To::Next,
    ));
    let filter = prog.len();
    let target = |at: usize, to: To| -> usize {
        match to {
            To::Next => at + 1,
            To::Skip1 => at + 2,
            To::Enosys => enosys,
            To::Filter => filter,
            To::Section(i) => starts[i],
        }
    };
    prog.iter()
        .enumerate()
        .map(|(at, i)| {
            if i.code == JA {
                return libc::sock_filter {
                    code: JA,
                    jt: 0,
                    jf: 0,
                    k: (target(at, i.jt) - at - 1) as u32,
                };
            }
            // At most 19 architectures of a few instructions each: every jump fits in a u8.
            let off = |to| u8::try_from(target(at, to) - at - 1).unwrap_or(u8::MAX);
            libc::sock_filter {
                code: i.code,
                jt: off(i.jt),
                jf: off(i.jf),
                k: i.k,
            }
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The filter's answer for a call with only nr and arch set (no argument conditions in
    /// these profiles).
    pub(crate) fn run(prog: &[libc::sock_filter], arch: u32, nr: u32) -> u32 {
        let d = crate::seccomp::eval::Data { nr, arch, args: [0; 6] };
        crate::seccomp::eval::run(prog, &d).expect("a program the interpreter follows")
    }

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    const X86_64: u32 = 62 | B64 | LE;
    const ENOSYS: u32 = libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32;
    const EPERM: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;

    /// The stub with libseccomp's program behind it, as compile() makes it: newer calls get
    /// ENOSYS, named ones their action, older unnamed ones the default.
    #[test]
    fn newer_syscalls_get_enosys_and_the_rest_reach_the_filter() {
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],
            "syscalls":[{"names":["read","write","openat","exit_group"],"action":"SCMP_ACT_ALLOW"},
                        {"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
        );
        let c = crate::seccomp::compile(&p).unwrap();
        let prog = &c.program;
        // openat is 257 on x86_64, the highest named.
        assert_eq!(run(prog, X86_64, 0), libc::SECCOMP_RET_ALLOW);
        assert_eq!(run(prog, X86_64, 257), libc::SECCOMP_RET_ALLOW);
        assert_eq!(run(prog, X86_64, 83), EPERM, "mkdir");
        assert_eq!(run(prog, X86_64, 39), EPERM, "getpid: the default");
        assert_eq!(run(prog, X86_64, 258), ENOSYS);
        assert_eq!(run(prog, X86_64, 435), ENOSYS, "clone3");
        // i386: openat is 295, exit_group 252.
        assert_eq!(run(prog, 3 | LE, 295), libc::SECCOMP_RET_ALLOW);
        assert_eq!(run(prog, 3 | LE, 20), EPERM);
        assert_eq!(run(prog, 3 | LE, 296), ENOSYS);
        // x32: numbers carry X32_BIT; openat is 257 there too.
        assert_eq!(run(prog, X86_64, X32_BIT | 257), libc::SECCOMP_RET_ALLOW);
        assert_eq!(run(prog, X86_64, X32_BIT | 600), ENOSYS);
    }

    #[test]
    fn no_stub_for_permissive_defaults_or_without_architectures() {
        for def in ["SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE"] {
            let p = profile(&format!(
                r#"{{"defaultAction":"{def}","architectures":["SCMP_ARCH_X86_64"],"syscalls":[{{"names":["mkdir"],"action":"SCMP_ACT_ERRNO"}}]}}"#
            ));
            assert!(stub(&p, &[ScmpArch::X8664]).is_empty(), "{def}");
        }
        let p =
            profile(r#"{"defaultAction":"SCMP_ACT_KILL","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}"#);
        assert!(stub(&p, &[]).is_empty());
        // Only x86_64 listed: an x32 call is libseccomp's to decide (bad-arch or default).
        let p = profile(
            r#"{"defaultAction":"SCMP_ACT_KILL_PROCESS","architectures":["SCMP_ARCH_X86_64"],
            "syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"}]}"#,
        );
        let c = crate::seccomp::compile(&p).unwrap();
        assert_eq!(run(&c.program, X86_64, 2), ENOSYS);
        assert_eq!(run(&c.program, X86_64, 1), libc::SECCOMP_RET_ALLOW);
        assert_ne!(run(&c.program, X86_64, X32_BIT | 2), ENOSYS);
    }
}
