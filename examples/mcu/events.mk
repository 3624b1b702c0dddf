# The events firmware (events.c) around one slimedge C export of a continuous model (a background
# class, an audio front-end: its .h declares PREFIX_events), run in QEMU's MPS2 AN386 board
# (Cortex-M4F) on a long stream read through semihosting:
#
#   make -f events.mk run MODEL=model.c WAV=stream.wav    # one line per event
#
# Needs what audio.mk needs. PREFIX is the export's identifier prefix.
MODEL ?= model.c
WAV ?= stream.wav
BUILD ?= build
PYTHON ?= python3
PREFIX ?= $(subst -,_,$(subst .,_,$(basename $(notdir $(MODEL)))))
UPPER := $(shell echo '$(PREFIX)' | tr a-z A-Z)
HEADER := $(basename $(MODEL)).h
KERNELS := $(dir $(MODEL))slimedge_kernels.h
CC := arm-none-eabi-gcc
QEMU ?= qemu-system-arm
CPU ?= -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16
CFLAGS ?= -O2
WARN := -std=c99 -Wall -Wextra -Werror
MACROS := -DSLIMEDGE_MODEL_HEADER='"$(notdir $(HEADER))"' -DSLIMEDGE_PREFIX=$(PREFIX) \
          -DSLIMEDGE_UPPER=$(UPPER) -I$(dir $(MODEL)) -I$(BUILD) -I.
LINK := -nostartfiles -Wl,--gc-sections -T mps2-an386.ld --specs=nano.specs --specs=nosys.specs
SOURCES := events.c startup.c semihost.h semihost_file.h mps2-an386.ld $(MODEL) $(HEADER) $(KERNELS)
RUN = $(QEMU) -M mps2-an386 -display none -monitor none -serial none -chardev stdio,id=console \
	    -semihosting-config enable=on,target=native,chardev=console -kernel

.PHONY: all run clean
all: $(BUILD)/events.elf

$(BUILD)/stream.pcm: pcm.py $(WAV)
	mkdir -p $(BUILD)
	$(PYTHON) pcm.py --wav $(WAV) --raw -o $@

$(BUILD)/events.elf: $(SOURCES)
	mkdir -p $(BUILD)
	$(CC) $(CPU) $(CFLAGS) $(WARN) -ffunction-sections -fdata-sections $(MACROS) \
	    -DPCM_FILE='"$(BUILD)/stream.pcm"' $(LINK) -o $@ startup.c events.c $(MODEL) -lm

run: $(BUILD)/events.elf $(BUILD)/stream.pcm
	$(RUN) $<

clean:
	rm -f $(BUILD)/events.elf $(BUILD)/stream.pcm
