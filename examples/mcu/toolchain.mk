# What the firmwares' makefiles (Makefile, audio.mk) share: the export's names and the Cortex-M4F
# toolchain, flags and linker script. MODEL is a slimedge C export; PREFIX its C identifier prefix
# (its file stem made a C identifier), UPPER the same in capitals (its header's macros).
MODEL ?= model.c
BUILD ?= build
PREFIX ?= $(subst -,_,$(subst .,_,$(basename $(notdir $(MODEL)))))
UPPER := $(shell echo '$(PREFIX)' | tr a-z A-Z)
HEADER := $(basename $(MODEL)).h
KERNELS := $(dir $(MODEL))slimedge_kernels.h
CC := arm-none-eabi-gcc
QEMU ?= qemu-system-arm
CPU ?= -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16
CFLAGS ?= -O2
WARN := -std=c99 -Wall -Wextra -Werror
LINK := -nostartfiles -Wl,--gc-sections -T mps2-an386.ld --specs=nano.specs --specs=nosys.specs
