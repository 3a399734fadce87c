/*
 * Mounts: the spec's mount entries (SRC\x1fTARGET\x1fFSTYPE\x1fFLAGS\x1fDATA\x1fOPTS,
 * with the M_* option bits) and their targets, which are relative to the
 * rootfs when there is one. setup() in main.c mounts the system filesystems
 * with the same helpers, and devices.c builds /dev with them.
 */
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

void mkdir_p(int err, const char *path, int optional)
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
void in_root(char *out, size_t size, const char *root, const char *target)
{
    while (root && *target == '/')
        target++;
    snprintf(out, size, "%s%s%s", root ? root : "", root ? "/" : "", target);
}

void do_mount(int err, const char *root, char *entry)
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
    if (opts & M_REMOUNT) {
        if (mount(NULL, target, NULL, MS_REMOUNT | flags, *f[4] ? f[4] : NULL) < 0 && !optional)
            fail(err, "cannot remount %s", f[1]);
        return;
    }
    char source[4096];
    if (opts & M_SRC_IN_ROOT) {
        in_root(source, sizeof(source), root, f[0]);
        f[0] = source;
    }
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
