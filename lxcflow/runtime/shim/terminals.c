/*
 * The container's terminals, made by its init before pivot_root: a devpts
 * of its own, the console and the lxc.tty.max ttys as ptys of it bound on
 * /dev/console and /dev/ttyN (LXC's layout, lxc.tty.dir included), and every
 * master and slave handed to the keeper (keeper.c), which holds them.
 */
#include "shim.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

/* Bind ``src`` on ``target`` in the container's /dev, over what is there
 * (a node the root file system ships, as c 5 1 for the console: never
 * removed, since without autodev that /dev is the tree's own, on disk),
 * else on an empty file made for it. */
static void bind_over(int err, const char *src, const char *target, const char *rel)
{
    struct stat st;

    if (lstat(target, &st) < 0) {
        int fd = open(target, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
            fail(err, "cannot create %s", rel);
        close(fd);
    }
    if (mount(src, target, NULL, MS_BIND, NULL) < 0)
        fail(err, "cannot bind %s on %s", src, rel);
}

/* Bind the pty slave pts/N on /dev/NAME, or on /dev/DIR/NAME when
 * lxc.tty.dir is set, with /dev/NAME a symlink to it (or, where the tree
 * has a node of that name, the slave bound there too), as LXC lays them out. */
static void bind_slave(int err, struct spec *s, const char *pts, int num, const char *name)
{
    char target[4096], src[4200], rel[256];

    if (s->ttydir) {
        snprintf(rel, sizeof(rel), "/dev/%s", s->ttydir);
        in_root(target, sizeof(target), s->rootfs, rel);
        mkdir_p(err, target, 0);
        snprintf(rel, sizeof(rel), "/dev/%s/%s", s->ttydir, name);
    } else {
        snprintf(rel, sizeof(rel), "/dev/%s", name);
    }
    in_root(target, sizeof(target), s->rootfs, rel);
    snprintf(src, sizeof(src), "%s/%d", pts, num);
    bind_over(err, src, target, rel);
    if (s->ttydir) {
        char link[4096], dest[320];
        struct stat st;
        snprintf(rel, sizeof(rel), "/dev/%s", name);
        in_root(link, sizeof(link), s->rootfs, rel);
        snprintf(dest, sizeof(dest), "%s/%s", s->ttydir, name);
        if (lstat(link, &st) == 0 && !S_ISLNK(st.st_mode))
            bind_over(err, src, link, rel);
        else if (lstat(link, &st) < 0 && symlink(dest, link) < 0)
            fail(err, "cannot link %s to %s", rel, dest);
    }
}

void make_terminals(int err, struct spec *s, int chan, int *console_peer)
{
    char pts[4096], path[4200], opts[128];
    int fds[2 * (MAX_TTYS + 1)], nfds = 0, zero = 0, total = s->console + s->ttys;

    in_root(pts, sizeof(pts), s->rootfs, "/dev/pts");
    mkdir_p(err, pts, 0);
    /* Each ptmx open takes one pts: the console and ttys count against max. */
    int n = snprintf(opts, sizeof(opts), "newinstance,ptmxmode=0666,mode=0620,gid=5");
    if (s->ptymax)
        snprintf(opts + n, sizeof(opts) - n, ",max=%d", s->ptymax + total);
    if (mount("devpts", pts, "devpts", MS_NOSUID | MS_NOEXEC, opts) < 0)
        fail(err, "cannot mount devpts on /dev/pts");
    /* /dev/ptmx must reach this devpts, not the host's: a symlink where
     * there is nothing, the devpts's own ptmx bound over a node. */
    struct stat st;
    in_root(path, sizeof(path), s->rootfs, "/dev/ptmx");
    if (lstat(path, &st) < 0) {
        if (symlink("pts/ptmx", path) < 0)
            fail(err, "cannot link /dev/ptmx to pts/ptmx");
    } else if (!S_ISLNK(st.st_mode)) {
        char ptmx[4200];
        snprintf(ptmx, sizeof(ptmx), "%s/ptmx", pts);
        bind_over(err, ptmx, path, "/dev/ptmx");
    }

    snprintf(path, sizeof(path), "%s/ptmx", pts);
    for (int i = 0; i < total; i++) {
        int num = -1, master = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (master < 0 || ioctl(master, TIOCSPTLCK, &zero) < 0 || ioctl(master, TIOCGPTN, &num) < 0)
            fail(err, "cannot open a pty in the container's devpts");
        int peer = ioctl(master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (peer < 0)
            fail(err, "cannot open pts/%d", num);
        /* spec.py announced the ttys by number (container_ttys): a fresh
         * devpts counts from 0, the console first. */
        if (num != i)
            fail(err, "pts/%d where pts/%d was expected", num, i);
        char name[16];
        if (s->console && i == 0)
            snprintf(name, sizeof(name), "console");
        else
            snprintf(name, sizeof(name), "tty%d", i + 1 - s->console);
        bind_slave(err, s, pts, num, name);
        fds[nfds++] = master;
        fds[nfds++] = peer;
        if (s->console && i == 0)
            *console_peer = peer;
    }
    if (!nfds)
        return;
    char byte = 't', cbuf[CMSG_SPACE(sizeof(fds))];
    struct iovec iov = {.iov_base = &byte, .iov_len = 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                         .msg_controllen = CMSG_SPACE(nfds * sizeof(int))};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
    memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
    if (sendmsg(chan, &msg, 0) < 0)
        fail(err, "cannot hand the ptys to the keeper");
    for (int i = 0; i < nfds; i++)
        if (fds[i] != *console_peer)
            close(fds[i]);
}
