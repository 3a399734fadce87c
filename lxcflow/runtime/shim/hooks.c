/*
 * The lxc.hook.* commands LXC runs in the container's namespaces while it is
 * set up (pre-mount, mount, autodev, start; spec.py gives their argv and the
 * shared environment). They run from the init, so inside the container's
 * pid, mount and other namespaces and its cgroup; a failure fails the start
 * with the hook's last words, as LXC's does.
 */
#include "shim.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_HOOK_ARGS 16

static void run_one(int err, struct spec *s, const char *type, char *record)
{
    char *argv[MAX_HOOK_ARGS + 1], *envp[18], hook_type[64], said[256];
    int argc = 0, fds[2];
    size_t kept = 0;

    /* "TYPE\x1fARG..." split in place: the record is ours alone */
    for (char *p = record; p && argc < MAX_HOOK_ARGS;) {
        char *sep = strchr(p, '\x1f');
        if (sep)
            *sep = 0;
        argv[argc++] = p;
        p = sep ? sep + 1 : NULL;
    }
    argv[argc] = NULL;
    int n = 0;
    for (; n < s->nhookenv; n++)
        envp[n] = s->hookenv[n];
    snprintf(hook_type, sizeof(hook_type), "LXC_HOOK_TYPE=%s", type);
    envp[n++] = hook_type;
    envp[n] = NULL;

    if (pipe(fds) < 0)
        fail(err, "cannot run lxc.hook.%s", type);
    pid_t pid = fork();
    if (pid < 0)
        fail(err, "cannot run lxc.hook.%s", type);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        execve(argv[1], argv + 1, envp);
        _exit(127);
    }
    close(fds[1]);
    /* keep the end of what it printed, for the error */
    for (;;) {
        char buf[512];
        ssize_t got = read(fds[0], buf, sizeof(buf));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        if ((size_t)got >= sizeof(said) - 1) {
            memcpy(said, buf + got - (sizeof(said) - 1), sizeof(said) - 1);
            kept = sizeof(said) - 1;
        } else {
            if (kept + got > sizeof(said) - 1) {
                size_t drop = kept + got - (sizeof(said) - 1);
                memmove(said, said + drop, kept - drop);
                kept -= drop;
            }
            memcpy(said + kept, buf, got);
            kept += got;
        }
    }
    close(fds[0]);
    said[kept] = 0;
    while (kept > 0 && (said[kept - 1] == '\n' || said[kept - 1] == ' '))
        said[--kept] = 0;
    char *last = strrchr(said, '\n');
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return;
    errno = 0;
    if (WIFEXITED(status))
        fail(err, "lxc.hook.%s failed (exit %d)%s%s", type, WEXITSTATUS(status),
             kept ? ": " : "", last ? last + 1 : said);
    fail(err, "lxc.hook.%s killed by signal %d", type, WTERMSIG(status));
}

void run_hooks(int err, struct spec *s, const char *type)
{
    size_t len = strlen(type);

    for (int i = 0; i < s->nhooks; i++)
        if (!strncmp(s->hooks[i], type, len) && s->hooks[i][len] == '\x1f')
            run_one(err, s, type, s->hooks[i]);
}
