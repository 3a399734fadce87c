/*
 * Confinement: what a container's processes may do, applied the same way to
 * its init (main.c) and to every attach (attach.c), from the same records
 * (runtime/confinement.py writes them):
 *   capkeep=HEX  apparmor=PROFILE  seccomp=FILE  nonewprivs=1
 * In LXC's order: the capability bound, the AppArmor profile for the next
 * execve, then the seccomp filter while CAP_SYS_ADMIN is still effective.
 *
 * Capabilities: bound a container's processes to the set its config keeps
 * (lxc.cap.drop / lxc.cap.keep, spec.py's capkeep mask), as LXC does it:
 * drop the rest from the bounding set, and from the inheritable and ambient
 * sets, and let execve compute the final sets (root's permitted and
 * effective sets are then exactly what the bounding set allows). The
 * effective set is left alone until then: what comes after (the seccomp
 * filter, attach's setuid) may still need CAP_SYS_ADMIN.
 */
#include "shim.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

static int last_cap(void)
{
    char text[16] = {0};
    FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
    int n = f && fgets(text, sizeof(text), f) ? atoi(text) : 40;
    if (f)
        fclose(f);
    return n;
}

static int bound_capabilities(unsigned long long keep)
{
    int last = last_cap();

    for (int cap = 0; cap <= last && cap < 64; cap++)
        if (!(keep >> cap & 1) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
            return -1;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
        return -1;
    struct __user_cap_header_struct head = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &head, data) < 0)
        return -1;
    data[0].inheritable &= (unsigned int)keep;
    data[1].inheritable &= (unsigned int)(keep >> 32);
    return syscall(SYS_capset, &head, data) < 0 ? -1 : 0;
}

/* AppArmor: the profile the next execve enters (the kernel's interface, as
 * LXC writes it; /proc/self/attr/exec on kernels before 5.1). */
static int apparmor_on_exec(const char *profile)
{
    static const char *files[] = {"/proc/self/attr/apparmor/exec", "/proc/self/attr/exec"};
    char text[512];
    int n = snprintf(text, sizeof(text), "exec %s", profile);

    for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++) {
        int fd = open(files[i], O_WRONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        int rc = write(fd, text, n) == n ? 0 : -1;
        close(fd);
        return rc;
    }
    return -1;
}

int confine_record(struct confinement *c, const char *key, const char *value)
{
    if (!strcmp(key, "capkeep")) {
        c->capkeep = strtoull(value, NULL, 16);
        c->has_capkeep = 1;
    } else if (!strcmp(key, "apparmor")) {
        c->apparmor = value;
    } else if (!strcmp(key, "seccomp")) {
        c->seccomp = value;
    } else if (!strcmp(key, "nonewprivs")) {
        c->no_new_privs = atoi(value);
    } else {
        return 0;
    }
    return 1;
}

int confine_read(struct confinement *c)
{
    return c->seccomp ? read_filter(c->seccomp, &c->filter) : 0;
}

const char *confine_apply(struct confinement *c)
{
    if (c->has_capkeep && bound_capabilities(c->capkeep) < 0)
        return "cannot drop capabilities";
    if (c->apparmor && apparmor_on_exec(c->apparmor) < 0)
        return "cannot change to the AppArmor profile";
    if (c->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return "cannot set no_new_privs";
    if (c->seccomp && install_filter(&c->filter) < 0)
        return "cannot load the seccomp filter";
    return NULL;
}
