/*
 * Joining a container's cgroups without the kernel's slow path.
 *
 * Moving a process through cgroup.procs takes the kernel's global
 * threadgroup lock for writing, and the first such write after a quiet
 * spell waits for an RCU grace period: 8-20 ms measured on this 2-core
 * host, for v1 and v2 alike, against 0.2 ms for the ways below. Both skip
 * that lock (no host setting involved):
 *   - cgroup v1: a single-threaded process writes "0" to the cgroup's
 *     `tasks`; moving only the calling thread needs no threadgroup lock.
 *   - cgroup v2: a process made by clone3(CLONE_INTO_CGROUP) starts in the
 *     cgroup and is never moved (a thread cannot be moved across domains).
 * Where a kernel lacks either, cgroup.procs is written as before.
 */
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/sched.h>
#include <sys/syscall.h>

#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif

/* The cgroup directory of a cgroup.procs path, in buf; NULL if too long. */
static char *directory_of(const char *procs, char *buf, size_t size)
{
    const char *slash = strrchr(procs, '/');
    size_t len = slash ? (size_t)(slash - procs) : 0;

    if (!slash || len + sizeof("/tasks") > size)
        return NULL;
    memcpy(buf, procs, len);
    buf[len] = '\0';
    return buf;
}

int cgroup_join_open(const char *procs, int *is_v2)
{
    char dir[4096], tasks[4096 + 8];

    *is_v2 = 1;
    if (directory_of(procs, dir, sizeof(dir))) {
        snprintf(tasks, sizeof(tasks), "%s/tasks", dir);
        int fd = open(tasks, O_WRONLY | O_CLOEXEC);
        if (fd >= 0) {
            *is_v2 = 0;
            return fd;
        }
    }
    return open(procs, O_WRONLY | O_CLOEXEC);
}

/* The directory of the cgroup2 one among n cgroup.procs files, opened; -1 if none. */
static int cgroup2_dir(const char *const *procs, int n)
{
    char dir[4096], tasks[4096 + 8];

    for (int i = 0; i < n; i++) {
        if (!directory_of(procs[i], dir, sizeof(dir)))
            continue;
        snprintf(tasks, sizeof(tasks), "%s/tasks", dir);
        if (access(tasks, F_OK) == 0)
            continue; /* v1 */
        return open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    return -1;
}

pid_t fork_into_cgroups(const char *const *procs, int n, int *placed)
{
    int dirfd = cgroup2_dir(procs, n);

    *placed = 0;
    if (dirfd >= 0) {
        struct clone_args args = {
            .flags = CLONE_INTO_CGROUP,
            .exit_signal = SIGCHLD,
            .cgroup = (unsigned long long)dirfd,
        };
        pid_t pid = syscall(SYS_clone3, &args, sizeof(args));
        int saved = errno;
        close(dirfd); /* in the parent and, made, in the child */
        errno = saved;
        if (pid >= 0) {
            *placed = 1;
            return pid;
        }
        if (errno != ENOSYS && errno != E2BIG && errno != EINVAL)
            return -1;
        /* a kernel before 5.7: fork, and the child writes cgroup.procs */
    }
    return fork();
}
