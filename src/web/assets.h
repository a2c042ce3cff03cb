/* assets.h - the web app's files (web/), embedded in the binary at build
 * time: scripts/embed_web.sh writes build/gen/web_assets.c from them, so
 * that one binary is the whole product and the page needs no network. */
#ifndef MG_WEB_ASSETS_H
#define MG_WEB_ASSETS_H

#include <stddef.h>

typedef struct {
    const char *path; /* "/index.html": the URL path */
    const unsigned char *data;
    size_t len;
} web_asset_t;

/* the table, ended by an entry with path NULL (generated) */
extern const web_asset_t web_assets[];

/* The file at a URL path ("/" is "/index.html"), NULL when none; *type
 * gets its Content-Type. */
const web_asset_t *web_asset_find(const char *url, const char **type);

#endif
