/* The seccomp attack of issue 16, item 6, run as an app by tests/seccomp.rs with
 * CAP_SYS_ADMIN granted. Each line says what a call did: "ok" or the errno's name.
 * The test compares the whole output with what berth's filter must answer; the
 * program itself judges nothing and always exits 0 after its last line.
 *
 * Built with gcc -static (glibc 2.32+ for strerrorname_np). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <string.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef AF_ALG
#define AF_ALG 38
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

/* Linux 6.15's open_tree_attr: open_tree that also sets the clone's attributes. */
#define NR_open_tree_attr 467
#define NR_open_tree 428
/* Linux 6.19's listns, past the table berth knows. */
#define NR_listns 470
#define OPEN_TREE_CLONE 1
#define MOUNT_ATTR_RDONLY 0x00000001ULL

struct mount_attr {
    unsigned long long attr_set;
    unsigned long long attr_clr;
    unsigned long long propagation;
    unsigned long long userns_fd;
};

static void report(const char *what, long rc) {
    if (rc >= 0) {
        printf("%s: ok\n", what);
    } else {
        const char *name = strerrorname_np(errno);
        if (name)
            printf("%s: %s\n", what, name);
        else
            printf("%s: errno %d\n", what, errno);
    }
}

/* A file descriptor from a call that succeeded is closed; its number is not reported. */
static long closing(long fd) {
    if (fd >= 0)
        close((int)fd);
    return fd;
}

static int has_sys_admin(void) {
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capget, &hdr, data) != 0)
        return 0;
    return (data[CAP_SYS_ADMIN / 32].effective >> (CAP_SYS_ADMIN % 32)) & 1;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("CAP_SYS_ADMIN effective: %s\n", has_sys_admin() ? "yes" : "no");

    /* The attack: a detached clone of /proc/sys with its read-only flag cleared. */
    struct mount_attr attr = {.attr_clr = MOUNT_ATTR_RDONLY};
    errno = 0;
    report("open_tree_attr(/proc/sys, clear RDONLY)",
           closing(syscall(NR_open_tree_attr, AT_FDCWD, "/proc/sys",
                           OPEN_TREE_CLONE | O_CLOEXEC, &attr, sizeof attr)));
    report("open_tree(/proc/sys)",
           closing(syscall(NR_open_tree, AT_FDCWD, "/proc/sys", OPEN_TREE_CLONE | O_CLOEXEC)));

    /* Numbers berth's table does not know. */
    report("syscall 470 (listns)", syscall(NR_listns, 0L, 0L, 0L, 0L));
    report("syscall 1000", syscall(1000, 0L, 0L, 0L));
#ifdef __x86_64__
    report("x32 getpid", syscall(0x40000000L | SYS_getpid));
#endif

    /* Socket families. */
    report("socket(AF_VSOCK)", closing(socket(AF_VSOCK, SOCK_STREAM, 0)));
    report("socket(AF_ALG)", closing(socket(AF_ALG, SOCK_SEQPACKET, 0)));
    int pair[2];
    long rc = socketpair(AF_VSOCK, SOCK_STREAM, 0, pair);
    if (rc == 0) {
        close(pair[0]);
        close(pair[1]);
    }
    report("socketpair(AF_VSOCK)", rc);
    report("socket(AF_INET)", closing(socket(AF_INET, SOCK_STREAM, 0)));
    report("socket(AF_UNIX)", closing(socket(AF_UNIX, SOCK_STREAM, 0)));

    /* Personalities: the query and PER_LINUX pass, the rest is refused. */
    report("personality(0xffffffff)", personality(0xffffffff));
    report("personality(PER_LINUX)", personality(PER_LINUX));
    report("personality(PER_BSD)", personality(PER_BSD));
    report("personality(READ_IMPLIES_EXEC)", personality(READ_IMPLIES_EXEC));
    report("personality(ADDR_NO_RANDOMIZE)", personality(ADDR_NO_RANDOMIZE));
    return 0;
}
