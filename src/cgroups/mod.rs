//! The container's cgroups over every host layout, detected from /proc/self/mountinfo: pure
//! v2, pure v1, and hybrid (v1 controllers plus a cgroup2 mount without controllers, as on this
//! CI machine, where runc works and crun refuses; berth tracks the unified hierarchy too, as
//! runc does).
//!
//! One `Manager` per container, planned by create from the detected layout and recorded in
//! state.json; every command goes through it: `plan`/`check_unused`/`create` (the directories,
//! before the init is cloned), `apply` (linux.resources and the device policy, at create and
//! `update`), `add_process` (or `clone_target` for CLONE_INTO_CGROUP), `freeze`/`is_frozen`,
//! `signal_all`/`kill_all_and_wait`, `pids`, `stats`/`oom_kills`/`oom_eventfd`, `destroy`. A
//! systemd driver is another way to do `create`/`apply`/`destroy` behind the same methods (its
//! unit's cgroup is read and signalled through the same files).
//!
//! berth removes only directories it created itself (recorded in the state), never a cgroup
//! someone else made. The writers per controller live in v1.rs / v2.rs, the device policy in
//! devices.rs (and bpf.rs for v2), statistics in stats.rs.

pub mod bpf;
pub mod detect;
pub mod resources;
pub mod stats;
pub mod systemd;
#[cfg(test)]
mod tests_fake;
pub mod v1;
pub mod v2;

pub use detect::{hierarchies, plan_paths};

pub mod devices;

use anyhow::{anyhow, bail, Context, Result};
use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// Which hierarchies hold the container's cgroups.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// v1 hierarchies only.
    V1,
    /// One cgroup2 directory, which carries the resource controllers.
    V2,
    /// v1 controllers plus a cgroup2 directory without them (tracked for pids, freeze, kill).
    Hybrid,
}

/// A container's cgroups: what state.json records under `cgroup`.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Manager {
    /// Every cgroup directory the container's processes are placed in, one per hierarchy.
    pub paths: Vec<PathBuf>,
    /// The directories berth itself created (deepest last); only these are ever removed.
    pub created: Vec<PathBuf>,
    /// v1 freezer directory, if any (pause/resume and the `paused` status).
    #[serde(default)]
    pub freezer: Option<PathBuf>,
    /// Rootless: hierarchies the user may not write to are skipped, not fatal.
    #[serde(default)]
    pub rootless: bool,
    /// Decided at create from the mount table. None in the state of an older berth (and in the
    /// unit tests' fake cgroupfs): then probed from the directories themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layout: Option<Layout>,
    /// Which of `paths` is a cgroup2 directory, probed once per process (`unified`).
    #[serde(skip)]
    unified_probe: std::cell::OnceCell<Option<PathBuf>>,
    /// The systemd driver: the container's scope unit, which systemd creates (with the init
    /// in it) and removes; `paths` are its directories.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<systemd::unit::Unit>,
    /// systemd, in create's process only: the unit is started when the init exists
    /// (`add_process`: a scope needs a process), with what `apply` was given before.
    #[serde(skip)]
    sd_start: std::cell::RefCell<Option<SystemdStart>>,
}

/// What the systemd driver's start of the unit needs, gathered before the init exists.
#[derive(Debug, Clone, Default)]
struct SystemdStart {
    id: String,
    annotations: std::collections::HashMap<String, String>,
    resources: LinuxResources,
    devices: Option<Vec<devices::Rule>>,
}

/// Write one cgroup file; the error names the value, the file and the errno as runc users
/// expect ("write 100 to /sys/fs/cgroup/memory/x/memory.limit_in_bytes: EINVAL").
pub fn write_file(dir: &Path, file: &str, val: &str) -> Result<()> {
    let p = dir.join(file);
    // Never O_CREAT: a missing interface file is an error, not a new file (and in the fake
    // cgroupfs of the tests the same holds).
    let r = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&p)
        .and_then(|mut f| std::io::Write::write_all(&mut f, val.as_bytes()));
    r.map_err(|e| {
        let why = match e.raw_os_error() {
            Some(n) => format!("{:?}", nix::errno::Errno::from_raw(n)),
            None => e.to_string(),
        };
        anyhow!("write {val} to {}: {why}", p.display())
    })
}

pub fn read_file(dir: &Path, file: &str) -> Result<String> {
    let p = dir.join(file);
    std::fs::read_to_string(&p)
        .map(|s| s.trim_end().to_string())
        .with_context(|| format!("read {}", p.display()))
}

/// A v1 cpuset with empty cpus or mems refuses tasks (ENOSPC), and a new one starts empty.
/// runc's cpusetEnsureParent/cpusetCopyIfNeeded: every level from the hierarchy's root down to
/// `leaf`, pre-existing (made empty by someone else) or new, gets its parent's values where it
/// has none; a value already set is never changed. (cgroup2's cpuset inherits by itself.)
fn fill_cpusets(leaf: &Path) -> Result<()> {
    if leaf.join("cgroup.controllers").exists() {
        return Ok(());
    }
    let mut chain: Vec<&Path> = leaf
        .ancestors()
        .take_while(|d| d.join("cpuset.cpus").exists())
        .collect();
    chain.reverse();
    for pair in chain.windows(2) {
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if read_file(pair[1], f)?.is_empty() {
                write_file(pair[1], f, &read_file(pair[0], f)?)?;
            }
        }
    }
    Ok(())
}

/// runc's getSubCgroupPaths: `exec --cgroup` takes either one plain sub-cgroup path (every
/// hierarchy; the only form cgroup v2 has) or `controller[,controller...]:path` arguments, one
/// path per controller. Returns (controller, path), "" for the plain form.
fn parse_exec_cgroups(args: &[String]) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for a in args {
        match a.split_once(':') {
            Some((ctrls, path)) => {
                for c in ctrls.split(',') {
                    if c.is_empty() {
                        bail!("invalid --cgroup argument: {a} (empty <controller> prefix)");
                    }
                    if out.iter().any(|(o, _)| o == c) {
                        bail!("invalid --cgroup argument(s): controller {c} specified multiple times");
                    }
                    out.push((c.to_string(), path.to_string()));
                }
            }
            None if args.len() != 1 => bail!("invalid --cgroup argument: {a} (missing <controller>: prefix)"),
            None => out.push((String::new(), a.clone())),
        }
    }
    Ok(out)
}

/// The cgroup directories an `exec --cgroup` process joins: the container's `paths`, moved
/// into the sub-cgroups `subs` (parse_exec_cgroups) names, each found in the hierarchy of its
/// controller (`hs`). A controller none of the container's hierarchies has is an error, as in
/// runc; so is a path leaving the container's cgroup.
fn exec_sub_paths(paths: &[PathBuf], hs: &[detect::Hierarchy], subs: &[(String, String)]) -> Result<Vec<PathBuf>> {
    let join = |base: &Path, sub: &str| -> Result<PathBuf> {
        if Path::new(sub)
            .components()
            .any(|c| c == std::path::Component::ParentDir)
        {
            bail!("{sub} is not a sub cgroup path");
        }
        Ok(base.join(sub.trim_start_matches('/')))
    };
    let mut out = paths.to_vec();
    let mut given: Vec<Option<&str>> = vec![None; paths.len()];
    for (ctrl, sub) in subs {
        if ctrl.is_empty() {
            return paths.iter().map(|p| join(p, sub)).collect();
        }
        let i = paths
            .iter()
            .position(|p| {
                hs.iter()
                    .any(|h| !h.v2 && p.starts_with(&h.mountpoint) && h.controllers.iter().any(|c| c == ctrl))
            })
            .ok_or_else(|| anyhow!("unknown controller {ctrl} in SubCgroupPaths"))?;
        // Controllers sharing a hierarchy (cpu,cpuacct) share one directory.
        if given[i].is_some_and(|g| g != sub) {
            bail!("invalid --cgroup argument(s): {ctrl} shares its hierarchy with a controller given another path");
        }
        given[i] = Some(sub);
        out[i] = join(&paths[i], sub)?;
    }
    Ok(out)
}

/// Permission errors: the hierarchy is not delegated to this user.
fn is_denied_io(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM | libc::EROFS))
}

impl Manager {
    /// The container's directories in every hierarchy (runc's cgroupfs rules for
    /// linux.cgroupsPath), reserved but not made yet.
    pub fn plan(cgroups_path: Option<&str>, id: &str, rootless: bool) -> Result<Manager> {
        let hs = hierarchies()?;
        let own = std::fs::read_to_string("/proc/self/cgroup").context("read /proc/self/cgroup")?;
        let paths = plan_paths(&hs, &own, cgroups_path, id)?;
        let freezer = hs
            .iter()
            .zip(&paths)
            .find(|(h, _)| h.controllers.iter().any(|c| c == "freezer"))
            .map(|(_, p)| p.clone());
        let layout = match (hs.iter().any(|h| h.v2), hs.iter().any(|h| !h.v2)) {
            (true, false) => Layout::V2,
            (true, true) => Layout::Hybrid,
            _ => Layout::V1,
        };
        let mut cg = Manager {
            paths,
            freezer,
            rootless,
            layout: Some(layout),
            ..Default::default()
        };
        cg.reserve();
        Ok(cg)
    }

    /// The systemd driver: the container's scope unit (systemd/path.rs names it from
    /// cgroupsPath as runc does) and its directory in every hierarchy. Nothing is made here:
    /// systemd makes the scope when the init exists (`add_process`).
    pub fn plan_systemd(
        cgroups_path: Option<&str>,
        id: &str,
        rootless: bool,
        annotations: std::collections::HashMap<String, String>,
    ) -> Result<Manager> {
        if !systemd::booted() {
            bail!("systemd not running on this host, cannot use systemd cgroups manager");
        }
        let hs = hierarchies()?;
        let layout = match (hs.iter().any(|h| h.v2), hs.iter().any(|h| !h.v2)) {
            (true, false) => Layout::V2,
            (true, true) => Layout::Hybrid,
            _ => Layout::V1,
        };
        if rootless && layout != Layout::V2 {
            bail!("cannot use rootless systemd cgroups manager on cgroup v1");
        }
        // runc's check, before anything is asked of systemd.
        systemd::props::annotations(&annotations)?;
        let unit = systemd::unit::Unit::plan(cgroups_path, id, rootless)?;
        let paths: Vec<PathBuf> = hs.iter().map(|h| unit.dir(&h.mountpoint)).collect();
        let freezer = hs
            .iter()
            .zip(&paths)
            .find(|(h, _)| h.controllers.iter().any(|c| c == "freezer"))
            .map(|(_, p)| p.clone());
        let cg = Manager {
            // systemd removes what it made; these are removed after it if they are left
            // (v1 hierarchies systemd does not manage, sub-cgroups the container made).
            created: paths.clone(),
            paths,
            freezer,
            rootless,
            layout: Some(layout),
            systemd: Some(unit),
            sd_start: std::cell::RefCell::new(Some(SystemdStart {
                id: id.to_string(),
                annotations,
                ..Default::default()
            })),
            ..Default::default()
        };
        Ok(cg)
    }

    /// The manager of directories made elsewhere (the unit tests' fake cgroupfs): the layout
    /// is probed from them.
    pub fn for_paths(paths: Vec<PathBuf>) -> Manager {
        Manager {
            paths,
            ..Default::default()
        }
    }

    /// `exec --cgroup`: the same container, its process placed in sub-cgroups (parse_exec_cgroups).
    pub fn with_sub_paths(&self, args: &[String]) -> Result<Manager> {
        let subs = parse_exec_cgroups(args)?;
        let mut m = self.clone();
        m.paths = exec_sub_paths(&self.paths, &hierarchies()?, &subs)?;
        m.unified_probe = std::cell::OnceCell::new();
        Ok(m)
    }

    /// Record every directory create() will make, before any exists: the state is saved with
    /// this list first, so a create killed halfway is still cleaned up by delete, and delete
    /// removes only these (never a cgroup someone else made).
    pub fn reserve(&mut self) {
        self.created.clear();
        for p in &self.paths {
            let mut missing = Vec::new();
            let mut cur = p.as_path();
            while !cur.exists() {
                missing.push(cur.to_path_buf());
                match cur.parent() {
                    Some(par) => cur = par,
                    None => break,
                }
            }
            self.created.extend(missing.into_iter().rev());
        }
    }

    /// mkdir the reserved directories (parents first), then make the controllers berth writes
    /// available down a cgroup2 tree.
    pub fn create(&mut self) -> Result<()> {
        if self.systemd.is_some() {
            return Ok(());
        }
        // A probe made before the directories existed would be wrong from here on.
        self.unified_probe = std::cell::OnceCell::new();
        for dir in self.created.clone() {
            // A rootless drop below may have forgotten this directory's hierarchy already.
            if !self.created.contains(&dir) {
                continue;
            }
            match std::fs::create_dir(&dir) {
                Ok(()) => {}
                // Made by someone else since reserve(): not ours to remove.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => self.created.retain(|d| d != &dir),
                // Rootless: a hierarchy that is not delegated to the user is dropped quietly,
                // as runc does.
                Err(e) if self.rootless && is_denied_io(&e) => self.drop_hierarchy_of(&dir),
                Err(e) => return Err(anyhow!("create cgroup {}: {e}", dir.display())),
            }
        }
        for p in &self.paths {
            fill_cpusets(p)?;
        }
        if let Some(u) = self.unified() {
            match v2::enable_controllers(&u) {
                Err(_) if self.rootless => {}
                r => r?,
            }
        }
        Ok(())
    }

    /// Rootless: forget the hierarchy `dir` belongs to (the path below it and what we reserved
    /// for it); berth runs on without that controller, as runc does.
    fn drop_hierarchy_of(&mut self, dir: &Path) {
        let gone: Vec<PathBuf> = self.paths.iter().filter(|p| p.starts_with(dir)).cloned().collect();
        self.paths.retain(|p| !gone.contains(p));
        self.unified_probe = std::cell::OnceCell::new();
        self.created.retain(|d| !gone.iter().any(|p| p.starts_with(d)));
        if self.freezer.as_ref().is_some_and(|f| gone.contains(f)) {
            self.freezer = None;
        }
        if self.layout == Some(Layout::Hybrid) {
            // Only the unified directory left: it is where the limits go now.
            let hs = hierarchies().unwrap_or_default();
            let v2 = |p: &PathBuf| hs.iter().any(|h| h.v2 && p.starts_with(&h.mountpoint));
            self.layout = Some(match (self.paths.iter().any(v2), self.paths.iter().all(v2)) {
                (true, true) => Layout::V2,
                (true, false) => Layout::Hybrid,
                (false, _) => Layout::V1,
            });
        }
    }

    /// The container's cgroup2 directory (the unified hierarchy on hybrid hosts). Probed on
    /// the directories themselves (so the fake cgroupfs of the unit tests works too), once:
    /// create and delete ask several times, and each probe is a path walk per hierarchy.
    pub fn unified(&self) -> Option<PathBuf> {
        self.unified_probe
            .get_or_init(|| {
                self.paths
                    .iter()
                    .find(|p| p.join("cgroup.controllers").exists())
                    .cloned()
            })
            .clone()
    }

    /// The recorded layout, or (older state, fake cgroupfs) the one the directories show.
    pub fn layout(&self) -> Layout {
        self.layout.unwrap_or_else(|| match self.unified() {
            Some(_) if resources::v1_dirs(&self.paths).is_empty() => Layout::V2,
            Some(_) => Layout::Hybrid,
            None => Layout::V1,
        })
    }

    /// The one cgroup2 directory the init can be cloned straight into (CLONE_INTO_CGROUP),
    /// which avoids the migration and its RCU grace period: pure v2 only.
    pub fn clone_target(&self) -> Option<&Path> {
        if self.systemd.is_some() {
            // The scope does not exist before the init does.
            return None;
        }
        match &self.paths[..] {
            [p] if self.layout() == Layout::V2 => Some(p),
            _ => None,
        }
    }

    /// runc 1.2's check before a create: a cgroup that already holds processes (another
    /// container's, through the same cgroupsPath) or that is frozen is refused. The init would
    /// share the other container's limits and be killed with it, or sit frozen forever; and a
    /// failed create here must never signal the processes it found.
    pub fn check_unused(&self) -> Result<()> {
        let n = self.pids().len();
        if n != 0 {
            bail!("container's cgroup is not empty: {n} process(es) found");
        }
        // Both freezers: on hybrid hosts cgroup2's cgroup.freeze stops tasks as well.
        let v1 = self
            .freezer
            .as_ref()
            .is_some_and(|f| read_file(f, "freezer.state").is_ok_and(|s| s == "FROZEN"));
        let v2 = self
            .paths
            .iter()
            .any(|p| read_file(p, "cgroup.freeze").is_ok_and(|s| s == "1"));
        if v1 || v2 {
            bail!("container's cgroup unexpectedly frozen");
        }
        Ok(())
    }

    /// Move a process into every hierarchy. systemd driver, at create: start the unit with
    /// the process in it, then write what has no property to the files (runc's Apply and Set).
    pub fn add_process(&self, pid: i32) -> Result<()> {
        let start = self.sd_start.borrow_mut().take();
        if let (Some(unit), Some(st)) = (&self.systemd, start) {
            let v2 = self.layout() == Layout::V2;
            let mut sd = unit.connect()?;
            let files = unit.start(
                &mut sd,
                &st.id,
                pid as u32,
                &st.resources,
                st.devices.as_deref(),
                &st.annotations,
                v2,
            )?;
            // v1 hierarchies systemd does not manage get the directory from berth, as runc's
            // joinCgroups; where systemd put the process already, the write changes nothing.
            for p in &self.paths {
                std::fs::create_dir_all(p).map_err(|e| anyhow!("create cgroup {}: {e}", p.display()))?;
            }
            if !v2 {
                // A new v1 cpuset takes no task until its CPUs and memory nodes are set.
                for p in &self.paths {
                    fill_cpusets(p)?;
                }
            }
            self.write_procs(pid)?;
            return self.apply_files(&files, st.devices.as_deref(), false);
        }
        self.write_procs(pid)
    }

    fn write_procs(&self, pid: i32) -> Result<()> {
        let s = pid.to_string();
        for p in &self.paths {
            if let Err(e) = std::fs::write(p.join("cgroup.procs"), &s) {
                if !(self.rootless && is_denied_io(&e)) {
                    return Err(anyhow!("write {s} to {}: {e}", p.join("cgroup.procs").display()));
                }
            }
        }
        Ok(())
    }

    /// Every pid in the container's cgroups, sub-cgroups included (union over the hierarchies).
    pub fn pids(&self) -> Vec<i32> {
        fn walk(dir: &Path, out: &mut Vec<i32>, depth: u32) {
            if let Ok(t) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                out.extend(t.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
            if depth > 16 {
                return;
            }
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&e.path(), out, depth + 1);
                }
            }
        }
        let mut pids: Vec<i32> = Vec::new();
        for p in &self.paths {
            walk(p, &mut pids, 0);
        }
        pids.sort_unstable();
        pids.dedup();
        pids
    }

    /// Freeze or thaw: the v1 freezer where there is one (runc on hybrid hosts too), else
    /// cgroup.freeze. Waits until the kernel reports the new state.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        if let Some(f) = &self.freezer {
            let want = if frozen { "FROZEN" } else { "THAWED" };
            write_file(f, "freezer.state", want)?;
            for _ in 0..5000 {
                if read_file(f, "freezer.state")? == want {
                    return Ok(());
                }
                // A task stuck in FREEZING is retried by re-writing, as runc does.
                write_file(f, "freezer.state", want)?;
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            return Err(anyhow!("{}: freezer did not reach {want}", f.display()));
        }
        let u = self
            .unified()
            .ok_or_else(|| anyhow!("container has no freezer cgroup (cgroups disabled?)"))?;
        v2::freeze(&u, frozen)
    }

    pub fn is_frozen(&self) -> bool {
        if let Some(f) = &self.freezer {
            return read_file(f, "freezer.state").is_ok_and(|s| s == "FROZEN");
        }
        self.unified()
            .is_some_and(|u| read_file(&u, "cgroup.freeze").is_ok_and(|s| s == "1"))
    }

    /// Signal every process in the cgroups. SIGKILL uses cgroup.kill where the kernel has it
    /// (5.14+, atomic against forks); otherwise the cgroup is frozen first so a process that
    /// forks in a loop cannot outrun the kill.
    pub fn signal_all(&self, sig: i32) -> Result<()> {
        if sig == libc::SIGKILL {
            if let Some(u) = self.unified().filter(|u| u.join("cgroup.kill").exists()) {
                if write_file(&u, "cgroup.kill", "1").is_ok() {
                    return Ok(());
                }
            }
        }
        let freeze = sig == libc::SIGKILL && self.freeze(true).is_ok();
        for pid in self.pids() {
            let _ = crate::sys::kill(pid, sig);
        }
        if freeze {
            let _ = self.freeze(false);
        }
        Ok(())
    }

    /// Kill everything and wait until the cgroups are empty (bounded). A frozen cgroup is
    /// thawed so the kill can be delivered.
    pub fn kill_all_and_wait(&self) {
        for _ in 0..500 {
            if self.pids().is_empty() {
                return;
            }
            let _ = self.signal_all(libc::SIGKILL);
            if self.is_frozen() {
                let _ = self.freeze(false);
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// linux.resources, at create or by `update` (with runc's update-only checks), then the
    /// device policy: `devices` is the complete rule list (devices::rules at create,
    /// devices::from_resources for `update`; None leaves the policy as it is).
    pub fn apply(&self, r: &LinuxResources, devices: Option<&[devices::Rule]>, update: bool) -> Result<()> {
        if let Some(unit) = &self.systemd {
            if let Some(st) = self.sd_start.borrow_mut().as_mut() {
                // create: kept for the unit's start (add_process)
                st.resources = r.clone();
                st.devices = devices.map(<[devices::Rule]>::to_vec);
                return Ok(());
            }
            // update: the properties first, so that systemd's next re-apply keeps them
            let mut sd = unit.connect()?;
            let files = unit.update(&mut sd, r, devices, self.layout() == Layout::V2)?;
            return self.apply_files(&files, devices, update);
        }
        self.apply_files(r, devices, update)
    }

    /// The cgroupfs writers (both drivers).
    fn apply_files(&self, r: &LinuxResources, devices: Option<&[devices::Rule]>, update: bool) -> Result<()> {
        let mut r = r.clone();
        r.set_devices(None);
        if self.layout() == Layout::V2 {
            let Some(dir) = self.paths.first() else { return Ok(()) };
            v2::apply(dir, &r, update)?;
            if let Some(rules) = devices {
                match bpf::attach(dir, rules) {
                    // As runc: rootless cannot load BPF programs (nor mknod a host device).
                    Err(e) if self.rootless => resources::warn(&format!("device filter not applied (rootless): {e:#}")),
                    res => res?,
                }
            }
            return Ok(());
        }
        // runc's default config sets only devices: then no directory needs to be read.
        if !resources::is_empty(&r) {
            let dirs = resources::v1_dirs(&self.paths);
            if dirs.is_empty() && !self.paths.is_empty() {
                bail!(
                    "no cgroup controllers found for the container (cgroups: {:?})",
                    self.paths
                );
            }
            v1::apply(&dirs, &r, update)?;
        }
        // Last, so this full list (deny-all, the rules, runc's defaults) is what stays.
        if let Some(rules) = devices {
            if let Some(d) = devices::v1_dir(&hierarchies()?, &self.paths) {
                devices::apply_v1(&d, rules)?;
            }
        }
        Ok(())
    }

    /// Statistics in runc's shape (`events --stats`).
    pub fn stats(&self) -> stats::Stats {
        match (self.layout(), self.paths.first()) {
            (Layout::V2, Some(d)) => stats::v2(d),
            (Layout::V2, None) => stats::Stats::default(),
            _ => stats::v1(&resources::v1_dirs(&self.paths)),
        }
    }

    /// The container's cumulative OOM-kill count.
    pub fn oom_kills(&self) -> u64 {
        let (dir, file) = match self.layout() {
            Layout::V2 => (self.paths.first().cloned(), "memory.events"),
            _ => (resources::v1_dirs(&self.paths).remove("memory"), "memory.oom_control"),
        };
        dir.and_then(|d| stats::kv(&d, file).get("oom_kill").copied())
            .unwrap_or(0)
    }

    /// v1: an eventfd that becomes readable on every OOM of the memory cgroup (registered on
    /// memory.oom_control through cgroup.event_control, as runc), with that cgroup's directory:
    /// the eventfd also fires when it is removed. None on v2, which has no such interface.
    pub fn oom_eventfd(&self) -> Option<(OwnedFd, PathBuf)> {
        if self.layout() == Layout::V2 {
            return None;
        }
        let dir = resources::v1_dirs(&self.paths).remove("memory")?;
        let efd = crate::sys::eventfd().ok()?;
        let ofd = crate::sys::open(&dir.join("memory.oom_control"), libc::O_RDONLY, 0).ok()?;
        let reg = format!("{} {}", efd.as_raw_fd(), ofd.as_raw_fd());
        write_file(&dir, "cgroup.event_control", &reg).ok()?;
        // The registration holds its own reference to the control file.
        Some((efd, dir))
    }

    /// rmdir what berth created, deepest first. The container's own directory goes with the
    /// sub-cgroups its processes made (as runc's RemovePath); a parent berth made stays while
    /// another container's cgroup lives under it.
    pub fn destroy(&self) -> Result<()> {
        // The directories go even when systemd cannot be reached; its error is still reported.
        let stopped = self.stop_unit();
        let removed = self.destroy_with(RMDIR_TRIES);
        stopped.and(removed)
    }

    /// systemd driver: stop the container's unit (systemd kills what is left in it and removes
    /// its cgroup); a unit that is gone (the init died, the scope emptied) is fine.
    fn stop_unit(&self) -> Result<()> {
        match &self.systemd {
            Some(unit) => unit.connect().and_then(|mut sd| unit.stop(&mut sd)),
            None => Ok(()),
        }
    }

    /// `destroy` without waiting: fails at once on a directory that is still busy.
    pub fn destroy_once(&self) -> Result<()> {
        let stopped = self.stop_unit();
        let removed = self.destroy_with(0);
        stopped.and(removed)
    }

    fn destroy_with(&self, tries: u32) -> Result<()> {
        let mut last_err = None;
        let mut dirs = self.created.clone();
        dirs.sort_by_cached_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            // Byte comparison: both lists hold the same PathBufs, and Path's == walks components.
            let r = if self.paths.iter().any(|p| p.as_os_str() == d.as_os_str()) {
                remove_tree(&d, tries)
            } else {
                rmdir_retry(&d, true, tries)
            };
            if let Err(e) = r {
                last_err = Some(e);
            }
        }
        last_err.map_or(Ok(()), Err)
    }
}

fn has_subdirs(d: &Path) -> bool {
    std::fs::read_dir(d).is_ok_and(|rd| rd.flatten().any(|e| e.file_type().is_ok_and(|t| t.is_dir())))
}

/// How often a busy cgroup's rmdir is retried, 5 ms apart.
const RMDIR_TRIES: u32 = 200;

/// rmdir, retried briefly while busy: a just-killed task or just-removed child cgroup leaves
/// the kernel's bookkeeping asynchronously. With `shared`, a directory that still has children
/// belongs to someone else too and is left in place.
fn rmdir_retry(d: &Path, shared: bool, max_tries: u32) -> Result<()> {
    let mut tries = 0;
    loop {
        match std::fs::remove_dir(d) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY) | Some(libc::ENOTEMPTY)) => {
                if shared && has_subdirs(d) {
                    return Ok(());
                }
                if tries >= max_tries {
                    return Err(anyhow!("remove cgroup {}: {e}", d.display()));
                }
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => return Err(anyhow!("remove cgroup {}: {e}", d.display())),
        }
    }
}

/// The container's cgroup and everything below it, deepest first.
fn remove_tree(d: &Path, tries: u32) -> Result<()> {
    // Usually a leaf: one rmdir (no retries yet). cgroupfs answers EBUSY when sub-cgroups (or
    // tasks) remain; then the children go first and the retries follow.
    if rmdir_retry(d, false, 0).is_ok() {
        return Ok(());
    }
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path(), tries)?;
            }
        }
    }
    rmdir_retry(d, false, tries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_cgroup_arguments_as_runc() {
        let a = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(parse_exec_cgroups(&a(&["sub"])).unwrap(), [("".into(), "sub".into())]);
        assert_eq!(
            parse_exec_cgroups(&a(&["cpu,memory:x", "pids:/y"])).unwrap(),
            [
                ("cpu".to_string(), "x".to_string()),
                ("memory".into(), "x".into()),
                ("pids".into(), "/y".into())
            ]
        );
        for (bad, why) in [
            (&["a", "b"][..], "missing <controller>: prefix"),
            (&["cpu,:x"], "empty <controller> prefix"),
            (&["cpu:x", "cpu:y"], "controller cpu specified multiple times"),
        ] {
            let e = parse_exec_cgroups(&a(bad)).unwrap_err().to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        let hs = detect::parse_mountinfo(
            "32 31 0:29 / /c/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
             35 31 0:32 / /c/memory rw - cgroup cgroup rw,memory\n\
             41 31 0:38 / /c/unified rw - cgroup2 cgroup2 rw\n",
        );
        let paths = [
            PathBuf::from("/c/cpu,cpuacct/ct"),
            PathBuf::from("/c/memory/ct"),
            PathBuf::from("/c/unified/ct"),
        ];
        let subs = parse_exec_cgroups(&a(&["memory:/m", "cpuacct:a"])).unwrap();
        assert_eq!(
            exec_sub_paths(&paths, &hs, &subs).unwrap(),
            [
                PathBuf::from("/c/cpu,cpuacct/ct/a"),
                PathBuf::from("/c/memory/ct/m"),
                PathBuf::from("/c/unified/ct")
            ]
        );
        let all = exec_sub_paths(&paths, &hs, &parse_exec_cgroups(&a(&["s"])).unwrap()).unwrap();
        assert!(all.iter().all(|p| p.ends_with("ct/s")));
        for (bad, why) in [
            (&["pids:x"][..], "unknown controller pids"),
            (&["cpu:a", "cpuacct:b"], "shares its hierarchy"),
            (&["memory:../x"], "not a sub cgroup path"),
            (&["../x"], "not a sub cgroup path"),
        ] {
            let e = exec_sub_paths(&paths, &hs, &parse_exec_cgroups(&a(bad)).unwrap())
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn create_and_destroy_only_what_was_made() {
        let tmp = std::env::temp_dir().join(format!("berth-cg-{}", std::process::id()));
        std::fs::create_dir_all(tmp.join("existing")).unwrap();
        let mut cg = Manager::for_paths(vec![tmp.join("existing/new/leaf")]);
        cg.reserve();
        cg.create().unwrap();
        assert_eq!(
            cg.created,
            vec![tmp.join("existing/new"), tmp.join("existing/new/leaf")]
        );
        cg.destroy().unwrap();
        assert!(tmp.join("existing").is_dir() && !tmp.join("existing/new").exists());
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
