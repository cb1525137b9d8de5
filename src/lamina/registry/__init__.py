"""The OCI distribution protocol: pull and push images, with auth, TLS, retries and mirrors.

    config.py       lamina's registry settings: insecure registries, mirrors, certs.d
    credentials.py  Docker's config.json and credential helpers
    auth.py         WWW-Authenticate challenges, basic auth, bearer tokens per scope
    transport.py    HTTP(S) connections, TLS, retries with backoff, redirects
    client.py       the distribution API of one repository: manifests, blobs, uploads, tags
    mirrors.py      which endpoints serve a reference (docker.io mirrors first)
    quirks.py       what real registries do that the specs do not say, in one place
    pull.py         RegistryImage (an Image) and pull into the store
    push.py         push from the store: HEAD, mount, upload, manifest last
    sources.py      where blobs came from and went to, for cross-repository mounts
    progress.py     the per-layer progress events; errors.py  the errors, each naming what

Nothing here is imported until a registry is contacted (the CLI imports it inside a
command's ``run``), and nothing prints: progress goes to a callback, failures are
``RegistryError``s that name the reference.
"""
