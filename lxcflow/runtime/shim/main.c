/*
 * lxcflow-shim: the one process lxcflow keeps per container.
 *
 * It sets up the container (pid, mount, uts, ipc, net, cgroup namespaces,
 * cgroups, rootfs, mounts, devpts and ttys), starts its init, then keeps it:
 * holds its terminals and logs its console; when the init dies it writes
 * the exit status to a file and exits. The daemon is not needed for
 * any of this, so containers outlive it and a restarted daemon still learns
 * how each container ended. A Python process per container would cost
 * megabytes; this costs a few pages.
 *
 * Usage: lxcflow-shim SPECFILE        (and "lxcflow-shim attach": attach.c,
 *                                     "lxcflow-shim seccomp": seccomp.c)
 *   fd 0-2  the container's stdio
 *   fd 3    report pipe to the daemon: one line, "ok PID" or "error TEXT"
 *   fd 4    with netns=1: the network namespace the daemon prepared
 *   fd 5    with userns=1: the user namespace (lxc.idmap) the daemon made;
 *           it owns the one on fd 4 (userns.c)
 *
 * SPECFILE holds NUL-terminated "key=value" records written by
 * lxcflow/runtime/spec.py (which does all parsing and validation):
 *   mode=system|app   system: the command is PID 1; app: a minimal init is
 *                     PID 1 that reaps, forwards signals and passes on the
 *                     command's exit status
 *   ns=FLAGS          clone flags to unshare besides CLONE_NEWPID
 *   netns=1           join the network namespace on fd 4 (its interfaces are
 *                     configured before the command runs) instead of a new one
 *   userns=1          join the user namespace on fd 5 and run as its root
 *                     (userns.c); idmaprootfs=1: on an idmapped mount of
 *                     the rootfs
 *   loopback=1        bring lo up in the new network namespace (one with no
 *                     interfaces to configure: no netlink round trip needed)
 *   hostname=NAME  rootfs=DIR  cwd=DIR  exit=FILE  autodev=1
 *   cgroup=FILE       a cgroup.procs the init joins (repeatable)
 *   mount=SRC\x1fTARGET\x1fFSTYPE\x1fFLAGS\x1fDATA\x1fOPTS   (repeatable)
 *   automount=...     as mount=, the /proc and /sys mounts made before /dev
 *   ttys=N ttydir=DIR ptymax=N   the container's devpts and its ttys
 *   log=FILE logsize=BYTES sock=PATH console=0|1   the keeper logs the
 *                     output (console=1: a console pty, else a pipe) and
 *                     serves the ttys on PATH (keeper.c)
 *   pdeath=SIG  personality=linux32  prlimit=RESOURCE:SOFT:HARD (repeatable)
 *   capkeep=HEX apparmor=PROFILE seccomp=FILE nonewprivs=1   what the
 *                     command may do (confine.c; attach reads the same)
 *   hook=TYPE\x1fARGV...  hookenv=KEY=VALUE   lxc.hook.* run inside (hooks.c)
 *   arg=ARG           the command line (repeatable, in order)
 *   env=KEY=VALUE     the command's environment (repeatable)
 *
 * This file holds main (fork the init, pass its report on, then keep it:
 * keeper.c) and setup, what the init does before its command runs, in
 * order. The parts it calls: spec.c (reading the spec), mounts.c, devices.c
 * (autodev), terminals.c (devpts and ttys), keeper.c, hooks.c, confine.c, init.c
 * (the command and the app init), userns.c (the way into a user namespace),
 * cgroups.c (joining the cgroups without the kernel's slow path),
 * report.c (fail, report, the exit file); shim.h declares them.
 */
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

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

static void set_prlimits(int err, struct spec *s)
{
    for (int i = 0; i < s->nprlimits; i++) {
        char *p = s->prlimits[i];
        int resource = (int)strtol(p, &p, 10);
        struct rlimit rl;
        rl.rlim_cur = strtoull(p + 1, &p, 10);
        rl.rlim_max = strtoull(p + 1, &p, 10);
        if (setrlimit(resource, &rl) < 0)
            fail(err, "cannot set resource limit %d", resource);
    }
}

/* What the command inherits besides the file system: limits, personality,
 * and its stdio (the console, or the pipe to the keeper's log). */
static void prepare_command(int err, struct spec *s, int console_peer, int log_pipe)
{
    /* Raising a hard limit takes the host's CAP_SYS_RESOURCE: in a user
     * namespace the limits were set before entering it (fork_init_userns). */
    if (!s->userns)
        set_prlimits(err, s);
    if (s->linux32 && personality(PER_LINUX32) < 0)
        fail(err, "cannot set a 32-bit personality");
    /* Last: nothing the shim itself still calls is filtered. */
    const char *failed = confine_apply(&s->confine);
    if (failed)
        fail(err, "%s", failed);
    if (console_peer >= 0) {
        /* The console is the init's stdio but not its controlling terminal,
         * as at a real boot: a shell the init starts there (busybox's
         * askfirst) takes it, and job control works. */
        if (setsid() < 0 || dup2(console_peer, 0) < 0 || dup2(console_peer, 1) < 0 ||
            dup2(console_peer, 2) < 0)
            fail(err, "cannot make /dev/console the init's stdio");
    } else if (log_pipe >= 0 && (dup2(log_pipe, 1) < 0 || dup2(log_pipe, 2) < 0)) {
        fail(err, "cannot send the command's output to the console log");
    }
}

/* Set in a child that fork_into_cgroups made in the container's cgroup2 cgroup. */
static int cgroup2_placed;

/* Join the cgroups first: everything the init does is then accounted, and
 * a cgroup namespace made later is rooted at the container's. */
static void join_cgroups(int err, struct spec *s)
{
    /* Everything after this mounts: outside a mount namespace of its own it
     * would rearrange the host's. spec.py never asks for that; refuse anyway. */
    if (!(s->ns & CLONE_NEWNS))
        fail(err, "refusing to run without a mount namespace");
    for (int i = 0; i < s->ncgroups; i++) {
        int v2, fd = cgroup_join_open(s->cgroups[i], &v2);
        if (fd >= 0 && v2 && cgroup2_placed) {
            close(fd);
            continue;
        }
        if (fd < 0 || write(fd, "0", 1) < 0)
            fail(err, "cannot join the cgroup of %s", s->cgroups[i]);
        close(fd);
    }
}

/* A privileged container's init, before setup: its namespaces (the pid
 * namespace it is already in). */
static void enter(int err, struct spec *s)
{
    join_cgroups(err, s);
    if (s->netns) {
        if (setns(NETNS_FD, CLONE_NEWNET) < 0)
            fail(err, "cannot join the network namespace");
        close(NETNS_FD);
    }
    if (unshare(s->ns) < 0)
        fail(err, "cannot create namespaces");
}

/* In the init's namespaces, as its root: the container's file system. */
static void setup(int err, struct spec *s, int chan, int *console_peer)
{
    if (s->loopback)
        loopback_up(err);
    if (s->hostname && sethostname(s->hostname, strlen(s->hostname)) < 0)
        fail(err, "cannot set hostname");
    /* Nothing we mount may propagate back to the host. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        fail(err, "cannot make / private");
    if (s->rootfs && s->userns) {
        userns_unlock_root(err);
        s->rootfs = "."; /* the working directory is all B has of it */
    } else if (s->rootfs && mount(s->rootfs, s->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0) {
        fail(err, "cannot bind rootfs %s", s->rootfs);
    }
    /* In LXC's order: /proc and /sys (lxc.mount.auto), /dev, the user's
     * entries on top of them (a fuse node under /dev, a file under
     * /proc/sys), the cgroup file systems (last among the mount records),
     * then the terminals. */
    run_hooks(err, s, "pre-mount");
    for (int i = 0; i < s->nautomounts; i++)
        do_mount(err, s->rootfs, s->automounts[i]);
    if (s->rootfs && s->autodev)
        autodev(err, s->rootfs);
    for (int i = 0; i < s->nmounts; i++)
        do_mount(err, s->rootfs, s->mounts[i]);
    run_hooks(err, s, "mount");
    if (s->rootfs && s->autodev)
        run_hooks(err, s, "autodev");
    if (s->rootfs)
        make_terminals(err, s, chan, console_peer);
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
    run_hooks(err, s, "start");
}

/* Static, so untouched parts cost no memory (zero pages stay shared). */
static struct spec s;
static int sync_pipe[2], status_pipe[2], chan[2], log_pipe[2] = {-1, -1};

/* The keeper's child keeps the ends it writes to. */
static void child_ends(void)
{
    close(sync_pipe[0]);
    close(status_pipe[0]);
    close(chan[0]);
    if (log_pipe[0] >= 0)
        close(log_pipe[0]);
    close(report_fd);
    signal(SIGPIPE, SIG_DFL);
}

/* The init, in its namespaces: the container's file system, then the command. */
__attribute__((noreturn))
static void run_init(void)
{
    int console_peer = -1;

    setup(sync_pipe[1], &s, chan[1], &console_peer);
    close(chan[1]);
    prepare_command(sync_pipe[1], &s, console_peer, log_pipe[1]);
    if (s.app)
        _exit(app_init(sync_pipe[1], status_pipe[1], &s));
    exec_command(sync_pipe[1], &s);
}

/* The init of a privileged container, the keeper's child; -1 with errno. */
static pid_t fork_init(void)
{
    if (unshare(CLONE_NEWPID) < 0)
        return -1;
    pid_t init = fork_into_cgroups(s.cgroups, s.ncgroups, &cgroup2_placed);
    if (init == 0) {
        child_ends();
        /* The init dies with the shim: an orphaned container has no keeper. */
        prctl(PR_SET_PDEATHSIG, s.pdeath ? s.pdeath : SIGKILL);
        enter(sync_pipe[1], &s);
        run_init();
    }
    return init;
}

/* The init of an unprivileged one, through a setup process (userns.c's
 * header); -1 with errno, 0 when the setup process failed (it said why on
 * the sync pipe). */
static pid_t fork_init_userns(void)
{
    int pid_pipe[2];
    pid_t init = 0;

    if (pipe2(pid_pipe, O_CLOEXEC) < 0 || prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        return -1;
    pid_t setup_pid = fork_into_cgroups(s.cgroups, s.ncgroups, &cgroup2_placed);
    if (setup_pid == 0) {
        int err = sync_pipe[1];
        child_ends();
        close(pid_pipe[0]);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int self = syscall(SYS_pidfd_open, getpid(), 0);
        int keeper = syscall(SYS_pidfd_open, getppid(), 0);
        if (self < 0 || keeper < 0)
            fail(err, "cannot open pidfds");
        join_cgroups(err, &s);
        set_prlimits(err, &s);
        userns_enter(err, &s);
        pid_t b = fork();
        if (b < 0)
            fail(err, "cannot fork the init");
        if (b == 0) {
            close(pid_pipe[1]);
            userns_reparented(err, self, keeper, s.pdeath ? s.pdeath : SIGKILL);
            run_init();
        }
        _exit(write(pid_pipe[1], &b, sizeof(b)) == sizeof(b) ? 0 : 1);
    }
    close(pid_pipe[1]);
    if (setup_pid < 0) {
        close(pid_pipe[0]);
        return -1;
    }
    if (read(pid_pipe[0], &init, sizeof(init)) != sizeof(init))
        init = 0;
    close(pid_pipe[0]);
    while (waitpid(setup_pid, NULL, 0) < 0 && errno == EINTR)
        ;
    return init;
}

int main(int argc, char **argv)
{
    size_t len;
    char *buf;

    if (argc == 2 && !strcmp(argv[1], "attach"))
        return attach_main();
    if (argc == 2 && !strcmp(argv[1], "seccomp"))
        return seccomp_compile_main();
    if ((argc == 2 || (argc == 3 && !strcmp(argv[2], "net"))) && !strcmp(argv[1], "userns"))
        return userns_main(argc == 3);
    if (argc != 2) {
        fprintf(stderr, "usage: lxcflow-shim SPECFILE | lxcflow-shim attach | "
                        "lxcflow-shim seccomp | lxcflow-shim userns [net]\n");
        return 2;
    }
    fcntl(report_fd, F_SETFD, FD_CLOEXEC);
    buf = read_file(argv[1], &len);
    if (!buf || parse_spec(buf, len, &s) < 0) {
        report("error cannot read spec %s\n", argv[1]);
        return 1;
    }
    if (confine_read(&s.confine) < 0) {
        report("error cannot read the seccomp filter %s: %s\n", s.confine.seccomp,
               strerror(errno));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    if (pipe2(sync_pipe, O_CLOEXEC) < 0 || pipe2(status_pipe, O_CLOEXEC) < 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, chan) < 0 ||
        (s.log && !s.console && pipe2(log_pipe, O_CLOEXEC) < 0)) {
        report("error cannot create pipes: %s\n", strerror(errno));
        return 1;
    }
    pid_t init = s.userns ? fork_init_userns() : fork_init();
    if (init < 0) {
        report("error cannot start the init: %s\n", strerror(errno));
        return 1;
    }
    close(sync_pipe[1]);
    close(status_pipe[1]);
    close(chan[1]);
    if (log_pipe[1] >= 0)
        close(log_pipe[1]);
    /* the container's processes keep them alive, not us */
    if (s.netns)
        close(NETNS_FD);
    if (s.userns)
        close(USERNS_FD);

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
        if (init > 0)
            waitpid(init, NULL, 0);
        return 1;
    }
    if (init == 0) {
        report("error the setup process ended without starting the init\n");
        return 1;
    }
    report("ok %d\n", (int)init);

    /* Hold no end of the container's stdio: the caller sees EOF when the
     * container's own processes close it. */
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    for (int fd = 0; fd < 3 && devnull >= 0; fd++)
        dup2(devnull, fd);

    keep(&s, init, chan[0], log_pipe[0], status_pipe[0]);
}
