"""The hybrid's own stage: signals, the rehearsal, the count-aware gate, the new-user path and the model.

Data flows signals -> rehearsal -> gate -> model (see docs/architecture.md); each module talks to
the others through public functions and dataclasses.
"""
