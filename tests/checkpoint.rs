//! `checkpoint` and `restore` with CRIU, end to end. CRIU (Debian's 3.17) works only in the
//! cgroup-v2 VM here (integration/vm/CRIU.md: this host's 6.18 kernel splits the vDSO in a way
//! it does not know), so the tests that run CRIU are #[ignore]d on the host and run by the VM
//! stage (`BERTH_VM_TESTS=checkpoint integration/vm/run-cgroup-tests.sh`), where a CRIU that
//! does not work fails them. The bad-input tests never reach CRIU and run everywhere.
mod common;
use common::*;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A counter in a shell variable, written with a token the shell made at start-up and keeps
/// only in its memory: after a restore the counter must go on from where it stopped and the
/// token be the same (memory intact, not a restarted process).
const COUNTER: &str = "t=$(cat /proc/sys/kernel/random/uuid); i=0; while :; do i=$((i+1)); echo \"$i $t\" > /tmp/c.new; mv /tmp/c.new /tmp/c; sleep 0.1; done";

fn read_counter(env: &Env) -> Option<(u64, String)> {
    let s = std::fs::read_to_string(env.rootfs().join("tmp/c")).ok()?;
    let mut it = s.split_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?.to_string()))
}

fn wait_counter_above(env: &Env, n: u64) -> (u64, String) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some((i, t)) = read_counter(env) {
            if i > n {
                return (i, t);
            }
        }
        assert!(
            Instant::now() < deadline,
            "counter does not pass {n}: {:?}",
            read_counter(env)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `run -d` with all stdio on /dev/null: the container inherits them, and a file outside its
/// mounts (the harness's output files) is not dumpable (runc's checkpoints have the same rule).
fn run_counter(env: &Env, id: &str) {
    let b = env.bundle.to_string_lossy().into_owned();
    let st = env
        .cmd(&["run", "-d", "-b", &b, id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "run -d {id}: {st}");
    wait_counter_above(env, 2);
}

fn counter_env() -> Env {
    Env::new(&["sh", "-c", COUNTER])
}

/// `restore -d` with stdio on /dev/null.
fn restore(env: &Env, id: &str, args: &[&str]) -> Output {
    let b = env.bundle.to_string_lossy().into_owned();
    let mut a = vec!["restore", "-d", "-b", &b];
    a.extend_from_slice(args);
    a.push(id);
    quiet(env.cmd(&a), env)
}

/// Run with stdin and stdout on /dev/null and stderr into a file in the test's directory (a
/// pipe would be held open by the container, which inherits it), with a timeout.
fn quiet(mut c: std::process::Command, env: &Env) -> Output {
    let err = env.dir.join(unique("stderr"));
    c.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&err).unwrap());
    let mut child = c.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let st = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "timed out: {c:?}: {}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        code: st.code().unwrap_or(-1),
        stdout: String::new(),
        stderr: std::fs::read_to_string(&err).unwrap_or_default(),
    }
}

fn frozen_at(env: &Env) -> (u64, String) {
    let a = read_counter(env).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let b = read_counter(env).unwrap();
    assert_eq!(a, b, "the counter moved after the checkpoint");
    a
}

fn continues_from(env: &Env, dumped: &(u64, String)) {
    let now = read_counter(env).unwrap();
    assert!(now.0 >= dumped.0, "counter restarted: {} after {}", now.0, dumped.0);
    assert_eq!(now.1, dumped.1, "the in-memory token changed: not the dumped process");
    let later = wait_counter_above(env, now.0);
    assert_eq!(later.1, dumped.1);
}

fn p(x: &Path) -> String {
    x.to_string_lossy().into_owned()
}

#[test]
#[ignore = "needs CRIU: the VM stage runs it"]
fn criu_checkpoint_then_restore_continues_the_counter() {
    require_root!();
    let env = counter_env();
    let id = env.id("criu-cr");
    run_counter(&env, &id);
    let img = env.dir.join("img");
    let work = env.dir.join("work");
    let o = env.berth(&["checkpoint", "--image-path", &p(&img), "--work-path", &p(&work), &id]);
    assert_eq!(
        o.code,
        0,
        "checkpoint: {}{}",
        o.stderr,
        std::fs::read_to_string(work.join("dump.log")).unwrap_or_default()
    );
    assert!(
        img.join("inventory.img").exists(),
        "no CRIU images in {}",
        img.display()
    );
    assert!(work.join("dump.log").exists(), "CRIU's log is in the work path");
    assert_eq!(env.status(&id), "stopped");
    let dumped = frozen_at(&env);
    // The same id: restore takes over the stopped container (runc's checkpoint removed it).
    let o = restore(
        &env,
        &id,
        &["--image-path", &p(&img), "--work-path", &p(&env.dir.join("rwork"))],
    );
    assert_eq!(
        o.code,
        0,
        "restore: {}{}",
        o.stderr,
        std::fs::read_to_string(env.dir.join("rwork/restore.log")).unwrap_or_default()
    );
    let st = env.state(&id);
    assert_eq!(st["status"], "running");
    assert!(st["pid"].as_i64().unwrap() > 0);
    continues_from(&env, &dumped);
    // the restored container is a normal one: kill and delete work, nothing is left
    env.berth(&["kill", &id, "KILL"]).ok();
    env.wait_status(&id, "stopped");
    env.berth(&["delete", &id]).ok();
    env.assert_gone(&id);
}

#[test]
#[ignore = "needs CRIU: the VM stage runs it"]
fn criu_leave_running_keeps_the_container_going() {
    require_root!();
    let env = counter_env();
    let id = env.id("criu-leave");
    run_counter(&env, &id);
    let img = env.dir.join("img");
    let o = env.berth(&["checkpoint", "--leave-running", "--image-path", &p(&img), &id]);
    assert_eq!(o.code, 0, "checkpoint --leave-running: {}", o.stderr);
    assert!(img.join("inventory.img").exists());
    assert_eq!(env.status(&id), "running");
    let (n, _) = read_counter(&env).unwrap();
    wait_counter_above(&env, n);
    env.berth(&["delete", "-f", &id]).ok();
    env.assert_gone(&id);
}

#[test]
#[ignore = "needs CRIU: the VM stage runs it"]
fn criu_pre_dump_then_dump_with_parent_restores_into_a_new_id() {
    require_root!();
    let env = counter_env();
    let id = env.id("criu-pre");
    run_counter(&env, &id);
    let pre = env.dir.join("img/pre");
    let full = env.dir.join("img/full");
    let o = env.berth(&["checkpoint", "--pre-dump", "--image-path", &p(&pre), &id]);
    assert_eq!(o.code, 0, "pre-dump: {}", o.stderr);
    assert_eq!(env.status(&id), "running", "a pre-dump leaves the container running");
    let (n, _) = read_counter(&env).unwrap();
    wait_counter_above(&env, n);
    // --parent-path is relative to the image path, as runc checks it
    let o = env.berth(&["checkpoint", "--image-path", &p(&full), "--parent-path", "/abs", &id]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("--parent-path must be relative"), "{}", o.stderr);
    let o = env.berth(&["checkpoint", "--image-path", &p(&full), "--parent-path", "pre", &id]);
    assert!(o.stderr.contains("invalid --parent-path"), "{}", o.stderr);
    assert_eq!(env.status(&id), "running", "a refused checkpoint touches nothing");
    let o = env.berth(&["checkpoint", "--image-path", &p(&full), "--parent-path", "../pre", &id]);
    assert_eq!(o.code, 0, "dump with parent: {}", o.stderr);
    assert!(full.join("parent").exists(), "CRIU linked the parent images");
    assert_eq!(env.status(&id), "stopped");
    let dumped = frozen_at(&env);
    let id2 = env.id("criu-new");
    let o = restore(&env, &id2, &["--image-path", &p(&full)]);
    assert_eq!(o.code, 0, "restore into {id2}: {}", o.stderr);
    assert_eq!(env.status(&id2), "running");
    continues_from(&env, &dumped);
    env.berth(&["delete", "-f", &id2]).ok();
    env.berth(&["delete", &id]).ok();
    env.assert_gone(&id);
    env.assert_gone(&id2);
}

#[test]
fn criu_bad_input_is_refused_and_leaves_nothing() {
    require_root!();
    let env = Env::new(&["sleep", "100"]);
    let img = env.dir.join("img");
    // no such container
    let o = env.berth(&["checkpoint", "--image-path", &p(&img), "nope"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("container does not exist"), "{}", o.stderr);
    // a container that is not running (created, never started)
    let id = env.id("criu-created");
    env.create(&id).ok();
    let o = env.berth(&["checkpoint", "--image-path", &p(&img), &id]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("Container cannot be checkpointed in created state"),
        "{}",
        o.stderr
    );
    assert!(!img.exists(), "a refused checkpoint made the image directory");
    assert_eq!(env.status(&id), "created");
    env.berth(&["delete", "-f", &id]).ok();
    // restore from a missing image directory: nothing made
    let id2 = env.id("criu-missing");
    let o = restore(&env, &id2, &["--image-path", &p(&img)]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("image path") && o.stderr.contains(&p(&img)),
        "{}",
        o.stderr
    );
    env.assert_gone(&id2);
    // an image directory that holds no checkpoint
    std::fs::create_dir_all(&img).unwrap();
    let o = restore(&env, &id2, &["--image-path", &p(&img)]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("descriptors.json"), "{}", o.stderr);
    env.assert_gone(&id2);
    // bad flags are refused before anything
    let o = restore(
        &env,
        &id2,
        &["--image-path", &p(&img), "--manage-cgroups-mode", "bogus"],
    );
    assert!(o.stderr.contains("Invalid manage cgroups mode"), "{}", o.stderr);
    let o = restore(&env, &id2, &["--image-path", &p(&img), "--empty-ns", "pid"]);
    assert!(
        o.stderr.contains("pid") && o.stderr.contains("is not supported"),
        "{}",
        o.stderr
    );
    env.assert_gone(&id2);
    env.assert_root_empty();
}
