//! Writers against a fake cgroupfs: a temp dir with the interface files a real hierarchy would
//! show; apply, then read back what was written.

use super::v2::{blkio_to_io_weight, shares_to_weight, swap_to_v2};
use super::*;
use oci_spec::runtime::LinuxResources;
use std::path::{Path, PathBuf};

struct Fake(PathBuf);

impl Fake {
    fn new(name: &str) -> Fake {
        let d = std::env::temp_dir().join(format!("berth-fakecg-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Fake(d)
    }
    /// A directory with these (empty or preset) files.
    fn dir(&self, rel: &str, files: &[(&str, &str)]) -> PathBuf {
        let d = self.0.join(rel);
        std::fs::create_dir_all(&d).unwrap();
        for (f, v) in files {
            std::fs::write(d.join(f), v).unwrap();
        }
        d
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rd(d: &Path, f: &str) -> String {
    std::fs::read_to_string(d.join(f)).unwrap()
}

fn res(v: serde_json::Value) -> LinuxResources {
    serde_json::from_value(v).unwrap()
}

fn state(paths: Vec<PathBuf>) -> Manager {
    Manager::for_paths(paths)
}

#[test]
fn runc_conversions() {
    assert_eq!(shares_to_weight(0), 0);
    assert_eq!(shares_to_weight(2), 1);
    assert_eq!(shares_to_weight(1024), 39);
    assert_eq!(shares_to_weight(262144), 10000);
    assert_eq!(blkio_to_io_weight(10), 1);
    assert_eq!(blkio_to_io_weight(500), 4950);
    assert_eq!(blkio_to_io_weight(1000), 10000);
    assert_eq!(swap_to_v2(0, -1).unwrap(), -1);
    assert_eq!(swap_to_v2(200, 100).unwrap(), 100);
    assert_eq!(swap_to_v2(100, 100).unwrap(), 0);
    assert!(swap_to_v2(50, 100).is_err() && swap_to_v2(200, 0).is_err());
}

const V1_MEM: [(&str, &str); 7] = [
    ("memory.limit_in_bytes", "9223372036854771712"),
    ("memory.memsw.limit_in_bytes", "9223372036854771712"),
    ("memory.soft_limit_in_bytes", ""),
    ("memory.swappiness", ""),
    ("memory.oom_control", ""),
    ("memory.usage_in_bytes", "4096"),
    ("memory.max_usage_in_bytes", "8192"),
];

#[test]
fn v1_every_controller() {
    let f = Fake::new("v1");
    let mem = f.dir("memory/c", &V1_MEM);
    let cpu = f.dir(
        "cpu/c",
        &[
            ("cpu.shares", "512"),
            ("cpu.cfs_period_us", ""),
            ("cpu.cfs_quota_us", ""),
            ("cpu.cfs_burst_us", ""),
            ("cpu.rt_period_us", ""),
            ("cpu.rt_runtime_us", ""),
            ("cpu.idle", ""),
        ],
    );
    let cpuset = f.dir("cpuset/c", &[("cpuset.cpus", ""), ("cpuset.mems", "")]);
    let pids = f.dir("pids/c", &[("pids.max", "")]);
    let blkio = f.dir(
        "blkio/c",
        &[
            ("blkio.weight", ""),
            ("blkio.leaf_weight", ""),
            ("blkio.weight_device", ""),
            ("blkio.leaf_weight_device", ""),
            ("blkio.throttle.read_bps_device", ""),
            ("blkio.throttle.write_iops_device", ""),
        ],
    );
    let huge = f.dir(
        "hugetlb/c",
        &[
            ("hugetlb.2MB.limit_in_bytes", ""),
            ("hugetlb.2MB.rsvd.limit_in_bytes", ""),
        ],
    );
    let net = f.dir(
        "net_cls,net_prio/c",
        &[("net_cls.classid", ""), ("net_prio.ifpriomap", "")],
    );
    let rdma = f.dir("rdma/c", &[("rdma.max", "")]);
    let cg = state(vec![
        mem.clone(),
        cpu.clone(),
        cpuset.clone(),
        pids.clone(),
        blkio.clone(),
        huge.clone(),
        net.clone(),
        rdma.clone(),
    ]);
    let r = res(serde_json::json!({
        "memory": {"limit": 1048576, "reservation": 524288, "swap": 2097152, "swappiness": 10, "disableOOMKiller": true, "kernel": 1},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000, "burst": 1000, "realtimeRuntime": 950, "realtimePeriod": 1000, "cpus": "0-1", "mems": "0", "idle": 1},
        "pids": {"limit": 42},
        "blockIO": {"weight": 300, "leafWeight": 200, "weightDevice": [{"major": 8, "minor": 0, "weight": 100, "leafWeight": 50}],
                    "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                    "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 30}]},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
        "network": {"classID": 1048577, "priorities": [{"name": "eth0", "priority": 5}]},
        "rdma": {"mlx5_1": {"hcaHandles": 3}}
    }));
    cg.apply(&r, None, false).unwrap();
    assert_eq!(rd(&mem, "memory.limit_in_bytes"), "1048576");
    assert_eq!(rd(&mem, "memory.memsw.limit_in_bytes"), "2097152");
    assert_eq!(rd(&mem, "memory.soft_limit_in_bytes"), "524288");
    assert_eq!(rd(&mem, "memory.swappiness"), "10");
    assert_eq!(rd(&mem, "memory.oom_control"), "1");
    assert_eq!(rd(&cpu, "cpu.cfs_quota_us"), "50000");
    assert_eq!(rd(&cpu, "cpu.cfs_period_us"), "100000");
    assert_eq!(rd(&cpu, "cpu.cfs_burst_us"), "1000");
    assert_eq!(rd(&cpu, "cpu.rt_runtime_us"), "950");
    assert_eq!(rd(&cpu, "cpu.rt_period_us"), "1000");
    assert_eq!(rd(&cpu, "cpu.idle"), "1");
    assert_eq!(rd(&cpuset, "cpuset.cpus"), "0-1");
    assert_eq!(rd(&pids, "pids.max"), "42");
    assert_eq!(rd(&blkio, "blkio.weight"), "300");
    assert_eq!(rd(&blkio, "blkio.leaf_weight"), "200");
    assert_eq!(rd(&blkio, "blkio.weight_device"), "8:0 100");
    assert_eq!(rd(&blkio, "blkio.leaf_weight_device"), "8:0 50");
    assert_eq!(rd(&blkio, "blkio.throttle.read_bps_device"), "8:0 1048576");
    assert_eq!(rd(&blkio, "blkio.throttle.write_iops_device"), "8:16 30");
    assert_eq!(rd(&huge, "hugetlb.2MB.limit_in_bytes"), "4194304");
    assert_eq!(rd(&huge, "hugetlb.2MB.rsvd.limit_in_bytes"), "4194304");
    assert_eq!(rd(&net, "net_cls.classid"), "1048577");
    assert_eq!(rd(&net, "net_prio.ifpriomap"), "eth0 5");
    assert_eq!(rd(&rdma, "rdma.max"), "mlx5_1 hca_handle=3 hca_object=max");
    // unified keys are refused on v1, as runc.
    let u = res(serde_json::json!({"unified": {"memory.high": "1"}}));
    assert!(cg.apply(&u, None, false).is_err());
}

#[test]
fn v1_cpu_shares_clamp_is_reported() {
    let f = Fake::new("shares");
    let cpu = f.dir("cpu/c", &[("cpu.shares", "")]);
    // A fake file keeps what is written; a kernel clamp shows up as a different read-back.
    let r = res(serde_json::json!({"cpu": {"shares": 1}}));
    super::v1::cpu(&cpu, r.cpu().as_ref().unwrap()).unwrap();
    assert_eq!(rd(&cpu, "cpu.shares"), "1");
}

#[test]
fn v1_check_before_update_refuses_limit_below_usage() {
    let f = Fake::new("cbu");
    let mem = f.dir("memory/c", &V1_MEM);
    let cg = state(vec![mem.clone()]);
    let r = res(serde_json::json!({"memory": {"limit": 1024, "checkBeforeUpdate": true}}));
    let e = cg.apply(&r, None, true).unwrap_err().to_string();
    assert!(e.contains("current usage: 4096"), "{e}");
    assert_eq!(rd(&mem, "memory.limit_in_bytes"), "9223372036854771712");
    // At create time the check does not apply.
    cg.apply(&r, None, false).unwrap();
    assert_eq!(rd(&mem, "memory.limit_in_bytes"), "1024");
}

#[test]
fn v1_missing_file_error_names_file_and_value() {
    let f = Fake::new("err");
    let pids = f.dir("pids/c", &[("pids.current", "1")]);
    let r = res(serde_json::json!({"pids": {"limit": 7}}));
    let e = state(vec![pids.clone()])
        .apply(&r, None, false)
        .unwrap_err()
        .to_string();
    assert_eq!(e, format!("write 7 to {}: ENOENT", pids.join("pids.max").display()));
}

fn v2_dir(f: &Fake) -> PathBuf {
    f.dir(
        "c",
        &[
            ("cgroup.controllers", "cpu cpuset io memory pids hugetlb rdma"),
            ("memory.max", ""),
            ("memory.low", ""),
            ("memory.swap.max", ""),
            ("memory.current", "100"),
            ("memory.peak", "100"),
            ("cpu.weight", ""),
            ("cpu.max", ""),
            ("cpu.max.burst", ""),
            ("cpu.idle", ""),
            ("cpuset.cpus", ""),
            ("cpuset.mems", ""),
            ("pids.max", ""),
            ("io.weight", ""),
            ("io.max", ""),
            ("hugetlb.1GB.max", ""),
            ("hugetlb.1GB.rsvd.max", ""),
            ("rdma.max", ""),
            ("memory.high", ""),
        ],
    )
}

#[test]
fn v2_every_controller_with_runc_conversions() {
    let f = Fake::new("v2");
    let d = v2_dir(&f);
    let cg = state(vec![d.clone()]);
    assert_eq!(cg.layout(), Layout::V2);
    let r = res(serde_json::json!({
        "memory": {"limit": 1048576, "reservation": 4096, "swap": 3145728},
        "cpu": {"shares": 1024, "quota": 20000, "period": 100000, "burst": 5, "idle": 0, "cpus": "0", "mems": "0"},
        "pids": {"limit": -1},
        "blockIO": {"weight": 500, "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 100}]},
        "hugepageLimits": [{"pageSize": "1GB", "limit": 1073741824}],
        "rdma": {"mlx4_0": {"hcaHandles": 2, "hcaObjects": 3}},
        "unified": {"memory.high": "2000000"}
    }));
    cg.apply(&r, None, false).unwrap();
    assert_eq!(rd(&d, "memory.max"), "1048576");
    assert_eq!(rd(&d, "memory.swap.max"), "2097152");
    assert_eq!(rd(&d, "memory.low"), "4096");
    assert_eq!(rd(&d, "cpu.weight"), "39");
    assert_eq!(rd(&d, "cpu.max"), "20000 100000");
    assert_eq!(rd(&d, "cpu.max.burst"), "5");
    assert_eq!(rd(&d, "cpu.idle"), "0");
    assert_eq!(rd(&d, "cpuset.cpus"), "0");
    assert_eq!(rd(&d, "pids.max"), "max");
    assert_eq!(rd(&d, "io.weight"), "4950");
    assert_eq!(rd(&d, "io.max"), "8:0 rbps=100");
    assert_eq!(rd(&d, "hugetlb.1GB.max"), "1073741824");
    assert_eq!(rd(&d, "hugetlb.1GB.rsvd.max"), "1073741824");
    assert_eq!(rd(&d, "rdma.max"), "mlx4_0 hca_handle=2 hca_object=3");
    assert_eq!(rd(&d, "memory.high"), "2000000");
    // Realtime has no v2 file: an error, as runc.
    let rt = res(serde_json::json!({"cpu": {"realtimeRuntime": 5}}));
    assert!(cg.apply(&rt, None, false).is_err());
}

#[test]
fn v2_unified_keys_are_validated() {
    let f = Fake::new("uni");
    let d = v2_dir(&f);
    let cg = state(vec![d.clone()]);
    for bad in ["../memory.max", "a/b", "memory.nonexistent", ""] {
        let r = res(serde_json::json!({"unified": {bad: "1"}}));
        assert!(cg.apply(&r, None, false).is_err(), "{bad}");
    }
    assert!(!f.0.join("memory.max").exists() && !d.join("memory.nonexistent").exists());
}

#[test]
fn v2_bfq_weight_is_unconverted() {
    let f = Fake::new("bfq");
    let d = f.dir("c", &[("cgroup.controllers", "io"), ("io.bfq.weight", "")]);
    let r = res(serde_json::json!({"blockIO": {"weight": 500}}));
    state(vec![d.clone()]).apply(&r, None, false).unwrap();
    assert_eq!(rd(&d, "io.bfq.weight"), "500");
}

#[test]
fn v2_enables_only_needed_controllers_in_ancestors() {
    let f = Fake::new("subtree");
    let root = f.dir(
        "root",
        &[
            ("cgroup.controllers", "cpu io memory pids misc"),
            ("cgroup.subtree_control", "memory"),
        ],
    );
    let mid = f.dir(
        "root/mid",
        &[
            ("cgroup.controllers", "cpu memory pids"),
            ("cgroup.subtree_control", ""),
        ],
    );
    let leaf = f.dir("root/mid/leaf", &[("cgroup.controllers", "")]);
    v2::enable_controllers(&leaf).unwrap();
    // Already-enabled and unneeded controllers (misc) are not written; nothing is disabled.
    assert_eq!(rd(&root, "cgroup.subtree_control"), "+cpu +io +pids");
    assert_eq!(rd(&mid, "cgroup.subtree_control"), "+cpu +memory +pids");
    assert_eq!(rd(&leaf, "cgroup.controllers"), "");
}

#[test]
fn hybrid_uses_v1_and_tracks_unified() {
    let f = Fake::new("hybrid");
    let pids = f.dir("pids/c", &[("pids.max", "")]);
    let uni = f.dir("unified/c", &[("cgroup.controllers", ""), ("cgroup.procs", "7\n")]);
    let cg = state(vec![pids.clone(), uni.clone()]);
    assert_eq!(cg.layout(), Layout::Hybrid);
    assert_eq!(cg.unified(), Some(uni.clone()));
    cg.apply(&res(serde_json::json!({"pids": {"limit": 5}})), None, false)
        .unwrap();
    assert_eq!(rd(&pids, "pids.max"), "5");
    assert_eq!(cg.pids(), vec![7]);
}

#[test]
fn stats_read_v1_and_v2_files() {
    let f = Fake::new("stats");
    let mem = f.dir("memory/c", &V1_MEM);
    let pids = f.dir("pids/c", &[("pids.current", "3"), ("pids.max", "max")]);
    let s = state(vec![mem, pids]).stats();
    assert_eq!((s.pids.current, s.pids.limit), (3, 0));
    assert_eq!(s.memory.usage.usage, 4096);
    let d = v2_dir(&f);
    std::fs::write(d.join("cpu.stat"), "usage_usec 5\nuser_usec 3\nsystem_usec 2\n").unwrap();
    std::fs::write(d.join("pids.current"), "2").unwrap();
    std::fs::write(d.join("pids.max"), "9").unwrap();
    let s = state(vec![d]).stats();
    assert_eq!(s.cpu.usage.total, 5000);
    assert_eq!((s.pids.current, s.pids.limit), (2, 9));
    let j = serde_json::to_value(&s).unwrap();
    assert!(j["cpu"]["usage"]["total"].is_u64() && j["memory"]["usage"]["limit"].is_u64());
}

#[test]
fn state_of_an_older_berth_without_layout_is_probed() {
    let f = Fake::new("older");
    let d = v2_dir(&f);
    let m: Manager = serde_json::from_value(serde_json::json!({"paths": [d], "created": []})).unwrap();
    assert_eq!((m.layout, m.layout()), (None, Layout::V2));
    assert_eq!(m.clone_target(), Some(d.as_path()));
    let mut m = m;
    m.layout = Some(Layout::Hybrid);
    let back: Manager = serde_json::from_value(serde_json::to_value(&m).unwrap()).unwrap();
    assert_eq!((back.layout(), back.clone_target()), (Layout::Hybrid, None));
}
