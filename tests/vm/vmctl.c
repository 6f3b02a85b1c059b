/*
 * vmctl: the VM test's hand inside the virtual machine. It runs as a berth app in the
 * host's pid, uts and network namespaces (`namespaces: [mount]`), with the serial
 * port (its one argument, default /dev/ttyS0; /dev/ttyAMA0 on aarch64's qemu virt
 * machine; also the kernel's console) as one of its `devices` and
 * the cgroup2 tree bound read-only at /cg. It reads one command per line from the
 * serial port (written by the test into qemu's stdin) and answers on the same port,
 * each answer one line starting with "vmctl: ", written with one write(2), and each
 * command ending with "vmctl: ok CMD" or "vmctl: error CMD: WHY":
 *
 *   cat FILE...       each line of each FILE as "vmctl: FILE: LINE"
 *   find FILE TEXT... "vmctl: found "TEXT" in FILE" if a line of FILE contains TEXT
 *                     (its words joined by single spaces; lines of any length, e.g.
 *                     the probe's JSON report; FILE may be /dev/kmsg: one record a
 *                     line, read until there are no more)
 *   cpu MS DIR...     the CPU time each cgroup DIR used over MS milliseconds:
 *                     "vmctl: cpu wall_ms=W DIR=USED_MS DIR=USED_MS ..."
 *   uptime            "vmctl: uptime MS" (CLOCK_BOOTTIME)
 *   poweroff          SIGUSR2 to PID 1 (berth): stop every app, then power off
 *   run PROG ARG...   runs PROG (an absolute path) with stdin /dev/null and its stdout
 *                     and stderr on one pipe: each line it prints as "vmctl: out LINE"
 *                     (a line cut at OUT_MAX bytes), then "vmctl: exit N" (its exit
 *                     status, or 128 + the signal that killed it). A SIGTERM (berth
 *                     stopping vmctl) during a run ends vmctl once PROG has printed a
 *                     line, so the answer to a `berth shutdown` it runs is seen
 *                     before berth stops it.
 *
 * At start it prints "vmctl: ready hostname=NAME uptime_ms=MS realtime_ms=MS": the
 * time since the kernel started (CLOCK_BOOTTIME) and the wall clock (CLOCK_REALTIME,
 * the clock of berth's log timestamps) read together, so a benchmark can place berth's
 * lines on the kernel's time line (benches/boot-speed). Echo is turned off on the
 * port, so the commands themselves do not show on the console.
 *
 * Built static: gcc -static -O2 -o vmctl vmctl.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "say.h"

static int tty = -1;
static const char *tty_path = "/dev/ttyS0";

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    say_line(tty, "vmctl", fmt, ap);
    va_end(ap);
}

static long long now_ms(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int cmd_cat(char **args, int n) {
    for (int i = 0; i < n; i++) {
        FILE *f = fopen(args[i], "re");
        if (!f) {
            say("error cat: %s: %s", args[i], strerror(errno));
            return 1;
        }
        char line[900];
        while (fgets(line, sizeof line, f)) {
            line[strcspn(line, "\n")] = 0;
            say("%s: %s", args[i], line);
        }
        fclose(f);
    }
    return 0;
}

static int cmd_find(char **args, int n) {
    if (n < 2) {
        say("error find: usage: find FILE TEXT...");
        return 1;
    }
    /* The words of TEXT, joined again with single spaces. */
    char text[512] = "";
    for (int i = 1; i < n; i++) {
        if (i > 1) strncat(text, " ", sizeof text - strlen(text) - 1);
        strncat(text, args[i], sizeof text - strlen(text) - 1);
    }
    /* Non-blocking, for /dev/kmsg: its reads block after the last record. */
    int fd = open(args[0], O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    FILE *f = fd < 0 ? NULL : fdopen(fd, "r");
    if (!f) {
        say("error find: %s: %s", args[0], strerror(errno));
        if (fd >= 0) close(fd);
        return 1;
    }
    char *line = NULL;
    size_t cap = 0;
    int found = 0;
    while (!found && getline(&line, &cap, f) >= 0) found = strstr(line, text) != NULL;
    free(line);
    fclose(f);
    if (!found) {
        say("error find: \"%s\" not in %s", text, args[0]);
        return 1;
    }
    say("found \"%s\" in %s", text, args[0]);
    return 0;
}

/* usage_usec of DIR/cpu.stat, or -1. */
static long long usage_usec(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/cpu.stat", dir);
    FILE *f = fopen(path, "re");
    if (!f) return -1;
    long long v = -1;
    char key[64];
    long long value;
    while (fscanf(f, "%63s %lld", key, &value) == 2) {
        if (strcmp(key, "usage_usec") == 0) {
            v = value;
            break;
        }
    }
    fclose(f);
    return v;
}

#define MAX_DIRS 8

static int cmd_cpu(char **args, int n) {
    if (n < 2 || n - 1 > MAX_DIRS) {
        say("error cpu: usage: cpu MS DIR...");
        return 1;
    }
    long ms = atol(args[0]);
    long long before[MAX_DIRS], after[MAX_DIRS];
    long long t0 = now_ms(CLOCK_MONOTONIC);
    for (int i = 1; i < n; i++) before[i - 1] = usage_usec(args[i]);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {}
    for (int i = 1; i < n; i++) after[i - 1] = usage_usec(args[i]);
    long long wall = now_ms(CLOCK_MONOTONIC) - t0;
    char line[900];
    int len = snprintf(line, sizeof line, "cpu wall_ms=%lld", wall);
    for (int i = 1; i < n && len < (int)sizeof line; i++) {
        if (before[i - 1] < 0 || after[i - 1] < 0) {
            say("error cpu: no usage_usec in %s/cpu.stat", args[i]);
            return 1;
        }
        len += snprintf(line + len, sizeof line - (size_t)len, " %s=%lld", args[i],
                        (after[i - 1] - before[i - 1]) / 1000);
    }
    say("%s", line);
    return 0;
}

/* The longest line of a program's output `run` passes on (a `berth status --json`
 * answer of every app is one line); say.h cuts its lines at the same length. */
#define OUT_MAX 8000

static volatile sig_atomic_t terminated;

static void on_term(int sig) {
    (void)sig;
    terminated = 1;
}

static int cmd_run(char **args, int n) {
    if (n < 1 || args[0][0] != '/') {
        say("error run: usage: run /PROG ARG...");
        return 1;
    }
    int out[2];
    if (pipe2(out, O_CLOEXEC) < 0) {
        say("error run: pipe: %s", strerror(errno));
        return 1;
    }
    /* SIGTERM is blocked but while waiting for output (ppoll), where it sets a flag. */
    sigset_t term, old;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigprocmask(SIG_BLOCK, &term, &old);
    struct sigaction sa = {.sa_handler = on_term}, dfl;
    sigaction(SIGTERM, &sa, &dfl);
    pid_t pid = fork();
    if (pid == 0) {
        sigaction(SIGTERM, &dfl, NULL);
        sigprocmask(SIG_SETMASK, &old, NULL);
        int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null < 0 || dup2(null, 0) < 0 || dup2(out[1], 1) < 0 || dup2(out[1], 2) < 0) _exit(127);
        char *argv[33];
        memcpy(argv, args, (size_t)n * sizeof *argv);
        argv[n] = NULL;
        execv(args[0], argv);
        dprintf(2, "exec %s: %s\n", args[0], strerror(errno));
        _exit(127);
    }
    close(out[1]);
    if (pid < 0) {
        say("error run: fork: %s", strerror(errno));
        close(out[0]);
        sigaction(SIGTERM, &dfl, NULL);
        sigprocmask(SIG_SETMASK, &old, NULL);
        return 1;
    }
    static char line[OUT_MAX + 1];
    size_t len = 0;
    int lines = 0;
    char chunk[4096];
    for (;;) {
        if (terminated && lines > 0) break;
        struct pollfd p = {.fd = out[0], .events = POLLIN};
        sigset_t waiting = old;
        sigdelset(&waiting, SIGTERM);
        if (ppoll(&p, 1, NULL, &waiting) < 0 && errno == EINTR) continue; /* the flag, again */
        ssize_t r = read(out[0], chunk, sizeof chunk);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        for (ssize_t i = 0; i < r; i++) {
            if (chunk[i] == '\n') {
                line[len] = 0;
                say("out %s", line);
                lines++;
                len = 0;
            } else if (len < OUT_MAX) {
                line[len++] = chunk[i]; /* past OUT_MAX, the rest of the line is dropped */
            }
        }
    }
    close(out[0]);
    if (terminated) {
        /* Stopped by berth: end by the signal, as vmctl does outside a run. */
        sigaction(SIGTERM, &dfl, NULL);
        sigprocmask(SIG_SETMASK, &old, NULL);
        raise(SIGTERM);
    }
    if (len > 0) {
        line[len] = 0;
        say("out %s", line);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    sigaction(SIGTERM, &dfl, NULL);
    sigprocmask(SIG_SETMASK, &old, NULL);
    say("exit %d", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1) tty_path = argv[1];
    tty = open(tty_path, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (tty < 0) {
        fprintf(stderr, "vmctl: open %s: %s\n", tty_path, strerror(errno));
        return 1;
    }
    struct termios t;
    if (tcgetattr(tty, &t) == 0) {
        t.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
        t.c_lflag |= ICANON;
        (void)tcsetattr(tty, TCSANOW, &t);
    }
    char host[128] = "?";
    (void)gethostname(host, sizeof host - 1);
    long long boot = now_ms(CLOCK_BOOTTIME), real = now_ms(CLOCK_REALTIME);
    say("ready hostname=%s uptime_ms=%lld realtime_ms=%lld", host, boot, real);

    char buf[4096];
    size_t have = 0;
    for (;;) {
        ssize_t r = read(tty, buf + have, sizeof buf - 1 - have);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            fprintf(stderr, "vmctl: read %s: %s\n", tty_path, strerror(errno));
            return 1;
        }
        have += (size_t)r;
        buf[have] = 0;
        char *nl;
        while ((nl = memchr(buf, '\n', have)) != NULL) {
            *nl = 0;
            char *args[32];
            int n = 0;
            for (char *tok = strtok(buf, " \t\r"); tok && n < 32; tok = strtok(NULL, " \t\r"))
                args[n++] = tok;
            if (n > 0) {
                int failed = 0;
                if (strcmp(args[0], "cat") == 0) {
                    failed = cmd_cat(args + 1, n - 1);
                } else if (strcmp(args[0], "find") == 0) {
                    failed = cmd_find(args + 1, n - 1);
                } else if (strcmp(args[0], "cpu") == 0) {
                    failed = cmd_cpu(args + 1, n - 1);
                } else if (strcmp(args[0], "uptime") == 0) {
                    say("uptime %lld", now_ms(CLOCK_BOOTTIME));
                } else if (strcmp(args[0], "run") == 0) {
                    failed = cmd_run(args + 1, n - 1);
                } else if (strcmp(args[0], "poweroff") == 0) {
                    if (kill(1, SIGUSR2) < 0) {
                        say("error poweroff: kill(1, SIGUSR2): %s", strerror(errno));
                        failed = 1;
                    }
                } else {
                    say("error %s: unknown command", args[0]);
                    failed = 1;
                }
                if (!failed) say("ok %s", args[0]);
            }
            size_t used = (size_t)(nl - buf) + 1;
            memmove(buf, nl + 1, have - used);
            have -= used;
        }
        if (have == sizeof buf - 1) have = 0; /* a line too long: dropped */
    }
}
