/* backend.c - --device: picks the CPU backend or loads the CUDA one.
 *
 * The CUDA backend is a plugin (minigpt_cuda.so, built when nvcc exists)
 * opened with dlopen only when a GPU is asked for, so the minigpt binary
 * never links the CUDA libraries: it starts as fast as before, runs where
 * they are missing, and the sanitizer build stays free of them. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ops/cpu/cpu.h"
#include "ops/ops.h"
#include "util/common.h"

/* what the plugin exports (src/ops/cuda/cuda_backend.cu) */
typedef int (*probe_fn)(char *err);
typedef int (*abi_fn)(void);
typedef const ops_backend_t *(*open_fn)(const char *precision, size_t table_size, char *err);

static void *plugin;

/* Opens the plugin: $MINIGPT_CUDA_LIB, else minigpt_cuda.so beside the
 * executable or one folder up (the test programs live in build/tests). */
static void *open_plugin(char *err) {
    if (plugin) return plugin;
    const char *env = getenv("MINIGPT_CUDA_LIB");
    if (env && *env) {
        if (!(plugin = dlopen(env, RTLD_NOW | RTLD_LOCAL)))
            mg_fail(err, "cannot load the CUDA backend %s: %s", env, dlerror());
        return plugin;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return mg_fail(err, "cannot locate the executable to find minigpt_cuda.so"), NULL;
    exe[n] = '\0';
    char *dir = dirname(exe);
    const char *tries[] = {"%s/minigpt_cuda.so", "%s/../minigpt_cuda.so"};
    char path[PATH_MAX + 32], why[256] = "";
    for (size_t i = 0; i < sizeof tries / sizeof tries[0]; i++) {
        snprintf(path, sizeof path, tries[i], dir);
        if (access(path, R_OK) != 0) continue;
        if ((plugin = dlopen(path, RTLD_NOW | RTLD_LOCAL))) return plugin;
        snprintf(why, sizeof why, "%s", dlerror());
    }
    if (why[0]) return mg_fail(err, "cannot load the CUDA backend: %s", why), NULL;
    mg_fail(err,
            "this build has no CUDA backend (no minigpt_cuda.so beside %s; build where nvcc "
            "is installed)",
            dir);
    return NULL;
}

/* 1 if the plugin loads and sees a GPU; err says why not. Without the
 * NVIDIA driver's device node there is no GPU to find: that answer costs
 * no library loading, which keeps CPU-only runs as quick to start. */
static int cuda_usable(char *err) {
    if (!plugin && access("/dev/nvidiactl", F_OK) != 0 && !getenv("MINIGPT_CUDA_LIB"))
        return mg_fail(err, "no NVIDIA GPU driver here (no /dev/nvidiactl)"), 0;
    void *h = open_plugin(err);
    if (!h) return 0;
    /* the table's layout version first: a plugin built against another
     * ops.h would hand over a table of another layout (the plugin also
     * checks the table's size) */
    abi_fn abi = (abi_fn)dlsym(h, "mg_cuda_abi");
    int v = abi ? abi() : 0;
    if (v != OPS_ABI_VERSION)
        return mg_fail(err,
                       "minigpt_cuda.so has backend table version %d, this minigpt %d: rebuild "
                       "it (make minigpt)",
                       v, OPS_ABI_VERSION),
               0;
    probe_fn probe = (probe_fn)dlsym(h, "mg_cuda_probe");
    if (!probe) return mg_fail(err, "minigpt_cuda.so lacks mg_cuda_probe"), 0;
    return probe(err) == 0;
}

int ops_cuda_available(void) {
    char err[MG_ERR_LEN];
    return cuda_usable(err);
}

const ops_backend_t *ops_select(const char *device, const char *precision, int threads, char *note,
                                char *err) {
    char why[MG_ERR_LEN] = "";
    if (note) note[0] = '\0';
    if (!device) device = "auto";
    if (strcmp(device, "cpu") && strcmp(device, "cuda") && strcmp(device, "auto"))
        return mg_fail(err, "--device: '%s' is not one of auto, cpu, cuda", device), NULL;
    if (precision && strcmp(precision, "fp32") && strcmp(precision, "bf16"))
        return mg_fail(err, "--precision: '%s' is not one of fp32, bf16", precision), NULL;
    /* the host side of every run (tokenizer, sampling, data) uses threads */
    ops_cpu_set_threads(threads);
    if (strcmp(device, "cpu") != 0) {
        if (cuda_usable(why)) {
            open_fn open = (open_fn)dlsym(plugin, "mg_cuda_backend");
            if (!open) return mg_fail(err, "minigpt_cuda.so lacks mg_cuda_backend"), NULL;
            return open(precision, sizeof(ops_backend_t), err);
        }
        if (strcmp(device, "cuda") == 0) return mg_fail(err, "--device cuda: %s", why), NULL;
        if (note) snprintf(note, MG_ERR_LEN, "--device auto: using the CPU (%.450s)", why);
    }
    if (precision && strcmp(precision, "bf16") == 0)
        return mg_fail(err, "--precision bf16 needs a GPU (the CPU backend is float32)"), NULL;
    return ops_cpu();
}
