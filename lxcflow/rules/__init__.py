"""User rules: react to transitions and to what containers do.

:mod:`~lxcflow.rules.model` says what a rule is, :mod:`~lxcflow.rules.parse`
reads rules files, :mod:`~lxcflow.rules.restart` keeps restart policies'
books, and :mod:`~lxcflow.daemon.engine` runs them in the daemon.
"""
