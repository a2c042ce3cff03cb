/* sysinfo.h - what the machine has: cores and memory, for the defaults that
 * adapt to the hardware. */
#ifndef MG_SYSINFO_H
#define MG_SYSINFO_H

#include <stddef.h>

typedef struct {
    int cores;            /* online CPUs */
    size_t mem_total;     /* bytes */
    size_t mem_available; /* bytes the kernel says can be used now */
} mg_sysinfo_t;

void mg_sysinfo(mg_sysinfo_t *s);
/* Resident set size of this process now and at its peak (bytes, 0 if
 * unknown). */
size_t mg_rss_now(void);
size_t mg_rss_peak(void);

#endif
