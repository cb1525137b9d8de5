"""How pull and push show layer progress: plain lines for logs, redrawn lines on a terminal."""
from __future__ import annotations

import io

from lamina.cli.pull import LayerDisplay
from lamina.registry.progress import LayerProgress

LAYER = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def events(ref="reg/app:1"):
    return [LayerProgress(ref, LAYER, "Waiting", 0, 100),
            LayerProgress(ref, OTHER, "Already exists"),
            LayerProgress(ref, LAYER, "Downloading", 50, 100),
            LayerProgress(ref, LAYER, "Download complete", 100, 100),
            LayerProgress(ref, LAYER, "Pull complete")]


def test_plain_output_has_one_line_per_finished_layer():
    out = io.StringIO()
    display = LayerDisplay(out)
    for event in events():
        display.update(event)
    assert out.getvalue() == "cdcdcdcdcdcd: Already exists\nabababababab: Pull complete\n"


def test_a_terminal_gets_a_line_per_layer_redrawn_in_place():
    out = Terminal()
    display = LayerDisplay(out)
    for event in events():
        display.update(event)
    text = out.getvalue()
    assert text.startswith("abababababab: Waiting\ncdcdcdcdcdcd: Already exists\n")
    assert "\x1b[2A\r\x1b[2Kabababababab: Downloading [" in text
    assert "50B/100B" in text
    assert text.endswith("\x1b[2A\r\x1b[2Kabababababab: Pull complete\x1b[2B\r")


def test_push_statuses_are_final_too():
    out = io.StringIO()
    display = LayerDisplay(out)
    display.update(LayerProgress("r", LAYER, "Mounted from team/base"))
    display.update(LayerProgress("r", OTHER, "Layer already exists"))
    assert out.getvalue() == ("abababababab: Mounted from team/base\n"
                              "cdcdcdcdcdcd: Layer already exists\n")
