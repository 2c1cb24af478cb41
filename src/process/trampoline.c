/* The last step of every container start: berth execs this ~4 KB program from a sealed memfd,
 * and it execs the container's program: execve(argv[0], &argv[1], envp). While the kernel
 * resolves the container's program (and any "#!" interpreter, such as /proc/self/exe), the
 * process's exe is this immutable memfd, never berth's binary on the host (CVE-2019-5736).
 * No libc: nothing but two syscalls. x86_64 only; elsewhere berth execs directly. */
__asm__(
    ".globl _start\n"
    "_start:\n"
    "  mov (%rsp), %rax\n"          /* argc */
    "  cmp $2, %rax\n"              /* berth passes path + argv0; fewer means we were run */
    "  jl 1f\n"                     /* as some script's interpreter: refuse, never loop */
    "  mov 8(%rsp), %rdi\n"         /* path = argv[0] */
    "  lea 16(%rsp), %rsi\n"        /* the program's argv = &argv[1] */
    "  lea 16(%rsp,%rax,8), %rdx\n" /* envp = &argv[argc + 1] */
    "  mov $59, %eax\n"             /* execve */
    "  syscall\n"
    "1:\n"
    "  mov $127, %edi\n"            /* exec failed: 127, as a shell would */
    "  mov $60, %eax\n"             /* exit */
    "  syscall\n");
