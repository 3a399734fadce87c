/*
 * lxcflow-shim attach: run a command inside a running container, as
 * lxc-attach does.
 *
 * Usage: lxcflow-shim attach
 *   fd 0-2  the command's stdio: the caller's own, or a pty's slave (tty=1)
 *   fd 3    a pidfd of the container's init: the namespaces to enter
 *   fd 4    the spec (a memfd), NUL-terminated "key=value" records written
 *           by lxcflow/runtime/attach.py:
 *     init=PID          the init's PID (to tell which namespaces it has)
 *     cgroup=FILE       a cgroup.procs of the container (repeatable)
 *     uid=N  gid=N      whom the command runs as (default 0)
 *     cwd=DIR           where it starts; cwd_strict=1: an error if DIR is
 *                       missing (else it starts in / instead)
 *     tty=1             fd 0 is a terminal: the command's controlling one
 *     arg=ARG           the command line (repeatable; none: the login shell
 *                       of uid in the container's /etc/passwd, else /bin/sh)
 *     env=KEY=VALUE     its whole environment (repeatable)
 *
 * The command joins the container's cgroups, enters every namespace the
 * init does not share with this process (setns on the pidfd, all at once:
 * no window in which it is half inside) and runs in the container's pid
 * namespace, which takes a fork. This process waits, passes on the signals
 * it gets, and ends as the command did: the same exit code, or killed by
 * the same signal. Its own failures exit 125 (setup), 126 (cannot execute)
 * and 127 (no such command), with one line on stderr.
 */
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define INIT_PIDFD 3
#define SPEC_FD 4
#define SETUP_FAILED 125

extern char **environ;

struct attach {
    pid_t init;
    uid_t uid;
    gid_t gid;
    int tty, cwd_strict;
    struct confinement confine;
    const char *cwd;
    const char *cgroups[64];
    int ncgroups;
    char *args[MAX_ITEMS + 1];
    int nargs;
    char *envs[MAX_ITEMS + 1];
    int nenvs;
};

static pid_t command_pid = -1;

__attribute__((noreturn, format(printf, 2, 3)))
static void die(int code, const char *fmt, ...)
{
    va_list ap;

    fputs("lxcflow attach: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    _exit(code);
}

static int parse(char *buf, size_t len, struct attach *a)
{
    char *p = buf, *end = buf + len;

    while (p < end) {
        char *rec = p, *eq = strchr(rec, '=');
        p += strlen(p) + 1;
        if (!eq)
            return -1;
        *eq = 0;
        char *v = eq + 1;
        if (confine_record(&a->confine, rec, v))
            continue;
        if (!strcmp(rec, "init"))
            a->init = atoi(v);
        else if (!strcmp(rec, "uid"))
            a->uid = strtoul(v, NULL, 10);
        else if (!strcmp(rec, "gid"))
            a->gid = strtoul(v, NULL, 10);
        else if (!strcmp(rec, "cwd"))
            a->cwd = v;
        else if (!strcmp(rec, "cwd_strict"))
            a->cwd_strict = atoi(v);
        else if (!strcmp(rec, "tty"))
            a->tty = atoi(v);
        else if (!strcmp(rec, "cgroup") && a->ncgroups < 64)
            a->cgroups[a->ncgroups++] = v;
        else if (!strcmp(rec, "arg") && a->nargs < MAX_ITEMS)
            a->args[a->nargs++] = v;
        else if (!strcmp(rec, "env") && a->nenvs < MAX_ITEMS)
            a->envs[a->nenvs++] = v;
        else
            return -1;
    }
    return a->init > 0 ? 0 : -1;
}

/* The namespaces the init is in and this process is not (entering one's
 * own is EINVAL). setns on a pidfd enters a user namespace first. */
static int namespaces_to_enter(pid_t init)
{
    static const struct { const char *name; int flag; } kinds[] = {
        {"user", CLONE_NEWUSER}, {"mnt", CLONE_NEWNS}, {"uts", CLONE_NEWUTS},
        {"ipc", CLONE_NEWIPC}, {"net", CLONE_NEWNET}, {"pid", CLONE_NEWPID},
        {"cgroup", CLONE_NEWCGROUP},
#ifdef CLONE_NEWTIME
        {"time", CLONE_NEWTIME},
#endif
    };
    int flags = 0;

    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        char own[64], theirs[64];
        struct stat a, b;
        snprintf(own, sizeof(own), "/proc/self/ns/%s", kinds[i].name);
        snprintf(theirs, sizeof(theirs), "/proc/%d/ns/%s", init, kinds[i].name);
        if (stat(own, &a) == 0 && stat(theirs, &b) == 0
                && (a.st_ino != b.st_ino || a.st_dev != b.st_dev))
            flags |= kinds[i].flag;
    }
    return flags;
}

/* The login shell of uid in the container's own /etc/passwd. */
static char *login_shell(uid_t uid)
{
    static char line[4096];
    FILE *f = fopen("/etc/passwd", "re");

    while (f && fgets(line, sizeof(line), f)) {
        char *field[7];
        int n = 0;
        for (char *p = line, *tok; n < 7 && (tok = strsep(&p, ":\n")) != NULL; )
            field[n++] = tok;
        if (n == 7 && strtoul(field[2], NULL, 10) == uid && field[6][0]) {
            fclose(f);
            return field[6];
        }
    }
    if (f)
        fclose(f);
    return "/bin/sh";
}

__attribute__((noreturn))
static void run_command(struct attach *a, const int *procs, int cgroup_ns, int userns)
{
    sigset_t none;

    /* Into the cgroups first, from outside any cgroup namespace (a writer
     * inside one cannot move a process in from beyond its root). */
    for (int i = 0; i < a->ncgroups; i++)
        if (procs[i] >= 0 && write(procs[i], "0", 1) < 0)
            die(SETUP_FAILED, "cannot join %s: %s", a->cgroups[i], strerror(errno));
    if (cgroup_ns && setns(INIT_PIDFD, CLONE_NEWCGROUP) < 0)
        die(SETUP_FAILED, "cannot enter the cgroup namespace: %s", strerror(errno));
    close(INIT_PIDFD);

    if (a->tty && (setsid() < 0 || ioctl(0, TIOCSCTTY, 0) < 0))
        die(SETUP_FAILED, "cannot make the terminal the command's: %s", strerror(errno));
    if (a->cwd && chdir(a->cwd) < 0) {
        if (a->cwd_strict)
            die(SETUP_FAILED, "cannot change directory to %s: %s", a->cwd, strerror(errno));
        if (chdir("/") < 0)
            die(SETUP_FAILED, "cannot change directory to /: %s", strerror(errno));
    }
    if (a->args[0] == NULL)
        a->args[0] = login_shell(a->uid);
    /* as the container's init is: before the switch of user, while
     * CAP_SYS_ADMIN is still effective for the seccomp filter */
    const char *failed = confine_apply(&a->confine);
    if (failed)
        die(SETUP_FAILED, "%s: %s", failed, strerror(errno));
    /* In a user namespace host root is nobody until it takes a mapped id. */
    if ((a->uid || a->gid || userns) && (setgroups(0, NULL) < 0 || setgid(a->gid) < 0
                                         || setuid(a->uid) < 0))
        die(SETUP_FAILED, "cannot run as %u:%u: %s", a->uid, a->gid, strerror(errno));

    /* The daemon ignores SIGPIPE and SIGXFSZ; none of that may reach the
     * command, which starts as a shell's child would. */
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    environ = a->envs; /* execvp searches the command's own PATH */
    execvp(a->args[0], a->args);
    die(errno == ENOENT ? 127 : 126, "cannot execute %s: %s", a->args[0], strerror(errno));
}

static void forward(int sig)
{
    if (command_pid > 0)
        kill(command_pid, sig);
}

int attach_main(void)
{
    static const int passed_on[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2,
                                    SIGWINCH, SIGCONT};
    static struct attach a;
    int procs[64];
    size_t len;
    char *buf = read_file("/proc/self/fd/4", &len);
    int status;

    if (!buf || parse(buf, len, &a) < 0)
        die(SETUP_FAILED, "cannot read the attach spec");
    close(SPEC_FD);
    a.args[a.nargs] = NULL;
    a.envs[a.nenvs] = NULL;
    /* Opened and read while the host's /sys and run directory are in view. */
    if (confine_read(&a.confine) < 0)
        die(SETUP_FAILED, "cannot read the seccomp filter %s: %s", a.confine.seccomp,
            strerror(errno));
    int v2[64], placed;
    for (int i = 0; i < a.ncgroups; i++)
        if ((procs[i] = cgroup_join_open(a.cgroups[i], &v2[i])) < 0)
            die(SETUP_FAILED, "cannot open %s: %s", a.cgroups[i], strerror(errno));
    int flags = namespaces_to_enter(a.init);
    if ((flags & ~CLONE_NEWCGROUP) && setns(INIT_PIDFD, flags & ~CLONE_NEWCGROUP) < 0)
        die(SETUP_FAILED, "cannot enter the container's namespaces: %s",
            errno == ESRCH ? "it is not running" : strerror(errno));

    for (size_t i = 0; i < sizeof(passed_on) / sizeof(passed_on[0]); i++)
        signal(passed_on[i], forward);
    command_pid = fork_into_cgroups(a.cgroups, a.ncgroups, &placed);
    if (command_pid < 0)
        die(SETUP_FAILED, "cannot fork: %s", strerror(errno));
    if (command_pid == 0) {
        for (int i = 0; i < a.ncgroups; i++)
            if (placed && v2[i]) {
                close(procs[i]); /* made in it already */
                procs[i] = -1;
            }
        run_command(&a, procs, flags & CLONE_NEWCGROUP, flags & CLONE_NEWUSER);
    }

    /* Only the command holds its stdio now: the caller sees EOF with it. */
    for (int fd = 0; fd <= INIT_PIDFD; fd++)
        close(fd);
    for (int i = 0; i < a.ncgroups; i++)
        close(procs[i]);
    while (waitpid(command_pid, &status, 0) < 0)
        if (errno != EINTR)
            _exit(SETUP_FAILED);
    if (WIFEXITED(status))
        _exit(WEXITSTATUS(status));
    /* Killed: end the same way, so the daemon reads the same signal (and
     * leave no core of our own). */
    struct rlimit no_core = {0, 0};
    sigset_t only;
    int sig = WTERMSIG(status);
    setrlimit(RLIMIT_CORE, &no_core);
    signal(sig, SIG_DFL);
    sigemptyset(&only);
    sigaddset(&only, sig);
    sigprocmask(SIG_UNBLOCK, &only, NULL);
    kill(getpid(), sig);
    _exit(128 + sig);
}
