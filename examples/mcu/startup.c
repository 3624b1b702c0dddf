/* slimedge examples/mcu: the least a Cortex-M needs to run main(): a vector table, and a reset
   handler that copies .data from flash, clears .bss, turns on the FPU (when built for one) and
   calls main. Faults end the run through semihosting with a message instead of hanging. */
#include <stdint.h>

#include "semihost.h"

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;
int main(void);

void Reset_Handler(void)
{
    const uint32_t *src = &__data_load;
    for (uint32_t *dst = &__data_start; dst < &__data_end;) *dst++ = *src++;
    for (uint32_t *dst = &__bss_start; dst < &__bss_end;) *dst++ = 0;
#if defined(__ARM_FP)
    /* CPACR: full access to the coprocessors CP10 and CP11, the FPU */
    *(volatile uint32_t *)0xE000ED88 |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    semihost_exit(main());
}

static void Fault_Handler(void)
{
    semihost_write("fault: the firmware stopped\n");
    semihost_exit(1);
}

/* the first 16 entries (the core's own exceptions); no interrupts are used */
__attribute__((section(".vectors"), used))
static void (*const vectors[16])(void) = {
    (void (*)(void))&__stack_top, Reset_Handler,
    Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    0, 0, 0, 0,
    Fault_Handler, Fault_Handler, 0, Fault_Handler, Fault_Handler,
};
