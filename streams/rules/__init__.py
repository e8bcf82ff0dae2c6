"""The pure rules of SPEC.md: state + event + time -> new state + commands. No I/O here."""
