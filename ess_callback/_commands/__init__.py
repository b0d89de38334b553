"""The commands of ``ess-callback``, one module each, loaded only when invoked."""
