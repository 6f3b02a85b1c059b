/*
 * client: asks the web app for its page every 2 seconds.
 *
 *   client [PORT]     connects to 127.0.0.1 on the port from the argument, else $PORT,
 *                     else 8080 (in the demo it shares the web app's network namespace,
 *                     so 127.0.0.1 is the web app)
 *
 * Every 2 s: connect, "GET / HTTP/1.0", log the first line of the answer (status line
 * and first body line). Gives up with exit status 1 after 5 failed attempts in a row, so
 * berth restarts it. SIGTERM or SIGINT: logs "client: stopping" and exits 0.
 *
 * Built static: gcc -static -O2 -Wall -Wextra -o client client.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define INTERVAL_S 2
#define MAX_FAILURES 5

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig) { stop_signal = sig; }

static void say(FILE *stream, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("client: ", stream);
    vfprintf(stream, fmt, ap);
    fputc('\n', stream);
    fflush(stream);
    va_end(ap);
}

/* Copies src into dst of size bytes, cut short if need be. */
static void copy(char *dst, size_t size, const char *src) {
    size_t n = strlen(src);
    if (n >= size) n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* One request. Returns 0 and fills status and body with their first lines, or -1 and
 * fills status with what went wrong. */
static int fetch(long port, char *status, size_t status_size, char *body, size_t body_size) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(status, status_size, "socket: %s", strerror(errno));
        return -1;
    }
    struct timeval two = {.tv_sec = 2};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &two, sizeof two);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &two, sizeof two);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        snprintf(status, status_size, "cannot connect to 127.0.0.1:%ld: %s", port,
                 strerror(errno));
        close(fd);
        return -1;
    }
    static const char request[] = "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\nUser-Agent: berth-demo-client\r\n\r\n";
    if (send(fd, request, sizeof request - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof request - 1)) {
        snprintf(status, status_size, "cannot send the request: %s", strerror(errno));
        close(fd);
        return -1;
    }
    char answer[4096];
    size_t len = 0;
    for (;;) {
        ssize_t r = recv(fd, answer + len, sizeof answer - 1 - len, 0);
        if (r <= 0 || (len += (size_t)r) == sizeof answer - 1) break;
    }
    close(fd);
    answer[len] = '\0';
    if (len == 0) {
        snprintf(status, status_size, "no answer from 127.0.0.1:%ld", port);
        return -1;
    }
    /* The body's first line, then the status line: both cut in place. */
    body[0] = '\0';
    char *start = strstr(answer, "\r\n\r\n");
    if (start) {
        start += 4;
        start[strcspn(start, "\r\n")] = '\0';
        copy(body, body_size, start);
    }
    answer[strcspn(answer, "\r\n")] = '\0';
    copy(status, status_size, answer);
    return 0;
}

int main(int argc, char **argv) {
    const char *port_text = argc > 1 ? argv[1] : getenv("PORT");
    long port = 8080;
    if (port_text) {
        char *end;
        port = strtol(port_text, &end, 10);
        if (end == port_text || *end || port < 1 || port > 65535) port = -1;
    }
    if (port < 0 || argc > 2) {
        say(stderr, "usage: client [PORT] (or $PORT; default 8080)");
        return 2;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop; /* no SA_RESTART: nanosleep returns at once with EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    say(stdout, "asking http://127.0.0.1:%ld/ every %d s (pid %d)", port, INTERVAL_S,
        (int)getpid());
    int failures = 0;
    while (!stop_signal) {
        char status[256], body[256];
        if (fetch(port, status, sizeof status, body, sizeof body) == 0) {
            failures = 0;
            say(stdout, "%s | %s", status, body);
        } else {
            failures++;
            say(stderr, "%s (failure %d of %d in a row)", status, failures, MAX_FAILURES);
            if (failures >= MAX_FAILURES) {
                say(stderr, "giving up: the web app is not answering");
                return 1;
            }
        }
        struct timespec pause = {.tv_sec = INTERVAL_S};
        while (!stop_signal && nanosleep(&pause, &pause) < 0 && errno == EINTR) {
        }
    }
    say(stdout, "stopping");
    return 0;
}
