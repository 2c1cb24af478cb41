//! The systemd cgroup driver (`--systemd-cgroup`, `--cgroup-manager systemd`): each container
//! is a transient scope unit that systemd creates with the container's init in it and
//! `Delegate=yes`, so that systemd owns the cgroup's place in the tree and its limits, and
//! berth writes only what systemd has no property for. Engines on systemd hosts (podman,
//! Docker on cgroup v2, containerd for Kubernetes) use this driver by default, with a
//! `slice:prefix:name` cgroupsPath (path.rs).
//!
//! dbus.rs is the wire protocol, path.rs the naming, props.rs the resource → property
//! conversions (runc's), this file the systemd manager calls.

pub mod dbus;
pub mod path;
pub mod props;
pub mod unit;

use anyhow::{anyhow, Context, Result};
use dbus::{Conn, Value};
use std::time::Duration;

const DEST: &str = "org.freedesktop.systemd1";
const OBJ: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";

/// One unit property, as StartTransientUnit and SetUnitProperties take them (`(sv)`).
pub type Prop = (String, Value);

fn props_value(props: &[Prop]) -> Value {
    Value::Array(
        "(sv)".into(),
        props
            .iter()
            .map(|(k, v)| Value::Struct(vec![Value::str(k), Value::variant(v.clone())]))
            .collect(),
    )
}

/// Whether systemd is the init (sd_booted(3): /run/systemd/system is a directory).
pub fn booted() -> bool {
    std::fs::symlink_metadata("/run/systemd/system").is_ok_and(|m| m.is_dir())
}

/// The user's bus (rootless): $DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus, as runc
/// (DetectUserDbusSessionBusAddress) and rootless podman find it.
pub fn session_bus_address() -> Result<String> {
    if let Some(a) = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").filter(|a| !a.is_empty()) {
        return Ok(a.to_string_lossy().into_owned());
    }
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|a| !a.is_empty()) {
        let p = std::path::Path::new(&x).join("bus");
        if p.exists() {
            return Ok(format!("unix:path={}", p.display()));
        }
    }
    Err(anyhow!(
        "could not detect DBUS_SESSION_BUS_ADDRESS from the environment; make sure you have installed the dbus-user-session or dbus-daemon package; note you may need to re-login"
    ))
}

/// A connection to the systemd instance that owns the container's cgroup.
pub struct Systemd {
    conn: Conn,
    version: Option<u32>,
}

impl Systemd {
    /// rootless: the user's instance over the session bus. Otherwise the system bus, and
    /// systemd's private socket when there is no bus daemon (go-systemd's order, which runc
    /// uses: the bus first, the private socket for root only).
    pub fn connect(rootless: bool) -> Result<Systemd> {
        let conn = if rootless {
            Conn::open(&session_bus_address()?, true)?
        } else {
            let addr = std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
                .ok()
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| "unix:path=/run/dbus/system_bus_socket".into());
            match Conn::open(&addr, true) {
                Ok(c) => c,
                Err(e) if nix::unistd::geteuid().is_root() => Conn::open("unix:path=/run/systemd/private", false)
                    .map_err(|e2| anyhow!("connect to systemd: {e:#}; and {e2:#}"))?,
                Err(e) => return Err(e),
            }
        };
        Systemd::over(conn)
    }

    /// Over an open connection (to a bus daemon or systemd's private socket).
    pub fn over(conn: Conn) -> Result<Systemd> {
        let mut s = Systemd { conn, version: None };
        if s.conn.is_bus() {
            // JobRemoved is broadcast; a bus daemon routes it only to matching clients.
            let rule = "type='signal',sender='org.freedesktop.systemd1',path='/org/freedesktop/systemd1',\
                        interface='org.freedesktop.systemd1.Manager',member='JobRemoved'";
            s.conn.call(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "AddMatch",
                &[Value::str(rule)],
            )?;
        }
        Ok(s)
    }

    fn manager(&mut self, member: &str, args: &[Value]) -> Result<Vec<Value>> {
        self.conn.call(DEST, OBJ, MANAGER, member, args)
    }

    /// A property of the manager object (Version, ControlGroup, ...).
    pub fn manager_property(&mut self, name: &str) -> Result<Value> {
        let r = self
            .conn
            .call(
                DEST,
                OBJ,
                "org.freedesktop.DBus.Properties",
                "Get",
                &[Value::str(MANAGER), Value::str(name)],
            )
            .with_context(|| format!("get systemd's {name}"))?;
        match r.into_iter().next() {
            Some(Value::Variant(v)) => Ok(*v),
            other => Err(anyhow!("systemd's {name}: unexpected reply {other:?}")),
        }
    }

    /// systemd's version number (252 for "252.38-1~deb12u1"); 0 when unknown, so that
    /// properties newer systemd versions added are left to the cgroup files (as runc).
    pub fn version(&mut self) -> u32 {
        if let Some(v) = self.version {
            return v;
        }
        let v = match self.manager_property("Version") {
            Ok(Value::Str(s)) => parse_version(&s).unwrap_or(0),
            _ => 0,
        };
        if v == 0 {
            crate::log::warn("unable to get systemd version");
        }
        self.version = Some(v);
        v
    }

    /// Start a transient unit and wait for its job. A unit of that name left over (failed)
    /// is reset and the start tried once more, as runc does; `ignore_exists`: an existing
    /// unit is fine (a parent slice someone else made).
    pub fn start_transient_unit(&mut self, name: &str, props: &[Prop], ignore_exists: bool) -> Result<()> {
        let mut retried = false;
        let job = loop {
            let args = [
                Value::str(name),
                Value::str("replace"),
                props_value(props),
                Value::Array("(sa(sv))".into(), vec![]),
            ];
            match self.manager("StartTransientUnit", &args) {
                Ok(r) => break job_path(r)?,
                Err(e) if dbus::is_bus_error(&e, "org.freedesktop.systemd1.UnitExists") => {
                    if ignore_exists {
                        return Ok(());
                    }
                    if retried {
                        return Err(e).with_context(|| format!("start unit {name}"));
                    }
                    retried = true;
                    let _ = self.reset_failed(name);
                }
                Err(e) => return Err(e).with_context(|| format!("start unit {name}")),
            }
        };
        match self.wait_job(&job) {
            Ok(r) if r == "done" => Ok(()),
            Ok(r) => {
                let _ = self.reset_failed(name);
                Err(anyhow!("error creating systemd unit `{name}`: got `{r}`"))
            }
            Err(e) => {
                let _ = self.reset_failed(name);
                Err(e).with_context(|| format!("waiting for systemd to create {name}"))
            }
        }
    }

    /// Stop a unit and wait for it; a unit that is not there is stopped. A failed unit is
    /// then reset so that systemd forgets it (nothing is left behind).
    pub fn stop_unit(&mut self, name: &str) -> Result<()> {
        match self.manager("StopUnit", &[Value::str(name), Value::str("replace")]) {
            Ok(r) => {
                let job = job_path(r)?;
                let res = self
                    .wait_job(&job)
                    .with_context(|| format!("waiting for systemd to remove {name}"))?;
                if res != "done" {
                    crate::log::warn(&format!("error removing unit `{name}`: got `{res}`. Continuing..."));
                }
            }
            Err(e) if dbus::is_bus_error(&e, "org.freedesktop.systemd1.NoSuchUnit") => {}
            Err(e) => return Err(e).with_context(|| format!("stop unit {name}")),
        }
        let _ = self.reset_failed(name);
        Ok(())
    }

    pub fn reset_failed(&mut self, name: &str) -> Result<()> {
        self.manager("ResetFailedUnit", &[Value::str(name)]).map(drop)
    }

    /// SetUnitProperties with runtime=true: the values live until the unit goes, like the unit.
    pub fn set_unit_properties(&mut self, name: &str, props: &[Prop]) -> Result<()> {
        if props.is_empty() {
            return Ok(());
        }
        self.manager(
            "SetUnitProperties",
            &[Value::str(name), Value::Bool(true), props_value(props)],
        )
        .map(drop)
        .with_context(|| format!("unable to set unit properties of {name}"))
    }

    /// Whether a unit is loaded (GetUnit fails with NoSuchUnit otherwise).
    pub fn unit_exists(&mut self, name: &str) -> Result<bool> {
        match self.manager("GetUnit", &[Value::str(name)]) {
            Ok(_) => Ok(true),
            Err(e) if dbus::is_bus_error(&e, "org.freedesktop.systemd1.NoSuchUnit") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The result of a job ("done", "failed", "timeout", ...), from its JobRemoved signal.
    fn wait_job(&mut self, job: &str) -> Result<String> {
        self.conn.wait_signal(JOB_TIMEOUT, |m| {
            if m.member.as_deref() != Some("JobRemoved") || m.interface.as_deref() != Some(MANAGER) {
                return None;
            }
            match m.body.as_slice() {
                [_, Value::Path(p), _, Value::Str(r)] if p == job => Some(r.clone()),
                _ => None,
            }
        })
    }
}

/// runc's wait for a unit's job.
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

fn job_path(r: Vec<Value>) -> Result<String> {
    match r.into_iter().next() {
        Some(Value::Path(p)) => Ok(p),
        other => Err(anyhow!("systemd returned {other:?} for a job")),
    }
}

/// runc's systemdVersionAtoi: the leading number of "v245.4-1.fc32", "245", "252.38-1~deb12u1".
pub fn parse_version(s: &str) -> Option<u32> {
    let s = s.trim_start_matches(['"', 'v']);
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn versions() {
        assert_eq!(parse_version("252.38-1~deb12u1"), Some(252));
        assert_eq!(parse_version("v245.4-1.fc32"), Some(245));
        assert_eq!(parse_version("\"v245-1.fc32\""), Some(245));
        assert_eq!(parse_version("245"), Some(245));
        assert_eq!(parse_version("abc"), None);
    }

    /// Against the real systemd (the systemd VM: integration/vm/run-in-vm.sh with
    /// VM_SYSTEMD=1), over the system bus and over the private socket: a scope with a
    /// process and limits, a property update, the errors the driver relies on, stop.
    #[test]
    #[ignore = "needs systemd as PID 1 (integration/vm, VM_SYSTEMD=1)"]
    fn a_scope_through_systemd() {
        assert!(booted(), "systemd is not PID 1 here");
        for (addr, bus) in [
            ("unix:path=/run/dbus/system_bus_socket", true),
            ("unix:path=/run/systemd/private", false),
        ] {
            let mut sd = Systemd::over(Conn::open(addr, bus).unwrap()).unwrap();
            let v = sd.manager_property("Version").unwrap();
            assert!(v.as_str().is_some_and(|v| v.starts_with("252")), "{addr}: {v:?}");
            assert_eq!(sd.version(), 252, "{addr}");
            let mut child = std::process::Command::new("sleep").arg("60").spawn().unwrap();
            let pid = child.id();
            let unit = format!("berth-dbustest-{pid}.scope");
            let props = vec![
                ("Description".to_string(), Value::str("berth D-Bus test")),
                ("Slice".into(), Value::str("system.slice")),
                ("Delegate".into(), Value::Bool(true)),
                ("PIDs".into(), Value::Array("u".into(), vec![Value::U32(pid)])),
                ("MemoryAccounting".into(), Value::Bool(true)),
                ("TasksAccounting".into(), Value::Bool(true)),
                ("DefaultDependencies".into(), Value::Bool(false)),
                ("MemoryMax".into(), Value::U64(64 << 20)),
                ("TasksMax".into(), Value::U64(10)),
            ];
            sd.start_transient_unit(&unit, &props, false).unwrap();
            let dir = std::path::PathBuf::from("/sys/fs/cgroup/system.slice").join(&unit);
            let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
            assert_eq!(cg.trim(), format!("0::/system.slice/{unit}"));
            let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap().trim().to_string();
            assert_eq!(read("memory.max"), (64u64 << 20).to_string());
            assert_eq!(read("pids.max"), "10");
            assert!(sd.unit_exists(&unit).unwrap());
            sd.set_unit_properties(&unit, &[("MemoryMax".into(), Value::U64(128 << 20))])
                .unwrap();
            assert_eq!(read("memory.max"), (128u64 << 20).to_string());
            // a second start of a running unit: UnitExists (after one reset and retry)
            let e = sd.start_transient_unit(&unit, &props, false).unwrap_err();
            assert!(format!("{e:#}").contains("UnitExists"), "{e:#}");
            sd.start_transient_unit(&unit, &props, true).unwrap();
            // a bad property is systemd's error, named
            let e = sd
                .set_unit_properties(&unit, &[("NoSuchProperty".into(), Value::Bool(true))])
                .unwrap_err();
            assert!(format!("{e:#}").contains("org.freedesktop.DBus.Error"), "{e:#}");
            sd.stop_unit(&unit).unwrap();
            assert!(!sd.unit_exists(&unit).unwrap());
            assert!(!dir.exists());
            // stopping the scope killed its process
            assert!(child.wait().unwrap().signal().is_some());
            // stopping what is not there is fine
            sd.stop_unit(&unit).unwrap();
        }
    }

    #[test]
    fn props_are_an_array_of_sv() {
        let v = props_value(&[("Delegate".into(), Value::Bool(true))]);
        assert_eq!(v.signature(), "a(sv)");
        assert_eq!(props_value(&[]).signature(), "a(sv)");
    }
}
