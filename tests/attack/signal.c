/*
 * signal: an app that signals its supervisor, for tests/security_signals.rs.
 *
 * Built statically by that test (gcc -static -O2 -o signal signal.c) and bound into
 * the probe image's app, which runs without a pid namespace, so its parent is berth.
 *
 *   signal stay|exit SIG...   kill(getppid(), SIG) for each SIG (TERM, INT, HUP, USR1,
 *                             USR2), printing "sent SIG to PID" or "SIG: error text"
 *                             after each; then pause() forever (stay: berth can tell
 *                             where the sender is) or exit 0 at once (exit: the sender
 *                             may be gone before berth looks)
 *
 * A usage error exits 125.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int number(const char *name) {
    static const struct {
        const char *name;
        int number;
    } names[] = {{"TERM", SIGTERM}, {"INT", SIGINT}, {"HUP", SIGHUP},
                 {"USR1", SIGUSR1}, {"USR2", SIGUSR2}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i].name) == 0) return names[i].number;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3 || (strcmp(argv[1], "stay") != 0 && strcmp(argv[1], "exit") != 0)) {
        fprintf(stderr, "usage: signal stay|exit SIG...\n");
        return 125;
    }
    for (int i = 2; i < argc; i++)
        if (number(argv[i]) == 0) {
            fprintf(stderr, "unknown signal %s\n", argv[i]);
            return 125;
        }
    pid_t parent = getppid();
    for (int i = 2; i < argc; i++) {
        if (kill(parent, number(argv[i])) == 0)
            printf("sent %s to %d\n", argv[i], (int)parent);
        else
            printf("%s: %s\n", argv[i], strerror(errno));
        fflush(stdout);
    }
    if (strcmp(argv[1], "exit") == 0) return 0;
    for (;;) pause();
}
