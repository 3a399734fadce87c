/*
 * Reading the spec: the NUL-terminated "key=value" records spec.py wrote
 * (the list is in main.c's header). spec.py has parsed and validated
 * everything, so this only sorts the records into struct spec, pointing
 * into the file's buffer rather than copying.
 */
#include "shim.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The spec stays in memory for the container's whole life: size it exactly,
 * since every page a shim dirties is paid once per container. */
char *read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    size_t n = 0;
    char *buf = NULL;
    ssize_t r;

    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) == 0 && (buf = malloc(st.st_size + 1)) != NULL) {
        while (n < (size_t)st.st_size && (r = read(fd, buf + n, st.st_size - n)) > 0)
            n += r;
        buf[n] = 0;
    }
    close(fd);
    *len = n;
    return buf;
}

int parse_spec(char *buf, size_t len, struct spec *s)
{
    char *p = buf, *end = buf + len;

    while (p < end) {
        char *rec = p, *eq;
        p += strlen(p) + 1;
        eq = strchr(rec, '=');
        if (!eq)
            return -1;
        *eq = 0;
        char *v = eq + 1;
        if (confine_record(&s->confine, rec, v))
            continue;
        if (!strcmp(rec, "mode"))
            s->app = !strcmp(v, "app");
        else if (!strcmp(rec, "ns"))
            s->ns = strtoul(v, NULL, 10);
        else if (!strcmp(rec, "userns"))
            s->userns = atoi(v);
        else if (!strcmp(rec, "idmaprootfs"))
            s->idmap_rootfs = atoi(v);
        else if (!strcmp(rec, "netns"))
            s->netns = atoi(v);
        else if (!strcmp(rec, "loopback"))
            s->loopback = atoi(v);
        else if (!strcmp(rec, "autodev"))
            s->autodev = atoi(v);
        else if (!strcmp(rec, "hostname"))
            s->hostname = v;
        else if (!strcmp(rec, "rootfs"))
            s->rootfs = v;
        else if (!strcmp(rec, "cwd"))
            s->cwd = v;
        else if (!strcmp(rec, "exit"))
            s->exit_file = v;
        else if (!strcmp(rec, "cgroup") && s->ncgroups < 64)
            s->cgroups[s->ncgroups++] = v;
        else if (!strcmp(rec, "console"))
            s->console = atoi(v);
        else if (!strcmp(rec, "ttys"))
            s->ttys = atoi(v) > MAX_TTYS ? MAX_TTYS : atoi(v);
        else if (!strcmp(rec, "ptymax"))
            s->ptymax = atoi(v);
        else if (!strcmp(rec, "ttydir"))
            s->ttydir = v;
        else if (!strcmp(rec, "log"))
            s->log = v;
        else if (!strcmp(rec, "logsize"))
            s->logsize = atol(v);
        else if (!strcmp(rec, "sock"))
            s->sock = v;
        else if (!strcmp(rec, "pdeath"))
            s->pdeath = atoi(v);
        else if (!strcmp(rec, "personality"))
            s->linux32 = !strcmp(v, "linux32");
        else if (!strcmp(rec, "prlimit") && s->nprlimits < 16)
            s->prlimits[s->nprlimits++] = v;
        else if (!strcmp(rec, "hook") && s->nhooks < 64)
            s->hooks[s->nhooks++] = v;
        else if (!strcmp(rec, "hookenv") && s->nhookenv < 15)
            s->hookenv[s->nhookenv++] = v;
        else if (!strcmp(rec, "automount") && s->nautomounts < 64)
            s->automounts[s->nautomounts++] = v;
        else if (!strcmp(rec, "mount") && s->nmounts < 512)
            s->mounts[s->nmounts++] = v;
        else if (!strcmp(rec, "arg") && s->nargs < MAX_ITEMS)
            s->args[s->nargs++] = v;
        else if (!strcmp(rec, "env") && s->nenvs < MAX_ITEMS)
            s->envs[s->nenvs++] = v;
        else
            return -1;
    }
    return s->nargs > 0 && s->exit_file ? 0 : -1;
}
