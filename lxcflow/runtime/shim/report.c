/*
 * How the shim tells what happened, each to whoever is there to hear it:
 * the init's failure line on the sync pipe (fail, before the command runs),
 * the lines to the daemon on the report pipe (report: "ok PID" or "error
 * WHY" at the start, "exit STATUS" when the keeper reaps the init), and the
 * exit record, a file that outlives the daemon (write_exit_file).
 */
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int report_fd = 3;

/* Child side: say what failed on the sync pipe, then give up. */
void fail(int fd, const char *fmt, ...)
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

void report(const char *fmt, ...)
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
}

void write_exit_file(const char *path, int status)
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
