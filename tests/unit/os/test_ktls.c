/*
 * test_ktls.c - the kTLS probe: a kernel that lists the tls upper-layer
 * protocol as loaded must be found to have it; one that has no such
 * module at all (ENOENT, as on a kernel built without CONFIG_TLS) must
 * not; the probe never leaves a descriptor behind.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "src/os/os.h"

/* Whether /proc lists "tls" among the loaded ULPs (-1: no such file). */
static int listed(void)
{
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r");
    if (f == NULL)
        return -1;
    char line[256] = "";
    char *ok = fgets(line, sizeof(line), f);
    fclose(f);
    if (ok == NULL)
        return 0;
    for (char *tok = strtok(line, " \n"); tok != NULL; tok = strtok(NULL, " \n"))
        if (strcmp(tok, "tls") == 0)
            return 1;
    return 0;
}

static void test_probe(void **state)
{
    (void)state;
    int before = open("/dev/null", O_RDONLY);
    assert_true(before >= 0);
    close(before);
    int r = cg_os_ktls_probe();
    int after = open("/dev/null", O_RDONLY);
    assert_int_equal(after, before); /* no descriptor left open */
    close(after);
    assert_true(r == 0 || r < 0);
    if (listed() == 1)
        assert_int_equal(r, 0);
    if (r == 0) /* found: now it must be loaded (built in or on demand) */
        assert_int_equal(listed(), 1);
    assert_int_equal(cg_os_ktls_probe(), r); /* the same answer again */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
