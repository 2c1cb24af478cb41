//! Compiled-filter cache. libseccomp needs several milliseconds to turn a Docker-sized profile
//! (about 300 syscalls) into BPF, which is most of a container's start when a profile is set;
//! engines send the same default profile on every create, so berth keeps the compiled program in
//! the state root and reuses it (crun does the same, for the same reason).
//!
//! An entry is trusted only if its **whole key** matches, not just its file name: the key holds
//! the profile as canonical JSON plus everything else the compiled program depends on (berth's
//! build, libseccomp's version, the kernel API level libseccomp detected, the architecture). The
//! file name is only a hash of the key, so a hash collision, crafted or not, is a miss, never
//! another profile's filter. Entries are written to a temporary file and renamed into place, so
//! a concurrent reader sees a whole entry or none. Every cache failure is a miss or a skipped
//! write: the cache can make a create faster, never make it fail.
//!
//! Layout of an entry: one line of JSON (key, flags, notify, rules, skipped, instruction count),
//! a newline, then the program, 8 bytes per instruction in native byte order.

use super::Compiled;
use oci_spec::runtime::LinuxSeccomp;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The cache's directory inside the state root. `@` is not allowed in a container id, so this
/// name can never be a container's state dir (and `list` skips it).
pub const DIR: &str = "@seccomp-cache";
/// Entries kept; beyond this the oldest go when a new one is written.
const MAX_ENTRIES: usize = 64;

#[derive(serde::Serialize, serde::Deserialize)]
struct Header {
    key: String,
    flags: libc::c_ulong,
    notify: bool,
    rules: usize,
    skipped: Vec<String>,
    len: usize,
}

/// Everything the compiled program depends on. The listener path and metadata are left out:
/// they only tell where the notify fd goes, not what the filter is.
pub fn key(s: &LinuxSeccomp) -> Option<String> {
    let mut profile = s.clone();
    profile.set_listener_path(None);
    profile.set_listener_metadata(None);
    let json = serde_json::to_string(&profile).ok()?;
    let v = libseccomp::ScmpVersion::current().ok()?;
    Some(format!(
        "berth {} {}\nlibseccomp {}.{}.{} api {}\narch {}\nstub enosys\n{json}",
        env!("CARGO_PKG_VERSION"),
        option_env!("BERTH_COMMIT").unwrap_or("unknown"),
        v.major,
        v.minor,
        v.micro,
        libseccomp::get_api(),
        std::env::consts::ARCH,
    ))
}

fn entry_path(dir: &Path, key: &str) -> PathBuf {
    // Only a file name: the whole key is compared on every hit.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    dir.join(format!("{:016x}.bpf", h.finish()))
}

/// The cached program for `key`, if there is a whole, matching entry.
pub fn load(dir: &Path, key: &str) -> Option<Compiled> {
    let bytes = std::fs::read(entry_path(dir, key)).ok()?;
    let nl = bytes.iter().position(|&b| b == b'\n')?;
    let h: Header = serde_json::from_slice(&bytes[..nl]).ok()?;
    let prog = &bytes[nl + 1..];
    if h.key != key || prog.len() != h.len.checked_mul(8)? {
        return None;
    }
    let program = super::program_from_bytes(prog)?;
    Some(Compiled {
        program,
        flags: h.flags,
        notify: h.notify,
        rules: h.rules,
        skipped: h.skipped,
    })
}

/// Store `c` under `key`; failures only cost the next create a compile.
pub fn store(dir: &Path, key: &str, c: &Compiled) {
    if let Err(e) = try_store(dir, key, c) {
        crate::log::debug(&format!("seccomp cache: not stored: {e}"));
    }
}

fn try_store(dir: &Path, key: &str, c: &Compiled) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => evict(dir),
        Err(e) => return Err(e),
    }
    let header = Header {
        key: key.to_string(),
        flags: c.flags,
        notify: c.notify,
        rules: c.rules,
        skipped: c.skipped.clone(),
        len: c.program.len(),
    };
    let mut buf = serde_json::to_vec(&header)?;
    buf.push(b'\n');
    buf.extend_from_slice(&super::program_to_bytes(&c.program));
    let path = entry_path(dir, key);
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let written = std::fs::File::create(&tmp).and_then(|mut f| f.write_all(&buf));
    let renamed = written.and_then(|_| std::fs::rename(&tmp, &path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed
}

/// Keep the directory bounded: drop the oldest entries (and stale temporary files) once it
/// holds MAX_ENTRIES or more.
fn evict(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<(std::time::SystemTime, PathBuf)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if entries.len() < MAX_ENTRIES {
        return;
    }
    entries.sort();
    for (_, p) in entries.iter().take(entries.len() + 1 - MAX_ENTRIES) {
        let _ = std::fs::remove_file(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    const P: &str = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[
        {"names":["read","write","exit_group","nosuchcall"],"action":"SCMP_ACT_ALLOW"},
        {"names":["personality"],"action":"SCMP_ACT_ALLOW","args":[{"index":0,"value":8,"op":"SCMP_CMP_EQ"}]}]}"#;

    fn same(a: &Compiled, b: &Compiled) -> bool {
        a.flags == b.flags
            && a.notify == b.notify
            && a.rules == b.rules
            && a.skipped == b.skipped
            && a.program.len() == b.program.len()
            && a.program
                .iter()
                .zip(&b.program)
                .all(|(x, y)| (x.code, x.jt, x.jf, x.k) == (y.code, y.jt, y.jf, y.k))
    }

    #[test]
    fn stores_and_loads_the_same_program() {
        let dir = std::env::temp_dir().join(format!("berth-seccache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = profile(P);
        let k = key(&s).unwrap();
        assert!(load(&dir, &k).is_none());
        let c = super::super::compile(&s).unwrap();
        store(&dir, &k, &c);
        let hit = load(&dir, &k).expect("a stored entry is found");
        assert!(same(&c, &hit));
        assert_eq!(hit.skipped, vec!["nosuchcall".to_string()]);

        // Another profile never gets this entry, even under the same file name.
        let other = profile(&P.replace("\"read\",", ""));
        let k2 = key(&other).unwrap();
        assert_ne!(k, k2);
        std::fs::copy(entry_path(&dir, &k), entry_path(&dir, &k2)).unwrap();
        assert!(load(&dir, &k2).is_none(), "an entry with another key was used");

        // A damaged entry is a miss, not an error.
        let bytes = std::fs::read(entry_path(&dir, &k)).unwrap();
        std::fs::write(entry_path(&dir, &k), &bytes[..bytes.len() - 3]).unwrap();
        assert!(load(&dir, &k).is_none());
        std::fs::write(entry_path(&dir, &k), b"garbage").unwrap();
        assert!(load(&dir, &k).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn listener_path_is_not_part_of_the_key() {
        let a = profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/a.sock"}"#);
        let b = profile(r#"{"defaultAction":"SCMP_ACT_ALLOW","listenerPath":"/run/b.sock"}"#);
        let c = profile(r#"{"defaultAction":"SCMP_ACT_LOG"}"#);
        assert_eq!(key(&a), key(&b));
        assert_ne!(key(&a), key(&c));
    }

    #[test]
    fn the_directory_stays_bounded() {
        let dir = std::env::temp_dir().join(format!("berth-seccache-evict-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let c = super::super::compile(&profile(P)).unwrap();
        for i in 0..MAX_ENTRIES + 5 {
            store(&dir, &format!("key {i}"), &c);
        }
        let n = std::fs::read_dir(&dir).unwrap().count();
        assert!(n <= MAX_ENTRIES, "{n} entries");
        assert!(load(&dir, &format!("key {}", MAX_ENTRIES + 4)).is_some());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
