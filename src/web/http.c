/* http.c - JSON, error and file answers for the web endpoints (http.h). */
#include "web/http.h"

#include <string.h>

#include "web/assets.h"

static enum MHD_Result queue(struct MHD_Connection *c, unsigned status, struct MHD_Response *r,
                             const char *type) {
    if (!r) return MHD_NO;
    if (type) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    /* the app's text is only ever inserted as text; this tells the browser
     * not to guess types and to run no script from elsewhere */
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

struct MHD_Response *web_json_response(cJSON *j) {
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!s) return NULL;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(s), s, MHD_RESPMEM_MUST_COPY);
    cJSON_free(s);
    if (r) MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    return r;
}

enum MHD_Result web_send_json(struct MHD_Connection *c, unsigned status, cJSON *j) {
    return queue(c, status, web_json_response(j), NULL);
}

enum MHD_Result web_send_error(struct MHD_Connection *c, unsigned status, const char *msg,
                               const char *allow) {
    cJSON *j = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(j, "error");
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddStringToObject(e, "type", status >= 500 ? "server_error" : "invalid_request_error");
    struct MHD_Response *r = web_json_response(j);
    if (r && allow) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    return queue(c, status, r, NULL);
}

int web_send_asset(struct MHD_Connection *c, const char *url, enum MHD_Result *ret) {
    const char *type;
    const web_asset_t *a = web_asset_find(url, &type);
    if (!a) return -1;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(a->len, (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (r) {
        /* no inline script or remote source: a stray <script> in shown text could not run */
        if (strncmp(type, "text/html", 9) == 0)
            MHD_add_response_header(r, "Content-Security-Policy",
                                    "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'");
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    }
    *ret = queue(c, MHD_HTTP_OK, r, type);
    return 0;
}
