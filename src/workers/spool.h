/*
 * spool.h - bytes parked between a client and the app, so that a client who
 * sends or reads slowly holds a connection slot and never the thread running
 * the app (nginx's request and proxy buffering, inside the worker):
 *
 *  - a request body the event loop reads whole before the app runs, which
 *    then reads it from here;
 *  - the part of a response the client is not taking yet: the app's writes
 *    land here when the socket is full and the loop sends them on.
 *
 * Bytes sit in memory up to mem_max, beyond that in an unlinked temporary
 * file (up to file_max); file ranges the app hands over (wsgi.file_wrapper)
 * are kept as references and later go out by sendfile(2), never copied. A
 * queue of segments keeps the order. Plain C; one owner at a time.
 */
#ifndef CG_SPOOL_H
#define CG_SPOOL_H

#include "conn.h"

typedef struct cg_spool_seg {
    char *mem;          /* memory segment: bytes [off, end) of mem (owned) */
    size_t mcap;
    int fd;             /* file segment: bytes [off, end) of fd; -1 for memory */
    bool own_fd;        /* fd is a duplicate this segment closes */
    uint64_t off, end;
} cg_spool_seg_t;

typedef struct cg_spool {
    cg_spool_seg_t *seg;
    size_t head, nseg, cap; /* pending segments are [head, nseg) */
    uint64_t pending;       /* bytes not yet taken out */
    size_t mem_used, mem_max;
    uint64_t file_used, file_max; /* bytes in the temporary file */
    int tmp_fd;                   /* -1 until first needed */
    uint64_t tmp_end;
    const char *tmp_dir;          /* NULL: $TMPDIR or /tmp */
    /* write-behind: the transport the connection had before
     * cg_spool_attach(), which the spool's ops pass through to */
    const cg_conn_ops_t *inner;
    void *inner_transport;
} cg_spool_t;

void cg_spool_init(cg_spool_t *s, size_t mem_max, uint64_t file_max, const char *tmp_dir);
/* Drop every pending byte and release memory and files. */
void cg_spool_clear(cg_spool_t *s);
static inline uint64_t cg_spool_pending(const cg_spool_t *s)
{
    return s->pending;
}

/* Queue a copy of data. 0, -ENOSPC when the file would pass file_max
 * (nothing queued then), or -errno from the temporary file. */
int cg_spool_add(cg_spool_t *s, const void *data, size_t len);
/* Queue bytes [off, off + len) of fd by reference (fd is duplicated). */
int cg_spool_add_file(cg_spool_t *s, int fd, off_t off, uint64_t len);

/* Take up to cap pending bytes into dst: bytes, 0 when none, or -errno. */
ssize_t cg_spool_read(cg_spool_t *s, char *dst, size_t cap);

/* One transfer of pending bytes to c's transport, never waiting: bytes
 * sent (> 0), 0 when nothing is pending, CG_EAGAIN, or -errno. */
ssize_t cg_spool_send(cg_spool_t *s, cg_conn_t *c);

/*
 * Write-behind: from now on c's writes (writev, sendfile) that the socket
 * cannot take at once are queued in s instead of waiting, as long as s has
 * room; past file_max they wait as before (bounded by c's timeouts). Reads
 * and the rest go to the transport c had. cg_spool_detach() puts it back;
 * what is still pending is then the caller's to send (cg_spool_send).
 */
void cg_spool_attach(cg_spool_t *s, cg_conn_t *c);
void cg_spool_detach(cg_spool_t *s, cg_conn_t *c);
/* While c is attached to a spool: the ops and transport under it (true). */
bool cg_spool_inner(const cg_conn_t *c, const cg_conn_ops_t **ops, void **transport);

/* Whether bytes may go to c->fd directly, from a thread that is not
 * writing c (request_timeout's 504): a plain TCP transport, under a
 * write-behind with nothing queued or none at all. */
bool cg_spool_fd_writable(const cg_conn_t *c);

#endif
