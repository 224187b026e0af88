"""When each step is due: offsets and send windows, slots and DST, one enrollment's plan. Pure."""
