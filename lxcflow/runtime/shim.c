/*
 * lxcflow-shim: the one process lxcflow keeps per container.
 *
 * It sets up the container (pid, mount, uts, ipc, net namespaces, cgroups,
 * rootfs, mounts), starts its init, then only waits: when the init dies it
 * writes the exit status to a file and exits. The daemon is not needed for
 * any of this, so containers outlive it and a restarted daemon still learns
 * how each container ended. A Python process per container would cost
 * megabytes; this costs a few pages.
 *
 * Usage: lxcflow-shim SPECFILE
 *   fd 0-2  the container's stdio
 *   fd 3    report pipe to the daemon: one line, "ok PID" or "error TEXT"
 *   fd 4    with netns=1: the network namespace the daemon prepared
 *
 * SPECFILE holds NUL-terminated "key=value" records written by
 * lxcflow/runtime/spec.py (which does all parsing and validation):
 *   mode=system|app   system: the command is PID 1; app: a minimal init is
 *                     PID 1 that reaps, forwards signals and passes on the
 *                     command's exit status
 *   ns=FLAGS          clone flags to unshare besides CLONE_NEWPID
 *   netns=1           join the network namespace on fd 4 (its interfaces are
 *                     configured before the command runs) instead of a new one
 *   loopback=1        bring lo up in the new network namespace (one with no
 *                     interfaces to configure: no netlink round trip needed)
 *   hostname=NAME  rootfs=DIR  cwd=DIR  exit=FILE  autodev=1
 *   cgroup=FILE       a cgroup.procs the init joins (repeatable)
 *   mount=SRC\x1fTARGET\x1fFSTYPE\x1fFLAGS\x1fDATA\x1fOPTS   (repeatable)
 *   arg=ARG           the command line (repeatable, in order)
 *   env=KEY=VALUE     the command's environment (repeatable)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_ITEMS 4096

/* Mount option bits (OPTS field), mirrored in spec.py. */
#define M_OPTIONAL 1    /* a failure is not fatal */
#define M_MKDIR 2       /* create the target directory */
#define M_MKFILE 4      /* create the target as an empty file */
#define M_BIND_RO 8     /* read-only bind: needs a second, remount call */

struct spec {
    int app;
    unsigned long ns;
    int netns;
    int loopback;
    int autodev;
    const char *hostname, *rootfs, *cwd, *exit_file;
    const char *cgroups[64];
    int ncgroups;
    char *mounts[512];
    int nmounts;
    char *args[MAX_ITEMS + 1];
    int nargs;
    char *envs[MAX_ITEMS + 1];
    int nenvs;
};

static int report_fd = 3;
#define NETNS_FD 4

/* Child side: say what failed on the sync pipe, then give up. */
static void fail(int fd, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    int n, e = errno;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf) - 64, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if (n > (int)sizeof(buf) - 64)
        n = sizeof(buf) - 64;
    if (e)
        n += snprintf(buf + n, sizeof(buf) - n, ": %s", strerror(e));
    if (write(fd, buf, n) < 0) {
        /* nobody to tell */
    }
    _exit(127);
}

/* The spec stays in memory for the container's whole life: size it exactly,
 * since every page a shim dirties is paid once per container. */
static char *read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    size_t n = 0;
    char *buf = NULL;
    ssize_t r;

    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) == 0 && (buf = malloc(st.st_size + 1)) != NULL) {
        while (n < (size_t)st.st_size && (r = read(fd, buf + n, st.st_size - n)) > 0)
            n += r;
        buf[n] = 0;
    }
    close(fd);
    *len = n;
    return buf;
}

static int parse_spec(char *buf, size_t len, struct spec *s)
{
    char *p = buf, *end = buf + len;

    while (p < end) {
        char *rec = p, *eq;
        p += strlen(p) + 1;
        eq = strchr(rec, '=');
        if (!eq)
            return -1;
        *eq = 0;
        char *v = eq + 1;
        if (!strcmp(rec, "mode"))
            s->app = !strcmp(v, "app");
        else if (!strcmp(rec, "ns"))
            s->ns = strtoul(v, NULL, 10);
        else if (!strcmp(rec, "netns"))
            s->netns = atoi(v);
        else if (!strcmp(rec, "loopback"))
            s->loopback = atoi(v);
        else if (!strcmp(rec, "autodev"))
            s->autodev = atoi(v);
        else if (!strcmp(rec, "hostname"))
            s->hostname = v;
        else if (!strcmp(rec, "rootfs"))
            s->rootfs = v;
        else if (!strcmp(rec, "cwd"))
            s->cwd = v;
        else if (!strcmp(rec, "exit"))
            s->exit_file = v;
        else if (!strcmp(rec, "cgroup") && s->ncgroups < 64)
            s->cgroups[s->ncgroups++] = v;
        else if (!strcmp(rec, "mount") && s->nmounts < 512)
            s->mounts[s->nmounts++] = v;
        else if (!strcmp(rec, "arg") && s->nargs < MAX_ITEMS)
            s->args[s->nargs++] = v;
        else if (!strcmp(rec, "env") && s->nenvs < MAX_ITEMS)
            s->envs[s->nenvs++] = v;
        else
            return -1;
    }
    return s->nargs > 0 && s->exit_file ? 0 : -1;
}

static void write_str(int err, const char *path, const char *value)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, value, strlen(value)) < 0)
        fail(err, "cannot write %s", path);
    close(fd);
}

static void mkdir_p(int err, const char *path, int optional)
{
    char tmp[4096];
    size_t n = strlen(path);

    if (n >= sizeof(tmp))
        fail(err, "path too long: %s", path);
    memcpy(tmp, path, n + 1);
    for (char *q = tmp + 1; *q; q++) {
        if (*q != '/')
            continue;
        *q = 0;
        if (mkdir(tmp, 0755) < 0 && errno != EEXIST && !optional)
            fail(err, "cannot create %s", tmp);
        *q = '/';
    }
    if (mkdir(tmp, 0755) < 0 && errno != EEXIST && !optional)
        fail(err, "cannot create %s", tmp);
}

/* Targets are relative to the rootfs when there is one (as in LXC). */
static void in_root(char *out, size_t size, const char *root, const char *target)
{
    while (root && *target == '/')
        target++;
    snprintf(out, size, "%s%s%s", root ? root : "", root ? "/" : "", target);
}

static void do_mount(int err, const char *root, char *entry)
{
    char *f[6], target[4096];
    int i = 0;

    f[0] = entry;
    for (char *q = entry; *q && i < 5; q++)
        if (*q == '\x1f') {
            *q = 0;
            f[++i] = q + 1;
        }
    if (i != 5)
        fail(err, "bad mount record");
    unsigned long flags = strtoul(f[3], NULL, 10);
    int opts = atoi(f[5]);
    int optional = opts & M_OPTIONAL;
    in_root(target, sizeof(target), root, f[1]);
    if (opts & M_MKDIR)
        mkdir_p(err, target, optional);
    if (opts & M_MKFILE) {
        int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0)
            close(fd);
    }
    if (mount(f[0], target, *f[2] ? f[2] : NULL, flags, *f[4] ? f[4] : NULL) < 0) {
        if (optional)
            return;
        fail(err, "cannot mount %s on %s", f[0], f[1]);
    }
    /* The kernel ignores MS_RDONLY on the first bind; it takes a remount. */
    if ((opts & M_BIND_RO) &&
        mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | (flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC)), NULL) < 0)
        fail(err, "cannot make %s read-only", f[1]);
}

/* A minimal /dev, as LXC's autodev: a tmpfs with the host's harmless nodes. */
static void autodev(int err, const char *root)
{
    static const char *nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};
    char dev[3072], path[4096], src[64];

    snprintf(dev, sizeof(dev), "%s/dev", root);
    mkdir_p(err, dev, 0);
    if (mount("none", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=500000") < 0)
        fail(err, "cannot mount tmpfs on /dev");
    for (size_t i = 0; i < sizeof(nodes) / sizeof(*nodes); i++) {
        snprintf(path, sizeof(path), "%s/%s", dev, nodes[i]);
        snprintf(src, sizeof(src), "/dev/%s", nodes[i]);
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0)
            close(fd);
        if (mount(src, path, NULL, MS_BIND, NULL) < 0)
            fail(err, "cannot bind %s", src);
    }
    snprintf(path, sizeof(path), "%s/fd", dev);
    if (symlink("/proc/self/fd", path) < 0 && errno != EEXIST)
        fail(err, "cannot create /dev/fd");
    snprintf(path, sizeof(path), "%s/pts", dev);
    mkdir(path, 0755);
    snprintf(path, sizeof(path), "%s/shm", dev);
    mkdir(path, 01777);
}

/* lo comes down in a new network namespace; LXC brings it up, and so do we. */
static void loopback_up(int err)
{
    struct ifreq ifr = {0};
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    strcpy(ifr.ifr_name, "lo");
    if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
        fail(err, "cannot read lo's flags");
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
        fail(err, "cannot bring lo up");
    close(fd);
}

static void setup(int err, struct spec *s)
{
    char path[4096];

    /* Everything below mounts: outside a mount namespace of its own it
     * would rearrange the host's. spec.py never asks for that; refuse anyway. */
    if (!(s->ns & CLONE_NEWNS))
        fail(err, "refusing to run without a mount namespace");
    /* Join the cgroups first: everything the init does is then accounted. */
    for (int i = 0; i < s->ncgroups; i++)
        write_str(err, s->cgroups[i], "0");
    if (s->netns) {
        if (setns(NETNS_FD, CLONE_NEWNET) < 0)
            fail(err, "cannot join the network namespace");
        close(NETNS_FD);
    }
    if (unshare(s->ns) < 0)
        fail(err, "cannot create namespaces");
    if (s->loopback)
        loopback_up(err);
    if (s->hostname && sethostname(s->hostname, strlen(s->hostname)) < 0)
        fail(err, "cannot set hostname");
    /* Nothing we mount may propagate back to the host. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        fail(err, "cannot make / private");
    if (s->rootfs && mount(s->rootfs, s->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
        fail(err, "cannot bind rootfs %s", s->rootfs);
    /* The system mounts first, so the user's entries can go on top of them
     * (a fuse node under /dev, a file under /proc/sys), as in LXC. */
    in_root(path, sizeof(path), s->rootfs, "/proc");
    mkdir_p(err, path, 0);
    if (mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        fail(err, "cannot mount /proc");
    if (s->rootfs) {
        in_root(path, sizeof(path), s->rootfs, "/sys");
        mkdir_p(err, path, 0);
        if (mount("sysfs", path, "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, NULL) < 0)
            fail(err, "cannot mount /sys");
        if (s->autodev)
            autodev(err, s->rootfs);
    }
    for (int i = 0; i < s->nmounts; i++)
        do_mount(err, s->rootfs, s->mounts[i]);
    if (s->rootfs) {
        if (chdir(s->rootfs) < 0)
            fail(err, "cannot enter rootfs %s", s->rootfs);
        /* pivot_root(".", ".") stacks the old root under the new one; detach it. */
        if (syscall(SYS_pivot_root, ".", ".") < 0)
            fail(err, "cannot pivot_root into %s", s->rootfs);
        if (umount2(".", MNT_DETACH) < 0)
            fail(err, "cannot detach the old root");
    }
    if (chdir(s->cwd ? s->cwd : "/") < 0)
        fail(err, "cannot change directory to %s", s->cwd ? s->cwd : "/");
}

static void exec_command(int err, struct spec *s)
{
    /* The command starts as from a clean exec: no signal ignored or blocked
     * because the daemon (Python ignores SIGPIPE and SIGXFSZ) or libc did.
     * The raw syscall, since glibc refuses to touch the signals it reserves
     * (32, 33), and a static glibc leaves them ignored. A zeroed kernel
     * sigaction is SIG_DFL with no flags and an empty mask on every arch. */
    for (int sig = 1; sig < NSIG; sig++) {
        unsigned long dfl[4] = {0};
        syscall(SYS_rt_sigaction, sig, dfl, NULL, 8);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    s->args[s->nargs] = NULL;
    s->envs[s->nenvs] = NULL;
    /* The shim itself runs with an empty environment (nothing from the
     * container's config may steer a root process on the host); the
     * command gets the container's, and its PATH is searched. */
    environ = s->envs;
    execvp(s->args[0], s->args);
    fail(err, "cannot execute %s", s->args[0]);
}

/* PID 1 of an application container: start the command, reap every zombie,
 * forward signals to the command, pass its raw status up on status_fd. */
static int app_init(int err, int status_fd, struct spec *s)
{
    sigset_t all;
    pid_t child;

    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, NULL);
    child = fork();
    if (child < 0)
        fail(err, "cannot fork the command");
    if (child == 0) {
        close(status_fd);
        setpgid(0, 0);
        exec_command(err, s);
    }
    close(err);
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&all, &si);
        if (sig < 0)
            continue;
        if (sig != SIGCHLD) {
            kill(child, sig);
            continue;
        }
        for (;;) {
            int status;
            pid_t p = waitpid(-1, &status, WNOHANG);
            if (p <= 0)
                break;
            if (p == child) {
                if (write(status_fd, &status, sizeof(status)) < 0) {
                    /* the shim reports our own status instead */
                }
                return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            }
        }
    }
}

static void report(const char *fmt, ...)
{
    char buf[1100];
    va_list ap;
    int n;

    if (report_fd < 0)
        return;
    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(buf) - 1)
        n = sizeof(buf) - 1;
    if (write(report_fd, buf, n) < 0) {
        /* the daemon went away; the exit file still tells */
    }
    close(report_fd);
    report_fd = -1;
}

static void write_exit_file(const char *path, int status)
{
    char tmp[4096], line[64];
    int n, fd;

    if (WIFEXITED(status))
        n = snprintf(line, sizeof(line), "exit %d\n", WEXITSTATUS(status));
    else
        n = snprintf(line, sizeof(line), "signal %d\n", WTERMSIG(status));
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    /* No fsync: the file must outlive the daemon, not the machine (the run
     * directory is a tmpfs, and the containers die with the machine too);
     * rename makes it appear whole. */
    if (write(fd, line, n) == n) {
        close(fd);
        rename(tmp, path);
        return;
    }
    close(fd);
    unlink(tmp);
}

/* Static, so untouched parts cost no memory (zero pages stay shared). */
static struct spec s;

int main(int argc, char **argv)
{
    size_t len;
    char *buf;
    int sync_pipe[2], status_pipe[2];

    if (argc != 2) {
        fprintf(stderr, "usage: lxcflow-shim SPECFILE\n");
        return 2;
    }
    fcntl(report_fd, F_SETFD, FD_CLOEXEC);
    buf = read_file(argv[1], &len);
    if (!buf || parse_spec(buf, len, &s) < 0) {
        report("error cannot read spec %s\n", argv[1]);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    if (pipe2(sync_pipe, O_CLOEXEC) < 0 || pipe2(status_pipe, O_CLOEXEC) < 0) {
        report("error cannot create pipes: %s\n", strerror(errno));
        return 1;
    }
    if (unshare(CLONE_NEWPID) < 0) {
        report("error cannot create pid namespace: %s\n", strerror(errno));
        return 1;
    }
    pid_t init = fork();
    if (init < 0) {
        report("error cannot fork: %s\n", strerror(errno));
        return 1;
    }
    if (init == 0) {
        close(sync_pipe[0]);
        close(status_pipe[0]);
        close(report_fd);
        signal(SIGPIPE, SIG_DFL);
        /* The init dies with the shim: an orphaned container has no keeper. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        setup(sync_pipe[1], &s);
        if (s.app)
            _exit(app_init(sync_pipe[1], status_pipe[1], &s));
        exec_command(sync_pipe[1], &s);
    }
    close(sync_pipe[1]);
    close(status_pipe[1]);
    if (s.netns)
        close(NETNS_FD); /* the container's processes keep it alive, not us */

    /* EOF on the sync pipe means the command was exec'd; bytes are an error. */
    char msg[1024];
    ssize_t n, got = 0;
    while ((n = read(sync_pipe[0], msg + got, sizeof(msg) - 1 - got)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        got += n;
        if (got == (ssize_t)sizeof(msg) - 1)
            break;
    }
    close(sync_pipe[0]);
    if (got > 0) {
        msg[got] = 0;
        for (char *q = msg; *q; q++)
            if (*q == '\n')
                *q = ' ';
        report("error %s\n", msg);
        waitpid(init, NULL, 0);
        return 1;
    }
    report("ok %d\n", (int)init);

    /* Hold no end of the container's stdio: the caller sees EOF when the
     * container's own processes close it. */
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int fd = 0; fd < 3 && devnull >= 0; fd++)
        dup2(devnull, fd);

    int status = 0, app_status;
    while (waitpid(init, &status, 0) < 0 && errno == EINTR)
        ;
    if (s.app && read(status_pipe[0], &app_status, sizeof(app_status)) == sizeof(app_status))
        status = app_status;
    write_exit_file(s.exit_file, status);
    return 0;
}
