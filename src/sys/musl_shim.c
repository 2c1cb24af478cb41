/* Linked only when berth is built against musl (build.rs). Debian's libseccomp.a is compiled
 * against glibc with _FORTIFY_SOURCE: its fprintf calls became __fprintf_chk, which glibc alone
 * provides. The check level argument changes nothing for a format libseccomp itself supplies. */
#include <stdarg.h>
#include <stdio.h>

int __fprintf_chk(FILE *f, int flag, const char *fmt, ...);

int __fprintf_chk(FILE *f, int flag, const char *fmt, ...) {
    (void)flag;
    va_list ap;
    va_start(ap, fmt);
    int r = vfprintf(f, fmt, ap);
    va_end(ap);
    return r;
}
