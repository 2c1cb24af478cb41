/* floor.c: the kernel work of one container start, with nothing else — the benchmark's floor.
 *
 *   floor ROOTFS NAME
 *
 * Does in one process what every runtime must do for the benchmark's bundle (`runc spec`,
 * args ["/bin/true"], no user namespace): a cgroup named NAME in every v1 hierarchy mounted under
 * /sys/fs/cgroup (the benchmark runs in cgview.sh's pure-v1 view), a child cloned into new
 * pid/mount/uts/ipc/net namespaces and placed in those cgroups, the runtime-spec default mount
 * set on ROOTFS (proc, /dev tmpfs with the default device nodes, devpts, shm, mqueue, sysfs, the
 * cgroup hierarchies read-only, the masked and read-only paths), pivot_root, hostname, exec of
 * /bin/true; the parent waits and removes the cgroups. No config parsing, no state, no CLI: what
 * a runtime costs above this is its own. Errors exit non-zero with one line naming the step.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAXCG 32
static char cgdirs[MAXCG][PATH_MAX];
static char cgnames[MAXCG][NAME_MAX + 1];
static int ncg;
/* The parent removes the cgroups it made on any error; the child never does. */
static pid_t parent;

static void die(const char *what, const char *arg) {
    fprintf(stderr, "floor: %s %s: %s\n", what, arg ? arg : "", strerror(errno));
    if (getpid() == parent)
        for (int i = 0; i < ncg; i++)
            rmdir(cgdirs[i]);
    _exit(1);
}

/* A new v1 cpuset cgroup has no CPUs and no memory nodes: no task can join it until they are
 * copied from the parent, as every runtime does. */
static void cpuset_inherit(const char *dir) {
    static const char *files[] = {"cpuset.cpus", "cpuset.mems"};
    for (int i = 0; i < 2; i++) {
        char from[PATH_MAX + 32], to[PATH_MAX + 32], v[4096];
        snprintf(from, sizeof from, "/sys/fs/cgroup/cpuset/%s", files[i]);
        snprintf(to, sizeof to, "%s/%s", dir, files[i]);
        int fd = open(from, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd < 0 ? -1 : read(fd, v, sizeof v);
        if (fd >= 0)
            close(fd);
        if (n <= 0)
            die("read", from);
        fd = open(to, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, v, n) != n)
            die("write", to);
        close(fd);
    }
}

static void make_cgroups(const char *name) {
    DIR *d = opendir("/sys/fs/cgroup");
    if (!d)
        die("opendir", "/sys/fs/cgroup");
    struct dirent *e;
    while ((e = readdir(d)) && ncg < MAXCG) {
        if (e->d_name[0] == '.' || e->d_type != DT_DIR)
            continue;
        char probe[PATH_MAX];
        snprintf(probe, sizeof probe, "/sys/fs/cgroup/%s/cgroup.procs", e->d_name);
        if (access(probe, F_OK))
            continue;
        snprintf(cgdirs[ncg], sizeof cgdirs[ncg], "/sys/fs/cgroup/%s/%s", e->d_name, name);
        snprintf(cgnames[ncg], sizeof cgnames[ncg], "%s", e->d_name);
        if (mkdir(cgdirs[ncg], 0755))
            die("mkdir", cgdirs[ncg]);
        ncg++;
        if (!strcmp(e->d_name, "cpuset"))
            cpuset_inherit(cgdirs[ncg - 1]);
    }
    closedir(d);
}

static void join_cgroups(pid_t pid) {
    char buf[32], path[PATH_MAX + 16];
    int n = snprintf(buf, sizeof buf, "%d", pid);
    for (int i = 0; i < ncg; i++) {
        snprintf(path, sizeof path, "%s/cgroup.procs", cgdirs[i]);
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, buf, n) != n) {
            int e = errno;
            /* The child is in some of the cgroups already: gone, they can be removed. */
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            errno = e;
            die("join", path);
        }
        close(fd);
    }
}

static void mnt(const char *src, const char *dst, const char *type, unsigned long fl, const char *data) {
    if (mount(src, dst, type, fl, data))
        die("mount", dst);
}

static void remount_ro(const char *dst, unsigned long fl) {
    mnt(NULL, dst, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | fl, NULL);
}

static void mkdirp(const char *p) {
    if (mkdir(p, 0755) && errno != EEXIST)
        die("mkdir", p);
}

static const char *masked[] = {"proc/acpi", "proc/asound", "proc/kcore", "proc/keys", "proc/latency_stats",
                               "proc/timer_list", "proc/timer_stats", "proc/sched_debug", "sys/firmware",
                               "proc/scsi", NULL};
static const char *readonly[] = {"proc/bus", "proc/fs", "proc/irq", "proc/sys", "proc/sysrq-trigger", NULL};

static int child(const char *rootfs, int go) {
    char c;
    if (read(go, &c, 1) != 1)
        _exit(1);
    mnt(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
    mnt(rootfs, rootfs, NULL, MS_BIND | MS_REC, NULL);
    if (chdir(rootfs))
        die("chdir", rootfs);
    const unsigned long nse = MS_NOSUID | MS_NOEXEC | MS_NODEV;
    mnt("proc", "proc", "proc", nse, NULL);
    mnt("tmpfs", "dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k");
    mkdirp("dev/pts");
    mnt("devpts", "dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5");
    mkdirp("dev/shm");
    mnt("shm", "dev/shm", "tmpfs", nse, "mode=1777,size=65536k");
    mkdirp("dev/mqueue");
    mnt("mqueue", "dev/mqueue", "mqueue", nse, NULL);
    mnt("sysfs", "sys", "sysfs", nse | MS_RDONLY, NULL);
    mnt("tmpfs", "sys/fs/cgroup", "tmpfs", nse, "mode=755");
    char dst[2 * PATH_MAX + 32];
    for (int i = 0; i < ncg; i++) {
        snprintf(dst, sizeof dst, "sys/fs/cgroup/%s", cgnames[i]);
        mkdirp(dst);
        mnt(cgdirs[i], dst, NULL, MS_BIND, NULL);
        remount_ro(dst, nse);
    }
    remount_ro("sys/fs/cgroup", nse);
    static const struct {
        const char *path;
        int maj, min;
    } devs[] = {{"dev/null", 1, 3}, {"dev/zero", 1, 5}, {"dev/full", 1, 7},
                {"dev/random", 1, 8}, {"dev/urandom", 1, 9}, {"dev/tty", 5, 0}};
    for (unsigned i = 0; i < sizeof devs / sizeof devs[0]; i++)
        if (mknod(devs[i].path, S_IFCHR | 0666, makedev(devs[i].maj, devs[i].min)))
            die("mknod", devs[i].path);
    if (symlink("pts/ptmx", "dev/ptmx") || symlink("/proc/self/fd", "dev/fd") ||
        symlink("/proc/self/fd/0", "dev/stdin") || symlink("/proc/self/fd/1", "dev/stdout") ||
        symlink("/proc/self/fd/2", "dev/stderr"))
        die("symlink", "dev");
    for (const char **m = masked; *m; m++) {
        struct stat st;
        if (stat(*m, &st))
            continue;
        if (S_ISDIR(st.st_mode))
            mnt("tmpfs", *m, "tmpfs", MS_RDONLY, NULL);
        else
            mnt("/dev/null", *m, NULL, MS_BIND, NULL);
    }
    for (const char **r = readonly; *r; r++) {
        if (access(*r, F_OK))
            continue;
        mnt(*r, *r, NULL, MS_BIND | MS_REC, NULL);
        remount_ro(*r, nse);
    }
    if (syscall(SYS_pivot_root, ".", "."))
        die("pivot_root", rootfs);
    if (umount2(".", MNT_DETACH))
        die("umount", "old root");
    if (chdir("/"))
        die("chdir", "/");
    remount_ro("/", 0);
    if (sethostname("floor", 5))
        die("sethostname", "");
    char *argv[] = {"/bin/true", NULL};
    char *envp[] = {"PATH=/bin", NULL};
    execve(argv[0], argv, envp);
    die("exec", argv[0]);
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: floor ROOTFS NAME\n");
        return 2;
    }
    parent = getpid();
    make_cgroups(argv[2]);
    int p[2];
    if (pipe2(p, O_CLOEXEC))
        die("pipe", "");
    pid_t pid = syscall(SYS_clone, CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | SIGCHLD,
                        NULL, NULL, NULL, NULL);
    if (pid < 0)
        die("clone", "");
    if (pid == 0) {
        close(p[1]);
        _exit(child(argv[1], p[0]));
    }
    close(p[0]);
    join_cgroups(pid);
    if (write(p[1], "g", 1) != 1)
        die("write", "go");
    close(p[1]);
    int st;
    if (waitpid(pid, &st, 0) != pid)
        die("waitpid", "");
    for (int i = 0; i < ncg; i++)
        if (rmdir(cgdirs[i]))
            die("rmdir", cgdirs[i]);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
