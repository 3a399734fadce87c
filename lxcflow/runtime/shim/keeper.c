/*
 * The keeper's life once the init runs (keep): it holds every pty master
 * the init handed over (terminals.c), writes what the console prints to the
 * log, serves clients on its socket, and when the init dies writes the exit
 * record and exits.
 *
 * The masters live here, not in the daemon, so consoles and getty sessions
 * survive a daemon restart. The keeper also holds each slave open: a master
 * whose slaves are all closed polls as hung up forever (systemd closes and
 * reopens /dev/console), and a getty's vhangup must not end the tty.
 *
 * Socket protocol (SOCK_STREAM, one client per tty, a few log followers):
 *   client: "tty N\n"  keeper: "ok\n" + the master's fd (for the window
 *           size), then bytes both ways; tty 0 is the console
 *   client: "log\n"    keeper: "ok OFFSET\n" (the log file's length then),
 *           then the console's output as logged
 *   or "error TEXT\n" and the connection closes.
 */
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_FOLLOWERS 8

struct term {
    int master, peer, client;
};

static struct term terms[MAX_TTYS + 1]; /* 0: the console, N: ttyN */
static int followers[MAX_FOLLOWERS];
static int log_fd = -1;
static long log_used;
static char buf[4096];

static void log_open(struct spec *s)
{
    struct stat st;

    log_fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    log_used = log_fd >= 0 && fstat(log_fd, &st) == 0 ? st.st_size : 0;
}

/* FILE becomes FILE.1 and FILE starts empty; a reader finds a FILE at
 * every moment (a hard link keeps the old one in place meanwhile). */
static void turn_over(struct spec *s)
{
    char old[4200], tmp[4200], fresh[4200];

    snprintf(old, sizeof(old), "%s.1", s->log);
    snprintf(tmp, sizeof(tmp), "%s.1.tmp", s->log);
    snprintf(fresh, sizeof(fresh), "%s.new", s->log);
    unlink(tmp);
    if (link(s->log, tmp) < 0 || rename(tmp, old) < 0)
        rename(s->log, old);
    int fd = open(fresh, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0 && rename(fresh, s->log) < 0) {
        close(fd);
        fd = -1;
    }
    close(log_fd);
    log_fd = fd;
    log_used = 0;
    if (log_fd < 0)
        log_open(s);
}

/* Two files of half the size each, so what is kept never exceeds
 * lxc.console.size and the newest output is never what is dropped; a file
 * is turned over where a line ends, when one ends in what is written. */
static void log_write(struct spec *s, const char *data, size_t n)
{
    long half = s->logsize / 2;

    while (log_fd >= 0 && n) {
        if (log_used >= half) {
            turn_over(s);
            continue;
        }
        size_t part = n < (size_t)(half - log_used) ? n : (size_t)(half - log_used);
        if (part < n) {
            /* start the next file on a line of its own where one ends here */
            size_t cut = part;
            while (cut > 0 && data[cut - 1] != '\n')
                cut--;
            if (cut > 0)
                part = cut;
            else if (log_used > 0) {
                log_used = half;
                continue;
            }
        }
        ssize_t w = write(log_fd, data, part);
        if (w <= 0)
            return; /* a full disk loses console output, never the container */
        log_used += w;
        data += w;
        n -= w;
    }
}

static void drop(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void send_to(int *fd, const char *data, size_t n)
{
    /* A client that has not taken its output for SO_SNDTIMEO is dropped
     * rather than allowed to stop the container's console. */
    while (*fd >= 0 && n) {
        ssize_t w = send(*fd, data, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            drop(fd);
            return;
        }
        data += w;
        n -= w;
    }
}

/* What the console (or the output pipe) printed: to the log and its readers.
 * Returns 1 for output, 0 when the source is finished (a pipe whose writers
 * are gone), -1 when it has nothing now. */
static int console_output(struct spec *s, int src)
{
    ssize_t n = read(src, buf, sizeof(buf));
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return -1;
    if (n <= 0)
        return 0;
    log_write(s, buf, n);
    send_to(&terms[0].client, buf, n);
    for (int i = 0; i < MAX_FOLLOWERS; i++)
        send_to(&followers[i], buf, n);
    return 1;
}

static void answer(int fd, const char *line, int pass_fd)
{
    struct iovec iov = {.iov_base = (void *)line, .iov_len = strlen(line)};
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
    if (pass_fd >= 0) {
        msg.msg_control = cbuf;
        msg.msg_controllen = sizeof(cbuf);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &pass_fd, sizeof(int));
    }
    sendmsg(fd, &msg, MSG_NOSIGNAL);
}

static void refuse(int fd, const char *why)
{
    char line[128];
    snprintf(line, sizeof(line), "error %s\n", why);
    answer(fd, line, -1);
    close(fd);
}

static void accept_client(struct spec *s, int listen_fd)
{
    char line[32];
    size_t got = 0;
    int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0)
        return;
    /* The request is one short line; a client that sends none in a second
     * must not hold the container's console up. */
    struct timeval rcv = {1, 0}, snd = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &rcv, sizeof(rcv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &snd, sizeof(snd));
    while (got < sizeof(line) - 1 && read(fd, line + got, 1) == 1 && line[got] != '\n')
        got++;
    line[got] = 0;
    if (!strcmp(line, "log")) {
        for (int i = 0; i < MAX_FOLLOWERS; i++)
            if (followers[i] < 0) {
                /* where in the log file it joins: what came before is the reader's to read */
                char ok[32];
                snprintf(ok, sizeof(ok), "ok %ld\n", log_used);
                answer(fd, ok, -1);
                followers[i] = fd;
                return;
            }
        refuse(fd, "too many followers of this console");
        return;
    }
    char *end;
    long n = strncmp(line, "tty ", 4) ? -1 : strtol(line + 4, &end, 10);
    if (n < 0 || *end || n > s->ttys || terms[n].master < 0) {
        refuse(fd, n == 0 ? "this container has no console" : "no such tty");
        return;
    }
    if (terms[n].client >= 0) {
        char why[64];
        snprintf(why, sizeof(why), "tty %ld is in use by another console", n);
        refuse(fd, why);
        return;
    }
    answer(fd, "ok\n", terms[n].master);
    terms[n].client = fd;
}

static void receive_terminals(struct spec *s, int chan)
{
    int fds[2 * (MAX_TTYS + 1)], total = s->console + s->ttys;
    char byte, cbuf[CMSG_SPACE(sizeof(fds))];
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                         .msg_controllen = sizeof(cbuf)};

    for (int i = 0; i <= MAX_TTYS; i++)
        terms[i] = (struct term){-1, -1, -1};
    if (!total || recvmsg(chan, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) <= 0)
        return;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    if (!cm || cm->cmsg_type != SCM_RIGHTS || cm->cmsg_len != CMSG_LEN(2 * total * sizeof(int)))
        return;
    memcpy(fds, CMSG_DATA(cm), 2 * total * sizeof(int));
    for (int i = 0; i < total; i++) {
        int slot = i + !s->console;
        terms[slot].master = fds[2 * i];
        terms[slot].peer = fds[2 * i + 1];
        fcntl(terms[slot].master, F_SETFL, O_NONBLOCK);
    }
}

static int listen_on(const char *path)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    if (fd < 0 || strlen(path) >= sizeof(addr.sun_path))
        return -1;
    strcpy(addr.sun_path, path);
    unlink(path);
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 16) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int init_reaped;

/* Collect the init and write the exit record: in an application container
 * the command's status, which the small init passed up on status_fd. */
static void reap_init(struct spec *s, pid_t init, int status_fd)
{
    int status = 0, app_status;

    while (waitpid(init, &status, 0) < 0 && errno == EINTR)
        ;
    if (s->app && read(status_fd, &app_status, sizeof(app_status)) == sizeof(app_status))
        status = app_status;
    /* First to the daemon that started us, which reports the death from it
     * (one that adopted us has no pipe), then the durable record. */
    report("exit %d\n", status);
    if (report_fd >= 0)
        close(report_fd);
    report_fd = -1;
    write_exit_file(s->exit_file, status);
    init_reaped = 1;
}

enum { K_INIT, K_LISTEN, K_LOG, K_MASTER, K_CLIENT, K_FOLLOWER };

void keep(struct spec *s, pid_t init, int chan, int log_pipe, int status_fd)
{
    struct pollfd p[3 + 2 * (MAX_TTYS + 1) + MAX_FOLLOWERS];
    int kind[sizeof(p) / sizeof(*p)], slot[sizeof(p) / sizeof(*p)];
    int pidfd = syscall(SYS_pidfd_open, init, 0);
    int listen_fd = s->sock ? listen_on(s->sock) : -1;

    receive_terminals(s, chan);
    close(chan);
    for (int i = 0; i < MAX_FOLLOWERS; i++)
        followers[i] = -1;
    if (s->log)
        log_open(s);
    int log_src = s->console ? terms[0].master : log_pipe;
    for (;;) {
        int n = 0;
#define WATCH(FD, KIND, SLOT) (p[n] = (struct pollfd){(FD), POLLIN, 0}, kind[n] = (KIND), slot[n++] = (SLOT))
        WATCH(pidfd, K_INIT, 0);
        if (listen_fd >= 0)
            WATCH(listen_fd, K_LISTEN, 0);
        if (log_src >= 0)
            WATCH(log_src, K_LOG, 0);
        for (int i = 0; i <= s->ttys; i++) {
            if (terms[i].client < 0)
                continue;
            if (i > 0)
                WATCH(terms[i].master, K_MASTER, i);
            WATCH(terms[i].client, K_CLIENT, i);
        }
        for (int i = 0; i < MAX_FOLLOWERS; i++)
            if (followers[i] >= 0)
                WATCH(followers[i], K_FOLLOWER, i);
#undef WATCH
        if (pidfd < 0 || poll(p, n, -1) < 0) {
            if (pidfd >= 0 && errno == EINTR)
                continue;
            break; /* no pidfd: only wait for the init below */
        }
        int init_done = 0;
        for (int j = 0; j < n; j++) {
            if (!p[j].revents)
                continue;
            int i = slot[j];
            ssize_t got;
            switch (kind[j]) {
            case K_INIT:
                /* Reaped at once, and the status reported, before the
                 * console is drained: the daemon reports the death then. */
                reap_init(s, init, status_fd);
                init_done = 1;
                break;
            case K_LISTEN:
                accept_client(s, listen_fd);
                break;
            case K_LOG:
                /* the end of the output pipe (all writers gone); a console's
                 * master stays open for its clients, only unwatched */
                if (console_output(s, log_src) == 0) {
                    if (log_src == log_pipe)
                        drop(&log_src);
                    else
                        log_src = -1;
                }
                break;
            case K_MASTER:
                got = read(terms[i].master, buf, sizeof(buf));
                if (got > 0)
                    send_to(&terms[i].client, buf, got);
                break;
            case K_CLIENT:
                got = read(terms[i].client, buf, sizeof(buf));
                if (got <= 0 && !(got < 0 && errno == EINTR))
                    drop(&terms[i].client);
                else if (got > 0 && write(terms[i].master, buf, got) < 0) {
                    /* a full input queue drops typing, as a terminal does */
                }
                break;
            case K_FOLLOWER:
                got = read(followers[i], buf, sizeof(buf));
                if (got <= 0)
                    drop(&followers[i]);
                break;
            }
        }
        if (init_done)
            break;
    }
    /* The init is gone, and with its pid namespace every writer: take what
     * is left in the console, then let the clients see the end. */
    if (log_src >= 0) {
        fcntl(log_src, F_SETFL, O_NONBLOCK);
        for (int i = 0; i < 256 && console_output(s, log_src) > 0; i++)
            ;
    }
    if (listen_fd >= 0)
        unlink(s->sock);
    if (!init_reaped)
        reap_init(s, init, status_fd);
    _exit(0);
}
