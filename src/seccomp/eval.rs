//! What a compiled filter answers for one syscall, computed on the host by running its classic
//! BPF over a `seccomp_data` (the kernel's semantics: A and X registers, 16 words of scratch
//! memory, forward jumps only). berth asks it before it relies on a syscall that runs after the
//! filter is loaded (`process::trampoline_may_fork`): a program it cannot follow counts as a
//! refusal, never as an allowance.

/// `struct seccomp_data` as the kernel fills it: nr, arch, instruction_pointer, args[6].
#[derive(Clone, Copy, Debug, Default)]
pub struct Data {
    pub nr: u32,
    pub arch: u32,
    pub args: [u64; 6],
}

impl Data {
    fn word(&self, off: u32) -> Option<u32> {
        let arg = |i: usize, hi: bool| {
            let v = self.args[i];
            Some(if hi { (v >> 32) as u32 } else { v as u32 })
        };
        match off {
            0 => Some(self.nr),
            4 => Some(self.arch),
            // instruction_pointer: unknown ahead of time; profiles do not test it.
            8 | 12 => Some(0),
            16..=60 if off.is_multiple_of(4) => {
                let i = ((off - 16) / 8) as usize;
                // Little-endian: the low half first (x86_64, the only architecture asked).
                arg(i, (off - 16) % 8 == 4)
            }
            _ => None,
        }
    }
}

/// The filter's return value (SECCOMP_RET_*) for `d`, or None for an instruction or access
/// this interpreter does not know (the caller then assumes the worst).
pub fn run(prog: &[libc::sock_filter], d: &Data) -> Option<u32> {
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; 16];
    let mut pc = 0usize;
    loop {
        let i = *prog.get(pc)?;
        pc += 1;
        let k = i.k;
        let code = u32::from(i.code);
        let src = |x: u32| if code & libc::BPF_X != 0 { x } else { k };
        match code & 0x07 {
            libc::BPF_LD => {
                a = match code & 0xe0 {
                    libc::BPF_ABS if code & 0x18 == libc::BPF_W => d.word(k)?,
                    libc::BPF_IMM => k,
                    libc::BPF_MEM => *mem.get(k as usize)?,
                    // The size of seccomp_data.
                    libc::BPF_LEN => 64,
                    _ => return None,
                }
            }
            libc::BPF_LDX => {
                x = match code & 0xe0 {
                    libc::BPF_IMM => k,
                    libc::BPF_MEM => *mem.get(k as usize)?,
                    libc::BPF_LEN => 64,
                    _ => return None,
                }
            }
            libc::BPF_ST => *mem.get_mut(k as usize)? = a,
            libc::BPF_STX => *mem.get_mut(k as usize)? = x,
            libc::BPF_ALU => {
                let v = src(x);
                a = match code & 0xf0 {
                    libc::BPF_ADD => a.wrapping_add(v),
                    libc::BPF_SUB => a.wrapping_sub(v),
                    libc::BPF_MUL => a.wrapping_mul(v),
                    libc::BPF_DIV => a.checked_div(v)?,
                    libc::BPF_MOD => a.checked_rem(v)?,
                    libc::BPF_AND => a & v,
                    libc::BPF_OR => a | v,
                    libc::BPF_XOR => a ^ v,
                    libc::BPF_LSH => a.checked_shl(v).unwrap_or(0),
                    libc::BPF_RSH => a.checked_shr(v).unwrap_or(0),
                    libc::BPF_NEG => a.wrapping_neg(),
                    _ => return None,
                }
            }
            libc::BPF_JMP => {
                let v = src(x);
                let off = match code & 0xf0 {
                    libc::BPF_JA => k as usize,
                    op => {
                        let hit = match op {
                            libc::BPF_JEQ => a == v,
                            libc::BPF_JGT => a > v,
                            libc::BPF_JGE => a >= v,
                            libc::BPF_JSET => a & v != 0,
                            _ => return None,
                        };
                        usize::from(if hit { i.jt } else { i.jf })
                    }
                };
                pc = pc.checked_add(off)?;
            }
            libc::BPF_RET => {
                return match code & 0x18 {
                    libc::BPF_K => Some(k),
                    libc::BPF_A => Some(a),
                    _ => None,
                }
            }
            libc::BPF_MISC => match code & 0xf8 {
                libc::BPF_TAX => x = a,
                libc::BPF_TXA => a = x,
                _ => return None,
            },
            _ => return None,
        }
    }
}

/// True when the filter lets `d` reach the kernel: allowed, only logged, or left to the
/// SCMP_ACT_NOTIFY agent (which holds the listener by the time berth relies on this). Errors,
/// traps, kills and a trace without a tracer (ENOSYS) are refusals.
pub fn lets_through(prog: &[libc::sock_filter], d: &Data) -> bool {
    matches!(
        run(prog, d).map(|r| r & libc::SECCOMP_RET_ACTION_FULL),
        Some(libc::SECCOMP_RET_ALLOW | libc::SECCOMP_RET_LOG | libc::SECCOMP_RET_USER_NOTIF)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::LinuxSeccomp;

    const X86_64: u32 = 0xc000_003e;

    fn compiled(json: &str) -> Vec<libc::sock_filter> {
        let p: LinuxSeccomp = serde_json::from_str(json).unwrap();
        crate::seccomp::compile(&p).unwrap().program
    }

    fn call(nr: u32, args: [u64; 6]) -> Data {
        Data { nr, arch: X86_64, args }
    }

    /// Docker's default profile allows clone only without namespace flags (an argument filter
    /// on a masked value): CLONE_PARENT passes, CLONE_NEWUSER does not.
    #[test]
    fn argument_filters_are_followed() {
        let prog = compiled(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","architectures":["SCMP_ARCH_X86_64"],
            "syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"},
                        {"names":["clone"],"action":"SCMP_ACT_ALLOW",
                         "args":[{"index":0,"value":2114060288,"valueTwo":0,"op":"SCMP_CMP_MASKED_EQ"}]},
                        {"names":["kill"],"action":"SCMP_ACT_ERRNO","args":[{"index":1,"value":9,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        let clone = |flags| lets_through(&prog, &call(56, [flags, 0, 0, 0, 0, 0]));
        assert!(clone(libc::CLONE_PARENT as u64));
        assert!(!clone(libc::CLONE_NEWUSER as u64));
        assert!(lets_through(&prog, &call(1, [1, 0, 5, 0, 0, 0])));
        assert!(!lets_through(&prog, &call(57, [0; 6])), "fork: the default");
        assert!(!lets_through(&prog, &call(62, [1, 9, 0, 0, 0, 0])), "kill 9: denied");
        // 64-bit comparisons look at both halves.
        let prog = compiled(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
            "syscalls":[{"names":["prctl"],"action":"SCMP_ACT_KILL","args":[{"index":0,"value":4294967297,"op":"SCMP_CMP_EQ"}]}]}"#,
        );
        assert!(lets_through(&prog, &call(157, [1, 9, 0, 0, 0, 0])));
        assert!(!lets_through(&prog, &call(157, [(1 << 32) | 1, 0, 0, 0, 0, 0])));
    }

    #[test]
    fn actions_that_let_the_call_through() {
        for (action, through) in [
            ("SCMP_ACT_LOG", true),
            ("SCMP_ACT_NOTIFY", true),
            ("SCMP_ACT_TRACE", false),
            ("SCMP_ACT_TRAP", false),
            ("SCMP_ACT_KILL", false),
            ("SCMP_ACT_KILL_PROCESS", false),
            ("SCMP_ACT_ERRNO", false),
        ] {
            let prog = compiled(&format!(
                r#"{{"defaultAction":"SCMP_ACT_ALLOW","architectures":["SCMP_ARCH_X86_64"],
                "listenerPath":"/run/agent.sock",
                "syscalls":[{{"names":["clone"],"action":"{action}"}}]}}"#
            ));
            assert_eq!(lets_through(&prog, &call(56, [0; 6])), through, "{action}");
            assert!(lets_through(&prog, &call(0, [0; 6])), "{action}: read");
        }
    }

    #[test]
    fn unknown_programs_are_refusals() {
        let ret_allow = libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        };
        let bad_load = libc::sock_filter {
            code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
            jt: 0,
            jf: 0,
            k: 200,
        };
        assert!(lets_through(&[ret_allow], &call(56, [0; 6])));
        assert!(!lets_through(&[bad_load, ret_allow], &call(56, [0; 6])));
        assert!(!lets_through(&[], &call(56, [0; 6])), "running off the end");
    }
}
