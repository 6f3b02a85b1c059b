/*
 * The device attacks of issue 16 (items 4 and 14), run inside an app by the security
 * tests: static, no libc beyond the syscalls. Each subcommand prints one line saying
 * what each step gave (`ok` or the errno's name) and exits 0, so the test reads the
 * exact outcome from the app's log once berth reports the exit.
 *
 *   mknod-write PATH MAJOR MINOR MARKER   mknod a char node, open it write-only, write MARKER
 *   open PATH                             open an existing node read-write, write one byte, read one
 *   nodes DIR                             every char/block node in DIR: NAME c|b MAJOR:MINOR
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static const char *err(int e) {
    switch (e) {
    case 0: return "ok";
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENOENT: return "ENOENT";
    case EEXIST: return "EEXIST";
    case ENXIO: return "ENXIO";
    case EINVAL: return "EINVAL";
    case ENODEV: return "ENODEV";
    case EROFS: return "EROFS";
    default: return strerror(e);
    }
}

static int mknod_write(const char *path, const char *maj, const char *min, const char *marker) {
    int m = mknod(path, S_IFCHR | 0600, makedev(atoi(maj), atoi(min))) == 0 ? 0 : errno;
    /* The node may also be there already (an image's), so open it either way. */
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    int o = fd >= 0 ? 0 : errno;
    int w = -1;
    if (fd >= 0) {
        /* One record with its newline: the kernel finalises (and shows to readers) a
         * /dev/kmsg record only when it ends with one. */
        char line[512];
        int n = snprintf(line, sizeof line, "%s\n", marker);
        w = write(fd, line, (size_t)n) >= 0 ? 0 : errno;
        close(fd);
    }
    printf("mknod=%s open=%s write=%s\n", err(m), err(o), w < 0 ? "-" : err(w));
    return 0;
}

static int open_rw(const char *path) {
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        printf("%s open=%s\n", path, err(errno));
        return 0;
    }
    char c = 0;
    int w = write(fd, "x", 1) == 1 ? 0 : errno;
    int r = read(fd, &c, 1) >= 0 ? 0 : errno;
    printf("%s open=ok write=%s read=%s\n", path, err(w), err(r));
    close(fd);
    return 0;
}

static int cmp(const struct dirent **a, const struct dirent **b) {
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int nodes(const char *dir) {
    struct dirent **list;
    int n = scandir(dir, &list, NULL, cmp);
    if (n < 0) {
        printf("%s scandir=%s\n", dir, err(errno));
        return 0;
    }
    for (int i = 0; i < n; i++) {
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, list[i]->d_name);
        if (lstat(path, &st) == 0 && (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)))
            printf("%s %c %u:%u\n", list[i]->d_name, S_ISCHR(st.st_mode) ? 'c' : 'b',
                   major(st.st_rdev), minor(st.st_rdev));
        free(list[i]);
    }
    free(list);
    printf("end of %s\n", dir);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 6 && strcmp(argv[1], "mknod-write") == 0)
        return mknod_write(argv[2], argv[3], argv[4], argv[5]);
    if (argc == 3 && strcmp(argv[1], "open") == 0) return open_rw(argv[2]);
    if (argc == 3 && strcmp(argv[1], "nodes") == 0) return nodes(argv[2]);
    fprintf(stderr, "usage: devices mknod-write PATH MAJOR MINOR MARKER | open PATH | nodes DIR\n");
    return 2;
}
