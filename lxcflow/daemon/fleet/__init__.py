"""Beyond one host: this daemon's journal and states on NATS JetStream, and
the other hosts' states, events and rule triggers from there.

:mod:`link` keeps the connection (and says when there is none);
:mod:`publisher` sends the journal, :mod:`statebook` the current states and
the heartbeat, :mod:`view` mirrors every host's states, :mod:`feed` hands
other hosts' events to the rules and to ``monitor --fleet``.
"""
