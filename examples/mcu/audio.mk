# The audio firmware (audio.c) around one slimedge C export of a model that reads audio, run in
# QEMU's MPS2 AN386 board (Cortex-M4F):
#
#   make -f audio.mk run MODEL=model.c WAV=clip.wav   # the clip as a constant array (pcm.h)
#   make -f audio.mk run-file MODEL=model.c WAV=clip.wav  # the clip read through semihosting
#   make -f audio.mk run-events MODEL=model.c WAV=stream.wav  # events.c: a continuous model's
#                                          # events (PREFIX_events) on a long stream, one a line
#
# Needs what the Makefile's firmware needs (arm-none-eabi-gcc with newlib, qemu-system-arm) and a
# python3 for pcm.py (standard library only). PREFIX is the export's identifier prefix (its file
# stem made a C identifier).
include toolchain.mk
WAV ?= clip.wav
PYTHON ?= python3
MACROS := -DSLIMEDGE_MODEL_HEADER='"$(notdir $(HEADER))"' -DSLIMEDGE_PREFIX=$(PREFIX) \
          -DSLIMEDGE_UPPER=$(UPPER) -I$(dir $(MODEL)) -I$(BUILD) -I.
SOURCES := audio.c events.c startup.c semihost.h semihost_file.h mps2-an386.ld $(MODEL) $(HEADER) $(KERNELS)
RUN = $(QEMU) -M mps2-an386 -display none -monitor none -serial none -chardev stdio,id=console \
	    -semihosting-config enable=on,target=native,chardev=console -kernel

.PHONY: all run run-file run-events clean
all: $(BUILD)/audio.elf

$(BUILD)/pcm.h: pcm.py $(WAV)
	mkdir -p $(BUILD)
	$(PYTHON) pcm.py --wav $(WAV) -o $@

$(BUILD)/clip.pcm: pcm.py $(WAV)
	mkdir -p $(BUILD)
	$(PYTHON) pcm.py --wav $(WAV) --raw -o $@

$(BUILD)/audio.elf: $(SOURCES) $(BUILD)/pcm.h
	$(CC) $(CPU) $(CFLAGS) $(WARN) -ffunction-sections -fdata-sections $(MACROS) $(LINK) \
	    -o $@ startup.c audio.c $(MODEL) -lm

$(BUILD)/audio-file.elf: $(SOURCES)
	mkdir -p $(BUILD)
	$(CC) $(CPU) $(CFLAGS) $(WARN) -ffunction-sections -fdata-sections $(MACROS) \
	    -DPCM_FILE='"$(BUILD)/clip.pcm"' $(LINK) -o $@ startup.c audio.c $(MODEL) -lm

$(BUILD)/events.elf: $(SOURCES)
	mkdir -p $(BUILD)
	$(CC) $(CPU) $(CFLAGS) $(WARN) -ffunction-sections -fdata-sections $(MACROS) \
	    -DPCM_FILE='"$(BUILD)/clip.pcm"' $(LINK) -o $@ startup.c events.c $(MODEL) -lm

run: $(BUILD)/audio.elf
	$(RUN) $<

run-file: $(BUILD)/audio-file.elf $(BUILD)/clip.pcm
	$(RUN) $<

run-events: $(BUILD)/events.elf $(BUILD)/clip.pcm
	$(RUN) $<

clean:
	rm -f $(BUILD)/audio.elf $(BUILD)/audio-file.elf $(BUILD)/events.elf $(BUILD)/pcm.h $(BUILD)/clip.pcm
