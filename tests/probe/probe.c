/*
 * probe: the program the launch integration tests run inside a berth container.
 *
 * Built statically by tests/common/probe.rs (gcc -static -O2 -o probe probe.c), so an
 * image needs nothing but this one file. Subcommands (argv[1]):
 *
 *   report            (default) one line of JSON describing the process's world
 *   exit N            exit with status N
 *   sleep             pause() forever
 *   doublefork        orphan a grandchild, wait until it is gone, then report
 *   write FILE TEXT   write TEXT to FILE; prints "ok" (exit 0) or "ENAME: text" (exit 1)
 *   cat FILE          print FILE; exit 1 if it cannot be read
 *   signals           create /tmp/signals-ready, print "ready", then on SIGTERM
 *                     print "term" and exit 0
 *
 * and, for the cgroup tests (each prints its lines flushed, one at a time):
 *
 *   hog               touch memory 1 MiB at a time, never freed, printing the MiB
 *                     touched so far ("1", "2", ...) after each; forever, until killed
 *   forkbomb          print "start", then every process forks forever; the original
 *                     prints "limited" once, at its first failed fork. Bounded only by
 *                     the kernel (a pids cgroup): never run it anywhere else
 *   spin              print "spinning", then busy-loop forever
 *   stubborn          ignore SIGTERM; orphan a grandchild (in a new session, also
 *                     ignoring SIGTERM) and print "ready <grandchild pid>"; both pause()
 *                     forever
 *   alloc N           touch N KiB once, print "ok" and exit 0 ("ENAME: text", exit 1,
 *                     if it cannot be mapped)
 *
 * and, for the supervisor benchmark against s6:
 *
 *   live MS N         print "up T", sleep MS milliseconds, print "down T" and exit with
 *                     status N; T is CLOCK_MONOTONIC in nanoseconds, read as late as
 *                     possible before the line goes out (so the gap from one "down" to
 *                     the next "up" is the supervisor's restart)
 *
 * A usage error exits 125. Every piece of the report that cannot be read is null:
 * the probe never crashes on a strange container.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define USAGE_EXIT 125

/* ---------- errno names ---------- */

static const char *errno_name(int e) {
    switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case ENXIO: return "ENXIO";
    case E2BIG: return "E2BIG";
    case ENOEXEC: return "ENOEXEC";
    case EBADF: return "EBADF";
    case ECHILD: return "ECHILD";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case EXDEV: return "EXDEV";
    case ENODEV: return "ENODEV";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case ENFILE: return "ENFILE";
    case EMFILE: return "EMFILE";
    case ENOTTY: return "ENOTTY";
    case ETXTBSY: return "ETXTBSY";
    case EFBIG: return "EFBIG";
    case ENOSPC: return "ENOSPC";
    case ESPIPE: return "ESPIPE";
    case EROFS: return "EROFS";
    case EMLINK: return "EMLINK";
    case EPIPE: return "EPIPE";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOSYS: return "ENOSYS";
    case ENOTEMPTY: return "ENOTEMPTY";
    case ELOOP: return "ELOOP";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EDQUOT: return "EDQUOT";
    default: return NULL;
    }
}

/* "EROFS", or "E<number>" for one not in the table. */
static const char *errno_text(int e) {
    static char buf[32];
    const char *n = errno_name(e);
    if (n) return n;
    snprintf(buf, sizeof buf, "E%d", e);
    return buf;
}

/* ---------- a growing buffer and the JSON printer ---------- */

struct buf {
    char *p;
    size_t len, cap;
};

static void b_grow(struct buf *b, size_t more) {
    if (b->len + more + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        /* Out of memory: nothing sensible left to report. */
        static const char msg[] = "probe: out of memory\n";
        (void)!write(2, msg, sizeof msg - 1);
        _exit(USAGE_EXIT);
    }
    b->p = p;
    b->cap = cap;
}

static void b_add(struct buf *b, const char *s, size_t n) {
    b_grow(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void b_str(struct buf *b, const char *s) { b_add(b, s, strlen(s)); }

static void b_fmt(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void b_fmt(struct buf *b, const char *fmt, ...) {
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof tmp) n = sizeof tmp - 1;
    b_add(b, tmp, (size_t)n);
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 if it is not valid. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) { len = 2; cp = c & 0x1f; }
    else if (c >= 0xe0 && c <= 0xef) { len = 3; cp = c & 0x0f; }
    else if (c >= 0xf0 && c <= 0xf4) { len = 4; cp = c & 0x07; }
    else return 0;
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff))) return 0;
    if (cp >= 0xd800 && cp <= 0xdfff) return 0;
    return len;
}

/* A JSON string of n bytes; invalid UTF-8 bytes become U+FFFD. */
static void j_strn(struct buf *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    b_add(b, "\"", 1);
    size_t i = 0;
    while (i < n) {
        unsigned char c = u[i];
        if (c == '"') { b_add(b, "\\\"", 2); i++; }
        else if (c == '\\') { b_add(b, "\\\\", 2); i++; }
        else if (c == '\n') { b_add(b, "\\n", 2); i++; }
        else if (c == '\r') { b_add(b, "\\r", 2); i++; }
        else if (c == '\t') { b_add(b, "\\t", 2); i++; }
        else if (c < 0x20 || c == 0x7f) { b_fmt(b, "\\u%04x", c); i++; }
        else {
            size_t l = utf8_len(u + i, n - i);
            if (l == 0) { b_str(b, "\\ufffd"); i++; }
            else { b_add(b, s + i, l); i += l; }
        }
    }
    b_add(b, "\"", 1);
}

static void j_str(struct buf *b, const char *s) {
    if (s) j_strn(b, s, strlen(s));
    else b_str(b, "null");
}

/* Object members: the caller writes '{' and '}'; keys after the first get a comma. */
static int first_key;

static void j_key(struct buf *b, const char *k) {
    if (!first_key) b_add(b, ",", 1);
    first_key = 0;
    j_str(b, k);
    b_add(b, ":", 1);
}

static void k_str(struct buf *b, const char *k, const char *v) { j_key(b, k); j_str(b, v); }
static void k_long(struct buf *b, const char *k, long long v) { j_key(b, k); b_fmt(b, "%lld", v); }
static void k_null(struct buf *b, const char *k) { j_key(b, k); b_str(b, "null"); }
static void k_bool(struct buf *b, const char *k, int v) { j_key(b, k); b_str(b, v ? "true" : "false"); }

/* ---------- small readers ---------- */

/* The whole file, NUL-terminated (it may hold NULs itself; *len says how long), or NULL. */
static char *read_all(const char *path, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct buf b = {0};
    b_grow(&b, 4096);
    for (;;) {
        b_grow(&b, 4096);
        ssize_t n = read(fd, b.p + b.len, b.cap - b.len - 1);
        if (n < 0) {
            if (errno == EINTR) continue;
            int e = errno;
            close(fd);
            free(b.p);
            errno = e;
            return NULL;
        }
        if (n == 0) break;
        b.len += (size_t)n;
    }
    close(fd);
    b.p[b.len] = 0;
    if (len) *len = b.len;
    return b.p;
}

/* The value of "Name:\tvalue" in a /proc status text, copied, or NULL. */
static char *status_field(const char *status, const char *name) {
    if (!status) return NULL;
    size_t nl = strlen(name);
    const char *line = status;
    while (*line) {
        if (strncmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ' || *v == '\t') v++;
            const char *end = strchr(v, '\n');
            size_t n = end ? (size_t)(end - v) : strlen(v);
            char *out = malloc(n + 1);
            if (!out) return NULL;
            memcpy(out, v, n);
            out[n] = 0;
            return out;
        }
        const char *next = strchr(line, '\n');
        if (!next) break;
        line = next + 1;
    }
    return NULL;
}

static void k_status_str(struct buf *b, const char *status, const char *key, const char *field) {
    char *v = status_field(status, field);
    k_str(b, key, v);
    free(v);
}

static void k_status_int(struct buf *b, const char *status, const char *key, const char *field) {
    char *v = status_field(status, field);
    char *end;
    if (v && *v) {
        long long n = strtoll(v, &end, 10);
        if (*end == 0) k_long(b, key, n);
        else k_null(b, key);
    } else {
        k_null(b, key);
    }
    free(v);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The names in a directory, sorted, without "." and "..", as a JSON array; null if unreadable. */
static int j_dir_names(struct buf *b, const char *path) {
    DIR *d = opendir(path);
    if (!d) return -1;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            char **p = realloc(names, cap * sizeof *names);
            if (!p) break;
            names = p;
        }
        names[n] = strdup(e->d_name);
        if (names[n]) n++;
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, cmp_str);
    b_add(b, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (i) b_add(b, ",", 1);
        j_str(b, names[i]);
        free(names[i]);
    }
    b_add(b, "]", 1);
    free(names);
    return 0;
}

/* Decodes the \ooo escapes of /proc/self/mounts in place. */
static void unescape_octal(char *s) {
    char *w = s;
    for (char *r = s; *r;) {
        if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' && r[2] <= '7' &&
            r[3] >= '0' && r[3] <= '7') {
            *w++ = (char)(((r[1] - '0') << 6) | ((r[2] - '0') << 3) | (r[3] - '0'));
            r += 4;
        } else {
            *w++ = *r++;
        }
    }
    *w = 0;
}

/* The process state letter and parent of /proc/<pid>, or 0 if it is gone. */
static char proc_state(const char *pid, long *ppid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%s/stat", pid);
    char *stat = read_all(path, NULL);
    if (!stat) return 0;
    char state = 0;
    char *close_paren = strrchr(stat, ')');
    if (close_paren && close_paren[1] == ' ' && close_paren[2]) {
        state = close_paren[2];
        if (ppid) *ppid = strtol(close_paren + 3, NULL, 10);
    }
    free(stat);
    return state;
}

static int is_pid_name(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

/* How many processes in /proc are zombies, or -1 if /proc cannot be listed. */
static long count_zombies(void) {
    DIR *d = opendir("/proc");
    if (!d) return -1;
    long zombies = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (is_pid_name(e->d_name) && proc_state(e->d_name, NULL) == 'Z') zombies++;
    closedir(d);
    return zombies;
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

/* ---------- the report ---------- */

static void k_rlimit(struct buf *b, const char *key, int resource) {
    struct rlimit rl;
    if (getrlimit(resource, &rl) < 0) {
        k_null(b, key);
        return;
    }
    j_key(b, key);
    long long soft = rl.rlim_cur == RLIM_INFINITY ? -1 : (long long)rl.rlim_cur;
    long long hard = rl.rlim_max == RLIM_INFINITY ? -1 : (long long)rl.rlim_max;
    b_fmt(b, "[%lld,%lld]", soft, hard);
}

static void k_file(struct buf *b, const char *key, const char *path) {
    size_t len;
    char *text = read_all(path, &len);
    j_key(b, key);
    if (text) j_strn(b, text, len);
    else b_str(b, "null");
    free(text);
}

static void k_mounts(struct buf *b) {
    char *text = read_all("/proc/self/mounts", NULL);
    if (!text) {
        k_null(b, "mounts");
        return;
    }
    j_key(b, "mounts");
    b_add(b, "[", 1);
    int first = 1;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char *f[4] = {0};
        char *fsave = NULL;
        int i = 0;
        for (char *t = strtok_r(line, " ", &fsave); t && i < 4; t = strtok_r(NULL, " ", &fsave))
            f[i++] = t;
        if (i < 4) continue;
        unescape_octal(f[1]);
        unescape_octal(f[2]);
        unescape_octal(f[3]);
        if (!first) b_add(b, ",", 1);
        first = 0;
        b_str(b, "{\"target\":");
        j_str(b, f[1]);
        b_str(b, ",\"fstype\":");
        j_str(b, f[2]);
        b_str(b, ",\"options\":");
        j_str(b, f[3]);
        b_add(b, "}", 1);
    }
    b_add(b, "]", 1);
    free(text);
}

static void k_fds(struct buf *b) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        k_null(b, "fds");
        return;
    }
    int own = dirfd(d);
    int fds[4096];
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < sizeof fds / sizeof *fds) {
        if (!is_pid_name(e->d_name)) continue;
        int fd = atoi(e->d_name);
        if (fd != own) fds[n++] = fd;
    }
    closedir(d);
    qsort(fds, n, sizeof *fds, cmp_int);
    j_key(b, "fds");
    b_add(b, "[", 1);
    for (size_t i = 0; i < n; i++) b_fmt(b, i ? ",%d" : "%d", fds[i]);
    b_add(b, "]", 1);
}

static void k_groups(struct buf *b) {
    int n = getgroups(0, NULL);
    gid_t *g = n > 0 ? calloc((size_t)n, sizeof *g) : NULL;
    if (n < 0 || (n > 0 && (!g || (n = getgroups(n, g)) < 0))) {
        free(g);
        k_null(b, "groups");
        return;
    }
    j_key(b, "groups");
    b_add(b, "[", 1);
    for (int i = 0; i < n; i++) b_fmt(b, i ? ",%u" : "%u", (unsigned)g[i]);
    b_add(b, "]", 1);
    free(g);
}

static void k_env(struct buf *b) {
    j_key(b, "env");
    b_add(b, "[", 1);
    for (char **e = environ; e && *e; e++) {
        if (e != environ) b_add(b, ",", 1);
        j_str(b, *e);
    }
    b_add(b, "]", 1);
}

static void k_cwd(struct buf *b) {
    char cwd[4096];
    k_str(b, "cwd", getcwd(cwd, sizeof cwd) ? cwd : NULL);
}

/* kcore_masked: true when /proc/kcore is /dev/null (char 1:3) or an empty file;
   false when it is the real one; null (and kcore_errno) when it cannot be opened. */
static void k_kcore(struct buf *b) {
    int fd = open("/proc/kcore", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        k_null(b, "kcore_masked");
        k_str(b, "kcore_errno", errno_text(e));
        return;
    }
    struct stat st;
    int masked;
    if (fstat(fd, &st) < 0) {
        close(fd);
        k_null(b, "kcore_masked");
        k_str(b, "kcore_errno", errno_text(errno));
        return;
    }
    if (S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3) {
        masked = 1;
    } else if (st.st_size == 0) {
        char c;
        masked = read(fd, &c, 1) == 0;
    } else {
        masked = 0;
    }
    close(fd);
    k_bool(b, "kcore_masked", masked);
    k_null(b, "kcore_errno");
}

static void k_proc_sys(struct buf *b) {
    int fd = open("/proc/sys/kernel/hostname", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        k_bool(b, "proc_sys_writable", 1);
        k_null(b, "proc_sys_errno");
    } else {
        int e = errno;
        k_bool(b, "proc_sys_writable", 0);
        k_str(b, "proc_sys_errno", errno_text(e));
    }
}

static void k_interfaces(struct buf *b) {
    size_t mark = b->len;
    int was_first = first_key;
    j_key(b, "interfaces");
    if (j_dir_names(b, "/sys/class/net") == 0) return;
    /* No sysfs: the names in /proc/net/dev (after two header lines, "  name: ..."). */
    char *text = read_all("/proc/net/dev", NULL);
    if (!text) {
        b->len = mark;
        b->p[mark] = 0;
        first_key = was_first;
        k_null(b, "interfaces");
        return;
    }
    b_add(b, "[", 1);
    int line_no = 0, first = 1;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line_no++ < 2) continue;
        char *colon = strchr(line, ':');
        if (!colon) continue;
        *colon = 0;
        while (*line == ' ') line++;
        if (!first) b_add(b, ",", 1);
        first = 0;
        j_str(b, line);
    }
    b_add(b, "]", 1);
    free(text);
}

static void k_stdin(struct buf *b) {
    struct stat st;
    if (fstat(0, &st) < 0) {
        k_null(b, "stdin_is_devnull");
        return;
    }
    k_bool(b, "stdin_is_devnull",
           S_ISCHR(st.st_mode) && major(st.st_rdev) == 1 && minor(st.st_rdev) == 3);
}

static void k_root_writable(struct buf *b) {
    const char *path = "/probe-write-test";
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int e = 0;
    if (fd < 0) {
        e = errno;
    } else {
        close(fd);
        if (unlink(path) < 0) e = errno;
    }
    k_bool(b, "root_writable", e == 0);
    if (e) k_str(b, "root_errno", errno_text(e));
    else k_null(b, "root_errno");
}

static void k_dev(struct buf *b) {
    size_t mark = b->len;
    int was_first = first_key;
    j_key(b, "dev");
    if (j_dir_names(b, "/dev") == 0) return;
    b->len = mark;
    b->p[mark] = 0;
    first_key = was_first;
    k_null(b, "dev");
}

static void k_pid1_cmdline(struct buf *b) {
    size_t len;
    char *text = read_all("/proc/1/cmdline", &len);
    if (!text) {
        k_null(b, "pid1_cmdline");
        return;
    }
    /* The arguments joined by spaces (the final NUL terminator dropped). */
    while (len > 0 && text[len - 1] == 0) len--;
    for (size_t i = 0; i < len; i++)
        if (text[i] == 0) text[i] = ' ';
    j_key(b, "pid1_cmdline");
    j_strn(b, text, len);
    free(text);
}

/* Prints the report; `extra` is called to add members before the closing brace. */
static int report(void (*extra)(struct buf *, void *), void *arg) {
    struct buf b = {0};
    b_add(&b, "{", 1);
    first_key = 1;

    k_long(&b, "pid", getpid());
    k_long(&b, "ppid", getppid());
    struct utsname u;
    k_str(&b, "hostname", uname(&u) == 0 ? u.nodename : NULL);
    k_long(&b, "uid", getuid());
    k_long(&b, "euid", geteuid());
    k_long(&b, "gid", getgid());
    k_long(&b, "egid", getegid());
    k_groups(&b);

    char *status = read_all("/proc/self/status", NULL);
    k_status_str(&b, status, "cap_inh", "CapInh");
    k_status_str(&b, status, "cap_prm", "CapPrm");
    k_status_str(&b, status, "cap_eff", "CapEff");
    k_status_str(&b, status, "cap_bnd", "CapBnd");
    k_status_str(&b, status, "cap_amb", "CapAmb");
    k_status_int(&b, status, "no_new_privs", "NoNewPrivs");
    k_status_int(&b, status, "seccomp", "Seccomp");
    k_status_str(&b, status, "sigmask", "SigBlk");
    k_status_str(&b, status, "sigign", "SigIgn");
    free(status);

    k_mounts(&b);
    k_fds(&b);
    k_file(&b, "cgroup", "/proc/self/cgroup");
    k_env(&b);
    k_cwd(&b);
    k_kcore(&b);
    k_proc_sys(&b);
    k_interfaces(&b);
    k_rlimit(&b, "rlimit_nofile", RLIMIT_NOFILE);
    k_rlimit(&b, "rlimit_core", RLIMIT_CORE);
    k_stdin(&b);
    k_root_writable(&b);
    k_dev(&b);
    k_file(&b, "etc_hostname", "/etc/hostname");
    k_file(&b, "etc_hosts", "/etc/hosts");
    k_file(&b, "etc_resolv", "/etc/resolv.conf");
    k_pid1_cmdline(&b);
    long z = count_zombies();
    if (z < 0) k_null(&b, "zombies");
    else k_long(&b, "zombies", z);
    if (extra) extra(&b, arg);
    b_add(&b, "}\n", 2);

    size_t off = 0;
    while (off < b.len) {
        ssize_t n = write(1, b.p + off, b.len - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            return 1;
        }
        off += (size_t)n;
    }
    free(b.p);
    return 0;
}

/* ---------- doublefork ---------- */

struct orphan {
    long grandchild_pid;  /* as the child saw it: in our pid namespace */
    long orphan_ppid;     /* the grandchild's parent once its own parent had exited */
    int gone;             /* the grandchild is gone from /proc (or is our own zombie) */
};

static void orphan_extra(struct buf *b, void *arg) {
    struct orphan *o = arg;
    if (o->grandchild_pid > 0) k_long(b, "grandchild_pid", o->grandchild_pid);
    else k_null(b, "grandchild_pid");
    if (o->orphan_ppid >= 0) k_long(b, "orphan_ppid", o->orphan_ppid);
    else k_null(b, "orphan_ppid");
    k_bool(b, "grandchild_gone", o->gone);
}

/* Reads exactly one long from fd, waiting at most timeout_ms; 0 on success. */
static int read_long(int fd, long *v, int timeout_ms) {
    size_t got = 0;
    char *p = (char *)v;
    while (got < sizeof *v) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int r = poll(&pfd, 1, timeout_ms);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        ssize_t n = read(fd, p + got, sizeof *v - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return -1;
        got += (size_t)n;
    }
    return 0;
}

static int doublefork(void) {
    int p[2];
    if (pipe(p) < 0) {
        perror("probe doublefork: pipe");
        return 1;
    }
    pid_t child = fork();
    if (child < 0) {
        perror("probe doublefork: fork");
        return 1;
    }
    if (child == 0) {
        close(p[0]);
        pid_t self = getpid();
        pid_t grandchild = fork();
        if (grandchild < 0) _exit(1);
        if (grandchild == 0) {
            /* Wait until the child has exited and we were adopted, then say by whom. */
            for (int i = 0; i < 5000 && getppid() == self; i++) sleep_ms(1);
            long adopter = getppid();
            (void)!write(p[1], &adopter, sizeof adopter);
            close(p[1]);
            sleep_ms(200);
            _exit(0);
        }
        long gpid = grandchild;
        (void)!write(p[1], &gpid, sizeof gpid);
        _exit(0);
    }
    close(p[1]);
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }

    struct orphan o = {-1, -1, 0};
    if (read_long(p[0], &o.grandchild_pid, 5000) < 0) o.grandchild_pid = -1;
    if (o.grandchild_pid > 0) {
        /* The grandchild's parent once the child had exited: its adopter. */
        long adopter;
        if (read_long(p[0], &adopter, 5000) == 0) o.orphan_ppid = adopter;
    }
    close(p[0]);

    /* Wait (at most 5 s) until the grandchild has exited and been reaped. If we are
       its adopter (we are pid 1, or a subreaper), nobody else will reap it: its zombie
       counts as gone, and shows in "zombies". */
    if (o.grandchild_pid > 0) {
        char name[32];
        snprintf(name, sizeof name, "%ld", o.grandchild_pid);
        for (int i = 0; i < 500; i++) {
            long ppid = -1;
            char state = proc_state(name, &ppid);
            if (state == 0 || (state == 'Z' && ppid == getpid())) {
                o.gone = 1;
                break;
            }
            sleep_ms(10);
        }
    }
    return report(orphan_extra, &o);
}

/* ---------- the other subcommands ---------- */

static int do_write(const char *file, const char *text) {
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    int e = 0;
    if (fd < 0) {
        e = errno;
    } else {
        size_t len = strlen(text), off = 0;
        while (off < len) {
            ssize_t n = write(fd, text + off, len - off);
            if (n < 0) {
                if (errno == EINTR) continue;
                e = errno;
                break;
            }
            off += (size_t)n;
        }
        if (close(fd) < 0 && !e) e = errno;
    }
    if (e) {
        printf("%s: %s\n", errno_text(e), strerror(e));
        return 1;
    }
    printf("ok\n");
    return 0;
}

/* spew N: N lines of 99 characters and a newline on stdout, then exit 0. */
static int do_spew(long n) {
    char line[101];
    for (long i = 0; i < n; i++) {
        int len = snprintf(line, sizeof line, "%08ld ", i);
        while (len < 99) line[len++] = 'x';
        line[len++] = '\n';
        if (fwrite(line, 1, (size_t)len, stdout) != (size_t)len) return 1;
    }
    return fflush(stdout) == 0 ? 0 : 1;
}

static int do_cat(const char *file) {
    size_t len;
    char *text = read_all(file, &len);
    if (!text) {
        int e = errno;
        fprintf(stderr, "probe cat: %s: %s: %s\n", file, errno_text(e), strerror(e));
        return 1;
    }
    fwrite(text, 1, len, stdout);
    free(text);
    return 0;
}

static void on_term(int sig) {
    (void)sig;
    static const char msg[] = "term\n";
    (void)!write(1, msg, sizeof msg - 1);
    _exit(0);
}

static int do_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTERM, &sa, NULL) < 0) {
        perror("probe signals: sigaction");
        return 1;
    }
    /* For a health check (`cat /tmp/signals-ready`): the handler is in place. */
    int fd = open("/tmp/signals-ready", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) close(fd);
    static const char msg[] = "ready\n";
    (void)!write(1, msg, sizeof msg - 1);
    for (;;) pause();
}

/* ---------- the cgroup subcommands ---------- */

#define MIB (1024L * 1024L)
#define PAGE 4096L

/* Writes one byte to every 4 KiB page of [p, p + len). */
static void touch(char *p, size_t len) {
    volatile char *v = p;
    for (size_t off = 0; off < len; off += PAGE) v[off] = 1;
}

static void say(const char *line) {
    fputs(line, stdout);
    fflush(stdout);
}

__attribute__((noreturn)) static void do_hog(void) {
    int mib = 0;
    for (;;) {
        char *p = mmap(NULL, MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            /* Out of address space or overcommit: keep trying until killed. */
            sleep_ms(10);
            continue;
        }
        /* No transparent huge pages: each chunk charges the cgroup what it says. */
        (void)madvise(p, MIB, MADV_NOHUGEPAGE);
        touch(p, MIB);
        mib++;
        fprintf(stdout, "%d\n", mib);
        fflush(stdout);
    }
}

/* Read by nobody: the failed forks, kept so the count is not optimised away. */
static volatile unsigned long fork_failures;

__attribute__((noreturn)) static void do_forkbomb(void) {
    say("start\n");
    pid_t original = getpid();
    int said_limited = 0;
    for (;;) {
        /* Parent and child alike fork on. */
        if (fork() >= 0) continue;
        fork_failures++;
        if (getpid() == original && !said_limited) {
            /* stdout is flushed before every fork, so no child holds a copy of this. */
            say("limited\n");
            said_limited = 1;
        }
        /* A breath after a failure, so a full cgroup is not only spinning in fork(). */
        sleep_ms(1);
    }
}

__attribute__((noreturn)) static void do_spin(void) {
    say("spinning\n");
    volatile unsigned long n = 0;
    for (;;) n++;
}

static int do_stubborn(void) {
    signal(SIGTERM, SIG_IGN);
    int p[2];
    if (pipe(p) < 0) {
        perror("probe stubborn: pipe");
        return 1;
    }
    fflush(stdout);
    pid_t child = fork();
    if (child < 0) {
        perror("probe stubborn: fork");
        return 1;
    }
    if (child == 0) {
        close(p[0]);
        setsid();
        pid_t grandchild = fork();
        if (grandchild < 0) _exit(1);
        if (grandchild == 0) {
            close(p[1]);
            signal(SIGTERM, SIG_IGN);
            for (;;) pause();
        }
        long gpid = grandchild;
        (void)!write(p[1], &gpid, sizeof gpid);
        _exit(0);
    }
    close(p[1]);
    int status;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    long gpid;
    if (read_long(p[0], &gpid, 5000) < 0) {
        fprintf(stderr, "probe stubborn: no grandchild pid from the child\n");
        return 1;
    }
    close(p[0]);
    fprintf(stdout, "ready %ld\n", gpid);
    fflush(stdout);
    for (;;) pause();
}

static int do_alloc(long kib) {
    size_t len = (size_t)kib * 1024;
    if (len > 0) {
        char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            printf("%s: %s\n", errno_text(e), strerror(e));
            return 1;
        }
        touch(p, len);
    }
    printf("ok\n");
    return 0;
}

static int usage(void) {
    fprintf(stderr,
            "usage: probe [report | exit N | sleep | doublefork | write FILE TEXT | cat FILE | "
            "signals | hog | forkbomb | spin | stubborn | alloc N | live MS N]\n");
    return USAGE_EXIT;
}

static void say_clock(const char *what) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    printf("%s %lld\n", what, (long long)t.tv_sec * 1000000000LL + t.tv_nsec);
    fflush(stdout);
}

static int do_live(long ms, int status) {
    say_clock("up");
    struct timespec d = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&d, &d) != 0 && errno == EINTR) {
    }
    say_clock("down");
    return status;
}

/* `report-to FILE`: the report into FILE (for a process whose stdout is /dev/null,
 * such as an exec health probe). */
static int do_report_to(const char *file) {
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || dup2(fd, 1) < 0) {
        printf("%s\n", errno_text(errno));
        return 1;
    }
    close(fd);
    return report(NULL, NULL);
}

/* `mknod PATH b|c MAJOR MINOR OUT`: makes the node and opens it for writing; prints
 * "ok" or the errno name of the step that failed ("mknod EPERM", "open EPERM") and
 * writes it to OUT, and exits 0 only when both worked. */
static int do_mknod(const char *path, const char *kind, long major, long minor,
                    const char *out) {
    char text[64];
    mode_t type = strcmp(kind, "b") == 0 ? S_IFBLK : S_IFCHR;
    int ok = 0;
    if (mknod(path, type | 0600, makedev(major, minor)) < 0) {
        snprintf(text, sizeof text, "mknod %s", errno_text(errno));
    } else {
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0) {
            snprintf(text, sizeof text, "open %s", errno_text(errno));
        } else {
            close(fd);
            snprintf(text, sizeof text, "ok");
            ok = 1;
        }
        unlink(path);
    }
    printf("%s\n", text);
    fflush(stdout);
    do_write(out, text);
    return ok ? 0 : 1;
}

int main(int argc, char **argv) {
    const char *cmd = argc > 1 ? argv[1] : "report";
    if (strcmp(cmd, "report") == 0 && argc <= 2) return report(NULL, NULL);
    if (strcmp(cmd, "exit") == 0 && argc == 3) {
        char *end;
        long n = strtol(argv[2], &end, 10);
        if (*argv[2] == 0 || *end != 0 || n < 0 || n > 255) return usage();
        return (int)n;
    }
    if (strcmp(cmd, "sleep") == 0 && argc == 2) {
        for (;;) pause();
    }
    if (strcmp(cmd, "doublefork") == 0 && argc == 2) return doublefork();
    if (strcmp(cmd, "write") == 0 && argc == 4) return do_write(argv[2], argv[3]);
    if (strcmp(cmd, "report-to") == 0 && argc == 3) return do_report_to(argv[2]);
    if (strcmp(cmd, "mknod") == 0 && argc == 7)
        return do_mknod(argv[2], argv[3], atol(argv[4]), atol(argv[5]), argv[6]);
    if (strcmp(cmd, "cat") == 0 && argc == 3) return do_cat(argv[2]);
    if (strcmp(cmd, "spew") == 0 && argc == 3) return do_spew(atol(argv[2]));
    if (strcmp(cmd, "signals") == 0 && argc == 2) return do_signals();
    if (strcmp(cmd, "hog") == 0 && argc == 2) do_hog();
    if (strcmp(cmd, "forkbomb") == 0 && argc == 2) do_forkbomb();
    if (strcmp(cmd, "spin") == 0 && argc == 2) do_spin();
    if (strcmp(cmd, "stubborn") == 0 && argc == 2) return do_stubborn();
    if (strcmp(cmd, "alloc") == 0 && argc == 3) {
        char *end;
        long n = strtol(argv[2], &end, 10);
        /* At most 1 TiB (in KiB), so the byte count cannot overflow. */
        if (*argv[2] == 0 || *end != 0 || n < 0 || n > (1L << 30)) return usage();
        return do_alloc(n);
    }
    if (strcmp(cmd, "live") == 0 && argc == 4) {
        char *end1, *end2;
        long ms = strtol(argv[2], &end1, 10), n = strtol(argv[3], &end2, 10);
        if (*argv[2] == 0 || *end1 != 0 || ms < 0 || ms > 86400000L || *argv[3] == 0 ||
            *end2 != 0 || n < 0 || n > 255)
            return usage();
        return do_live(ms, (int)n);
    }
    return usage();
}
