/* assets.c - looks up the embedded web/ files (see assets.h); the bytes
 * themselves are in the generated build/gen/web_assets.c. */
#include "web/assets.h"

#include <string.h>

static const struct {
    const char *ext, *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".json", "application/json"},
    {".png", "image/png"},
};

const web_asset_t *web_asset_find(const char *url, const char **type) {
    if (strcmp(url, "/") == 0) url = "/index.html";
    for (const web_asset_t *a = web_assets; a->path; a++) {
        if (strcmp(a->path, url) != 0) continue;
        const char *dot = strrchr(a->path, '.');
        *type = "application/octet-stream";
        for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
            if (strcmp(dot, types[i].ext) == 0) *type = types[i].type;
        return a;
    }
    return NULL;
}
