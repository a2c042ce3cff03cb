/* chat_template.c - the chat template's rendering (see chat_template.h). */
#include "infer/chat_template.h"

#include <string.h>

static const char CONTENT[] = "{content}", ROLE[] = "{role}";

int chat_template_check(const char *t, char *err) {
    const char *c = strstr(t, CONTENT);
    if (!c || strstr(c + 1, CONTENT))
        return mg_fail(err, "the chat template must contain '{content}' exactly once");
    return 0;
}

const char *chat_template_of(const ckpt_t *ck, char *err) {
    const char *t = ck->file ? st_meta(ck->file, "chat_template") : NULL;
    if (!t) return CHAT_TEMPLATE_DEFAULT;
    char why[MG_ERR_LEN];
    if (chat_template_check(t, why) != 0) {
        mg_fail(err, "the checkpoint's chat_template: %s", why);
        return NULL;
    }
    return t;
}

/* t[from, to) with each {role} replaced by role */
static void put_part(mg_buf_t *b, const char *from, const char *to, const char *role) {
    while (from < to) {
        const char *r = strstr(from, ROLE);
        const char *end = r && r + sizeof ROLE - 1 <= to ? r : to;
        mg_buf_put(b, from, (size_t)(end - from));
        if (end == to) break;
        mg_buf_put(b, role, strlen(role));
        from = end + sizeof ROLE - 1;
    }
}

void chat_template_open(mg_buf_t *b, const char *t, const char *role) {
    put_part(b, t, strstr(t, CONTENT), role);
}

void chat_template_close(mg_buf_t *b, const char *t, const char *role) {
    const char *c = strstr(t, CONTENT) + sizeof CONTENT - 1;
    put_part(b, c, c + strlen(c), role);
}
