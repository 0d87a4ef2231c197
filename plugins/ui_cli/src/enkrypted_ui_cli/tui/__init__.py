"""The Textual chat (``enkrypted chat``): private to enkrypted-ui-cli; docs/tui.md describes it.

:mod:`.model` is the pure presenter (events in, view state out, unit-tested); :mod:`.app` and
:mod:`.screens` draw it and run every service call in a worker, never on the UI loop's path.
"""
