//! The cgroup v2 device filter: v2 has no devices.allow/deny, so the rules become a
//! BPF_PROG_TYPE_CGROUP_DEVICE program (as runc's devicefilter) attached to the container's
//! cgroup, always (with no rules at all the default allowlist still applies). The program
//! decides as the v1 kernel would for the same rules (devices::Policy). A later apply replaces
//! the attached program atomically (BPF_F_REPLACE), so there is no window in which the
//! container runs unfiltered.

use super::devices::{Policy, Rule, ACC_ALL};
use anyhow::{anyhow, Result};
use std::os::fd::AsFd;
use std::path::Path;

fn ins(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    code as u64 | (((src << 4) | dst) as u64) << 8 | (off as u16 as u64) << 16 | (imm as u32 as u64) << 32
}

const LDX_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const AND32_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const RSH32_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const MOV32_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const MOV64_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JNE_X: u8 = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

/// BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR: the low 16 bits of the context's access_type.
fn dev_type(typ: char) -> i32 {
    if typ == 'b' {
        1
    } else {
        2
    }
}

/// The program: r2 = device type, r3 = requested access, r4 = major, r5 = minor (from
/// struct bpf_cgroup_dev_ctx); then one block per exception of the policy, returning the
/// opposite of the default when the request hits it; then the default. On deny-all an
/// exception is hit when it grants all of the request, on allow-all when it refuses any of it.
pub fn program(policy: &Policy) -> Vec<u64> {
    let mut p = vec![
        ins(LDX_W, 2, 1, 0, 0),
        ins(AND32_K, 2, 0, 0, 0xffff),
        ins(LDX_W, 3, 1, 0, 0),
        ins(RSH32_K, 3, 0, 0, 16),
        ins(LDX_W, 4, 1, 4, 0),
        ins(LDX_W, 5, 1, 8, 0),
    ];
    for e in &policy.exceptions {
        // (instruction, is a jump to the end of the block)
        let mut b: Vec<(u64, bool)> = vec![(ins(JNE_K, 2, 0, 0, dev_type(e.typ)), true)];
        if e.access != ACC_ALL {
            b.push((ins(MOV32_X, 1, 3, 0, 0), false));
            b.push((ins(AND32_K, 1, 0, 0, e.access as i32), false));
            if policy.default_allow {
                b.push((ins(JEQ_K, 1, 0, 0, 0), true));
            } else {
                b.push((ins(JNE_X, 1, 3, 0, 0), true));
            }
        }
        // A 32-bit immediate is sign-extended: a number from 2^31 on matches nothing here,
        // and nothing in v1 either (a major is below 2^12, a minor below 2^20).
        if let Some(m) = e.major {
            b.push((ins(JNE_K, 4, 0, 0, m as u32 as i32), true));
        }
        if let Some(m) = e.minor {
            b.push((ins(JNE_K, 5, 0, 0, m as u32 as i32), true));
        }
        b.push((ins(MOV64_K, 0, 0, 0, !policy.default_allow as i32), false));
        b.push((ins(EXIT, 0, 0, 0, 0), false));
        let n = b.len();
        for (i, (insn, jump)) in b.into_iter().enumerate() {
            if jump {
                let off = (n - i - 1) as u64;
                p.push((insn & !(0xffff << 16)) | (off << 16));
            } else {
                p.push(insn);
            }
        }
    }
    p.push(ins(MOV64_K, 0, 0, 0, policy.default_allow as i32));
    p.push(ins(EXIT, 0, 0, 0, 0));
    p
}

/// Load the program and attach it to `dir`, replacing what berth attached before.
pub fn attach(dir: &Path, rules: &[Rule]) -> Result<()> {
    use crate::sys::bpf;
    let cg = crate::sys::open(dir, libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .map_err(|e| anyhow!("open {}: {e:?}", dir.display()))?;
    let prog = bpf::prog_load_device(&program(&Policy::from_rules(rules)?))
        .map_err(|(e, log)| anyhow!("load the cgroup v2 device filter: {e:?}: {}", log.trim()))?;
    let old = bpf::prog_query(cg.as_fd()).map_err(|e| anyhow!("query device programs of {}: {e:?}", dir.display()))?;
    let attach_err = |e| anyhow!("attach the device filter to {}: {e:?}", dir.display());
    if let [id] = old[..] {
        let ofd = bpf::prog_fd_by_id(id).map_err(|e| anyhow!("open device program {id}: {e:?}"))?;
        let flags = bpf::BPF_F_ALLOW_MULTI | bpf::BPF_F_REPLACE;
        match bpf::prog_attach(cg.as_fd(), prog.as_fd(), flags, Some(ofd.as_fd())) {
            Ok(()) => return Ok(()),
            // Kernels before 5.6 have no BPF_F_REPLACE: attach, then detach the old one.
            Err(nix::errno::Errno::EINVAL) => {}
            Err(e) => return Err(attach_err(e)),
        }
    }
    bpf::prog_attach(cg.as_fd(), prog.as_fd(), bpf::BPF_F_ALLOW_MULTI, None).map_err(attach_err)?;
    for id in old {
        if let Ok(ofd) = bpf::prog_fd_by_id(id) {
            bpf::prog_detach(cg.as_fd(), ofd.as_fd())
                .map_err(|e| anyhow!("detach old device program {id} from {}: {e:?}", dir.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::devices::tests::{probes, random_rule_sets, rule};
    use super::super::devices::{defaults, effective};
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroup;

    /// An interpreter for the instructions `program` emits (any other opcode fails the test),
    /// run on one struct bpf_cgroup_dev_ctx: the verdict the kernel would get.
    fn run(p: &[u64], typ: char, access: u8, major: u32, minor: u32) -> u64 {
        let ctx = [(access as u32) << 16 | dev_type(typ) as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0;
        loop {
            let i = p[pc];
            let (code, dst, src) = (i as u8, (i >> 8 & 0xf) as usize, (i >> 12 & 0xf) as usize);
            let (off, imm) = ((i >> 16) as u16 as i16, (i >> 32) as u32 as i32);
            // 64-bit jumps and moves see the immediate sign-extended.
            let k = imm as i64 as u64;
            assert!(off >= 0, "backward jump at {pc}");
            pc += 1;
            let taken = match code {
                LDX_W => {
                    assert_eq!(src, 1, "load from the context only");
                    r[dst] = ctx[off as usize / 4] as u64;
                    false
                }
                AND32_K => {
                    r[dst] = (r[dst] as u32 & imm as u32) as u64;
                    false
                }
                RSH32_K => {
                    r[dst] = (r[dst] as u32 >> imm) as u64;
                    false
                }
                MOV32_X => {
                    r[dst] = r[src] as u32 as u64;
                    false
                }
                MOV64_K => {
                    r[dst] = k;
                    false
                }
                JEQ_K => r[dst] == k,
                JNE_K => r[dst] != k,
                JNE_X => r[dst] != r[src],
                EXIT => return r[0],
                _ => panic!("opcode {code:#x} at {} is not one program() emits", pc - 1),
            };
            if taken {
                pc += off as usize;
            }
        }
    }

    /// The generated program decides every probe as the v1 model does, for hand-picked rule
    /// sets (partial access, wildcards, type a, allow after deny, deny of a subset after an
    /// allow-all) and for random ones, with and without the default allowlist after them.
    #[test]
    fn program_decides_as_the_v1_model() {
        let picked: Vec<Vec<Rule>> = [
            &[][..],
            &["+c 1:3 r"],
            &["+c 1:3 rw", "-c 1:3 w"],
            &["+c 1:* r", "+c *:3 w"],
            &["+a", "-c 1:3 w"],
            &["+a", "-b 8:* rwm", "-c *:* m"],
            &["+a", "-c 1:3 w", "+c 1:3 w"],
            &["-a", "+b 8:0 m", "+b 8:0 r", "-b 8:0 m"],
            &["+b 8:0 rwm", "-b 8:* rwm"],
        ]
        .iter()
        .map(|rs| rs.iter().map(|r| rule(r)).collect())
        .collect();
        let (mut checked, mut allowed) = (0, 0);
        for mut rules in picked.into_iter().chain(random_rule_sets(1500)) {
            for with_defaults in [false, true] {
                if with_defaults {
                    rules.extend(defaults());
                }
                let Ok(policy) = Policy::from_rules(&rules) else {
                    continue;
                };
                let p = program(&policy);
                for (typ, major, minor, access) in probes() {
                    let want = policy.allows(typ, major, minor, access);
                    let got = run(&p, typ, access, major, minor);
                    assert_eq!(
                        got, want as u64,
                        "{rules:?} on {typ} {major}:{minor} access {access}: {p:x?}"
                    );
                    checked += 1;
                    allowed += want as usize;
                }
            }
        }
        // Both verdicts well covered.
        assert!(
            checked > 200_000 && allowed > checked / 5 && allowed < checked * 4 / 5,
            "{allowed}/{checked}"
        );
    }

    #[test]
    fn program_shape_and_jump_offsets() {
        let policy = Policy::from_rules(&[rule("+c 1:3 rw")]).unwrap();
        let p = program(&policy);
        // 6 prologue + (1 type + 3 access + 2 numbers + 2 verdict) + 2 default.
        assert_eq!(p.len(), 6 + 8 + 2);
        // The type check jumps over the 7 instructions after it.
        assert_eq!(p[6], ins(JNE_K, 2, 0, 7, 2));
        assert_eq!(p[9], ins(JNE_X, 1, 3, 4, 0));
        assert_eq!(p[12], ins(MOV64_K, 0, 0, 0, 1));
        assert_eq!(p[14], ins(MOV64_K, 0, 0, 0, 0));
        assert_eq!(*p.last().unwrap(), ins(EXIT, 0, 0, 0, 0));
        // On allow-all the access check asks for any overlap, and the default allows.
        let p = program(&Policy::from_rules(&[rule("+a"), rule("-b 8:* w")]).unwrap());
        assert_eq!(p[9], ins(JEQ_K, 1, 0, 3, 0));
        assert_eq!(p[p.len() - 2], ins(MOV64_K, 0, 0, 0, 1));
    }

    /// A privileged config (allow-all first) gets an allow-all program, as runc attaches one;
    /// a config without rules still denies everything but the defaults.
    #[test]
    fn privileged_allows_all_and_no_rules_denies_by_default() {
        let spec = |v| serde_json::from_value::<Vec<LinuxDeviceCgroup>>(v).unwrap();
        let privileged = effective(&spec(serde_json::json!([{"allow": true, "access": "rwm"}])), &[]).unwrap();
        let p = program(&Policy::from_rules(&privileged).unwrap());
        assert_eq!(p[6..], [ins(MOV64_K, 0, 0, 0, 1), ins(EXIT, 0, 0, 0, 0)]);
        let none = Policy::from_rules(&effective(&[], &[]).unwrap()).unwrap();
        let p = program(&none);
        assert_eq!(p[p.len() - 2], ins(MOV64_K, 0, 0, 0, 0));
        assert_eq!(run(&p, 'b', 2, 8, 0), 0);
        assert_eq!(run(&p, 'b', 1, 8, 0), 1);
        assert_eq!(run(&p, 'c', 6, 1, 3), 1);
        assert_eq!(run(&p, 'c', 2, 1, 11), 0);
    }

    #[test]
    fn programs_pass_the_kernel_verifier() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: loading a BPF program needs root");
            return;
        }
        let spec: Vec<LinuxDeviceCgroup> = serde_json::from_value(serde_json::json!([
            {"allow": false, "access": "rwm"},
            {"allow": true, "type": "b", "major": 8, "access": "r"},
            {"allow": false, "type": "c", "major": 1, "minor": 3, "access": "w"}
        ]))
        .unwrap();
        let mut sets = vec![
            effective(&spec, &[]).unwrap(),
            effective(&spec[1..], &[]).unwrap(),
            vec![],
        ];
        sets.extend(random_rule_sets(100));
        for rules in sets {
            let Ok(policy) = Policy::from_rules(&rules) else {
                continue;
            };
            if let Err((e, log)) = crate::sys::bpf::prog_load_device(&program(&policy)) {
                panic!("verifier refused {rules:?}: {e:?}: {log}");
            }
        }
    }
}
