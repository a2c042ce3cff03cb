/* http.h - the small HTTP answers the web app's endpoints share (JSON,
 * OpenAI-shaped errors, embedded files), over libmicrohttpd. Each returns
 * what MHD_queue_response returned (MHD_NO: drop the connection). No CORS
 * header is ever added here: the server that routes to us decides that. */
#ifndef MG_WEB_HTTP_H
#define MG_WEB_HTTP_H

#include <stddef.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

/* j (consumed) as a response: its compact text, Content-Type
 * application/json; NULL when out of memory (or j is NULL). The caller
 * queues and destroys it. Also serve's answers (src/serve/http.c). */
struct MHD_Response *web_json_response(cJSON *j);
/* Sends j (consumed; NULL: out of memory, the connection is dropped). */
enum MHD_Result web_send_json(struct MHD_Connection *c, unsigned status, cJSON *j);
/* {"error": {"message": msg, "type": ...}}, as the OpenAI API answers;
 * allow (NULL: none) is the Allow header of a 405. */
enum MHD_Result web_send_error(struct MHD_Connection *c, unsigned status, const char *msg,
                               const char *allow);
/* One of the files embedded from web/ (url "/" is /index.html); 0 and
 * *ret set when there is such a file, -1 when there is none. */
int web_send_asset(struct MHD_Connection *c, const char *url, enum MHD_Result *ret);

#endif
