/*
 * The init: how the command starts (exec_command: clean signals, the
 * container's environment) and, in an application container, the minimal
 * PID 1 that runs it (app_init: reaps, forwards signals, passes on the
 * command's exit status). A system container's command is PID 1 itself.
 */
#include "shim.h"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

void exec_command(int err, struct spec *s)
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
int app_init(int err, int status_fd, struct spec *s)
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
