/* startup.c: a minimal Cortex-M start for QEMU's boards (and real ones): the vector table at 0x0 (initial stack
   pointer, reset handler), a reset handler that copies .data, zeroes .bss, enables the FPU where there is one,
   runs main() and reports its exit status through semihosting. Linker script: board.ld. */
#include <stdint.h>

#include "semihost.h"

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;
int main(void);
void bnn_reset(void);
void bnn_fault(void);
void bnn_systick(void);

typedef void (*bnn_handler_t)(void);

/* initial SP, then reset, NMI, HardFault, MemManage, BusFault, UsageFault, 4 reserved, SVCall, DebugMon,
   reserved, PendSV, SysTick */
__attribute__((section(".vectors"), used)) const struct {
    uint32_t *stack;
    bnn_handler_t handlers[15];
} bnn_vectors = {&__stack_top,
                 {bnn_reset, bnn_fault, bnn_fault, bnn_fault, bnn_fault, bnn_fault, 0, 0, 0, 0, bnn_fault, bnn_fault, 0,
                  bnn_fault, bnn_systick}};

void bnn_reset(void) {
    uint32_t *from = &__data_load, *to = &__data_start;
    while (to < &__data_end) *to++ = *from++;
    for (to = &__bss_start; to < &__bss_end; to++) *to = 0;
#if defined(__ARM_FP)
    *(volatile uint32_t *)0xE000ED88u |= 0xFu << 20; /* CPACR: full access to CP10 and CP11 (the FPU) */
    __asm__ __volatile__("dsb\n\tisb" ::: "memory");
#endif
    bnn_exit(main());
}

void bnn_fault(void) {
    bnn_write0("fault\n");
    bnn_exit(3);
}

/* newlib's startup hooks, unused without its crt0 */
void _init(void);
void _fini(void);
void _init(void) {}
void _fini(void) {}
