"""Peak shaving: an example strategy plug-in for mmg-cosim (see ``docs/writing-a-strategy.md``)."""
