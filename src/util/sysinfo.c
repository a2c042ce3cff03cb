/* sysinfo.c - cores and memory from sysconf and /proc. */
#define _POSIX_C_SOURCE 200809L
#include "util/sysinfo.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* the value of "Key:   123 kB" in a /proc file, in bytes */
static size_t proc_kb(const char *file, const char *key) {
    FILE *f = fopen(file, "r");
    if (!f) return 0;
    char line[256];
    size_t v = 0, klen = strlen(key);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            unsigned long long kb = 0;
            if (sscanf(line + klen + 1, "%llu", &kb) == 1) v = (size_t)kb * 1024;
            break;
        }
    }
    fclose(f);
    return v;
}

void mg_sysinfo(mg_sysinfo_t *s) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    s->cores = n > 0 ? (int)n : 1;
    s->mem_total = proc_kb("/proc/meminfo", "MemTotal");
    s->mem_available = proc_kb("/proc/meminfo", "MemAvailable");
}

size_t mg_rss_now(void) { return proc_kb("/proc/self/status", "VmRSS"); }
size_t mg_rss_peak(void) { return proc_kb("/proc/self/status", "VmHWM"); }
