/* semihost.h: the few Arm semihosting calls the QEMU harness needs (BKPT 0xAB on M-profile): files on the host,
   console output and exit. No heap, no stdio. */
#ifndef BNN_SEMIHOST_H
#define BNN_SEMIHOST_H

#include <stdint.h>

static inline int32_t bnn_semihost(int32_t op, const void *arg) {
    int32_t result;
    __asm__ __volatile__("mov r0, %1\n\tmov r1, %2\n\tbkpt 0xab\n\tmov %0, r0"
                         : "=r"(result)
                         : "r"(op), "r"(arg)
                         : "r0", "r1", "memory");
    return result;
}

static inline void bnn_write0(const char *text) { bnn_semihost(0x04, text); }

static inline int32_t bnn_strlen(const char *text) {
    int32_t n = 0;
    while (text[n]) n++;
    return n;
}

/* mode 1: "rb", 5: "wb"; returns a handle or -1 */
static inline int32_t bnn_open(const char *path, int32_t mode) {
    uint32_t args[3];
    args[0] = (uint32_t)(uintptr_t)path;
    args[1] = (uint32_t)mode;
    args[2] = (uint32_t)bnn_strlen(path);
    return bnn_semihost(0x01, args);
}

static inline int32_t bnn_close(int32_t handle) { return bnn_semihost(0x02, &handle); }

/* returns the bytes NOT transferred */
static inline int32_t bnn_transfer(int32_t op, int32_t handle, const void *buffer, int32_t length) {
    uint32_t args[3];
    args[0] = (uint32_t)handle;
    args[1] = (uint32_t)(uintptr_t)buffer;
    args[2] = (uint32_t)length;
    return bnn_semihost(op, args);
}

static inline int32_t bnn_read(int32_t handle, void *buffer, int32_t length) {
    return bnn_transfer(0x06, handle, buffer, length);
}

static inline int32_t bnn_write(int32_t handle, const void *buffer, int32_t length) {
    return bnn_transfer(0x05, handle, buffer, length);
}

static inline int32_t bnn_flen(int32_t handle) { return bnn_semihost(0x0C, &handle); }

/* SYS_EXIT: ADP_Stopped_ApplicationExit (QEMU exits 0) for status 0, else ADP_Stopped_RunTimeErrorUnknown (1) */
static inline void bnn_exit(int status) {
    bnn_semihost(0x18, (const void *)(uintptr_t)(status == 0 ? 0x20026u : 0x20023u));
    for (;;) {
    }
}

#endif
