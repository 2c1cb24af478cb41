//! Capabilities: names are turned into bitmasks in the parent; the child only issues prctl and
//! capset. Inheritable and ambient are exactly what the config says, empty by default
//! (CVE-2022-29162: non-empty inheritable sets leaked into containers).

use anyhow::{anyhow, Result};
use nix::errno::Errno;
use oci_spec::runtime::{Capabilities, Process};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
}

/// The bit of a capability this kernel has (up to its cap_last_cap, `last`); None for one it
/// does not know.
fn cap_bit(c: &oci_spec::runtime::Capability, last: u32) -> Option<u64> {
    let cap: caps::Capability = format!("CAP_{c}").parse().ok()?;
    (u32::from(cap.index()) <= last).then(|| cap.bitmask())
}

fn mask(set: &Option<Capabilities>, last: u32, ignored: &mut Vec<String>) -> u64 {
    let mut m = 0;
    for c in set.iter().flatten() {
        match cap_bit(c, last) {
            Some(bit) => m |= bit,
            None => ignored.push(format!("CAP_{c}")),
        }
    }
    m
}

/// The five sets as bitmasks; none when the config has no `capabilities` object. A capability
/// this kernel lacks (above `last`, the host's cap_last_cap) is left out and named in the
/// second value, as runc leaves out "unavailable" ones (a set bit there would make capset fail).
pub fn sets(process: &Process, last: u32) -> (CapSets, Vec<String>) {
    let mut ignored = Vec::new();
    let Some(c) = process.capabilities() else {
        return (CapSets::default(), ignored);
    };
    let sets = CapSets {
        bounding: mask(c.bounding(), last, &mut ignored),
        effective: mask(c.effective(), last, &mut ignored),
        permitted: mask(c.permitted(), last, &mut ignored),
        inheritable: mask(c.inheritable(), last, &mut ignored),
        ambient: mask(c.ambient(), last, &mut ignored),
    };
    (sets, ignored)
}

/// runc's warning for capability names it leaves out (runtime-spec 1.2: an unknown capability
/// MUST be warned about and SHOULD NOT fail the container): sorted, each name once.
pub fn warn_ignored(mut names: Vec<String>) {
    if names.is_empty() {
        return;
    }
    names.sort();
    names.dedup();
    crate::log::warn(&format!(
        "ignoring unknown or unavailable capabilities: [{}]",
        names.join(" ")
    ));
}

/// The host's highest capability number, read by the parent from the host's procfs. The init
/// must never read it after entering the container's mount namespace: a volume mounted over
/// the container's /proc/sys/kernel (an image symlink to it plus a bind mount) once planted a
/// `0` there and nothing was dropped from the bounding set. Unreadable: every number a 64-bit
/// mask can hold is dropped (the kernel answers EINVAL past the last one).
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63)
}

/// Drop from the bounding set what is not configured, up to the host's `last` capability (read
/// by the parent). Needs CAP_SETPCAP, so it runs before the switch to the container's user.
pub fn drop_bounding(sets: &CapSets, last: u32) -> Result<()> {
    for cap in 0..=last.min(63) {
        if sets.bounding & (1 << cap) == 0 {
            match crate::sys::cap_bounding_drop(cap) {
                Ok(_) | Err(Errno::EINVAL) => {}
                Err(e) => return Err(anyhow!("drop capability {cap} from the bounding set: {e}")),
            }
        }
    }
    Ok(())
}

/// Set effective, permitted and inheritable in one capset(2), then raise ambient. Runs after
/// the uid switch (PR_SET_KEEPCAPS kept the permitted set across it).
pub fn apply(sets: &CapSets) -> Result<()> {
    crate::sys::capset(sets.effective, sets.permitted, sets.inheritable).map_err(|e| anyhow!("capset: {e}"))?;
    for cap in 0..64u32 {
        if sets.ambient & (1 << cap) != 0 {
            // The kernel refuses ambient capabilities missing from permitted or inheritable;
            // runc's specs list ambient sets without inheritable ones, so this is not an error.
            let _ = crate::sys::cap_ambient_raise(cap);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_the_kernel_lacks_are_left_out_and_named() {
        let p: Process = serde_json::from_value(serde_json::json!({
            "cwd": "/", "user": {"uid": 0, "gid": 0},
            "capabilities": {"bounding": ["CAP_CHOWN", "CAP_CHECKPOINT_RESTORE"], "ambient": ["CAP_BPF"]}
        }))
        .unwrap();
        let (s, ignored) = sets(&p, 40);
        assert_eq!((s.bounding, s.ambient), (1 | 1 << 40, 1 << 39));
        assert!(ignored.is_empty());
        // A kernel whose last capability is CAP_BPF (39): CAP_CHECKPOINT_RESTORE is unavailable.
        let (s, ignored) = sets(&p, 39);
        assert_eq!((s.bounding, s.ambient), (1, 1 << 39));
        assert_eq!(ignored, ["CAP_CHECKPOINT_RESTORE"]);
    }
}
