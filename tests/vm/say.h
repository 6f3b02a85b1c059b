/* The VM programs' console lines (tests/vm/vmctl.c, tests/vm/early.c): "PREFIX: TEXT"
 * and a newline, written with one write(2) so that lines from berth and the kernel on
 * the same serial port never cut into it. Cut at 8 KiB (vmctl's `run` passes on a
 * program's lines of up to 8000 bytes). */
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

static void say_line(int fd, const char *prefix, const char *fmt, va_list ap) {
    char line[8192];
    int n = snprintf(line, sizeof line, "%s: ", prefix);
    if (n < 0 || (size_t)n >= sizeof line - 2) return;
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    if (m < 0) return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof line - 2) len = sizeof line - 2;
    line[len++] = '\n';
    (void)!write(fd, line, len);
}
