"""The batch engine: submit lane, poll lane, scheduler, journal and outcomes."""
