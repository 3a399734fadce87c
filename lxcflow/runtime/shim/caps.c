/*
 * What a container's processes may do, beyond the seccomp filter.
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

int bound_capabilities(unsigned long long keep)
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
int apparmor_on_exec(const char *profile)
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
