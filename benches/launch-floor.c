/* The kernel's floor for a launch, for benches/launch-speed: the least a container
 * runtime must do for the same isolation, in plain C with no error reporting, no
 * masked paths, no device nodes, no capabilities and no seccomp:
 *   clone(pid, mount, uts, ipc, net) -> make mounts private -> overlay root ->
 *   /proc, /dev (tmpfs), /sys -> pivot_root -> exec /bin/true,
 * with a fresh memory cgroup (limit 64 MiB) that the child joins first thing, writing
 * 0 to its v1 `tasks` file (opened before the clone; a thread moving itself spares the
 * kernel's global lock, as berth does), removed after.
 * Usage: launch-floor LOWER UPPER WORK ROOT CGROUP_PREFIX LIMIT_FILE N
 * (cgroup i is the directory CGROUP_PREFIX-i)
 * Prints one `ns <nanoseconds>` line per launch. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static int put(const char *dir, const char *file, const char *text) {
    char path[8200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
    close(fd);
    return ok ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: launch-floor LOWER UPPER WORK ROOT CGROUP_PREFIX LIMIT_FILE N\n");
        return 2;
    }
    const char *lower = argv[1], *upper = argv[2], *work = argv[3], *root = argv[4];
    const char *cgparent = argv[5], *limit_file = argv[6];
    int n = atoi(argv[7]);
    char opts[8192], proc[4096], dev[4096], sys[4096];
    snprintf(opts, sizeof opts, "lowerdir=%s,upperdir=%s,workdir=%s", lower, upper, work);
    snprintf(proc, sizeof proc, "%s/proc", root);
    snprintf(dev, sizeof dev, "%s/dev", root);
    snprintf(sys, sizeof sys, "%s/sys", root);
    int flags = CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET;
    for (int i = 0; i < n + 3; i++) {
        char cg[4096], tasks_path[4200];
        snprintf(cg, sizeof cg, "%s-%d", cgparent, i);
        long t0 = now();
        if (mkdir(cg, 0755) < 0 || put(cg, limit_file, "67108864") < 0) {
            perror(cg);
            return 1;
        }
        snprintf(tasks_path, sizeof tasks_path, "%s/tasks", cg);
        int tasks = open(tasks_path, O_WRONLY | O_CLOEXEC);
        if (tasks < 0) {
            perror(tasks_path);
            return 1;
        }
        long pid = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
        if (pid == 0) {
            if (write(tasks, "0", 1) != 1) _exit(124);
            close(tasks);
            if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
                mount("overlay", root, "overlay", 0, opts) ||
                mount("proc", proc, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) ||
                mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755") ||
                mount("sysfs", sys, "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) ||
                chdir(root) || syscall(SYS_pivot_root, ".", ".") ||
                umount2(".", MNT_DETACH) || chdir("/"))
                _exit(125);
            char *args[] = {"true", NULL};
            execv("/bin/true", args);
            _exit(127);
        }
        close(tasks);
        if (pid < 0) {
            perror("clone");
            return 1;
        }
        int status;
        waitpid(pid, &status, 0);
        rmdir(cg);
        long t = now() - t0;
        if (status != 0) {
            fprintf(stderr, "launch-floor: the container exited with status %x\n", status);
            return 1;
        }
        if (i >= 3) printf("ns %ld\n", t);
    }
    return 0;
}
