/*
 * Unprivileged containers (lxc.idmap): the user namespace and the way into it.
 *
 * The daemon makes the user namespace before the shim starts, with the
 * network namespace it owns when the container has one ("lxcflow-shim
 * userns net", below): the container's
 * root then administers its own network (sysfs mounts, ip inside), and the
 * daemon still configures the interfaces from the host before the init runs,
 * as for any container. The shim gets both as fds (main.c's header).
 *
 * Setting up, the keeper's child (A, still host root) joins the cgroups,
 * mounts the rootfs idmapped through the namespace in a mount namespace of
 * its own, goes into the rootfs, joins the user and network namespaces,
 * becomes container root and unshares the rest, the pid namespace among
 * them, which only its next child enters: that child (B) is the init, and A
 * exits so that B is the keeper's (a subreaper's) child. A pid namespace
 * made before the user namespace would belong to the host's, and /proc
 * could not be mounted from inside.
 *
 * B starts in the rootfs by its working directory alone: the lxcpath above
 * it is 0700 and host root's, so container root cannot walk to it by path,
 * and must not (setuid files it writes there are host root's on disk).
 */
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/mount.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* "lxcflow-shim userns [net]": unshare a user namespace (and with "net" a
 * network namespace it owns), say "ok" on stdout, and hold them until stdin
 * closes; the daemon writes the maps and opens the namespaces by
 * /proc/PID/ns meanwhile. */
int userns_main(int net)
{
    char byte;

    if (unshare(CLONE_NEWUSER | (net ? CLONE_NEWNET : 0)) < 0) {
        int e = errno;
        printf("error cannot create a user namespace: %s\n",
               e == ENOSPC ? "none are left (the sysctl user.max_user_namespaces)"
               : e == EINVAL ? "this kernel has no user namespaces" : strerror(e));
        return 1;
    }
    printf("ok\n");
    fflush(stdout);
    while (read(0, &byte, 1) > 0)
        ;
    return 0;
}

/* A: everything between the host and the init's pid namespace. */
void userns_enter(int err, struct spec *s)
{
    if (unshare(CLONE_NEWNS) < 0)
        fail(err, "cannot create a mount namespace");
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        fail(err, "cannot make / private");
    if (s->rootfs && s->idmap_rootfs) {
        /* The rootfs's own files stay as they are on disk: the mount shows
         * host uid 0 as container root, and what container root writes is
         * stored as host uid 0 (the maps, applied both ways). */
        int tree = syscall(SYS_open_tree, AT_FDCWD, s->rootfs,
                           OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
        struct mount_attr attr = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = USERNS_FD};
        if (tree < 0)
            fail(err, "cannot clone the rootfs %s", s->rootfs);
        if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr,
                    sizeof(attr)) < 0)
            fail(err, "cannot make an idmapped mount of %s (the file system must support "
                      "idmapped mounts, kernel 5.12+)", s->rootfs);
        if (syscall(SYS_move_mount, tree, "", AT_FDCWD, s->rootfs, MOVE_MOUNT_F_EMPTY_PATH) < 0)
            fail(err, "cannot mount the idmapped rootfs");
        close(tree);
    }
    if (s->rootfs && chdir(s->rootfs) < 0)
        fail(err, "cannot enter rootfs %s", s->rootfs);
    if (setns(USERNS_FD, CLONE_NEWUSER) < 0)
        fail(err, "cannot join the user namespace");
    close(USERNS_FD);
    if (s->netns) {
        if (setns(NETNS_FD, CLONE_NEWNET) < 0)
            fail(err, "cannot join the network namespace");
        close(NETNS_FD);
    }
    if (setresgid(0, 0, 0) < 0 || setgroups(0, NULL) < 0 || setresuid(0, 0, 0) < 0)
        fail(err, "cannot become the container's root (is uid and gid 0 mapped?)");
    /* The mount namespace made here is a copy owned by the new user
     * namespace, its working directory the rootfs's copy. */
    if (unshare(CLONE_NEWPID | s->ns) < 0)
        fail(err, "cannot create namespaces in the user namespace");
}

/* B, first: wait until A is gone (B is then the keeper's child), and die
 * with the keeper from then on, as any init does. */
void userns_reparented(int err, int parent_pidfd, int keeper_pidfd, int sig)
{
    struct pollfd p = {parent_pidfd, POLLIN, 0};

    while (poll(&p, 1, -1) < 0)
        if (errno != EINTR)
            fail(err, "cannot wait for the setup process");
    prctl(PR_SET_PDEATHSIG, sig);
    p.fd = keeper_pidfd;
    if (poll(&p, 1, 0) != 0) /* the keeper died before the signal was armed */
        _exit(1);
    close(parent_pidfd);
    close(keeper_pidfd);
}

/* B: the rootfs, copied in from a more privileged mount namespace, is
 * locked (it cannot be moved or pivoted to); a clone of it made here is
 * not. Mounted over the working directory, which then moves onto it. */
void userns_unlock_root(int err)
{
    int tree = syscall(SYS_open_tree, AT_FDCWD, ".", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC |
                       AT_RECURSIVE);
    if (tree < 0 || syscall(SYS_move_mount, tree, "", AT_FDCWD, ".", MOVE_MOUNT_F_EMPTY_PATH) < 0
        || fchdir(tree) < 0)
        fail(err, "cannot mount the rootfs in the container's mount namespace");
    close(tree);
}
