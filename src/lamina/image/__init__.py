"""The OCI data model: references, digests, manifests, configs. Pure: no I/O."""
