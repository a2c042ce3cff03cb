/* chat_template.h - turning a conversation (role, content messages) into
 * the model's prompt, shared by `minigpt chat` and the server's
 * /v1/chat/completions so that both send the model the same text.
 *
 * A template is a string with exactly one "{content}" and any number of
 * "{role}" markers: each message is the template with both replaced, the
 * messages follow each other, and the prompt ends with the template's part
 * before "{content}" for role "assistant" (where the answer goes). A
 * checkpoint may carry its own in the metadata key "chat_template"; base
 * models use CHAT_TEMPLATE_DEFAULT, which renders
 *   user: Olá\nassistant: Oi!\nuser: Tudo bem?\nassistant: */
#ifndef MG_CHAT_TEMPLATE_H
#define MG_CHAT_TEMPLATE_H

#include "io/checkpoint.h"
#include "util/common.h"

#define CHAT_TEMPLATE_DEFAULT "{role}: {content}\n"

/* The checkpoint's template (its "chat_template" metadata) or the default;
 * NULL with err when the checkpoint's is malformed. Borrowed from ck. */
const char *chat_template_of(const ckpt_t *ck, char *err);
/* 0 if t has exactly one {content}, else -1 with err. */
int chat_template_check(const char *t, char *err);
/* Appends to b the part of a role's message before its content (open) or
 * after it (close). b->oom says if memory ran out. */
void chat_template_open(mg_buf_t *b, const char *t, const char *role);
void chat_template_close(mg_buf_t *b, const char *t, const char *role);

#endif
