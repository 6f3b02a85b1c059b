/*
 * early: a stand-in init for the VM test of the blocked-signals pitfall
 * (`rdinit=/sbin/early` on the kernel command line). The kernel discards a signal
 * sent to the init of the machine while the signal is unblocked and its disposition
 * is SIG_DFL (init is SIGNAL_UNKILLABLE); berth as PID 1 therefore blocks its signals
 * before anything else, so a SIGUSR2 (power off) sent during its boot stays pending
 * until its signalfd reads it. This program proves it with a signal sent at the
 * earliest moment it can be told apart from berth's start:
 *
 *   1. As PID 1, it forks a watcher, and waits until the watcher is ready.
 *   2. The watcher takes a private mount namespace with its own /proc (so nothing of
 *      it shows in PID 1's mounts), opens /proc/1/mounts (PID 1's mount table, whose
 *      poll(2) reports POLLPRI at its next change) and says it is ready.
 *   3. PID 1 execs /init (berth; the watcher stays its child). berth's first mount
 *      (/proc, in its boot duties, which come after it blocks its signals) wakes the
 *      watcher, which at once sends SIGUSR2 to PID 1.
 *   4. The watcher then reads PID 1's /proc/1/status and its descriptors, and prints
 *      one line: whether SIGUSR2 was blocked (SigBlk) and pending (ShdPnd) then, and
 *      whether berth's signalfd existed yet:
 *
 *        early: SIGUSR2 sent to PID 1 at its first mount: blocked=yes pending=yes
 *               signalfd=no mounts=N
 *
 * With signalfd=no the signal came before berth's signalfd: a berth that blocked
 * its signals only there (or later) would have lost it, kept running, and never
 * powered off. Errors print "early: error ..." and PID 1 still execs /init.
 *
 * Built static: gcc -static -O2 -o early early.c
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "say.h"

extern char **environ;

/* One line on the console (stderr is the kernel's console), with one write(2). */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    say_line(2, "early", fmt, ap);
    va_end(ap);
}

/* The hex mask of KEY ("SigBlk:") in /proc/1/status, or 0. */
static unsigned long long status_mask(const char *key) {
    FILE *f = fopen("/proc/1/status", "re");
    if (!f) return 0;
    char line[256];
    unsigned long long v = 0;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, klen) == 0) v = strtoull(line + klen, NULL, 16);
    fclose(f);
    return v;
}

/* Whether PID 1 holds a signalfd (a descriptor linked to "anon_inode:[signalfd]"). */
static int has_signalfd(void) {
    DIR *d = opendir("/proc/1/fd");
    if (!d) return -1;
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        char path[sizeof "/proc/1/fd/" + sizeof e->d_name], target[64];
        snprintf(path, sizeof path, "/proc/1/fd/%s", e->d_name);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n < 0) continue;
        target[n] = 0;
        found = strcmp(target, "anon_inode:[signalfd]") == 0;
    }
    closedir(d);
    return found;
}

/* The number of lines of PID 1's mount table. */
static int mount_count(void) {
    FILE *f = fopen("/proc/1/mounts", "re");
    if (!f) return -1;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

static int watch(int ready) {
    if (unshare(CLONE_NEWNS) < 0) {
        say("error unshare(CLONE_NEWNS): %s", strerror(errno));
        return 1;
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
        say("error making / private: %s", strerror(errno));
        return 1;
    }
    if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) {
        say("error mount proc: %s", strerror(errno));
        return 1;
    }
    int mounts = open("/proc/1/mounts", O_RDONLY | O_CLOEXEC);
    if (mounts < 0) {
        say("error open /proc/1/mounts: %s", strerror(errno));
        return 1;
    }
    (void)!write(ready, "r", 1);
    close(ready);
    struct pollfd p = {.fd = mounts, .events = POLLPRI};
    for (;;) {
        int n = poll(&p, 1, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            say("error poll /proc/1/mounts: %s", strerror(errno));
            return 1;
        }
        if (p.revents & (POLLPRI | POLLERR)) break;
    }
    if (kill(1, SIGUSR2) < 0) {
        say("error kill(1, SIGUSR2): %s", strerror(errno));
        return 1;
    }
    /* Read after the kill: what is seen here was so when the signal came, or later. */
    int fd = has_signalfd();
    unsigned long long bit = 1ULL << (SIGUSR2 - 1);
    unsigned long long blocked = status_mask("SigBlk:"), pending = status_mask("ShdPnd:");
    say("SIGUSR2 sent to PID 1 at its first mount: blocked=%s pending=%s signalfd=%s mounts=%d",
        blocked & bit ? "yes" : "no", pending & bit ? "yes" : "no",
        fd < 0 ? "unknown" : fd ? "yes" : "no", mount_count());
    return 0;
}

int main(void) {
    int ready[2];
    if (pipe(ready) < 0) {
        say("error pipe: %s", strerror(errno));
    } else {
        pid_t pid = fork();
        if (pid < 0) {
            say("error fork: %s", strerror(errno));
        } else if (pid == 0) {
            close(ready[0]);
            _exit(watch(ready[1]));
        } else {
            close(ready[1]);
            char c;
            ssize_t n;
            while ((n = read(ready[0], &c, 1)) < 0 && errno == EINTR) {
            }
            if (n != 1) say("error the watcher ended before it was ready");
            close(ready[0]);
        }
    }
    char *argv[] = {"/init", NULL};
    execve("/init", argv, environ);
    say("error exec /init: %s", strerror(errno));
    return 127;
}
