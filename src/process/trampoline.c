/* The container's init ends as this small static program, run from a sealed memfd: it waits for
 * `start`, runs the startContainer hooks and execs the container's program. So while a
 * container is `created` its pid 1 is neither berth's binary on the host (CVE-2019-5736: a
 * process with CAP_SYS_PTRACE reaches /proc/1/exe even of a non-dumpable process) nor holding
 * anything of berth's caller (berth closed every other fd before exec'ing this). While the
 * kernel resolves the container's program (and any "#!" interpreter such as /proc/self/exe)
 * the process's exe is this immutable memfd, never berth's binary.
 *
 * `berth exec` into a pid namespace it joins: berth's own process never enters that namespace
 * (a container process with CAP_SYS_PTRACE could open its /proc/<pid>/exe while it sets up).
 * It sets up outside, where setns(CLONE_NEWPID) only marks its children, and execs this with a
 * first argument "p<fd>" ("P<fd>" with a terminal): this forks into the namespace (CLONE_PARENT,
 * so berth stays the parent and waits for the process), sends the child's pid to berth on the
 * sync socket <fd> (MSG_FORKED_PID) and exits; the child makes itself a session leader owning the
 * pty on fd 0 ("P"), and goes on as below.
 *
 * No libc, x86_64 only (elsewhere berth waits and execs itself). argv, as berth builds it:
 *   [0]  "f<fd>": wait for one byte on the exec fifo (create; `berth start` writes it), or
 *        "s<fd>": wait for a message on the sync socket (run, exec); an exec failure is sent
 *        back on it as MSG_EXEC_FAILED (errno, path), a hook failure as MSG_ERROR (text).
 *   [1]  number of startContainer hooks; per hook: path, timeout in seconds (0: none),
 *        argc, args..., envc ("-": the program's env), env...; then, with hooks, the fd of the
 *        state JSON they read on stdin.
 *   then the program's path and its argv; envp is the program's env.
 * Anything else (run as some script's interpreter, or by hand) exits 127 and never loops. */

/* Tags of the sync protocol (process/sync.rs: each message's tag is its step number; a unit
 * test there checks these). A message is the tag, a little-endian 32-bit number, then text. */
#define MSG_FORKED_PID 20
#define MSG_EXEC_FAILED 22
#define MSG_ERROR 23

#define SYS_read 0
#define SYS_write 1
#define SYS_close 3
#define SYS_poll 7
#define SYS_lseek 8
#define SYS_dup2 33
#define SYS_clone 56
#define SYS_execve 59
#define SYS_exit 60
#define SYS_wait4 61
#define SYS_kill 62
#define SYS_fcntl 72
#define SYS_ioctl 16
#define SYS_setsid 112
#define SYS_prctl 157
#define SYS_pidfd_open 434

#define EINTR 4
#define POLLIN 1
#define SIGCHLD 17
#define SIGKILL 9
#define F_SETFD 2
#define FD_CLOEXEC 1
#define PR_SET_PDEATHSIG 1
#define PR_SET_DUMPABLE 4
#define CLONE_PARENT 0x8000
#define TIOCSCTTY 0x540E

static long sc(long n, long a, long b, long c, long d, long e) {
    long ret;
    register long r10 __asm__("r10") = d;
    register long r8 __asm__("r8") = e;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10), "r"(r8)
                     : "rcx", "r11", "memory");
    return ret;
}

static void die(int code) {
    for (;;) sc(SYS_exit, code, 0, 0, 0, 0);
}

/* A decimal number that is the whole string; -1 otherwise. */
static long num(const char *s) {
    long v = 0;
    if (!s || !*s) return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > 100000000) return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

struct pollfd {
    int fd;
    short events, revents;
};

struct buf {
    char b[4096];
    long n;
};

static void put(struct buf *o, const char *s) {
    while (*s && o->n < (long)sizeof(o->b) - 1) o->b[o->n++] = *s++;
}

static void putnum(struct buf *o, long v) {
    char t[24];
    int i = 0;
    if (v < 0) {
        put(o, "-");
        v = -v;
    }
    do t[i++] = '0' + v % 10; while ((v /= 10) && i < 23);
    while (i > 0 && o->n < (long)sizeof(o->b) - 1) o->b[o->n++] = t[--i];
}

/* Go's texts for the errors an exec can end in (engines match them: 127 for "no such file or
 * directory", 126 for "permission denied"). */
static const char *errtext(long e) {
    switch (e) {
    case 1: return "operation not permitted";
    case 2: return "no such file or directory";
    case 7: return "argument list too long";
    case 8: return "exec format error";
    case 11: return "resource temporarily unavailable";
    case 12: return "cannot allocate memory";
    case 13: return "permission denied";
    case 20: return "not a directory";
    case 21: return "is a directory";
    case 25: return "inappropriate ioctl for device";
    case 26: return "text file busy";
    case 36: return "file name too long";
    case 38: return "function not implemented";
    case 40: return "too many levels of symbolic links";
    case 80: return "accessing a corrupted shared library";
    default: return 0;
    }
}

static int mode;   /* 'f' or 's' */
static long waitfd;

/* Report a failure where somebody hears it, then exit: on the sync socket berth run/exec is
 * waiting on (as message `tag` with `num`); otherwise (create) on the container's stderr, as
 * runc's init does. */
static void report(struct buf *o, int tag, long num) {
    if (mode == 's') { /* sync 22 or 23 */
        char m[4096 + 5];
        long i;
        m[0] = (char)tag;
        m[1] = (char)(num & 0xff);
        m[2] = (char)((num >> 8) & 0xff);
        m[3] = (char)((num >> 16) & 0xff);
        m[4] = (char)((num >> 24) & 0xff);
        for (i = 0; i < o->n; i++) m[5 + i] = o->b[i];
        if (sc(SYS_write, waitfd, (long)m, 5 + o->n, 0, 0) > 0) die(255);
    }
    put(o, "\n");
    sc(SYS_write, 2, (long)o->b, o->n, 0, 0);
    die(255);
}

/* A failure as its text alone: MSG_ERROR. */
static void fail(struct buf *o) {
    report(o, MSG_ERROR, 0);
}

/* A wait that failed (a seccomp profile denying poll or read): said on the container's stderr,
 * where runc's init reports its failures too, since the socket may be unusable as well. */
static void fail_wait(const char *what, long err) {
    struct buf o;
    o.n = 0;
    put(&o, "berth: wait for start: ");
    put(&o, what);
    put(&o, ": ");
    put(&o, errtext(-err) ? errtext(-err) : "error");
    put(&o, "\n");
    sc(SYS_write, 2, (long)o.b, o.n, 0, 0);
    die(255);
}

/* Block until `start`: a byte on the fifo, or the Start message on the socket (sync 21). EOF
 * on the socket means berth died before starting us. */
static void wait_start(void) {
    char b[64];
    long n;
    if (mode == 'f') {
        /* A fifo that never had a writer polls as empty, not as hung up (Linux). */
        struct pollfd pfd = {(int)waitfd, POLLIN, 0};
        while ((n = sc(SYS_poll, (long)&pfd, 1, -1, 0, 0)) == -EINTR)
            ;
        if (n < 0) fail_wait("poll", n);
    }
    while ((n = sc(SYS_read, waitfd, (long)b, sizeof(b), 0, 0)) == -EINTR)
        ;
    /* EOF on the socket: berth run/exec died before starting us, nobody to tell. */
    if (mode == 's' && n == 0) die(255);
    if (n < 0) fail_wait("read", n);
}

/* "p"/"P": fork into the pid namespace berth joined (setns applies to children only). The
 * parent reports the child's pid (MSG_FORKED_PID) and exits; berth waits for it. A failure is
 * sent as MSG_ERROR on the same socket, which is also the one the child waits on (mode 's'). */
static void fork_in(long sock, int terminal) {
    struct buf o;
    char m[5];
    long pid, e;
    o.n = 0;
    pid = sc(SYS_clone, CLONE_PARENT, 0, 0, 0, 0);
    if (pid < 0) {
        put(&o, "clone into the container's pid namespace: ");
        put(&o, errtext(-pid) ? errtext(-pid) : "error");
        fail(&o);
    }
    if (pid > 0) {
        m[0] = MSG_FORKED_PID; /* sync 20 */
        m[1] = (char)(pid & 0xff);
        m[2] = (char)((pid >> 8) & 0xff);
        m[3] = (char)((pid >> 16) & 0xff);
        m[4] = (char)((pid >> 24) & 0xff);
        /* Nobody to tell otherwise: berth sees EOF (or our exit) without a pid and fails. */
        die(sc(SYS_write, sock, (long)m, 5, 0, 0) == 5 ? 0 : 255);
    }
    /* Die with berth until the program runs, as berth's own init does. */
    sc(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (!terminal) return;
    /* The pty (fd 0-2, dup'ed by berth) becomes the controlling terminal of a session of the
     * process's own: the intermediate must not own it, or the tty would lose its session when
     * the intermediate exits. */
    if ((e = sc(SYS_setsid, 0, 0, 0, 0, 0)) < 0)
        put(&o, "setsid: ");
    else if ((e = sc(SYS_ioctl, 0, TIOCSCTTY, 0, 0, 0)) < 0)
        put(&o, "set controlling terminal: ");
    if (e < 0) {
        put(&o, errtext(-e) ? errtext(-e) : "error");
        fail(&o);
    }
}

/* One startContainer hook, with the state JSON on stdin (a file, so a hook that does not read
 * it cannot block us) and its timeout; the hook inherits the container's stdout/stderr, so a
 * chatty or daemonising hook cannot block us either: only its own exit is waited for. */
static void run_hook(long i, char *path, long timeout, char **argv, char **envp, long statefd) {
    struct buf o;
    long pid, timed_out = 0;
    int status = 0;
    o.n = 0;
    sc(SYS_lseek, statefd, 0, 0, 0, 0);
    pid = sc(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) {
        if (sc(SYS_dup2, statefd, 0, 0, 0, 0) < 0) die(127);
        sc(SYS_close, waitfd, 0, 0, 0, 0);
        sc(SYS_close, statefd, 0, 0, 0, 0);
        sc(SYS_execve, (long)path, (long)argv, (long)envp, 0, 0);
        die(127);
    }
    put(&o, "error running startContainer hook #");
    putnum(&o, i);
    put(&o, " (");
    put(&o, path);
    put(&o, "): ");
    if (pid < 0) {
        put(&o, "fork: ");
        put(&o, errtext(-pid) ? errtext(-pid) : "error");
        fail(&o);
    }
    if (timeout > 0) {
        long pidfd = sc(SYS_pidfd_open, pid, 0, 0, 0, 0), n = 1;
        struct pollfd pfd = {(int)pidfd, POLLIN, 0};
        if (pidfd >= 0) {
            while ((n = sc(SYS_poll, (long)&pfd, 1, timeout * 1000, 0, 0)) == -EINTR)
                ;
            sc(SYS_close, pidfd, 0, 0, 0, 0);
        }
        if (n == 0) {
            sc(SYS_kill, pid, SIGKILL, 0, 0, 0);
            timed_out = 1;
        }
    }
    while (sc(SYS_wait4, pid, (long)&status, 0, 0, 0) == -EINTR)
        ;
    if (timed_out) {
        put(&o, "timed out after ");
        putnum(&o, timeout);
        put(&o, " seconds");
        fail(&o);
    }
    if ((status & 0x7f) != 0) {
        put(&o, "signal: ");
        putnum(&o, status & 0x7f);
        fail(&o);
    }
    if (((status >> 8) & 0xff) != 0) {
        put(&o, "exit status ");
        putnum(&o, (status >> 8) & 0xff);
        fail(&o);
    }
}

/* Each hook's argv and env, NULL-terminated, copied out of berth's flat argv. */
static char *pool[8192];

__attribute__((used)) static void tmain(long argc, char **argv) {
    char **envp = argv + argc + 1, **envs[64], **hargv[64], *paths[64];
    long timeouts[64], nhooks, i, k = 2, p = 0, statefd = -1, err, cloexec, psock = -1;
    int terminal = 0;
    struct buf o;
    o.n = 0;
    if (argc > 1 && (argv[0][0] == 'p' || argv[0][0] == 'P')) {
        terminal = argv[0][0] == 'P';
        psock = num(argv[0] + 1);
        if (psock < 0) die(127);
        argv++;
        argc--;
    }
    if (argc < 4 || (argv[0][0] != 'f' && argv[0][0] != 's')) die(127);
    mode = argv[0][0];
    waitfd = num(argv[0] + 1);
    nhooks = num(argv[1]);
    if (waitfd < 0 || nhooks < 0 || nhooks > 64) die(127);
    /* The forked child waits for Start on the socket its pid went to. */
    if (psock >= 0 && (mode != 's' || psock != waitfd)) die(127);
    /* Parse everything before waiting: a malformed argv never waits. */
    for (i = 0; i < nhooks; i++) {
        long na, ne, j;
        if (k + 3 > argc) die(127);
        paths[i] = argv[k];
        timeouts[i] = num(argv[k + 1]);
        na = num(argv[k + 2]);
        k += 3;
        if (timeouts[i] < 0 || na < 0 || k + na >= argc || p + na + 1 > 8192) die(127);
        hargv[i] = pool + p;
        for (j = 0; j < na; j++) pool[p++] = argv[k++];
        pool[p++] = 0;
        if (argv[k][0] == '-' && argv[k][1] == 0) {
            envs[i] = envp;
            k++;
            continue;
        }
        ne = num(argv[k++]);
        if (ne < 0 || k + ne > argc || p + ne + 1 > 8192) die(127);
        envs[i] = pool + p;
        for (j = 0; j < ne; j++) pool[p++] = argv[k++];
        pool[p++] = 0;
    }
    if (nhooks > 0 && (k >= argc || (statefd = num(argv[k++])) < 0)) die(127);
    if (k + 1 >= argc) die(127);
    sc(SYS_prctl, PR_SET_DUMPABLE, 0, 0, 0, 0);
    /* The socket (run, exec) and the fifo (create) close at the final exec, so berth sees EOF on
     * the socket, and `berth start` sees the fifo lose its last reader, exactly when the program
     * runs: poststart hooks run after it. Where fcntl is denied the fd is closed right before
     * the exec instead. */
    cloexec = sc(SYS_fcntl, waitfd, F_SETFD, FD_CLOEXEC, 0, 0) >= 0;
    if (psock >= 0) fork_in(psock, terminal);
    wait_start();
    for (i = 0; i < nhooks; i++) run_hook(i, paths[i], timeouts[i], hargv[i], envs[i], statefd);
    if (statefd >= 0) sc(SYS_close, statefd, 0, 0, 0, 0);
    /* Started: the container no longer dies with berth run/exec. */
    sc(SYS_prctl, PR_SET_PDEATHSIG, 0, 0, 0, 0);
    if (!cloexec) {
        sc(SYS_close, waitfd, 0, 0, 0, 0);
        mode = 'f';
    }
    err = -sc(SYS_execve, (long)argv[k], (long)(argv + k + 1), (long)envp, 0, 0);
    if (mode == 's') {
        put(&o, argv[k]);
        report(&o, MSG_EXEC_FAILED, err); /* sync 22 */
    }
    put(&o, "exec ");
    put(&o, argv[k]);
    put(&o, ": ");
    if (errtext(err)) {
        put(&o, errtext(err));
    } else {
        put(&o, "errno ");
        putnum(&o, err);
    }
    fail(&o);
}

__asm__(
    ".globl _start\n"
    "_start:\n"
    "  mov (%rsp), %rdi\n"     /* argc */
    "  lea 8(%rsp), %rsi\n"    /* argv */
    "  and $-16, %rsp\n"
    "  call tmain\n"
    "  mov $127, %edi\n"
    "  mov $60, %eax\n"
    "  syscall\n");
