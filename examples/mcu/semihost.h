/* slimedge examples/mcu: ARM semihosting, the debugger's (here QEMU's -semihosting) console and
   exit, without a C library: SYS_WRITE0 prints a string (semihost_write_int: a number within
   one), SYS_EXIT_EXTENDED ends the run with a status QEMU returns as its own. */
#ifndef SLIMEDGE_SEMIHOST_H
#define SLIMEDGE_SEMIHOST_H
#include <stdint.h>

static inline uintptr_t semihost_call(uintptr_t op, const void *arg)
{
    register uintptr_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

static inline void semihost_write(const char *text) { semihost_call(0x04, text); }

/* before, the decimal v, after: one line such as "frames: 13\n" (no printf, no C library) */
static inline void semihost_write_int(const char *before, long v, const char *after)
{
    char buf[64], digits[24];
    int n = 0, k = 0;
    for (const char *p = before; *p && n < 20; p++) buf[n++] = *p;
    unsigned long u = v < 0 ? -(unsigned long)v : (unsigned long)v;
    do { digits[k++] = (char)('0' + u % 10); u /= 10; } while (u);
    if (v < 0) buf[n++] = '-';
    while (k) buf[n++] = digits[--k];
    for (const char *p = after; *p && n < 62; p++) buf[n++] = *p;
    buf[n] = 0;
    semihost_write(buf);
}

__attribute__((noreturn)) static inline void semihost_exit(int status)
{
    const uintptr_t block[2] = {0x20026u, (uintptr_t)status}; /* ADP_Stopped_ApplicationExit */
    semihost_call(0x20, block);
    for (;;) {
    }
}
#endif
