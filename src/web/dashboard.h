/* dashboard.h - `minigpt train --dashboard [PORT]`: a live page of the
 * run, served by a libmicrohttpd daemon of its own while training runs:
 *   GET /, /app.js, ...        the web app (its training view)
 *   GET /v1/app                {"mode": "train"}
 *   GET /v1/train/events       server-sent events, one JSON per "data:"
 *       line: {"type": "step" | "eval" | "epoch" | "info" | "save" | "end", ...}; a client
 *       that connects late gets every event from the start first
 * The trainer's event callback hands each event to dash_event. */
#ifndef MG_DASHBOARD_H
#define MG_DASHBOARD_H

#include "train/trainer.h"

typedef struct dash dash_t;

/* Listens on host:port (0: any free port; see dash_port). NULL with err. */
dash_t *dash_start(const char *host, int port, char *err);
int dash_port(const dash_t *d);
/* Publishes a training event (d NULL: nothing). A TE_EVAL with a model
 * also gets a short sample generated from it (fixed prompt and seed, so
 * that samples of successive evaluations compare). */
void dash_event(dash_t *d, const train_event_t *e);
/* Sends "end" to the pages, lets them read it, stops and frees (NULL: no-op). */
void dash_stop(dash_t *d);

#endif
