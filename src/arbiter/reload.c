/*
 * reload.c - the bookkeeping of a HUP's hand-over between two generations
 * of workers (see cg_arbiter_reload_t in arbiter.h). Pure functions of their
 * arguments, so the unit tests drive them with a made-up clock.
 */
#include "arbiter.h"

void cg_arbiter_reload_begin(cg_arbiter_reload_t *r, int retired_age, uint64_t now_ms,
                             long graceful_timeout)
{
    if (retired_age > r->retired_age)
        r->retired_age = retired_age;
    uint64_t secs = graceful_timeout > 0 ? (uint64_t)graceful_timeout : 0;
    r->deadline_ms = now_ms + secs * 1000u;
    r->active = true;
}

bool cg_arbiter_reload_retired(const cg_arbiter_reload_t *r, int age)
{
    return age <= r->retired_age;
}

bool cg_arbiter_reload_finish(cg_arbiter_reload_t *r, int oldest_age, uint64_t now_ms)
{
    if (!r->active)
        return false;
    bool gone = oldest_age < 0 || oldest_age > r->retired_age;
    if (!gone && now_ms < r->deadline_ms)
        return false;
    r->active = false;
    return true;
}
