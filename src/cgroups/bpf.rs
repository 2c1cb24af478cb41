//! The cgroup v2 device filter: v2 has no devices.allow/deny, so the rules become a
//! BPF_PROG_TYPE_CGROUP_DEVICE program (as runc's devicefilter) attached to the container's
//! cgroup. A later apply replaces the attached program atomically (BPF_F_REPLACE), so there
//! is no window in which the container runs unfiltered.

use super::devices::Rule;
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
const JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JNE_X: u8 = 0x5d; // BPF_JMP | BPF_JNE | BPF_X
const EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

/// The program: r2 = device type, r3 = requested access, r4 = major, r5 = minor (from
/// struct bpf_cgroup_dev_ctx); then one block per rule, last rule first, each returning its
/// verdict when every condition matches; no match: allowed (a config that wants a default
/// deny starts with a deny-all rule, as runc's default spec does).
pub fn program(rules: &[Rule]) -> Vec<u64> {
    let mut p = vec![
        ins(LDX_W, 2, 1, 0, 0),
        ins(AND32_K, 2, 0, 0, 0xffff),
        ins(LDX_W, 3, 1, 0, 0),
        ins(RSH32_K, 3, 0, 0, 16),
        ins(LDX_W, 4, 1, 4, 0),
        ins(LDX_W, 5, 1, 8, 0),
    ];
    for r in rules.iter().rev() {
        // (instruction, is a jump to the end of the block)
        let mut b: Vec<(u64, bool)> = Vec::new();
        match r.typ {
            'c' => b.push((ins(JNE_K, 2, 0, 0, 2), true)),
            'b' => b.push((ins(JNE_K, 2, 0, 0, 1), true)),
            _ => {}
        }
        let access = r.access_bits();
        if access != 7 {
            b.push((ins(MOV32_X, 1, 3, 0, 0), false));
            b.push((ins(AND32_K, 1, 0, 0, access as i32), false));
            b.push((ins(JNE_X, 1, 3, 0, 0), true));
        }
        if let Some(m) = r.major {
            b.push((ins(JNE_K, 4, 0, 0, m as i32), true));
        }
        if let Some(m) = r.minor {
            b.push((ins(JNE_K, 5, 0, 0, m as i32), true));
        }
        let unconditional = b.is_empty();
        b.push((ins(MOV64_K, 0, 0, 0, r.allow as i32), false));
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
        // A rule matching everything decides alone: the verifier refuses unreachable code.
        if unconditional {
            return p;
        }
    }
    p.push(ins(MOV64_K, 0, 0, 0, 1));
    p.push(ins(EXIT, 0, 0, 0, 0));
    p
}

/// Load the program and attach it to `dir`, replacing what berth attached before.
pub fn attach(dir: &Path, rules: &[Rule]) -> Result<()> {
    use crate::sys::bpf;
    let cg = crate::sys::open(dir, libc::O_RDONLY | libc::O_DIRECTORY, 0)
        .map_err(|e| anyhow!("open {}: {e:?}", dir.display()))?;
    let prog = bpf::prog_load_device(&program(rules))
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
    use super::super::devices::effective;
    use super::*;
    use oci_spec::runtime::LinuxDeviceCgroup;

    #[test]
    fn program_shape_and_jump_offsets() {
        let deny_all = Rule::new(false, 'a', None, None, "rwm");
        let null_rw = Rule::new(true, 'c', Some(1), Some(3), "rw");
        let p = program(&[deny_all, null_rw.clone()]);
        // 6 prologue + (1 type + 3 access + 2 numbers + 2 verdict) + 2 verdict of deny-all,
        // which ends the program (no unreachable default after it).
        assert_eq!(p.len(), 6 + 8 + 2);
        // The type check of the last rule jumps over the 7 instructions after it.
        assert_eq!(p[6], ins(JNE_K, 2, 0, 7, 2));
        assert_eq!(p[9], ins(JNE_X, 1, 3, 4, 0));
        assert_eq!(p[12], ins(MOV64_K, 0, 0, 0, 1));
        // The deny-all block: verdict 0, no conditions.
        assert_eq!(p[14], ins(MOV64_K, 0, 0, 0, 0));
        assert_eq!(*p.last().unwrap(), ins(EXIT, 0, 0, 0, 0));
        // Without an unconditional rule the default (allow) closes the program.
        let q = program(std::slice::from_ref(&null_rw));
        assert_eq!(q.len(), 6 + 8 + 2);
        assert_eq!(q[q.len() - 2], ins(MOV64_K, 0, 0, 0, 1));
    }

    #[test]
    fn effective_rules_follow_runc() {
        let spec: Vec<LinuxDeviceCgroup> =
            serde_json::from_value(serde_json::json!([{"allow": false, "access": "rwm"}])).unwrap();
        let r = effective(&spec, &[]).unwrap();
        assert_eq!(r[0].typ, 'a');
        assert!(!r[0].allow);
        assert!(r.iter().any(|x| x.allow && x.major == Some(1) && x.minor == Some(3)));
        let bad: Vec<LinuxDeviceCgroup> =
            serde_json::from_value(serde_json::json!([{"allow": true, "access": "rwx"}])).unwrap();
        assert!(effective(&bad, &[]).is_err());
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
        for rules in [
            effective(&spec, &[]).unwrap(),
            effective(&spec[1..], &[]).unwrap(),
            vec![],
        ] {
            if let Err((e, log)) = crate::sys::bpf::prog_load_device(&program(&rules)) {
                panic!("verifier refused {rules:?}: {e:?}: {log}");
            }
        }
    }
}
