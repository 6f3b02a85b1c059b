/*
 * flaky: works for a few seconds, then crashes, so berth restarts it with backoff.
 *
 * Each run logs a line per second of "work" and fails after a random 2 to 6 seconds,
 * alternately by a crash (a write through a null pointer: killed by SIGSEGV; no core
 * dump, berth sets RLIMIT_CORE 0) and by exit(3).
 *
 * Why not abort()? In a berth app the program is PID 1 of its pid namespace, and the
 * kernel discards every signal sent to a namespace's init from inside it that init has
 * no handler for, its own SIGABRT included; glibc's abort() then falls back to a
 * privileged instruction and the process dies of SIGSEGV anyway, after a misleading
 * "abort()". A fault, which the kernel forces, kills PID 1 the same way everywhere.
 *
 * The run number is kept in $FLAKY_COUNTER (default /tmp/flaky.count): in a berth app
 * /tmp is in the app's writable layer, which survives restarts, so the count goes on
 * from run to run. Without a writable counter the kind of failure is random.
 * SIGTERM or SIGINT: logs "flaky: stopping" and exits 0.
 *
 * Built static: gcc -static -O2 -Wall -Wextra -o flaky flaky.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig) { stop_signal = sig; }

static void say(FILE *stream, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("flaky: ", stream);
    vfprintf(stream, fmt, ap);
    fputc('\n', stream);
    fflush(stream);
    va_end(ap);
}

/* The number of this run (1, 2, ...) from the counter file, which it updates; 0 when
 * the file cannot be read or written. */
static long next_run(const char *path) {
    long run = 0;
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%ld", &run) != 1 || run < 0) run = 0;
        fclose(f);
    }
    run++;
    f = fopen(path, "w");
    if (!f) return 0;
    int ok = fprintf(f, "%ld\n", run) > 0;
    if (fclose(f) != 0 || !ok) return 0;
    return run;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    srand((unsigned)(now.tv_nsec ^ now.tv_sec ^ getpid()));
    const char *counter = getenv("FLAKY_COUNTER");
    long run = next_run(counter && *counter ? counter : "/tmp/flaky.count");
    int seconds = 2 + rand() % 5;
    int by_crash = run ? run % 2 == 1 : rand() % 2;
    const char *how = by_crash ? "a crash (SIGSEGV)" : "exit(3)";
    if (run)
        say(stdout, "run %ld (pid %d): will fail after %d s by %s", run, (int)getpid(), seconds,
            how);
    else
        say(stdout, "run ? (pid %d): will fail after %d s by %s", (int)getpid(), seconds, how);

    for (int step = 1; step <= seconds && !stop_signal; step++) {
        struct timespec second = {.tv_sec = 1};
        while (!stop_signal && nanosleep(&second, &second) < 0 && errno == EINTR) {
        }
        if (!stop_signal) say(stdout, "working... %d/%d", step, seconds);
    }
    if (stop_signal) {
        say(stdout, "stopping");
        return 0;
    }
    if (by_crash) {
        say(stderr, "something went badly wrong: writing through a null pointer");
        volatile int *volatile nowhere = NULL; /* volatile: the store is kept as written */
        *nowhere = 42;
    }
    say(stderr, "giving up: exit 3");
    return 3;
}
