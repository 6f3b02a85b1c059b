/*
 * hog: eats memory until the kernel stops it.
 *
 * Allocates and touches 1 MiB every 100 ms, never freeing, and logs the total after
 * each step. Under a memory cap (the demo's manifest sets `resources.memory: 16M`) the
 * kernel's OOM killer ends it with SIGKILL at about 15 MiB, and berth reports "killed by
 * the kernel: out of memory". As a safety net when run without a cap it stops by itself
 * at $HOG_MAX_MB MiB (default 256) with exit status 2. SIGTERM or SIGINT: logs
 * "hog: stopping" and exits 0.
 *
 * Built static: gcc -static -O2 -Wall -Wextra -o hog hog.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024L * 1024L)

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig) { stop_signal = sig; }

static void say(FILE *stream, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("hog: ", stream);
    vfprintf(stream, fmt, ap);
    fputc('\n', stream);
    fflush(stream);
    va_end(ap);
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    long max_mb = 256;
    const char *max_text = getenv("HOG_MAX_MB");
    if (max_text && *max_text) {
        char *end;
        max_mb = strtol(max_text, &end, 10);
        if (end == max_text || *end || max_mb < 1) {
            say(stderr, "HOG_MAX_MB=%s: expected a number of MiB", max_text);
            return 2;
        }
    }
    say(stdout, "pid %d: touching 1 MiB every 100 ms until the kernel stops me", (int)getpid());
    for (long total = 1; total <= max_mb && !stop_signal; total++) {
        /* mmap, not malloc: each MiB is its own mapping, touched page by page. */
        char *p = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            say(stderr, "mmap of MiB %ld failed: %s", total, strerror(errno));
            return 1;
        }
        memset(p, 0xa5, MIB);
        say(stdout, "%ld MiB touched", total);
        struct timespec tenth = {.tv_nsec = 100 * 1000 * 1000};
        while (!stop_signal && nanosleep(&tenth, &tenth) < 0 && errno == EINTR) {
        }
    }
    if (stop_signal) {
        say(stdout, "stopping");
        return 0;
    }
    say(stderr, "reached HOG_MAX_MB=%ld MiB and nobody stopped me: is there no memory cap?",
        max_mb);
    return 2;
}
