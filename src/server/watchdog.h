/* The slow-body watchdog. civetweb's mg_read waits for the whole buffer it is
 * given and restarts its timeout with every byte, so a client that trickles
 * one byte a second could hold a request thread for as long as it likes.
 * While a handler reads a body it registers the connection's socket here with
 * a deadline for the current read; a periodic check shuts the socket's read
 * side down once a deadline passes, which makes mg_read return, and the
 * handler answers 408. The socket is only touched between begin and end,
 * while the handler keeps the connection (and so the descriptor) alive. */
#ifndef PM_WATCHDOG_H
#define PM_WATCHDOG_H

struct mg_connection;
typedef struct pm_body_watch pm_body_watch;

/* `slots`: reads watched at once (the number of HTTP threads). Caller owns *out. */
int pm_watch_create(int slots, pm_body_watch **out);
void pm_watch_destroy(pm_body_watch *w);

/* Starts watching the connection's socket; returns a slot, or -1 when the
 * socket cannot be found or every slot is taken (the read is then unwatched). */
int pm_watch_begin(pm_body_watch *w, const struct mg_connection *conn);
/* Sets the monotonic time by which the current read must have returned. */
void pm_watch_deadline(pm_body_watch *w, int slot, double deadline);
/* Stops watching; returns 1 if the watchdog cut the read short. */
int pm_watch_end(pm_body_watch *w, int slot);
/* Cuts every watched read whose deadline passed; returns how many. */
int pm_watch_check(pm_body_watch *w, double now);

#endif
