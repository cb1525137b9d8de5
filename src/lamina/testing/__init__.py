"""Fakes for tests, lamina's and its users': ``lamina.testing.registry.FakeRegistry``, an
in-process OCI registry. Nothing here is imported by lamina itself."""
