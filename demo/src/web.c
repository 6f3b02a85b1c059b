/*
 * web: the demo's HTTP/1.0 server, one request at a time.
 *
 *   web [PORT]        port from the argument, else $PORT, else 8080; listens on 0.0.0.0
 *
 *   GET /healthz      200 "ok" (the health check berth runs); with FAIL_AFTER=N in the
 *                     environment, 503 "unhealthy" from the (N+1)th health request on,
 *                     so berth marks the app unhealthy and restarts it
 *   GET /             200 and a line of text with a request counter
 *   anything else     404 (405 for methods other than GET and HEAD)
 *
 * Every request is logged on stdout, one flushed line each. SIGTERM or SIGINT: logs
 * "web: stopping" and exits 0.
 *
 * Built static: gcc -static -O2 -Wall -Wextra -o web web.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig) { stop_signal = sig; }

/* One line on stream, "web: ..." and flushed at once (stdout is a pipe under berth). */
static void say(FILE *stream, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("web: ", stream);
    vfprintf(stream, fmt, ap);
    fputc('\n', stream);
    fflush(stream);
    va_end(ap);
}

/* A whole number in [min, max], or -1. */
static long number(const char *s, long min, long max) {
    char *end;
    errno = 0;
    long n = strtol(s, &end, 10);
    if (errno || end == s || *end || n < min || n > max) return -1;
    return n;
}

static void respond(int fd, int head_only, int status, const char *reason, const char *body) {
    char buf[1024];
    int n = snprintf(buf, sizeof buf,
                     "HTTP/1.0 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     status, reason, strlen(body), head_only ? "" : body);
    if (n < 0) return;
    if ((size_t)n > sizeof buf - 1) n = sizeof buf - 1;
    for (int done = 0; done < n;) {
        ssize_t w = send(fd, buf + done, (size_t)(n - done), MSG_NOSIGNAL);
        if (w <= 0) return; /* the client went away or stalled: nothing more to do */
        done += (int)w;
    }
}

/* Reads the request head (until an empty line, EOF, 4 KiB or a 2 s timeout). */
static size_t read_head(int fd, char *buf, size_t size) {
    size_t len = 0;
    while (len < size - 1) {
        ssize_t r = recv(fd, buf + len, size - 1 - len, 0);
        if (r <= 0) break;
        len += (size_t)r;
        buf[len] = '\0';
        if (strstr(buf, "\r\n\r\n") || strstr(buf, "\n\n")) break;
    }
    buf[len] = '\0';
    return len;
}

int main(int argc, char **argv) {
    const char *port_text = argc > 1 ? argv[1] : getenv("PORT");
    long port = port_text ? number(port_text, 1, 65535) : 8080;
    if (port < 0 || argc > 2) {
        say(stderr, "usage: web [PORT] (or $PORT; default 8080); got %s", port_text);
        return 2;
    }
    long fail_after = -1;
    const char *fail_text = getenv("FAIL_AFTER");
    if (fail_text && *fail_text && (fail_after = number(fail_text, 0, 1000000000)) < 0) {
        say(stderr, "FAIL_AFTER=%s: expected a number of health checks", fail_text);
        return 2;
    }

    /* SIGTERM and SIGINT stay blocked except inside ppoll, so a stop request is never
     * lost between the check of stop_signal and the wait for the next connection. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigset_t stops, waiting;
    sigemptyset(&stops);
    sigaddset(&stops, SIGTERM);
    sigaddset(&stops, SIGINT);
    sigprocmask(SIG_BLOCK, &stops, &waiting);
    sigdelset(&waiting, SIGTERM);
    sigdelset(&waiting, SIGINT);

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (listener < 0) {
        say(stderr, "socket: %s", strerror(errno));
        return 1;
    }
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(listener, 16) < 0) {
        say(stderr, "cannot listen on 0.0.0.0:%ld: %s", port, strerror(errno));
        return 1;
    }
    char host[65] = "?";
    gethostname(host, sizeof host - 1);
    if (fail_after >= 0)
        say(stdout, "listening on 0.0.0.0:%ld as %s (pid %d); /healthz fails after %ld checks",
            port, host, (int)getpid(), fail_after);
    else
        say(stdout, "listening on 0.0.0.0:%ld as %s (pid %d)", port, host, (int)getpid());

    unsigned long requests = 0, health = 0;
    while (!stop_signal) {
        struct pollfd pfd = {.fd = listener, .events = POLLIN};
        if (ppoll(&pfd, 1, NULL, &waiting) < 0) {
            if (errno != EINTR) {
                say(stderr, "poll: %s", strerror(errno));
                return 1;
            }
            continue;
        }
        struct sockaddr_in peer;
        socklen_t peer_len = sizeof peer;
        int fd = accept4(listener, (struct sockaddr *)&peer, &peer_len, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                say(stderr, "accept: %s", strerror(errno));
            continue;
        }
        struct timeval two = {.tv_sec = 2};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &two, sizeof two);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &two, sizeof two);
        char from[INET_ADDRSTRLEN] = "?";
        inet_ntop(AF_INET, &peer.sin_addr, from, sizeof from);

        char req[4096], method[16] = "", path[256] = "";
        read_head(fd, req, sizeof req);
        if (sscanf(req, "%15s %255s", method, path) != 2) {
            respond(fd, 0, 400, "Bad Request", "bad request\n");
            say(stdout, "%s: unreadable request -> 400", from);
            close(fd);
            continue;
        }
        path[strcspn(path, "?#")] = '\0';
        int head = strcmp(method, "HEAD") == 0;
        char body[256];
        if (!head && strcmp(method, "GET") != 0) {
            respond(fd, 0, 405, "Method Not Allowed", "method not allowed\n");
            say(stdout, "%s %s %s -> 405", from, method, path);
        } else if (strcmp(path, "/healthz") == 0) {
            health++;
            if (fail_after >= 0 && health > (unsigned long)fail_after) {
                respond(fd, head, 503, "Service Unavailable", "unhealthy\n");
                say(stdout, "%s %s /healthz -> 503 (health check %lu > FAIL_AFTER=%ld)", from,
                    method, health, fail_after);
            } else {
                respond(fd, head, 200, "OK", "ok\n");
                say(stdout, "%s %s /healthz -> 200 (health check %lu)", from, method, health);
            }
        } else if (strcmp(path, "/") == 0) {
            requests++;
            snprintf(body, sizeof body, "hello from %s, pid %d: request %lu\n", host,
                     (int)getpid(), requests);
            respond(fd, head, 200, "OK", body);
            say(stdout, "%s %s / -> 200 (request %lu)", from, method, requests);
        } else {
            respond(fd, head, 404, "Not Found", "not found\n");
            say(stdout, "%s %s %s -> 404", from, method, path);
        }
        close(fd);
    }
    say(stdout, "stopping");
    return 0;
}
