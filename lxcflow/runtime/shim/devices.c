/*
 * Devices: the container's /dev when the spec says autodev=1, a tmpfs with
 * binds of a few host nodes. Apart from mounts.c because which of the host's
 * devices a container may reach is a question of its own, not a mount entry.
 */
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

/* A minimal /dev, as LXC's autodev: a tmpfs with the host's harmless nodes. */
void autodev(int err, const char *root)
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
    /* chmod: the daemon's umask must not take the sticky, world-writable bits */
    if ((mkdir(path, 01777) < 0 && errno != EEXIST) || chmod(path, 01777) < 0)
        fail(err, "cannot create /dev/shm");
}
