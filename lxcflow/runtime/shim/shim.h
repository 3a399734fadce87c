/*
 * What the shim's files share: the spec as read into memory, the mount
 * option bits, and the functions one file calls in another. Each .c file
 * includes this first (it sets _GNU_SOURCE for the headers that follow).
 * The keeper's contract (usage, fds, spec records) heads main.c.
 */
#ifndef LXCFLOW_SHIM_H
#define LXCFLOW_SHIM_H

#define _GNU_SOURCE
#include <stddef.h>
#include <linux/filter.h>
#include <sys/types.h>

#define MAX_ITEMS 4096

/* Mount option bits (OPTS field), mirrored in spec.py. */
#define M_OPTIONAL 1    /* a failure is not fatal */
#define M_MKDIR 2       /* create the target directory */
#define M_MKFILE 4      /* create the target as an empty file */
#define M_BIND_RO 8     /* read-only bind: needs a second, remount call */
#define M_SRC_IN_ROOT 16 /* the source is a path inside the container, too */
#define M_REMOUNT 32    /* change the flags of what is mounted on the target */

#define MAX_TTYS 64     /* config/keys.py: MAX_TTYS */

#define NETNS_FD 4      /* main.c's header: the namespaces the daemon made */
#define USERNS_FD 5

/* confine.c: what a container's processes may do */
struct confinement {
    int has_capkeep, no_new_privs;
    unsigned long long capkeep;  /* the bounding set's mask */
    const char *apparmor;        /* the profile the command execs into */
    const char *seccomp;         /* the compiled filter's file (seccomp.c) */
    struct sock_fprog filter;    /* read while the host's files are in view */
};

struct spec {
    int app;
    unsigned long ns;
    int netns;
    int userns;         /* lxc.idmap: join the user namespace on USERNS_FD */
    int idmap_rootfs;   /* and mount the rootfs through its maps */
    int loopback;
    int autodev;
    int console;        /* a console pty is the command's stdio */
    int ttys;           /* lxc.tty.max */
    int ptymax;         /* lxc.pty.max, 0: the kernel's limit */
    int pdeath;         /* the init's signal when the keeper dies */
    int linux32;        /* lxc.arch: a 32-bit personality */
    struct confinement confine;
    long logsize;
    const char *ttydir, *log, *sock;
    const char *hostname, *rootfs, *cwd, *exit_file;
    char *prlimits[16];  /* "RESOURCE:SOFT:HARD" */
    int nprlimits;
    char *automounts[64]; /* the system's mounts, before /dev */
    int nautomounts;
    char *hooks[64];     /* "TYPE\x1fARGV0\x1fARGV1..." */
    int nhooks;
    char *hookenv[16];   /* what every hook's environment holds */
    int nhookenv;
    const char *cgroups[64];
    int ncgroups;
    char *mounts[512];
    int nmounts;
    char *args[MAX_ITEMS + 1];
    int nargs;
    char *envs[MAX_ITEMS + 1];
    int nenvs;
};

/* report.c: how the shim tells what happened */
extern int report_fd;
__attribute__((noreturn, format(printf, 2, 3)))
void fail(int fd, const char *fmt, ...);

/* cgroups.c: joining a container's cgroups (see there) */
/* The fd the calling process writes "0" to, to join the cgroup of the
 * cgroup.procs file `procs` (its `tasks` on v1); *is_v2 says which. */
int cgroup_join_open(const char *procs, int *is_v2);
/* fork(), the child made in the cgroup2 cgroup among the n cgroup.procs
 * files where there is one and the kernel can (*placed: it was); -1 with errno. */
pid_t fork_into_cgroups(const char *const *procs, int n, int *placed);
__attribute__((format(printf, 1, 2)))
void report(const char *fmt, ...);
void write_exit_file(const char *path, int status);

/* spec.c: the spec file */
char *read_file(const char *path, size_t *len);
int parse_spec(char *buf, size_t len, struct spec *s);

/* mounts.c: mount entries and their targets */
void mkdir_p(int err, const char *path, int optional);
void in_root(char *out, size_t size, const char *root, const char *target);
void do_mount(int err, const char *root, char *entry);

/* Takes a confinement record (1) or leaves it to the caller (0). */
int confine_record(struct confinement *c, const char *key, const char *value);
/* Before leaving the host's mount namespace or root: -1 with errno. */
int confine_read(struct confinement *c);
/* Just before the command's execve: NULL, or what failed (errno set). */
const char *confine_apply(struct confinement *c);

/* seccomp.c: "lxcflow-shim seccomp" (compile a profile), and loading one */
int seccomp_compile_main(void);
int read_filter(const char *path, struct sock_fprog *out);
int install_filter(struct sock_fprog *prog);

/* hooks.c: lxc.hook.* commands run in the container's namespaces */
void run_hooks(int err, struct spec *s, const char *type);

/* devices.c: the container's /dev */
void autodev(int err, const char *root);

/* terminals.c: the container's devpts, console and ttys */
void make_terminals(int err, struct spec *s, int chan, int *console_peer);

/* keeper.c: holding the terminals, the console log, the exit record */
__attribute__((noreturn))
void keep(struct spec *s, pid_t init, int chan, int log_pipe, int status_fd);

/* userns.c: unprivileged containers */
int userns_main(int net);
void userns_enter(int err, struct spec *s);
void userns_reparented(int err, int parent_pidfd, int keeper_pidfd, int sig);
void userns_unlock_root(int err);

/* attach.c: "lxcflow-shim attach", a command run inside a running container */
int attach_main(void);

/* init.c: the container's PID 1 and the command */
__attribute__((noreturn))
void exec_command(int err, struct spec *s);
int app_init(int err, int status_fd, struct spec *s);

#endif
