/* variants.h - the block variants the unit tests run every model check on:
 * GPT-2's block (first), each architecture option alone (gpt.h), and all of
 * them together with each MLP (last: tiny's block with zero-init added). */
#ifndef MG_TEST_VARIANTS_H
#define MG_TEST_VARIANTS_H

#include "model/gpt.h"

static const struct {
    const char *name;
    gpt_config_t arch; /* only the options are set; each test sets the shape */
} variants[] = {
    {"gpt2", {0}},
    {"rope", {.pos = GPT_POS_ROPE}},
    {"rmsnorm", {.norm = GPT_NORM_RMS}},
    {"qk-norm", {.qk_norm = 1}},
    {"untied head", {.untie_head = 1}},
    {"zero init", {.zero_init = 1, .untie_head = 1}},
    {"relu2", {.mlp = GPT_MLP_RELU2}},
    {"swiglu", {.mlp = GPT_MLP_SWIGLU}},
    {"all, swiglu",
     {.pos = GPT_POS_ROPE,
      .norm = GPT_NORM_RMS,
      .qk_norm = 1,
      .untie_head = 1,
      .zero_init = 1,
      .mlp = GPT_MLP_SWIGLU}},
    {"all, relu2",
     {.pos = GPT_POS_ROPE,
      .norm = GPT_NORM_RMS,
      .qk_norm = 1,
      .untie_head = 1,
      .zero_init = 1,
      .mlp = GPT_MLP_RELU2}},
};
#define N_VARIANTS (int)(sizeof variants / sizeof variants[0])

#endif
