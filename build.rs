// Records the git commit for `berth --version` (runc prints a `commit:` line engines log), and
// builds the trampoline the init ends as (src/process/trampoline.c; see process/exe_guard.rs)
// on x86_64.
fn main() {
    println!("cargo:rerun-if-changed=src/process/trampoline.c");
    link_libseccomp();
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    // The commit moves with HEAD and with the branch it names. Their files are asked of git:
    // in a worktree `.git` is a file, and a path that does not exist would make cargo rerun
    // this script, and rebuild berth, on every build.
    let branch = git(&["symbolic-ref", "-q", "HEAD"]);
    for name in std::iter::once("HEAD").chain(branch.as_deref()) {
        if let Some(path) = git(&["rev-parse", "--git-path", name]) {
            if std::path::Path::new(&path).exists() {
                println!("cargo:rerun-if-changed={path}");
            }
        }
    }
    let commit = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BERTH_COMMIT={commit}");

    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("trampoline");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let built = arch == "x86_64"
        && std::process::Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
            // Freestanding: no libc to call (memset/memcpy), no TLS for a stack protector.
            .args([
                "-static",
                "-nostdlib",
                "-Os",
                "-ffreestanding",
                "-fno-builtin",
                "-fno-tree-loop-distribute-patterns",
                "-fno-stack-protector",
                "-fno-pie",
                "-no-pie",
                "-fno-asynchronous-unwind-tables",
                "-Wl,--build-id=none",
                "-s",
                "-o",
            ])
            .arg(&out)
            .arg("src/process/trampoline.c")
            .status()
            .is_ok_and(|s| s.success());
    if !built {
        // An empty trampoline: the created init then waits as berth itself and execs the
        // program directly, guarded by exe_guard's stat chain only.
        std::fs::write(&out, b"").unwrap();
        println!("cargo:warning=exec trampoline not built (needs x86_64 and a C compiler): the created init waits as berth itself and the CVE-2019-5736 defence falls back to the exe guard");
    }
}

/// Against musl, the one glibc-only symbol of Debian's libseccomp.a (see .cargo/config.toml)
/// comes from src/sys/musl_shim.c.
fn link_libseccomp() {
    println!("cargo:rerun-if-changed=src/sys/musl_shim.c");
    if std::env::var("CARGO_CFG_TARGET_ENV").as_deref() != Ok("musl") {
        return;
    }
    let dir = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let obj = dir.join("musl_shim.o");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let ok = std::process::Command::new(&cc)
        .args(["-c", "-O2", "-fPIC", "-fno-stack-protector", "-U_FORTIFY_SOURCE", "-o"])
        .arg(&obj)
        .arg("src/sys/musl_shim.c")
        .status()
        .is_ok_and(|s| s.success())
        && std::process::Command::new("ar")
            .arg("rcs")
            .arg(dir.join("libmusl_shim.a"))
            .arg(&obj)
            .status()
            .is_ok_and(|s| s.success());
    assert!(ok, "build src/sys/musl_shim.c with {cc} and ar");
    println!("cargo:rustc-link-search=native={}", dir.display());
    // Whole: nothing of berth calls it, libseccomp comes later on the link line.
    println!("cargo:rustc-link-lib=static:+whole-archive=musl_shim");
}
