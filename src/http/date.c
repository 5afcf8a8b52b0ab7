/*
 * date.c - IMF-fixdate (RFC 9110 section 5.6.7) for the Date header.
 * Formatted by hand: strftime would follow the process locale.
 */
#include "http.h"

#include <stdio.h>

void cg_http_date(time_t t, char buf[30])
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        t = 0;
        gmtime_r(&t, &tm);
    }
    snprintf(buf, 30, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7], tm.tm_mday,
             months[tm.tm_mon % 12], (tm.tm_year + 1900) % 10000, tm.tm_hour, tm.tm_min,
             tm.tm_sec);
}

const char *cg_http_date_now(cg_http_date_cache_t *c)
{
    time_t now = time(NULL);
    if (now != c->t || c->buf[0] == '\0') {
        cg_http_date(now, c->buf);
        c->t = now;
    }
    return c->buf;
}
