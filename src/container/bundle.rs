//! Load and validate a bundle's config.json before anything on the system is touched: every
//! error here names the field, and nothing has been created yet when it is reported.

use anyhow::{anyhow, bail, Result};
use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};
use serde_json::Value;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

pub struct Bundle {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
    pub spec: Spec,
}

/// The bundle directory as runc resolves it: `-b DIR` or the current directory, made absolute.
pub fn bundle_dir(arg: &str) -> Result<PathBuf> {
    let p = if arg.is_empty() {
        std::env::current_dir()?
    } else {
        PathBuf::from(arg)
    };
    std::fs::canonicalize(&p).map_err(|e| anyhow!("bundle {}: {e}", p.display()))
}

pub fn load(arg: &str) -> Result<Bundle> {
    let dir = bundle_dir(arg)?;
    let path = dir.join("config.json");
    let data = std::fs::read(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow!("JSON specification file config.json not found"),
        _ => anyhow!("read {}: {e}", path.display()),
    })?;
    let spec = parse(&data)?;
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| anyhow!("config.json: root must be set"))?;
    let rootfs = dir.join(root.path());
    let rootfs =
        std::fs::canonicalize(&rootfs).map_err(|e| anyhow!("invalid rootfs: stat {}: {e}", rootfs.display()))?;
    if !rootfs.is_dir() {
        bail!("invalid rootfs: {} is not a directory", rootfs.display());
    }
    validate(&spec)?;
    Ok(Bundle { dir, rootfs, spec })
}

/// Parse config.json's bytes (no validation beyond refusing NUL bytes): the seam the fuzz
/// targets share with `load`.
pub fn parse(data: &[u8]) -> Result<Spec> {
    let spec = match serde_json::from_slice(data) {
        Ok(spec) => spec,
        // Fields oci-spec parses more strictly than the runtime-spec and runc (process/attrs.rs).
        Err(e) => match crate::process::attrs::mend(data, true)? {
            Some(v) => serde_json::from_value(v).map_err(parse_error)?,
            None => return Err(parse_error(e)),
        },
    };
    refuse_nul(data, "config.json")?;
    Ok(spec)
}

/// A NUL byte in any string of a JSON file is an error naming the field ("config.json:
/// mounts[3].destination contains a NUL byte"): paths are C strings to the kernel, and a NUL
/// would cut one short or (worse) leave an empty path that resolves to the rootfs itself.
/// JSON can carry a NUL only as the escape `\u0000` (the parser refuses raw control bytes), so
/// a file without that sequence, nearly every one, is not walked.
pub fn refuse_nul(data: &[u8], file: &str) -> Result<()> {
    if !data.windows(6).any(|w| w == b"\\u0000") {
        return Ok(());
    }
    let v: Value = serde_json::from_slice(data).map_err(|e| anyhow!("parse {file}: {e}"))?;
    match nul_field(&v) {
        Some(field) => bail!("{file}: {} contains a NUL byte", field.trim_start_matches('.')),
        None => Ok(()),
    }
}

/// Where in `v` a string (or an object key) holds a NUL byte: ".process.args[0]".
fn nul_field(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => s.contains('\0').then(String::new),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| nul_field(x).map(|f| format!("[{i}]{f}"))),
        Value::Object(o) => o.iter().find_map(|(k, x)| {
            if k.contains('\0') {
                return Some(format!(".{k:?}"));
            }
            nul_field(x).map(|f| format!(".{k}{f}"))
        }),
        _ => None,
    }
}

/// oci-spec parses capability names into an enum: say which name is unknown, in our words.
fn parse_error(e: serde_json::Error) -> anyhow::Error {
    let m = e.to_string();
    match m
        .strip_prefix("no variant for ")
        .and_then(|r| r.split_whitespace().next())
    {
        Some(cap) if cap.starts_with("CAP_") => anyhow!("process.capabilities: unknown capability {cap:?}"),
        _ => anyhow!("parse config.json: {m}"),
    }
}

fn ns_types(spec: &Spec) -> Vec<LinuxNamespaceType> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .map(|v| v.iter().map(|n| n.typ()).collect())
        .unwrap_or_default()
}

/// The sysctls runc accepts: namespaced ones, and only when the container owns that namespace.
pub fn check_sysctl(key: &str, has: &dyn Fn(LinuxNamespaceType) -> bool) -> Result<()> {
    const IPC: [&str; 6] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
    ];
    let ipc = IPC.contains(&key)
        || key == "kernel.shmmni"
        || key == "kernel.shm_rmid_forced"
        || key.starts_with("fs.mqueue.");
    if ipc {
        if has(LinuxNamespaceType::Ipc) {
            return Ok(());
        }
        bail!("linux.sysctl: {key} requires a new IPC namespace");
    }
    if key.starts_with("net.") {
        if has(LinuxNamespaceType::Network) {
            return Ok(());
        }
        bail!("linux.sysctl: {key} requires a new network namespace");
    }
    if key == "kernel.hostname" || key == "kernel.domainname" {
        if has(LinuxNamespaceType::Uts) {
            return Ok(());
        }
        bail!("linux.sysctl: {key} requires a new UTS namespace");
    }
    bail!("linux.sysctl: {key} is not namespaced and cannot be set in a container")
}

/// The checks on a process, the same for config.json's (create) and for the one `exec` runs
/// (`-p process.json`, or config.json's with the command line's overrides). The error texts
/// contain runc's ("args must not be empty", "invalid environment variable: ...").
pub fn validate_process(process: &Process, lsm: crate::process::lsm::HostLsm) -> Result<()> {
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        bail!("process.args must not be empty");
    }
    if !process.cwd().is_absolute() {
        bail!("process.cwd {:?} must be an absolute path", process.cwd());
    }
    for (i, kv) in process.env().iter().flatten().enumerate() {
        match kv.find('=') {
            None => bail!("process.env[{i}] {kv:?}: invalid environment variable: missing '='"),
            Some(0) => bail!("process.env[{i}] {kv:?}: invalid environment variable: name cannot be empty"),
            Some(_) => {}
        }
    }
    crate::process::lsm::plan(process.apparmor_profile(), process.selinux_label(), &None, lsm)?;
    crate::process::rlimits::validate(process)
}

/// Every check `create` makes on the config before touching the system, except the rootfs
/// lookup (which needs the bundle directory).
/// runtime-spec: ociVersion MUST be in SemVer v2.0.0 format (MAJOR.MINOR.PATCH, numbers without
/// leading zeros, then an optional -pre.release and +build).
pub fn is_semver(v: &str) -> bool {
    let (v, build) = match v.split_once('+') {
        Some((v, b)) => (v, Some(b)),
        None => (v, None),
    };
    let (core, pre) = match v.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (v, None),
    };
    let ident = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    let nums: Vec<&str> = core.split('.').collect();
    nums.len() == 3
        && nums.iter().all(|n| number(n))
        && pre.is_none_or(|p| {
            p.split('.')
                .all(|i| ident(i) && (!i.bytes().all(|b| b.is_ascii_digit()) || number(i)))
        })
        && build.is_none_or(|b| b.split('.').all(ident))
}

pub fn validate(spec: &Spec) -> Result<()> {
    if !is_semver(spec.version()) {
        bail!(
            "config.json: ociVersion {:?} is not a SemVer 2.0.0 version",
            spec.version()
        );
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| anyhow!("config.json: process must be set"))?;
    let lsm = crate::process::lsm::detect();
    validate_process(process, lsm)?;
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| anyhow!("config.json: linux must be set"))?;
    let types = ns_types(spec);
    let mut seen = HashSet::new();
    for t in &types {
        if !seen.insert(*t) {
            bail!("linux.namespaces: duplicate namespace type {t}");
        }
    }
    // Entries with a path join that namespace; both count as "the container has its own".
    let has = |t: LinuxNamespaceType| types.contains(&t);
    if (spec.hostname().as_ref().is_some_and(|h| !h.is_empty())
        || spec.domainname().as_ref().is_some_and(|h| !h.is_empty()))
        && !has(LinuxNamespaceType::Uts)
    {
        bail!("config.json: hostname or domainname requires a UTS namespace");
    }
    let maps = linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
        || linux.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
    let userns = linux
        .namespaces()
        .as_ref()
        .and_then(|v| v.iter().find(|n| n.typ() == LinuxNamespaceType::User));
    match userns {
        Some(ns) if ns.path().is_none() && !maps => {
            bail!("linux.uidMappings: a new user namespace needs uidMappings and gidMappings")
        }
        None if maps => bail!("linux.uidMappings: id mappings need a user namespace"),
        _ => {}
    }
    if linux.time_offsets().as_ref().is_some_and(|t| !t.is_empty()) {
        let own = linux
            .namespaces()
            .as_ref()
            .and_then(|v| v.iter().find(|n| n.typ() == LinuxNamespaceType::Time));
        if !own.is_some_and(|n| n.path().is_none()) {
            bail!("linux.timeOffsets: time offsets need a new time namespace");
        }
        for k in linux.time_offsets().as_ref().unwrap().keys() {
            if k != "monotonic" && k != "boottime" {
                bail!("linux.timeOffsets: unknown clock {k:?} (monotonic or boottime)");
            }
        }
    }
    for key in linux.sysctl().as_ref().into_iter().flat_map(|s| s.keys()) {
        check_sysctl(key, &has)?;
    }
    if let Some(s) = linux.seccomp() {
        crate::seccomp::validate(s)?;
    }
    for m in spec.mounts().as_ref().into_iter().flatten() {
        let d = m.destination();
        if !d.is_absolute() {
            // runtime-spec: a relative destination is relative to `/` (deprecated); runc 1.2
            // takes it so, with this warning.
            crate::log::warn(&format!(
                "mount destination {} is not absolute. Support for non-absolute mount destinations will be removed in a future release.",
                d.display()
            ));
        }
        crate::rootfs::check_destination(d)?;
    }
    for d in linux.devices().iter().flatten() {
        crate::rootfs::check_device(d)?;
    }
    crate::namespaces::netdev::validate(linux)?;
    // berth has no resctrl support: a config asking for RDT (closID, schemata, monitoring, the
    // older CAT/MBA schemas) is refused rather than run without it, with runc's text for a
    // host without RDT. vm (VM-based runtimes) and freebsd are other platforms' sections,
    // ignored as runc ignores them.
    if linux.intel_rdt().is_some() {
        bail!("linux.intelRdt: intelRdt is specified in config, but Intel RDT is not supported or enabled");
    }
    crate::process::lsm::plan(&None, &None, linux.mount_label(), lsm)?;
    Ok(())
}

/// Resolve a mount source: relative bind sources are relative to the bundle (runtime-spec).
pub fn mount_source(bundle: &Path, src: &Path) -> PathBuf {
    if src.is_absolute() {
        src.to_path_buf()
    } else {
        bundle.join(src)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_affinity(initial: &str) -> Result<Spec> {
        let cfg = serde_json::json!({
            "ociVersion": "1.2.0",
            "process": {"args": ["true"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "execCPUAffinity": {"initial": initial}},
            "root": {"path": "rootfs"}
        });
        parse(cfg.to_string().as_bytes())
    }

    #[test]
    fn nul_bytes_are_refused_naming_the_field() {
        let cases = [
            (
                r#"{"process":{"cwd":"/a\u0000b"}}"#,
                "x: process.cwd contains a NUL byte",
            ),
            (
                r#"{"mounts":[{},{"destination":"\u0000"}]}"#,
                "x: mounts[1].destination contains a NUL byte",
            ),
            (
                r#"{"linux":{"sysctl":{"a\u0000":"1"}}}"#,
                r#"x: linux.sysctl."a\0" contains a NUL byte"#,
            ),
            (r#"["\u0000"]"#, "x: [0] contains a NUL byte"),
        ];
        for (json, want) in cases {
            assert_eq!(
                refuse_nul(json.as_bytes(), "x").unwrap_err().to_string(),
                want,
                "{json}"
            );
        }
        // An escaped backslash followed by "u0000" is no NUL.
        assert!(refuse_nul(br#"{"a":"\\u0000"}"#, "x").is_ok());
        assert!(refuse_nul(br#"{"a":"no nul"}"#, "x").is_ok());
    }

    #[test]
    fn process_checks_are_the_same_for_create_and_exec() {
        let p = |json: serde_json::Value| -> Result<()> {
            validate_process(&serde_json::from_value(json).unwrap(), Default::default())
        };
        let ok = serde_json::json!({"args": ["true"], "cwd": "/", "env": ["A=1", "B="], "user": {"uid": 0, "gid": 0}});
        assert!(p(ok.clone()).is_ok());
        for (k, v, want) in [
            ("args", serde_json::json!([]), "args must not be empty"),
            ("cwd", serde_json::json!("rel"), "must be an absolute path"),
            (
                "env",
                serde_json::json!(["A"]),
                "invalid environment variable: missing '='",
            ),
            (
                "env",
                serde_json::json!(["=1"]),
                "invalid environment variable: name cannot be empty",
            ),
            ("apparmorProfile", serde_json::json!("p"), "apparmor is not enabled"),
        ] {
            let mut bad = ok.clone();
            bad[k] = v;
            let e = p(bad).unwrap_err().to_string();
            assert!(e.contains(want), "{k}: {e}");
        }
    }

    /// oci-spec checks execCPUAffinity with a regex, which berth's build serves from regex-lite
    /// (src/shim/regex): the check must still accept CPU lists and refuse anything else, with
    /// `\d` meaning ASCII digits only, as in runc's Go regexp.
    #[test]
    fn exec_cpu_affinity_is_still_checked() {
        // runc's list syntax also takes an empty list and stray commas (process/attrs.rs).
        for ok in ["0", "0-3", "0-1,3", "1,2,4-7", "", "1,,2"] {
            let r = with_affinity(ok);
            assert!(r.is_ok(), "{ok:?} refused: {:?}", r.err());
        }
        for bad in ["a", "1-", "0-1;3", "\u{0663}", "1 2"] {
            assert!(with_affinity(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn oci_version_must_be_semver() {
        for ok in [
            "1.0.0",
            "1.0.2-dev",
            "1.2.1",
            "1.0.0-rc5-dev",
            "1.3.0+abc.1",
            "10.20.30-alpha.1",
        ] {
            assert!(super::is_semver(ok), "{ok}");
        }
        for bad in [
            "invalid",
            "",
            "1.0",
            "1.0.0.0",
            "01.0.0",
            "1.0.0-",
            "1.0.0-01",
            "1.0.0+",
            "v1.0.0",
            "1.0.0-a..b",
        ] {
            assert!(!super::is_semver(bad), "{bad}");
        }
    }
}
