// Records the git commit for `berth --version` (runc prints a `commit:` line engines log), and
// builds the trampoline the init ends as (src/process/trampoline.c; see process/exe_guard.rs)
// on x86_64.
fn main() {
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    println!("cargo:rerun-if-changed=src/process/trampoline.c");
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
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
        // berth then execs the container's program directly, guarded by the stat chain only.
        std::fs::write(&out, b"").unwrap();
        println!("cargo:warning=exec trampoline not built (needs x86_64 and a C compiler): the created init waits as berth itself and the CVE-2019-5736 defence falls back to the exe guard");
    }
}
