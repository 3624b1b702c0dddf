/* slimedge examples/mcu: reading a host file through ARM semihosting (QEMU's -semihosting):
   SYS_OPEN, SYS_READ, SYS_CLOSE. Paths are the host's, relative to where QEMU runs. */
#ifndef SLIMEDGE_SEMIHOST_FILE_H
#define SLIMEDGE_SEMIHOST_FILE_H
#include <stdint.h>
#include <string.h>

#include "semihost.h"

/* a handle (>= 0), or -1 */
static inline int semihost_open(const char *path)
{
    const uintptr_t block[3] = {(uintptr_t)path, 1u /* "rb" */, (uintptr_t)strlen(path)};
    return (int)semihost_call(0x01, block);
}

/* the bytes read (0 at the end of the file) */
static inline int semihost_read(int handle, void *buf, int bytes)
{
    const uintptr_t block[3] = {(uintptr_t)handle, (uintptr_t)buf, (uintptr_t)bytes};
    return bytes - (int)semihost_call(0x06, block);  /* SYS_READ returns the bytes NOT read */
}

static inline void semihost_close(int handle)
{
    const uintptr_t block[1] = {(uintptr_t)handle};
    semihost_call(0x02, block);
}
#endif
