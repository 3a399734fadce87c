"""The daemon side of lxcflow: what ``lxcflow daemon`` runs, and nothing the CLI loads.

``main`` composes the rest: the supervisor (registry, lifecycle), the start
pipeline (``launch``), one ``Run`` per running container, the ``freezer``,
``adoption``, the event bus and journal, hooks, the rule engine and the
control socket (``server``: transport; ``handlers``, ``replay``: meaning).
"""
