"""``lamina info``: versions, state root, snapshotter, runtime, cgroups, network, registry
settings and counts, as ``docker info`` prints them: one ``Key: value`` a line, details
indented under their part."""
from __future__ import annotations

import json

from .args import ArgumentParser, Namespace

TYPE_CHECKING = False   # typing is not imported at run time: start-up time
if TYPE_CHECKING:
    from ..api.sysinfo import SystemInfo

HELP = "Display system-wide information: what lamina uses here, and why"


def register(p: ArgumentParser) -> None:
    p.add_argument("-f", "--format", metavar="FORMAT", choices=("json",),
                   help="'json' for the same facts as JSON")


def run(args: Namespace) -> int:
    from ..api.sysinfo import info

    facts = info()  # opens the state root only if it exists: a fresh machine gets no store
    if args.format == "json":
        print(json.dumps(facts.to_json(), indent=2))
    else:
        print(render(facts), end="")
    return 0


def render(facts: "SystemInfo") -> str:
    from .format import bytes_size

    s, r, n, g = facts.storage, facts.runtime, facts.network, facts.registry
    lines = [
        f"Version: {facts.version}",
        f"Python: {facts.python}",
        f"Kernel Version: {facts.kernel}",
        f"Operating System: {facts.operating_system}",
        f"Architecture: {facts.architecture}",
        f"CPUs: {facts.cpus}",
        f"Total Memory: {bytes_size(facts.memory)}",
        f"State Root: {s.root}" + (" (from LAMINA_ROOT)" if s.root_from == "LAMINA_ROOT"
                                   else " (default; LAMINA_ROOT chooses another)"),
        f" Backing Filesystem: {s.backing_filesystem}",
        f"Storage Driver: {s.driver}",
        f" Snapshotter: {s.snapshotter}",
        f" Why: {s.why}",
        " Overlay In Kernel: " + ("yes" if s.overlay_in_kernel
                                  else "not loaded yet (modprobe overlay)"),
        f" Snapshots: {s.snapshots}",
        f"Runtime: {r.name or 'none found'}",
    ]
    if r.name:
        lines += [f" Path: {r.path}", f" Version: {r.version}"]
    lines += [
        f" Why: {r.why}",
        f"Cgroup Version: {r.cgroup_version}",
        f" Why: {r.cgroup_why}",
        f" Hybrid Workaround: {'yes' if r.hybrid_workaround else 'no'}: {r.workaround_why}",
        f"Network: {n.backend}",
        f" Plugin Dir: {n.plugin_dir}",
        f" Plugins Needed: {', '.join(n.plugins_needed)}"
        + (f" (missing: {', '.join(n.plugins_missing)})" if n.plugins_missing
           else " (all found)"),
        f" Plugins Found: {', '.join(n.plugins_found) or 'none'}",
        f" Default Network: {n.network} (bridge {n.bridge}, subnet {n.subnet})",
        f" iptables: {n.iptables}",
        "Registry:",
        f" Config: {g.config_file}" + ("" if g.config_present else " (absent: defaults)"),
        f" Mirrors: {', '.join(g.mirrors) or 'none'}",
        " Insecure Registries: " + ", ".join((*g.insecure_registries, "loopback")),
        f" Certs Directory: {g.certs_directory}",
        f" Credentials: {g.credentials_file}"
        + ("" if g.credentials_present else " (absent)"),
        f"Images: {facts.images}",
        f"Containers: {facts.containers}",
        f" Running: {facts.containers_running}",
        f" Created: {facts.containers_created}",
        f" Exited: {facts.containers_exited}",
        f"Volumes: {facts.volumes}",
    ]
    lines += [f"WARNING: {w}" for w in facts.warnings]
    return "\n".join(lines) + "\n"
