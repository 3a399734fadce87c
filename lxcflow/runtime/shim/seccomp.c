/*
 * Seccomp: "lxcflow-shim seccomp" compiles a profile (as runtime/seccomp.py
 * reads LXC's format) into a BPF program once, with libseccomp; the keeper
 * and attach only load the compiled program (read_filter, install_filter,
 * called from confine.c), so no start pays for compiling and the keeper
 * touches none of libseccomp's pages.
 *
 * The compiler reads lines on stdin and writes the program to stdout:
 *   default ACTION                the action of every syscall no rule names
 *   rule LINE ARCHES ACTION SYSCALL [INDEX OP VALUE VALUE2]...
 *        SYSCALL: a name, or #NUMBER (the native arch's, version 1)
 *        ARCHES: all (this machine's and its compat ones), native, x86, x32
 *        ACTION: allow, kill, trap, errno N (as one word: errno:N)
 * Its errors name the profile's LINE: "error LINE: TEXT".
 */
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

enum { A_NATIVE, A_X86, A_X32, NARCH };

static uint32_t action_of(const char *word, int *ok)
{
    *ok = 1;
    if (!strcmp(word, "allow"))
        return SCMP_ACT_ALLOW;
    if (!strcmp(word, "kill"))
        return SCMP_ACT_KILL_PROCESS;
    if (!strcmp(word, "trap"))
        return SCMP_ACT_TRAP;
    if (!strncmp(word, "errno:", 6))
        return SCMP_ACT_ERRNO(atoi(word + 6));
    *ok = 0;
    return 0;
}

static enum scmp_compare compare_of(const char *word)
{
    static const char *names[] = {"", "ne", "lt", "le", "eq", "ge", "gt", "masked_eq"};
    for (size_t i = 1; i < sizeof(names) / sizeof(*names); i++)
        if (!strcmp(word, names[i]))
            return (enum scmp_compare)i;
    return _SCMP_CMP_MIN;
}

int seccomp_compile_main(void)
{
    static const uint32_t arch_token[NARCH] = {0, SCMP_ARCH_X86, SCMP_ARCH_X32};
    scmp_filter_ctx ctx[NARCH] = {0};
    char line[4096], first[64];
    int have[NARCH] = {1, 0, 0};
    uint32_t deflt = SCMP_ACT_ALLOW;

#if defined(__x86_64__)
    have[A_X86] = have[A_X32] = 1; /* the compat arches this kernel runs */
#endif
    if (!fgets(line, sizeof(line), stdin) || sscanf(line, "default %63s", first) != 1) {
        fprintf(stderr, "error 0: no default action\n");
        return 1;
    }
    int ok;
    deflt = action_of(first, &ok);
    if (!ok) {
        fprintf(stderr, "error 0: bad default action %s\n", first);
        return 1;
    }
    for (int a = 0; a < NARCH; a++) {
        if (!have[a])
            continue;
        ctx[a] = seccomp_init(deflt);
        if (!ctx[a]) {
            fprintf(stderr, "error 0: cannot make a filter\n");
            return 1;
        }
        if (a != A_NATIVE) {
            seccomp_arch_remove(ctx[a], SCMP_ARCH_NATIVE);
            if (seccomp_arch_add(ctx[a], arch_token[a]) < 0) {
                seccomp_release(ctx[a]);
                ctx[a] = NULL;
                have[a] = 0;
            }
        }
    }
    while (fgets(line, sizeof(line), stdin)) {
        char *word[4 + 4 * 6], *save = NULL;
        int n = 0;
        for (char *w = strtok_r(line, " \n", &save); w && n < (int)(sizeof(word) / sizeof(*word));
             w = strtok_r(NULL, " \n", &save))
            word[n++] = w;
        if (n < 5 || strcmp(word[0], "rule") || (n - 5) % 4) {
            fprintf(stderr, "error 0: bad compiler input\n");
            return 1;
        }
        const char *where = word[1], *arches = word[2], *name = word[4];
        uint32_t act = action_of(word[3], &ok);
        if (!ok) {
            fprintf(stderr, "error %s: bad action %s\n", where, word[3]);
            return 1;
        }
        struct scmp_arg_cmp cmp[6];
        int ncmp = 0;
        for (int i = 5; i + 3 < n; i += 4) {
            enum scmp_compare op = compare_of(word[i + 1]);
            if (op == _SCMP_CMP_MIN) {
                fprintf(stderr, "error %s: bad comparison %s\n", where, word[i + 1]);
                return 1;
            }
            cmp[ncmp++] = (struct scmp_arg_cmp){(unsigned)atoi(word[i]), op,
                                                strtoull(word[i + 2], NULL, 0),
                                                strtoull(word[i + 3], NULL, 0)};
        }
        int added = 0;
        for (int a = 0; a < NARCH; a++) {
            int wanted = !strcmp(arches, "all") || (a == A_NATIVE && !strcmp(arches, "native")) ||
                         (a == A_X86 && !strcmp(arches, "x86")) ||
                         (a == A_X32 && !strcmp(arches, "x32"));
            if (!wanted || !have[a])
                continue;
            /* By the native number where the syscall has one: libseccomp
             * finds it in each arch by name (x32's carry a flag bit the
             * exact call refuses); else the compat arch's own number. */
            int native = seccomp_syscall_resolve_name(name), rc;
            if (act == deflt)
                continue; /* libseccomp refuses a rule that changes nothing */
            if (name[0] == '#') { /* version 1: a native syscall by number */
                if (a != A_NATIVE)
                    continue;
                rc = seccomp_rule_add_exact_array(ctx[a], act, atoi(name + 1), ncmp, cmp);
            } else if (native != __NR_SCMP_ERROR) {
                rc = seccomp_rule_add_array(ctx[a], act, native, ncmp, cmp);
            } else {
                int nr = seccomp_syscall_resolve_name_arch(arch_token[a], name);
                if (a == A_NATIVE || nr == __NR_SCMP_ERROR)
                    continue; /* not a syscall of this arch: nothing to filter there */
                rc = seccomp_rule_add_exact_array(ctx[a], act, nr, ncmp, cmp);
            }
            if (rc < 0 && a != A_NATIVE)
                continue; /* a compat arch without it */
            if (rc < 0) {
                fprintf(stderr, "error %s: cannot add %s: %s\n", where, name, strerror(-rc));
                return 1;
            }
            added = 1;
        }
        if (!added && act != deflt && name[0] != '#' &&
            (!strcmp(arches, "all") || !strcmp(arches, "native")) &&
            seccomp_syscall_resolve_name(name) == __NR_SCMP_ERROR) {
            fprintf(stderr, "error %s: unknown syscall %s\n", where, name);
            return 1;
        }
    }
    for (int a = 1; a < NARCH; a++)
        if (have[a] && seccomp_merge(ctx[A_NATIVE], ctx[a]) < 0) {
            fprintf(stderr, "error 0: cannot merge the compat filters\n");
            return 1;
        }
    if (seccomp_export_bpf(ctx[A_NATIVE], 1) < 0) {
        fprintf(stderr, "error 0: cannot write the program\n");
        return 1;
    }
    seccomp_release(ctx[A_NATIVE]);
    return 0;
}

/* Read before the process leaves the host's mount namespace or root: the
 * program's file is in the daemon's run directory. */
int read_filter(const char *path, struct sock_fprog *out)
{
    size_t len;
    char *prog = read_file(path, &len);

    if (!prog || len == 0 || len % sizeof(struct sock_filter)) {
        free(prog);
        return -1;
    }
    out->len = len / sizeof(struct sock_filter);
    out->filter = (struct sock_filter *)prog;
    return 0;
}

int install_filter(struct sock_fprog *prog)
{
    /* CAP_SYS_ADMIN is still effective here (confine.c leaves it to execve) */
    return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog);
}
