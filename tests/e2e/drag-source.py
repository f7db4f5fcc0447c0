#!/usr/bin/python3
"""A tiny GTK 3 drag source for the end-to-end tests, what `dragon --and-exit FILE` does (dragon-drop is not in
Debian 12): a window at X, Y offering FILE as a `text/uri-list` drag, as a file manager does. It prints "ready" once
shown and exits after one drag. The test moves the pointer with xdotool (real X input events), so the drop reaches
the app through the X drag-and-drop protocol as a drop from the desktop does.

Usage: /usr/bin/python3 drag-source.py FILE X Y
"""

import sys

import gi

gi.require_version("Gdk", "3.0")
gi.require_version("Gtk", "3.0")
from gi.repository import Gdk, GLib, Gtk  # noqa: E402


def main() -> None:
    path, x, y = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    uri = GLib.filename_to_uri(path, None)
    window = Gtk.Window(title="drag source")
    window.set_default_size(80, 80)
    window.move(x, y)
    handle = Gtk.EventBox()
    handle.add(Gtk.Label(label="drag me"))
    handle.drag_source_set(Gdk.ModifierType.BUTTON1_MASK, [], Gdk.DragAction.COPY)
    handle.drag_source_add_uri_targets()
    handle.connect("drag-data-get", lambda _w, _context, data, _info, _time: data.set_uris([uri]))
    handle.connect("drag-end", lambda *_: Gtk.main_quit())
    window.add(handle)
    window.connect("map-event", lambda *_: print("ready", flush=True))
    window.connect("destroy", Gtk.main_quit)
    window.show_all()
    Gtk.main()


if __name__ == "__main__":
    main()
